// SDP (RFC 4566 / RFC 8866) parsing and building, and the RFC 3264 offer/answer rules for one audio
// stream, plain (RTP/AVP) or encrypted with SDES-keyed SRTP (RTP/SAVP + a=crypto, RFC 4568).
//
//   parseSdp(text)                       → { ok: true, sdp } | { ok: false, error: SdpError }  (never throws)
//   formatSdp(sdp)                       → SDP text (CRLF line ends)
//   buildOffer(local)                    → Sdp offering every local codec + telephone-event (+ rtcp-mux)
//   negotiateAnswer(offer, local)        → { ok: true, answer, media } | { ok: false, status: 488, warning }
//   processAnswer(offer, answer, local)  → { ok: true, media } | { ok: false, status: 488, warning }
//
// `media` (NegotiatedMedia) is what a phone leg needs to run RTP: where to send, which payload types,
// which direction, rtcp-mux, and the SRTP keys of both directions when encrypted. The Warning header
// for a 488 is `${warning.code} ${host} "${warning.text}"` (RFC 3261 §20.43: 302 incompatible
// transport protocol, 304 media type not available, 305 incompatible media format, 306 attribute
// not understood).
//
// SRTP (`encryption`): "none" offers and accepts plain RTP/AVP only (a=crypto in an RTP/AVP offer is
// ignored, RTP/SAVP is refused). "required" offers RTP/SAVP with a=crypto and accepts only offers
// with a usable a=crypto. "optional" offers RTP/AVP *with* a=crypto — the best-effort form
// baresip's `mediaenc=srtp`, FreeSWITCH's optional mode and Asterisk's `media_encryption_optimistic`
// use: a peer without SRTP ignores the attribute and answers plain RTP, one with SRTP answers its key
// — and accepts whatever it is offered: RTP/SAVP, RTP/AVP with a usable a=crypto (encrypted), or
// plain RTP/AVP. Answers carry our own key for the suite of the first offered line we can honour.
import { firstUsableCrypto, formatCrypto, parseCrypto, type SdesCrypto } from "./sdes.ts";
import { SRTP_SUITES, generateSrtpKey, type SrtpKey, type SrtpSuite } from "./srtp.ts";

export interface SdpConnection { netType: string; addrType: string; address: string }
export interface SdpOrigin {
  username: string; sessionId: string; sessionVersion: string; netType: string; addrType: string; address: string;
}
export interface SdpAttribute { name: string; value?: string }
export interface RtpMap { encoding: string; clockRate: number; channels?: number }
export type MediaDirection = "sendrecv" | "sendonly" | "recvonly" | "inactive";
/** SRTP policy of a leg (see the header). */
export type MediaEncryption = "none" | "optional" | "required";

export interface SdpMedia {
  type: string;                 // "audio", "video", …
  port: number;
  portCount?: number;
  protocol: string;             // "RTP/AVP", "RTP/SAVP", …
  formats: string[];            // payload types in preference order (strings: non-RTP protocols use tokens)
  connection?: SdpConnection;
  bandwidths: string[];
  attributes: SdpAttribute[];
}

export interface Sdp {
  version: number;
  origin: SdpOrigin;
  sessionName: string;
  connection?: SdpConnection;
  bandwidths: string[];
  timing: string;
  attributes: SdpAttribute[];
  media: SdpMedia[];
}

export interface SdpError { kind: "sdp"; line?: number; message: string }
export type SdpParseResult = { ok: true; sdp: Sdp } | { ok: false; error: SdpError };

/** What a codec must tell the negotiator (structurally satisfied by codec.ts `Codec`). */
export interface SdpCodec {
  name: string;                 // "PCMU" | "PCMA" | "G722" | "opus"
  staticPayloadType?: number;
  rtpClockRate: number;
  sdpChannels?: number;
}

