import { describe, expect, test } from "bun:test";
import {
  buildOffer, formatSdp, negotiateAnswer, parseSdp, processAnswer, directionOf, rtpMapOf,
  type LocalMediaOptions, type Sdp, type SdpCodec,
} from "../../src/media/sdp.ts";

const PCMU: SdpCodec = { name: "PCMU", staticPayloadType: 0, rtpClockRate: 8000 };
const PCMA: SdpCodec = { name: "PCMA", staticPayloadType: 8, rtpClockRate: 8000 };
const G722: SdpCodec = { name: "G722", staticPayloadType: 9, rtpClockRate: 8000 };
const OPUS: SdpCodec = { name: "opus", rtpClockRate: 48000, sdpChannels: 2 };

const local: LocalMediaOptions = { address: "203.0.113.5", port: 40000, codecs: [OPUS, G722, PCMU, PCMA] };

function sdpOf(text: string): Sdp {
  const r = parseSdp(text);
  if (!r.ok) throw new Error(r.error.message);
  return r.sdp;
}

const carrierOffer = [
  "v=0",
  "o=carrier 123456 654321 IN IP4 198.51.100.7",
  "s=call",
  "c=IN IP4 198.51.100.7",
  "t=0 0",
  "m=audio 30000 RTP/AVP 8 0 18 96",
  "a=rtpmap:8 PCMA/8000",
  "a=rtpmap:18 G729/8000",
  "a=rtpmap:96 telephone-event/8000",
  "a=fmtp:96 0-15",
  "a=ptime:30",
  "a=sendrecv",
  "",
].join("\r\n");

describe("parseSdp", () => {
  test("reads session and media lines, static payload types resolve without rtpmap", () => {
    const sdp = sdpOf(carrierOffer);
    expect(sdp.origin.sessionId).toBe("123456");
    expect(sdp.connection?.address).toBe("198.51.100.7");
    const m = sdp.media[0]!;
    expect(m.port).toBe(30000);
    expect(m.formats).toEqual(["8", "0", "18", "96"]);
    expect(rtpMapOf(m, 0)).toEqual({ encoding: "PCMU", clockRate: 8000 });
    expect(rtpMapOf(m, 96)?.encoding).toBe("telephone-event");
  });

  test("round-trips through formatSdp", () => {
    const once = formatSdp(sdpOf(carrierOffer));
    expect(formatSdp(sdpOf(once))).toBe(once);
    expect(once.endsWith("\r\n")).toBe(true);
  });

  test("accepts bare LF line ends", () => {
    expect(parseSdp(carrierOffer.replaceAll("\r\n", "\n")).ok).toBe(true);
  });

  test.each([
    ["empty", ""],
    ["no v= first", "o=x 1 1 IN IP4 1.2.3.4\r\nv=0\r\n"],
    ["garbage", "hello world"],
    ["bad m= port", "v=0\r\no=x 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio abc RTP/AVP 0\r\n"],
    ["m= without formats", "v=0\r\no=x 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 4000 RTP/AVP\r\n"],
    ["missing c=", "v=0\r\no=x 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"],
    ["bad c=", "v=0\r\no=x 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IPX 1.2.3.4\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"],
    ["short o=", "v=0\r\no=x 1 IN IP4 1.2.3.4\r\ns=-\r\n"],
    ["binary", "\u0000\u0001\u0002=\u00ff"],
  ])("bad SDP (%s) is a typed error, not a throw", (_name, text) => {
    const r = parseSdp(text);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.kind).toBe("sdp");
      expect(r.error.message.length).toBeGreaterThan(0);
    }
  });

  test("random bytes never throw", () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    const base = new TextEncoder().encode(carrierOffer);
    for (let i = 0; i < 2000; i++) {
      const bytes = base.slice();
      for (let k = 0; k < 5; k++) bytes[rnd() % bytes.length] = rnd();
      const r = parseSdp(bytes);
      if (r.ok) negotiateAnswer(r.sdp, local);
    }
  });
});