export interface LocalMediaOptions {
  address: string;                      // advertised address for c= and o=
  port: number;                         // our RTP port
  codecs: readonly SdpCodec[];          // supported, in our preference order
  /** true: pick the first of OUR codecs the offer contains; false (default): the offerer's order wins */
  preferLocalOrder?: boolean;
  rtcpMux?: boolean;                    // we support rtcp-mux (default true)
  telephoneEvent?: boolean;             // we support RFC 4733 (default true)
  direction?: MediaDirection;           // our own wish (default sendrecv; sendonly = we hold the peer)
  ptime?: number;                       // ms, default 20
  sessionId?: string;
  sessionVersion?: number;
  username?: string;
  /** SRTP policy (default none) */
  encryption?: MediaEncryption;
  /** our master key for a suite, for our a=crypto lines (default: a fresh one each time) */
  srtpKey?: (suite: SrtpSuite) => SrtpKey;
}

export interface NegotiatedMedia {
  codec: SdpCodec;
  payloadType: number;
  fmtp?: string;                        // the peer's fmtp for the chosen codec
  telephoneEventPayloadType?: number;
  telephoneEventClockRate?: number;
  remoteAddress: string;                // from c= (0.0.0.0 means hold, RFC 3264 §8.4 old style)
  remotePort: number;
  remoteRtcpAddress: string;
  remoteRtcpPort: number;
  rtcpMux: boolean;
  /** what WE do: sendrecv, sendonly (we only send), recvonly, inactive */
  direction: MediaDirection;
  /** packetisation the peer wants to receive, ms */
  ptime: number;
  /** SRTP: `local` protects what we send, `remote` what the peer sends; absent for plain RTP */
  srtp?: { local: SrtpKey; remote: SrtpKey };
}

export type WarningCode = 302 | 304 | 305 | 306;
export type NegotiationFailure = { ok: false; status: 488; warning: { code: WarningCode; text: string } };
export type AnswerResult = { ok: true; answer: Sdp; media: NegotiatedMedia } | NegotiationFailure;
export type ProcessAnswerResult = { ok: true; media: NegotiatedMedia } | NegotiationFailure;

const MAX_SDP_LENGTH = 65536;
const utf8 = new TextDecoder();
const DIRECTIONS: readonly MediaDirection[] = ["sendrecv", "sendonly", "recvonly", "inactive"];

// RFC 3551 §6 static payload types for the codecs we know.
const STATIC_RTPMAP: Record<number, RtpMap> = {
  0: { encoding: "PCMU", clockRate: 8000 },
  8: { encoding: "PCMA", clockRate: 8000 },
  9: { encoding: "G722", clockRate: 8000 },
};

export function parseSdp(input: string | Uint8Array): SdpParseResult {
  const text = typeof input === "string" ? input : utf8.decode(input);
  const fail = (message: string, line?: number): SdpParseResult => ({ ok: false, error: { kind: "sdp", line, message } });
  if (text.length === 0) return fail("empty SDP");
  if (text.length > MAX_SDP_LENGTH) return fail("SDP too large");
  const lines = text.split(/\r?\n/);
  let version: number | undefined;
  let origin: SdpOrigin | undefined;
  let sessionName: string | undefined;
  let timing: string | undefined;
  let connection: SdpConnection | undefined;
  const bandwidths: string[] = [];
  const attributes: SdpAttribute[] = [];
  const media: SdpMedia[] = [];
  let current: SdpMedia | undefined;

  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const lineNo = i + 1;
    if (raw === "") continue;            // tolerate blank/trailing lines
    if (raw.length < 2 || raw[1] !== "=") return fail(`malformed line "${raw.slice(0, 40)}"`, lineNo);
    const type = raw[0]!;
    const value = raw.slice(2).trim();
    if (i === 0 || version === undefined) {
      if (type !== "v") return fail("SDP must start with v=", lineNo);
    }
    switch (type) {
      case "v":
        if (version !== undefined) return fail("duplicate v=", lineNo);
        if (value !== "0") return fail(`unsupported SDP version ${value}`, lineNo);
        version = 0;
        break;
      case "o": {
        const f = value.split(/\s+/);
        if (f.length !== 6) return fail("o= needs 6 fields", lineNo);
        origin = { username: f[0]!, sessionId: f[1]!, sessionVersion: f[2]!, netType: f[3]!, addrType: f[4]!, address: f[5]! };
        break;
      }
      case "s": sessionName = value; break;
      case "t": timing ??= value; break;
      case "c": {
        const c = parseConnection(value);
        if (!c) return fail(`bad c= "${value}"`, lineNo);
        if (current) current.connection = c; else connection = c;
        break;
      }
      case "b": (current ? current.bandwidths : bandwidths).push(value); break;
      case "a": {
        const colon = value.indexOf(":");
        const attr: SdpAttribute = colon < 0 ? { name: value } : { name: value.slice(0, colon), value: value.slice(colon + 1) };
        (current ? current.attributes : attributes).push(attr);
        break;
      }
      case "m": {
        const m = parseMediaLine(value);
        if (!m) return fail(`bad m= "${value}"`, lineNo);
        current = m;
        media.push(m);
        break;
      }
      default:
        // i=, u=, e=, p=, r=, z=, k= carry nothing the media plane uses (RFC 4566 §5).
        if (!/^[a-z]$/.test(type)) return fail(`unknown line type "${type}"`, lineNo);
    }
  }
  if (version === undefined) return fail("missing v=");
  if (!origin) return fail("missing o=");
  for (const m of media) {
    if (m.port !== 0 && !m.connection && !connection) return fail(`m=${m.type} has no c= line`);
  }
  return {
    ok: true,
    sdp: { version, origin, sessionName: sessionName ?? "-", connection, bandwidths, timing: timing ?? "0 0", attributes, media },
  };
}

function parseConnection(value: string): SdpConnection | undefined {
  const f = value.split(/\s+/);
  if (f.length !== 3 || f[0] !== "IN" || (f[1] !== "IP4" && f[1] !== "IP6")) return undefined;
  // Multicast TTL / count suffixes ("/127") are not used for unicast RTP.
  const address = f[2]!.split("/")[0]!;
  if (address.length === 0) return undefined;
  return { netType: f[0], addrType: f[1], address };
}

function parseMediaLine(value: string): SdpMedia | undefined {
  const f = value.split(/\s+/);
  if (f.length < 4) return undefined;
  const [portText, countText] = f[1]!.split("/");
  const port = Number(portText);
  if (!/^\d+$/.test(portText ?? "") || port > 65535) return undefined;
  const portCount = countText === undefined ? undefined : Number(countText);
  if (portCount !== undefined && !(Number.isInteger(portCount) && portCount > 0)) return undefined;
  return { type: f[0]!, port, portCount, protocol: f[2]!, formats: f.slice(3), bandwidths: [], attributes: [] };
}

export function formatSdp(sdp: Sdp): string {
  const out: string[] = [];
  const o = sdp.origin;
  out.push(`v=${sdp.version}`);
  out.push(`o=${o.username} ${o.sessionId} ${o.sessionVersion} ${o.netType} ${o.addrType} ${o.address}`);
  out.push(`s=${sdp.sessionName}`);
  if (sdp.connection) out.push(formatConnection(sdp.connection));
  for (const b of sdp.bandwidths) out.push(`b=${b}`);
  out.push(`t=${sdp.timing}`);
  for (const a of sdp.attributes) out.push(formatAttribute(a));
  for (const m of sdp.media) {
    const port = m.portCount === undefined ? `${m.port}` : `${m.port}/${m.portCount}`;
    out.push(`m=${m.type} ${port} ${m.protocol} ${m.formats.join(" ")}`);
    if (m.connection) out.push(formatConnection(m.connection));
    for (const b of m.bandwidths) out.push(`b=${b}`);
    for (const a of m.attributes) out.push(formatAttribute(a));
  }
  return out.join("\r\n") + "\r\n";
}

function formatConnection(c: SdpConnection): string {
  return `c=${c.netType} ${c.addrType} ${c.address}`;
}