describe("negotiateAnswer", () => {
  test("first codec in the offerer's order that we support; telephone-event keeps its number", () => {
    const r = negotiateAnswer(sdpOf(carrierOffer), local);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.media).toMatchObject({
      codec: { name: "PCMA" }, payloadType: 8, telephoneEventPayloadType: 96, remoteAddress: "198.51.100.7",
      remotePort: 30000, remoteRtcpPort: 30001, rtcpMux: false, ptime: 30,
    });
    const text = formatSdp(r.answer);
    expect(text).toContain("c=IN IP4 203.0.113.5");
    expect(text).toContain("m=audio 40000 RTP/AVP 8 96\r\n");
    expect(text).toContain("a=rtpmap:96 telephone-event/8000");
    expect(text).toContain("a=sendrecv");
    expect(text).not.toContain("rtcp-mux");
  });

  test("configured preference: our order wins when preferLocalOrder is set", () => {
    const r = negotiateAnswer(sdpOf(carrierOffer), { ...local, codecs: [PCMU, PCMA], preferLocalOrder: true });
    expect(r.ok && r.media.codec.name).toBe("PCMU");
  });

  test("opus with dynamic payload type, rtcp-mux honoured, telephone-event at the codec clock rate", () => {
    const offer = sdpOf([
      "v=0", "o=- 1 1 IN IP6 ::1", "s=-", "c=IN IP6 ::1", "t=0 0",
      "m=audio 5004 RTP/AVP 111 0 101 110",
      "a=rtpmap:111 opus/48000/2", "a=fmtp:111 minptime=10;useinbandfec=1",
      "a=rtpmap:101 telephone-event/8000", "a=rtpmap:110 telephone-event/48000", "a=rtcp-mux", "",
    ].join("\r\n"));
    const r = negotiateAnswer(offer, { ...local, address: "::1" });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.media).toMatchObject({ codec: { name: "opus" }, payloadType: 111, telephoneEventPayloadType: 110, rtcpMux: true, remoteRtcpPort: 5004 });
    const text = formatSdp(r.answer);
    expect(text).toContain("c=IN IP6 ::1");
    expect(text).toContain("a=rtpmap:111 opus/48000/2");
    expect(text).toContain("a=rtcp-mux");
  });

  test.each([
    ["sendrecv", "sendrecv"],
    ["sendonly", "recvonly"],
    ["recvonly", "sendonly"],
    ["inactive", "inactive"],
  ])("offer %s → answer %s (hold)", (offered, answered) => {
    const r = negotiateAnswer(sdpOf(carrierOffer.replace("a=sendrecv", `a=${offered}`)), local);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.media.direction).toBe(answered as typeof r.media.direction);
    expect(directionOf(r.answer, r.answer.media[0]!)).toBe(answered as typeof r.media.direction);
  });

  test("no common codec → 488 with a 305 warning", () => {
    const r = negotiateAnswer(sdpOf(carrierOffer), { ...local, codecs: [OPUS] });
    expect(r).toEqual({ ok: false, status: 488, warning: { code: 305, text: expect.stringContaining("codec") } });
  });

  test("only video / SRTP offered without SRTP enabled → 488", () => {
    const video = sdpOf(carrierOffer.replace("m=audio", "m=video"));
    expect(negotiateAnswer(video, local)).toMatchObject({ ok: false, status: 488, warning: { code: 304 } });
    const srtp = sdpOf(carrierOffer.replace("RTP/AVP", "RTP/SAVP"));
    expect(negotiateAnswer(srtp, local)).toMatchObject({ ok: false, status: 488, warning: { code: 302, text: expect.stringContaining("RTP/SAVP") } });
  });

  test("extra streams are rejected with port 0, in order", () => {
    const offer = sdpOf(carrierOffer.replace("t=0 0", "t=0 0\r\nm=video 30002 RTP/AVP 96\r\na=rtpmap:96 H264/90000"));
    const r = negotiateAnswer(offer, local);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.answer.media.map((m) => [m.type, m.port])).toEqual([["video", 0], ["audio", 40000]]);
  });

  test("a=rtcp gives the RTCP destination (RFC 3605)", () => {
    const r = negotiateAnswer(sdpOf(carrierOffer.replace("a=ptime:30", "a=rtcp:30011 IN IP4 198.51.100.8")), local);
    expect(r.ok && [r.media.remoteRtcpAddress, r.media.remoteRtcpPort]).toEqual(["198.51.100.8", 30011]);
  });
});