function formatAttribute(a: SdpAttribute): string {
  return a.value === undefined ? `a=${a.name}` : `a=${a.name}:${a.value}`;
}

// ---- per-media helpers ---------------------------------------------------------------------------

export function attributeValues(m: SdpMedia, name: string): string[] {
  const lower = name.toLowerCase();
  return m.attributes.filter((a) => a.name.toLowerCase() === lower).map((a) => a.value ?? "");
}

function hasAttribute(attrs: SdpAttribute[], name: string): boolean {
  return attrs.some((a) => a.name.toLowerCase() === name);
}

/** rtpmap for a payload type: explicit a=rtpmap, else the RFC 3551 static assignment. */
export function rtpMapOf(m: SdpMedia, pt: number): RtpMap | undefined {
  for (const v of attributeValues(m, "rtpmap")) {
    const match = /^(\d+)\s+([^/\s]+)\/(\d+)(?:\/(\d+))?/.exec(v);
    if (match && Number(match[1]) === pt) {
      return { encoding: match[2]!, clockRate: Number(match[3]), channels: match[4] ? Number(match[4]) : undefined };
    }
  }
  return STATIC_RTPMAP[pt];
}

export function fmtpOf(m: SdpMedia, pt: number): string | undefined {
  for (const v of attributeValues(m, "fmtp")) {
    const match = /^(\d+)\s+(.*)$/.exec(v);
    if (match && Number(match[1]) === pt) return match[2]!.trim();
  }
  return undefined;
}

/** Direction attribute of a media section (media level wins over session level), RFC 3264 §5.1. */
export function directionOf(sdp: Sdp, m: SdpMedia): MediaDirection {
  for (const attrs of [m.attributes, sdp.attributes]) {
    for (const a of attrs) {
      const d = a.name.toLowerCase() as MediaDirection;
      if (DIRECTIONS.includes(d)) return d;
    }
  }
  return "sendrecv";
}

function ptimeOf(m: SdpMedia): number | undefined {
  const v = attributeValues(m, "ptime")[0];
  const n = v === undefined ? NaN : Number(v.trim());
  return Number.isFinite(n) && n >= 10 && n <= 200 ? n : undefined;
}

/** The peer's RTCP destination: a=rtcp (RFC 3605) or RTP port + 1 (RFC 3550 §11). */
function rtcpTarget(m: SdpMedia, rtpAddress: string): { port: number; address: string } {
  const v = attributeValues(m, "rtcp")[0];
  if (v !== undefined) {
    const match = /^(\d+)(?:\s+IN\s+IP[46]\s+(\S+))?/.exec(v.trim());
    if (match && Number(match[1]) > 0 && Number(match[1]) <= 65535) {
      return { port: Number(match[1]), address: match[2] ?? rtpAddress };
    }
  }
  return { port: m.port + 1, address: rtpAddress };
}

/** The direction we take when the peer declared `theirs`, given our own wish (RFC 3264 §6.1). */
export function answerDirection(theirs: MediaDirection, ours: MediaDirection = "sendrecv"): MediaDirection {
  const peerSends = theirs === "sendrecv" || theirs === "sendonly";
  const peerReceives = theirs === "sendrecv" || theirs === "recvonly";
  const weSend = (ours === "sendrecv" || ours === "sendonly") && peerReceives;
  const weReceive = (ours === "sendrecv" || ours === "recvonly") && peerSends;
  if (weSend && weReceive) return "sendrecv";
  if (weSend) return "sendonly";
  if (weReceive) return "recvonly";
  return "inactive";
}

/**
 * RTP/AVP(F) is plain RTP (or best-effort SRTP with a=crypto), RTP/SAVP(F) SRTP keyed by a=crypto
 * (RFC 4568 §3.1.2); anything else, such as DTLS-SRTP's UDP/TLS/RTP/SAVP, we cannot run.
 */
function rtpProfile(protocol: string): "plain" | "srtp" | undefined {
  switch (protocol.toUpperCase()) {
    case "RTP/AVP": case "RTP/AVPF": return "plain";
    case "RTP/SAVP": case "RTP/SAVPF": return "srtp";
    default: return undefined;
  }
}

type SecurityFailure = { ok: false; code: 302 | 306; text: string };

/** Whether we can take an offered audio stream under our SRTP policy, and with which of its keys. */
function offerSecurity(m: SdpMedia, encryption: MediaEncryption): { ok: true; crypto?: SdesCrypto } | SecurityFailure {
  const fail = (code: 302 | 306, text: string): SecurityFailure => ({ ok: false, code, text });
  const profile = rtpProfile(m.protocol);
  const offered = attributeValues(m, "crypto");
  if (!profile) return fail(302, `Incompatible transport protocol: ${m.protocol} is not supported${encryption === "none" ? "" : " (SRTP needs RTP/SAVP with a=crypto)"}`);
  if (profile === "srtp") {
    if (encryption === "none") return fail(302, `Incompatible transport protocol: ${m.protocol} (SRTP) is not accepted here, only RTP/AVP`);
    const chosen = firstUsableCrypto(offered);
    return chosen.ok ? { ok: true, crypto: chosen.crypto } : fail(306, `Attribute not understood: ${chosen.reason}`);
  }
  if (encryption === "none") return { ok: true };
  if (offered.length === 0) {
    return encryption === "required" ? fail(302, `Incompatible transport protocol: SRTP is required (RTP/SAVP with a=crypto), the offer has ${m.protocol} without a=crypto`) : { ok: true };
  }
  const chosen = firstUsableCrypto(offered);
  if (chosen.ok) return { ok: true, crypto: chosen.crypto };
  return encryption === "required" ? fail(306, `Attribute not understood: SRTP is required, ${chosen.reason}`) : { ok: true };
}

/** What the answer to our audio stream says about SRTP: the two keys, none, or why it cannot work. */
function answerSecurity(offered: SdpMedia, answered: SdpMedia): { ok: true; srtp?: { local: SrtpKey; remote: SrtpKey } } | { ok: false; text: string } {
  const fail = (text: string) => ({ ok: false as const, text });
  // RFC 3264 §6.1: the answer's stream uses the offer's transport protocol.
  if (rtpProfile(answered.protocol) !== rtpProfile(offered.protocol)) return fail(`answer has ${answered.protocol} for our ${offered.protocol}`);
  const ours: SdesCrypto[] = [];
  for (const value of attributeValues(offered, "crypto")) {
    const parsed = parseCrypto(value);
    if (parsed.ok) ours.push(parsed.crypto);
  }
  // An a=crypto answering a plain offer of ours has nothing to pair with: plain RTP.
  if (ours.length === 0) return { ok: true };
  const theirs = attributeValues(answered, "crypto");
  if (theirs.length === 0) {
    // Our best-effort offer (RTP/AVP) declined: plain RTP. RTP/SAVP without a key cannot run.
    return rtpProfile(offered.protocol) === "srtp" ? fail(`answer has ${answered.protocol} without a=crypto`) : { ok: true };
  }
  if (theirs.length > 1) return fail("answer has more than one a=crypto");
  const parsed = parseCrypto(theirs[0]!);
  if (!parsed.ok) return fail(`answer's a=crypto: ${parsed.reason}`);
  const { tag, key } = parsed.crypto;
  const offeredLine = ours.find((c) => c.tag === tag);
  if (!offeredLine) return fail(`answer's a=crypto tag ${tag} was not offered`);
  if (offeredLine.key.suite !== key.suite) return fail(`answer's a=crypto tag ${tag} has ${key.suite}, offered with ${offeredLine.key.suite}`);
  return { ok: true, srtp: { local: offeredLine.key, remote: key } };
}

function srtpKeyFor(local: LocalMediaOptions, suite: SrtpSuite): SrtpKey {
  return local.srtpKey?.(suite) ?? generateSrtpKey(suite);
}