describe("offer / processAnswer (delayed offer: offer in 200 OK, answer in ACK)", () => {
  test("offer lists our codecs in order with telephone-event and rtcp-mux", () => {
    const text = formatSdp(buildOffer(local));
    expect(text).toContain("m=audio 40000 RTP/AVP 96 9 0 8 101 97\r\n");
    expect(text).toContain("a=rtpmap:96 opus/48000/2");
    expect(text).toContain("a=rtpmap:101 telephone-event/8000");
    expect(text).toContain("a=rtpmap:97 telephone-event/48000");
    expect(text).toContain("a=rtcp-mux");
    expect(parseSdp(text).ok).toBe(true);
  });

  test("answer picks the codec; our own offer negotiated against itself is consistent", () => {
    const offer = buildOffer(local);
    const peer = negotiateAnswer(offer, { address: "198.51.100.9", port: 22000, codecs: [PCMU, G722] });
    expect(peer.ok).toBe(true);
    if (!peer.ok) return;
    const r = processAnswer(offer, sdpOf(formatSdp(peer.answer)), local);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.media.codec.name).toBe("G722");
    expect(r.media.payloadType).toBe(9);
    expect(r.media.telephoneEventPayloadType).toBe(101);
    expect(r.media.remotePort).toBe(22000);
    expect(r.media.rtcpMux).toBe(true);
  });

  test("answer that rejects audio → 488", () => {
    const offer = buildOffer(local);
    const answer = sdpOf("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n");
    expect(processAnswer(offer, answer, local)).toMatchObject({ ok: false, status: 488 });
  });
});