function sameCodec(map: RtpMap, codec: SdpCodec): boolean {
  return map.encoding.toLowerCase() === codec.name.toLowerCase() && map.clockRate === codec.rtpClockRate;
}

function isTelephoneEvent(map: RtpMap | undefined): boolean {
  return map !== undefined && map.encoding.toLowerCase() === "telephone-event";
}

interface CodecChoice { codec: SdpCodec; pt: number; fmtp?: string; tePt?: number; teRate?: number }

/** Picks the codec for an audio m= line; telephone-event at the codec's clock rate wins (RFC 4733 §2.1). */
function chooseCodec(m: SdpMedia, local: LocalMediaOptions): CodecChoice | undefined {
  const offered: { pt: number; map: RtpMap }[] = [];
  for (const f of m.formats) {
    if (!/^\d+$/.test(f)) continue;
    const pt = Number(f);
    const map = rtpMapOf(m, pt);
    if (map) offered.push({ pt, map });
  }
  let choice: CodecChoice | undefined;
  if (local.preferLocalOrder) {
    for (const codec of local.codecs) {
      const hit = offered.find((o) => sameCodec(o.map, codec));
      if (hit) { choice = { codec, pt: hit.pt }; break; }
    }
  } else {
    for (const o of offered) {
      const codec = local.codecs.find((c) => sameCodec(o.map, c));
      if (codec) { choice = { codec, pt: o.pt }; break; }
    }
  }
  if (!choice) return undefined;
  choice.fmtp = fmtpOf(m, choice.pt);
  if (local.telephoneEvent !== false) {
    const events = offered.filter((o) => isTelephoneEvent(o.map));
    const te = events.find((o) => o.map.clockRate === choice.codec.rtpClockRate) ?? events[0];
    if (te) {
      choice.tePt = te.pt;
      choice.teRate = te.map.clockRate;
    }
  }
  return choice;
}

function connectionOf(sdp: Sdp, m: SdpMedia): SdpConnection | undefined {
  return m.connection ?? sdp.connection;
}

function addrType(address: string): "IP4" | "IP6" {
  return address.includes(":") ? "IP6" : "IP4";
}

function randomSessionId(): string {
  // NTP-format-ish numeric id (RFC 4566 §5.2 suggests an NTP timestamp); 53 bits is plenty.
  return String(Math.floor(Math.random() * 2 ** 52) + 1);
}

function newSdp(local: LocalMediaOptions): Sdp {
  const t = addrType(local.address);
  return {
    version: 0,
    origin: {
      username: local.username ?? "trunkline",
      sessionId: local.sessionId ?? randomSessionId(),
      sessionVersion: String(local.sessionVersion ?? 1),
      netType: "IN", addrType: t, address: local.address,
    },
    sessionName: "trunkline",
    connection: { netType: "IN", addrType: t, address: local.address },
    bandwidths: [],
    timing: "0 0",
    attributes: [],
    media: [],
  };
}

function rtpmapValue(pt: number, codec: SdpCodec): string {
  return codec.sdpChannels ? `${pt} ${codec.name}/${codec.rtpClockRate}/${codec.sdpChannels}` : `${pt} ${codec.name}/${codec.rtpClockRate}`;
}

function defaultFmtp(codec: SdpCodec): string | undefined {
  // RFC 7587 §6.1: we decode in-band FEC and run mono.
  return codec.name.toLowerCase() === "opus" ? "useinbandfec=1; stereo=0; sprop-stereo=0" : undefined;
}

const DYNAMIC_PT_START = 96;
const TELEPHONE_EVENT_PT = 101;

/** An offer (initial, delayed-offer 200 OK, or re-INVITE) listing all our codecs in preference order. */
export function buildOffer(local: LocalMediaOptions): Sdp {
  const sdp = newSdp(local);
  const formats: string[] = [];
  const attributes: SdpAttribute[] = [];
  let nextDynamic = DYNAMIC_PT_START;
  const clockRates = new Set<number>();
  for (const codec of local.codecs) {
    let pt = codec.staticPayloadType;
    if (pt === undefined) {
      if (nextDynamic === TELEPHONE_EVENT_PT) nextDynamic++;
      pt = nextDynamic++;
    }
    formats.push(String(pt));
    attributes.push({ name: "rtpmap", value: rtpmapValue(pt, codec) });
    const fmtp = defaultFmtp(codec);
    if (fmtp) attributes.push({ name: "fmtp", value: `${pt} ${fmtp}` });
    clockRates.add(codec.rtpClockRate);
  }
  if (local.telephoneEvent !== false) {
    // One telephone-event per audio clock rate we offer (RFC 4733 §2.1), 8 kHz on the usual 101.
    const rates = [...clockRates].sort((a, b) => (a === 8000 ? -1 : b === 8000 ? 1 : a - b));
    rates.forEach((rate, i) => {
      let pt = TELEPHONE_EVENT_PT;
      if (i > 0) {
        if (nextDynamic === TELEPHONE_EVENT_PT) nextDynamic++;
        pt = nextDynamic++;
      }
      formats.push(String(pt));
      attributes.push({ name: "rtpmap", value: `${pt} telephone-event/${rate}` });
      attributes.push({ name: "fmtp", value: `${pt} 0-16` });
    });
  }
  attributes.push({ name: "ptime", value: String(local.ptime ?? 20) });
  if (local.rtcpMux !== false) attributes.push({ name: "rtcp-mux" });
  const encryption = local.encryption ?? "none";
  if (encryption !== "none") {
    // RFC 4568 §7.1.1: one line per suite, in our order of preference, each with its own key.
    SRTP_SUITES.forEach((suite, i) => attributes.push({ name: "crypto", value: formatCrypto({ tag: i + 1, key: srtpKeyFor(local, suite) }) }));
  }
  attributes.push({ name: local.direction ?? "sendrecv" });
  const protocol = encryption === "required" ? "RTP/SAVP" : "RTP/AVP";
  sdp.media.push({ type: "audio", port: local.port, protocol, formats, bandwidths: [], attributes });
  return sdp;
}

function rejectedCopy(m: SdpMedia): SdpMedia {
  // RFC 3264 §6: a rejected stream keeps its m= line with port 0 and at least one format.
  return { type: m.type, port: 0, protocol: m.protocol, formats: m.formats.length ? m.formats : ["0"], bandwidths: [], attributes: [] };
}

function incompatible(text: string, code: WarningCode = 305): NegotiationFailure {
  return { ok: false, status: 488, warning: { code, text } };
}

/** RFC 3264 §6: answer an offer with exactly one audio codec (plus telephone-event). */
export function negotiateAnswer(offer: Sdp, local: LocalMediaOptions): AnswerResult {
  const answer = newSdp(local);
  let media: NegotiatedMedia | undefined;
  let sawAudio = false;
  let refused: NegotiationFailure | undefined;
  for (const m of offer.media) {
    const usable = media === undefined && m.type.toLowerCase() === "audio" && m.port !== 0;
    if (m.type.toLowerCase() === "audio") sawAudio = true;
    const security = usable ? offerSecurity(m, local.encryption ?? "none") : undefined;
    if (security && !security.ok) refused ??= incompatible(security.text, security.code);
    const choice = security?.ok ? chooseCodec(m, local) : undefined;
    const conn = connectionOf(offer, m);
    if (!security?.ok || !choice || !conn) {
      answer.media.push(rejectedCopy(m));
      continue;
    }
    // Our answer's a=crypto repeats the accepted line's tag with our own key for its suite.
    const theirs = security.crypto;
    const ours = theirs && { tag: theirs.tag, key: srtpKeyFor(local, theirs.key.suite) };
    media = negotiated(choice, m, conn, directionOf(offer, m), local, theirs && ours ? { local: ours.key, remote: theirs.key } : undefined);
    const { direction, rtcpMux } = media;
    const formats = [String(choice.pt)];
    const attributes: SdpAttribute[] = [{ name: "rtpmap", value: rtpmapValue(choice.pt, choice.codec) }];
    const fmtp = defaultFmtp(choice.codec);
    if (fmtp) attributes.push({ name: "fmtp", value: `${choice.pt} ${fmtp}` });
    if (choice.tePt !== undefined) {
      formats.push(String(choice.tePt));
      attributes.push({ name: "rtpmap", value: `${choice.tePt} telephone-event/${choice.teRate}` });
      attributes.push({ name: "fmtp", value: `${choice.tePt} 0-16` });
    }
    attributes.push({ name: "ptime", value: String(local.ptime ?? 20) });
    if (rtcpMux) attributes.push({ name: "rtcp-mux" });
    if (ours) attributes.push({ name: "crypto", value: formatCrypto(ours) });
    attributes.push({ name: direction });
    answer.media.push({ type: "audio", port: local.port, protocol: m.protocol, formats, bandwidths: [], attributes });
  }
  if (!media) {
    if (refused) return refused;
    return sawAudio
      ? incompatible("Incompatible media format: no common audio codec", 305)
      : incompatible("Media type not available: no audio stream offered", 304);
  }
  return { ok: true, answer, media };
}