describe("SRTP with SDES keys (RFC 4568)", () => {
  const KEY_A = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"; // 30 bytes
  const KEY_B = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
  const keyBytes = (b64: string) => Buffer.from(b64, "base64").toString("hex");
  const hexOf = (b: Uint8Array) => Buffer.from(b).toString("hex");
  const offerWith = (protocol: string, ...crypto: string[]) =>
    sdpOf(carrierOffer.replace("RTP/AVP", protocol).replace("a=sendrecv", [...crypto.map((c) => `a=crypto:${c}`), "a=sendrecv"].join("\r\n")));
  const cryptoLines = (sdp: Sdp) => sdp.media[0]!.attributes.filter((a) => a.name === "crypto").map((a) => a.value!);

  test("none: RTP/AVP with a=crypto is answered plain, and our offers carry no key", () => {
    const r = negotiateAnswer(offerWith("RTP/AVP", `1 AES_CM_128_HMAC_SHA1_80 inline:${KEY_A}`), local);
    if (!r.ok) throw new Error(r.warning.text);
    expect(r.media.srtp).toBeUndefined();
    expect(r.answer.media[0]!.protocol).toBe("RTP/AVP");
    expect(cryptoLines(r.answer)).toEqual([]);
    expect(formatSdp(buildOffer(local))).not.toContain("a=crypto");
  });

  test("required: an RTP/SAVP offer is answered with its tag, the chosen suite and our own fresh key", () => {
    const offer = offerWith("RTP/SAVP", `1 AES_256_CM_HMAC_SHA1_80 inline:${KEY_B}${KEY_B}`, `2 AES_CM_128_HMAC_SHA1_32 inline:${KEY_A}|2^20`, `3 AES_CM_128_HMAC_SHA1_80 inline:${KEY_B}`);
    const r = negotiateAnswer(offer, { ...local, encryption: "required" });
    if (!r.ok) throw new Error(r.warning.text);
    expect(r.answer.media[0]!.protocol).toBe("RTP/SAVP");
    const [line, ...more] = cryptoLines(r.answer);
    expect(more).toEqual([]);
    const [tag, suite, inline] = line!.split(" ");
    expect([tag, suite]).toEqual(["2", "AES_CM_128_HMAC_SHA1_32"]);
    const ours = Buffer.from(inline!.replace("inline:", ""), "base64");
    expect(ours.length).toBe(30);
    expect(ours.toString("hex")).not.toBe(keyBytes(KEY_A));
    expect(r.media.srtp?.remote).toEqual({ suite: "AES_CM_128_HMAC_SHA1_32", keyAndSalt: Uint8Array.from(Buffer.from(KEY_A, "base64")) });
    expect(hexOf(r.media.srtp!.local.keyAndSalt)).toBe(ours.toString("hex"));
    expect(formatSdp(r.answer)).toContain("m=audio 40000 RTP/SAVP 8 96\r\n");
  });

  test("required: a plain offer, or only lines we cannot honour, → 488 saying why", () => {
    const plain = negotiateAnswer(sdpOf(carrierOffer), { ...local, encryption: "required" });
    expect(plain).toMatchObject({ ok: false, status: 488, warning: { code: 302, text: expect.stringContaining("SRTP is required") } });
    const unusable = negotiateAnswer(
      offerWith("RTP/SAVP", `1 AES_CM_128_HMAC_SHA1_80 inline:${KEY_A}|2^20|1:4`, `2 AES_CM_128_HMAC_SHA1_80 inline:${KEY_A} UNENCRYPTED_SRTP`, "3 F8_128_HMAC_SHA1_80 inline:x"),
      { ...local, encryption: "required" },
    );
    expect(unusable).toMatchObject({ ok: false, status: 488, warning: { code: 306 } });
    if (unusable.ok) return;
    expect(unusable.warning.text).toContain("MKI");
    expect(unusable.warning.text).toContain("UNENCRYPTED_SRTP");
    expect(unusable.warning.text).toContain("F8_128_HMAC_SHA1_80");
    const dtls = negotiateAnswer(sdpOf(carrierOffer.replace("RTP/AVP", "UDP/TLS/RTP/SAVPF")), { ...local, encryption: "required" });
    expect(dtls).toMatchObject({ ok: false, warning: { code: 302, text: expect.stringContaining("UDP/TLS/RTP/SAVPF") } });
  });

  test("required and optional take best-effort SRTP (RTP/AVP with a=crypto) encrypted", () => {
    for (const encryption of ["required", "optional"] as const) {
      const r = negotiateAnswer(offerWith("RTP/AVP", `7 AES_CM_128_HMAC_SHA1_80 inline:${KEY_A}`), { ...local, encryption });
      if (!r.ok) throw new Error(r.warning.text);
      expect(r.answer.media[0]!.protocol).toBe("RTP/AVP");
      expect(cryptoLines(r.answer)[0]).toStartWith("7 AES_CM_128_HMAC_SHA1_80 inline:");
      expect(r.media.srtp?.remote.suite).toBe("AES_CM_128_HMAC_SHA1_80");
    }
  });

  test("optional: plain offers stay plain, an unusable key in a best-effort offer falls back to plain", () => {
    const o = { ...local, encryption: "optional" as const };
    const plain = negotiateAnswer(sdpOf(carrierOffer), o);
    expect(plain.ok && plain.media.srtp).toBeUndefined();
    const mki = negotiateAnswer(offerWith("RTP/AVP", `1 AES_CM_128_HMAC_SHA1_80 inline:${KEY_A}|1:4`), o);
    if (!mki.ok) throw new Error(mki.warning.text);
    expect(mki.media.srtp).toBeUndefined();
    expect(cryptoLines(mki.answer)).toEqual([]);
    const savp = negotiateAnswer(offerWith("RTP/SAVP", `1 AES_CM_128_HMAC_SHA1_80 inline:${KEY_A}`), o);
    expect(savp.ok && savp.media.srtp?.remote.suite).toBe("AES_CM_128_HMAC_SHA1_80");
  });

  test("offers: RTP/SAVP when required, RTP/AVP with a=crypto when optional; one key per suite, stable through srtpKey", () => {
    const keys = new Map<string, Uint8Array>();
    const srtpKey = (suite: "AES_CM_128_HMAC_SHA1_80" | "AES_CM_128_HMAC_SHA1_32") => {
      if (!keys.has(suite)) keys.set(suite, crypto.getRandomValues(new Uint8Array(30)));
      return { suite, keyAndSalt: keys.get(suite)! };
    };
    const required = buildOffer({ ...local, encryption: "required", srtpKey });
    expect(required.media[0]!.protocol).toBe("RTP/SAVP");
    const lines = cryptoLines(required);
    expect(lines.map((l) => l.split(" ").slice(0, 2).join(" "))).toEqual(["1 AES_CM_128_HMAC_SHA1_80", "2 AES_CM_128_HMAC_SHA1_32"]);
    expect(lines[0]!.split(" ")[2]).not.toBe(lines[1]!.split(" ")[2]);
    expect(cryptoLines(buildOffer({ ...local, encryption: "required", srtpKey }))).toEqual(lines);
    const optional = buildOffer({ ...local, encryption: "optional", srtpKey });
    expect(optional.media[0]!.protocol).toBe("RTP/AVP");
    expect(cryptoLines(optional)).toEqual(lines);
    expect(parseSdp(formatSdp(required)).ok).toBe(true);
  });

  test("our offer answered by an SRTP peer: each side's send key is the other's receive key", () => {
    const offer = buildOffer({ ...local, encryption: "required" });
    const peer = negotiateAnswer(sdpOf(formatSdp(offer)), { address: "198.51.100.9", port: 22000, codecs: [PCMU], encryption: "required" });
    if (!peer.ok) throw new Error(peer.warning.text);
    const r = processAnswer(offer, sdpOf(formatSdp(peer.answer)), local);
    if (!r.ok) throw new Error(r.warning.text);
    expect(r.media.srtp?.local.suite).toBe("AES_CM_128_HMAC_SHA1_80");
    expect(hexOf(r.media.srtp!.local.keyAndSalt)).toBe(hexOf(peer.media.srtp!.remote.keyAndSalt));
    expect(hexOf(r.media.srtp!.remote.keyAndSalt)).toBe(hexOf(peer.media.srtp!.local.keyAndSalt));
  });

  test("answers to our SRTP offers: the tag picks our line; wrong tags, suites, profiles or a missing key fail", () => {
    const offer = buildOffer({ ...local, encryption: "required" });
    const ourLines = cryptoLines(offer);
    const answer = (protocol: string, ...crypto: string[]) =>
      sdpOf(["v=0", "o=- 1 1 IN IP4 1.2.3.4", "s=-", "c=IN IP4 1.2.3.4", "t=0 0", `m=audio 5000 ${protocol} 0`, ...crypto.map((c) => `a=crypto:${c}`), ""].join("\r\n"));
    const tag2 = processAnswer(offer, answer("RTP/SAVP", `2 AES_CM_128_HMAC_SHA1_32 inline:${KEY_A}`), local);
    if (!tag2.ok) throw new Error(tag2.warning.text);
    expect(tag2.media.srtp?.local.suite).toBe("AES_CM_128_HMAC_SHA1_32");
    expect(Buffer.from(tag2.media.srtp!.local.keyAndSalt).toString("base64")).toBe(ourLines[1]!.split("inline:")[1]!);
    expect(hexOf(tag2.media.srtp!.remote.keyAndSalt)).toBe(keyBytes(KEY_A));
    for (const [bad, why] of [
      [answer("RTP/SAVP"), "without a=crypto"],
      [answer("RTP/AVP", `1 AES_CM_128_HMAC_SHA1_80 inline:${KEY_A}`), "RTP/AVP for our RTP/SAVP"],
      [answer("RTP/SAVP", `3 AES_CM_128_HMAC_SHA1_80 inline:${KEY_A}`), "tag 3 was not offered"],
      [answer("RTP/SAVP", `1 AES_CM_128_HMAC_SHA1_32 inline:${KEY_A}`), "offered with AES_CM_128_HMAC_SHA1_80"],
      [answer("RTP/SAVP", `1 AES_CM_128_HMAC_SHA1_80 inline:${KEY_A}`, `2 AES_CM_128_HMAC_SHA1_32 inline:${KEY_A}`), "more than one"],
    ] as const) {
      expect(processAnswer(offer, bad, local)).toMatchObject({ ok: false, status: 488, warning: { code: 302, text: expect.stringContaining(why) } });
    }
    // Best effort declined: plain RTP. A plain offer of ours ignores a stray a=crypto.
    const optional = buildOffer({ ...local, encryption: "optional" });
    const declined = processAnswer(optional, answer("RTP/AVP"), local);
    expect(declined.ok && declined.media.srtp).toBeUndefined();
    const accepted = processAnswer(optional, answer("RTP/AVP", `1 AES_CM_128_HMAC_SHA1_80 inline:${KEY_A}`), local);
    expect(accepted.ok && accepted.media.srtp?.remote.suite).toBe("AES_CM_128_HMAC_SHA1_80");
    const stray = processAnswer(buildOffer(local), answer("RTP/AVP", `1 AES_CM_128_HMAC_SHA1_80 inline:${KEY_A}`), local);
    expect(stray.ok && stray.media.srtp).toBeUndefined();
  });
});