/** Our offer was `offer`; take the peer's `answer` (200 OK, or ACK in a delayed-offer flow). */
export function processAnswer(offer: Sdp, answer: Sdp, local: LocalMediaOptions): ProcessAnswerResult {
  const ours = offer.media.findIndex((m) => m.type === "audio" && m.port !== 0);
  const m = answer.media[ours];
  if (ours < 0 || !m || m.type.toLowerCase() !== "audio") return incompatible("Media type not available: answer has no audio stream", 304);
  if (m.port === 0) return incompatible("Incompatible media format: audio stream rejected by the answer", 305);
  const conn = connectionOf(answer, m);
  if (!conn) return incompatible("answer audio stream has no c= line");
  // The answerer may list several codecs; the first one we offered is what they will send (RFC 3264 §7).
  const offeredAudio = offer.media[ours]!;
  const offeredCodecs = local.codecs.filter((c) =>
    offeredAudio.formats.some((f) => { const map = rtpMapOf(offeredAudio, Number(f)); return map !== undefined && sameCodec(map, c); }));
  const security = answerSecurity(offeredAudio, m);
  if (!security.ok) return incompatible(`Incompatible transport protocol: ${security.text}`, 302);
  const choice = chooseCodec(m, { ...local, codecs: offeredCodecs, preferLocalOrder: false });
  if (!choice) return incompatible("Incompatible media format: answer names no codec we offered", 305);
  return { ok: true, media: negotiated(choice, m, conn, directionOf(answer, m), local, security.srtp) };
}

/** The media plan from the peer's m= section (`theirs` is the direction the peer declared). */
function negotiated(
  choice: CodecChoice, m: SdpMedia, conn: SdpConnection, theirs: MediaDirection, local: LocalMediaOptions, srtp?: { local: SrtpKey; remote: SrtpKey },
): NegotiatedMedia {
  const rtcpMux = local.rtcpMux !== false && hasAttribute(m.attributes, "rtcp-mux");
  const rtcp = rtcpMux ? { port: m.port, address: conn.address } : rtcpTarget(m, conn.address);
  return {
    codec: choice.codec,
    payloadType: choice.pt,
    fmtp: choice.fmtp,
    telephoneEventPayloadType: choice.tePt,
    telephoneEventClockRate: choice.teRate,
    remoteAddress: conn.address,
    remotePort: m.port,
    remoteRtcpAddress: rtcp.address,
    remoteRtcpPort: rtcp.port,
    rtcpMux,
    direction: answerDirection(theirs, local.direction),
    ptime: ptimeOf(m) ?? 20,
    ...(srtp ? { srtp } : {}),
  };
}

/** c=0.0.0.0 (RFC 2543 hold) or port 0: there is nowhere to send. */
export function isNullAddress(address: string): boolean {
  return address === "0.0.0.0" || address === "::";
}
