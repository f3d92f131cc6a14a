// PhoneLeg: one SIP call's audio — an RtpSession, the negotiated codec, a jitter buffer, a mixer
// participant at the codec's own rate (the mixer resamples only when the channel needs a higher
// rate than this leg's), and RFC 4733 DTMF both ways.
//
//   const leg = await createPhoneLeg({ allocator, advertisedAddress: "203.0.113.5", mixer,
//     participantId: "call-123", codecPreferences: ["PCMU", "PCMA"], mediaTimeoutSec: 30 });
//   if ("error" in leg) …                                  // no RTP port could be bound
//
//   Inbound INVITE with SDP (early offer) or a re-INVITE offer:
//     const r = leg.answer(offerSdp);   // { ok: true, sdp } | { ok: false, status: 400 | 488, reason, warning? }
//   We offer (INVITE, delayed-offer 200 OK, re-INVITE):
//     const sdp = leg.offer({ hold? });  then  leg.applyAnswer(answerSdp)   // { ok: true } | failure
//   Whatever the peer sent, when the caller does not track who offered:
//     leg.applyRemoteSdp(sdp)            // answer to our pending offer, else an offer: { ok: true, sdp? }
//
//   leg.setSignallingAddress(sipPeer);    // where the call's SIP comes from: may send media too (NAT)
//   leg.sendDtmf("123#");                 // RFC 4733 events (in-band tones when the peer has none)
//   leg.onDtmf = ({ digit, durationMs }) => …;
//   leg.onTimeout = () => …;              // no RTP for mediaTimeoutSec while the peer should send
//   leg.moveTo(otherMixer);              // leaves its mixer and joins another between two ticks
//   leg.stats(); leg.close();
//
// Audio flows once an offer/answer has completed: the mixer pulls one 20 ms frame per tick from the
// jitter buffer (decoded, concealed on loss, at the codec's rate) and hands back what this
// leg hears, which is encoded once per distinct mix and sent as one 20 ms RTP packet (we answer
// a=ptime:20 whatever the offer's ptime; incoming packets of any length are re-cut). Our outbound
// timestamps advance every tick, also while silent or on hold, and carry on across codec changes, so
// the stream stays continuous; the marker bit flags each restart of sending (RFC 3551 §4.1).
// With `encryption` (sdp.ts explains the policy) the leg keeps one SRTP master key per suite for its
// whole life, so re-offers and answers repeat it and our send context (rollover counter, SRTCP index)
// carries on; a new key from the peer replaces the receive context (RFC 4568 §7.1.4 re-keying), the
// old one still opening packets until the new key has opened one.
// A failure result's `warning` goes into a Warning header: `${code} ${host} "${text}"`.
//
// A leg is two halves: LegNegotiator (SDP offer/answer, o= versions, SRTP master keys: pure logic)
// and LegMediaPath (the RtpSession, receiver, mixer participant, DTMF, SRTP contexts), configured
// with each negotiated media. createPhoneLeg joins them on one thread; the connector runs the
// negotiator on the main thread and the media path in the channel's media worker (hosted-leg.ts).
// In a channel of two phone legs with the same G.711 codec, the mixer pairs them and each leg's
// packets are relayed to the other as they arrive (relay.ts) instead of going through the jitter
// buffer and the mix.
import { createLogger, type Logger } from "../log.ts";
import { metrics } from "../metrics.ts";
import { codecByName, codecs as allCodecs, rtpTimestampsPerFrame, type AudioDecoder, type AudioEncoder, type Codec, type CodecName } from "./codec.ts";
import { DtmfReceiver, InbandDtmfGenerator, digitToEvent, telephoneEventPackets, type DtmfEvent, type ScheduledEventPacket } from "./dtmf.ts";
import { JitterBuffer, type JitterStats } from "./jitter.ts";
import type { MixedFrame, Mixer, MixerParticipant } from "./mixer.ts";
import type { RtpPortAllocator } from "./ports.ts";
import { RELAY_QUIET_TICKS, RelayedStream, relayTotals, type PacketRelay } from "./relay.ts";
import type { ParsedRtp } from "./rtp-packet.ts";
import { RtpSession, type RtpCounters, type RtpSessionStats, type RtpStreamState } from "./rtp.ts";
import { SrtpReceiveContext, SrtpSendContext, generateSrtpKey, sameSrtpKey, type SrtpKey, type SrtpSuite } from "./srtp.ts";
import type { UdpIo } from "./udp-io.ts";
import {
  buildOffer, formatSdp, isNullAddress, negotiateAnswer, parseSdp, processAnswer,
  type LocalMediaOptions, type MediaDirection, type MediaEncryption, type NegotiatedMedia, type Sdp,
} from "./sdp.ts";

const moduleLog = createLogger("media.leg");

let openLegs = 0;
metrics.gauge("trunkline_phone_legs", "Phone legs open: a SIP call's RTP session and its place in a channel's mixer.", [], () => openLegs);

/** Counts phone legs whose media runs elsewhere (hosted-leg.ts) in trunkline_phone_legs. */
export function countPhoneLegs(delta: number): void {
  openLegs += delta;
}

export interface PhoneLegOptions {
  allocator: RtpPortAllocator;
  /** local address to bind RTP on (default 0.0.0.0) */
  bindAddress?: string;
  /** where the RTP sockets live (default: this thread) */
  io?: UdpIo;
  /** address written into c= / o= (public address behind NAT) */
  advertisedAddress: string;
  mixer: Mixer;
  participantId: string;
  /** codecs we accept, in our preference order (default: opus, G722, PCMU, PCMA) */
  codecPreferences?: readonly CodecName[];
  /** answer with our order rather than the offerer's (default false: offerer's order wins) */
  preferLocalOrder?: boolean;
  /** 0 disables; default 30 */
  mediaTimeoutSec?: number;
  /** accept media only from the SDP's exact address and port (default: its address, any port) */
  strictSource?: boolean;
  /** length of each DTMF digit we send, default 100 ms */
  dtmfDurationMs?: number;
  /** SRTP policy (SDES keys in the SDP), default none */
  encryption?: MediaEncryption;
  /** whose leg this is (a call's logger): the leg and its RTP session log with its fields */
  log?: Logger;
}

export type SdpFailure = { ok: false; status: 400 | 488; reason: string; warning?: { code: number; text: string } };
export type AnswerSdpResult = { ok: true; sdp: string } | SdpFailure;
export type ApplyResult = { ok: true; sdp?: string } | SdpFailure;

export type { DtmfEvent };

export interface PhoneLegStats {
  codec?: CodecName;
  direction?: MediaDirection;
  /** the SRTP suite when the media is encrypted */
  srtp?: SrtpSuite;
  rtp: RtpSessionStats;
  jitter: JitterStats;
  dtmfReceived: number;
  /** digits accepted by sendDtmf */
  dtmfSent: number;
}

export interface PhoneLeg {
  readonly localPort: number;
  answer(offerSdp: string | Uint8Array): AnswerSdpResult;
  offer(o?: { hold?: boolean }): string;
  applyAnswer(answerSdp: string | Uint8Array): ApplyResult;
  applyRemoteSdp(sdp: string | Uint8Array): ApplyResult;
  setSignallingAddress(address: string): void;
  sendDtmf(digits: string): void;
  onDtmf: (event: DtmfEvent) => void;
  onTimeout: () => void;
  /**
   * Leaves its mixer and joins `mixer` as the same participant, in one synchronous step: every
   * 20 ms mixer runs on the shared ticker, so no tick falls between the two, and the RTP stream
   * (timestamps, sequence numbers, codec state) carries on as if nothing happened.
   */
  moveTo(mixer: Mixer): void;
  stats(): PhoneLegStats;
  close(): void;
}

const FRAME_MS = 20;
const DTMF_GAP_MS = 60;
const DEFAULT_PREFERENCES: readonly CodecName[] = ["opus", "G722", "PCMU", "PCMA"];
/** Shared by every receiver with nothing left over (the usual case: one allocation less per tick). */
const NOTHING_PENDING = new Int16Array(0);
/** A leg with no codec negotiated yet has received nothing: one set of zero stats for all of them. */
const NO_JITTER_STATS: Readonly<JitterStats> = Object.freeze(new JitterBuffer({ clockRate: 8000 }).stats());

/** The state tied to one negotiated codec (replaced when a re-INVITE changes it). */
interface Receiver {
  codec: Codec;
  decoder: AudioDecoder;
  jitter: JitterBuffer;
  /** decoded samples at codec rate not yet handed to the mixer (packets longer than 20 ms) */
  pending: Int16Array;
}

/** The RFC 4733 event being sent: its packets go out one per tick in place of audio. */
interface OutgoingEvent { packets: ScheduledEventPacket[]; next: number; timestamp: number; startTick: number }

export async function createPhoneLeg(o: PhoneLegOptions): Promise<PhoneLeg | { error: string }> {
  const session = await RtpSession.open({ allocator: o.allocator, bindAddress: o.bindAddress, cname: `${o.participantId}@trunkline`, io: o.io, ...(o.log ? { log: o.log.child({}, "rtp") } : {}) });
  if ("error" in session) return session;
  let path: LegMediaPath;
  try {
    path = new LegMediaPath(session, o.mixer, { ...o, log: o.log ?? moduleLog.child({ participant: o.participantId }) });
  } catch (error) {
    // mixer.join refuses a closed mixer or a duplicate participant id
    session.close();
    return { error: error instanceof Error ? error.message : String(error) };
  }
  return new RtpPhoneLeg(o, path);
}

function codecList(names: readonly CodecName[] | undefined): Codec[] {
  const list = (names ?? DEFAULT_PREFERENCES).map((n) => codecByName(n)).filter((c): c is Codec => c !== undefined);
  return list.length > 0 ? list : [...allCodecs];
}

/** What the negotiation side needs to know of a leg's port and policy. */
export interface NegotiationOptions {
  advertisedAddress: string;
  codecPreferences?: readonly CodecName[];
  preferLocalOrder?: boolean;
  encryption?: MediaEncryption;
}

/**
 * The signalling half of a phone leg, pure logic: offers and answers (RFC 3264), our o= version,
 * our SRTP master keys. Each completed negotiation is handed to `apply` (the media path, here or
 * in a media worker).
 */
export class LegNegotiator {
  private readonly codecs: Codec[];
  private readonly sessionId = String(Math.floor(Math.random() * 2 ** 52) + 1);
  private sessionVersion = 0;
  private lastBody: string | undefined;
  private pendingOffer: Sdp | undefined;
  /** we put the peer on hold with our last offer; our answers keep saying so until we resume */
  private holding = false;
  /** our SRTP master key per suite, made when first offered or answered */
  private readonly srtpKeys = new Map<SrtpSuite, SrtpKey>();
  /** the codec of the last negotiation */
  codec: CodecName | undefined;
  /** whether the last negotiation encrypted the media (SRTP) */
  srtp = false;

  constructor(
    private readonly o: NegotiationOptions,
    private readonly localPort: number,
    private readonly apply: (media: NegotiatedMedia) => void,
  ) {
    this.codecs = codecList(o.codecPreferences);
  }

  private localOptions(direction?: MediaDirection): LocalMediaOptions {
    return {
      address: this.o.advertisedAddress,
      port: this.localPort,
      codecs: this.codecs,
      preferLocalOrder: this.o.preferLocalOrder,
      direction,
      sessionId: this.sessionId,
      encryption: this.o.encryption,
      srtpKey: (suite) => this.srtpKey(suite),
    };
  }

  private srtpKey(suite: SrtpSuite): SrtpKey {
    let key = this.srtpKeys.get(suite);
    if (!key) this.srtpKeys.set(suite, (key = generateSrtpKey(suite)));
    return key;
  }

  /** RFC 3264 §8: o= version goes up exactly when the description changes. */
  private stamp(sdp: Sdp): string {
    const body = formatSdp({ ...sdp, origin: { ...sdp.origin, sessionVersion: "0" } });
    if (body !== this.lastBody) {
      this.sessionVersion++;
      this.lastBody = body;
    }
    return formatSdp({ ...sdp, origin: { ...sdp.origin, sessionVersion: String(this.sessionVersion) } });
  }

  answer(offerSdp: string | Uint8Array): AnswerSdpResult {
    const parsed = parseSdp(offerSdp);
    if (!parsed.ok) return { ok: false, status: 400, reason: `bad SDP: ${parsed.error.message}` };
    const r = negotiateAnswer(parsed.sdp, this.localOptions(this.holding ? "sendonly" : undefined));
    if (!r.ok) return { ok: false, status: 488, reason: "Not Acceptable Here", warning: r.warning };
    this.pendingOffer = undefined;
    this.applied(r.media);
    return { ok: true, sdp: this.stamp(r.answer) };
  }

  offer(o: { hold?: boolean } = {}): string {
    this.holding = o.hold ?? false;
    const sdp = buildOffer(this.localOptions(this.holding ? "sendonly" : "sendrecv"));
    this.pendingOffer = sdp;
    return this.stamp(sdp);
  }

  applyAnswer(answerSdp: string | Uint8Array): ApplyResult {
    const offer = this.pendingOffer;
    if (!offer) return { ok: false, status: 400, reason: "no offer outstanding" };
    const parsed = parseSdp(answerSdp);
    if (!parsed.ok) return { ok: false, status: 400, reason: `bad SDP: ${parsed.error.message}` };
    const r = processAnswer(offer, parsed.sdp, this.localOptions(this.holding ? "sendonly" : "sendrecv"));
    if (!r.ok) return { ok: false, status: 488, reason: "Not Acceptable Here", warning: r.warning };
    this.pendingOffer = undefined;
    this.applied(r.media);
    return { ok: true };
  }

  applyRemoteSdp(sdp: string | Uint8Array): ApplyResult {
    return this.pendingOffer ? this.applyAnswer(sdp) : this.answer(sdp);
  }

  private applied(media: NegotiatedMedia): void {
    this.codec = codecByName(media.codec.name)?.name;
    this.srtp = media.srtp !== undefined;
    this.apply(media);
  }
}

class RtpPhoneLeg implements PhoneLeg {
  onDtmf: (event: DtmfEvent) => void = () => {};
  onTimeout: () => void = () => {};
  private readonly negotiator: LegNegotiator;
  private closed = false;

  constructor(o: PhoneLegOptions, private readonly path: LegMediaPath) {
    this.negotiator = new LegNegotiator(o, path.localPort, (media) => path.configure(media));
    path.onDtmf = (e) => this.onDtmf(e);
    path.onTimeout = () => this.onTimeout();
    openLegs++;
  }

  get localPort(): number {
    return this.path.localPort;
  }

  answer(offerSdp: string | Uint8Array): AnswerSdpResult {
    return this.negotiator.answer(offerSdp);
  }

  offer(o: { hold?: boolean } = {}): string {
    return this.negotiator.offer(o);
  }

  applyAnswer(answerSdp: string | Uint8Array): ApplyResult {
    return this.negotiator.applyAnswer(answerSdp);
  }

  applyRemoteSdp(sdp: string | Uint8Array): ApplyResult {
    return this.negotiator.applyRemoteSdp(sdp);
  }

  setSignallingAddress(address: string): void {
    this.path.setSignallingAddress(address);
  }

  sendDtmf(digits: string): void {
    this.path.sendDtmf(digits);
  }

  moveTo(mixer: Mixer): void {
    this.path.moveTo(mixer);
  }

  stats(): PhoneLegStats {
    return this.path.stats();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    openLegs--;
    this.path.close();
  }
}

/** Options of the media path (the data plane of a leg). */
export interface MediaPathOptions {
  participantId: string;
  mediaTimeoutSec?: number;
  strictSource?: boolean;
  dtmfDurationMs?: number;
  log: Logger;
}

/** The counters a leg's host copies to shared memory every 100 ms (media-protocol.ts LEG_STAT_FIELDS). */
export interface LegCounters extends RtpCounters {
  framesConcealed: number;
  latePackets: number;
  dtmfReceived: number;
}

/** What a media path hands on when its leg moves to another thread: the outgoing stream continues. */
export interface MediaPathCarry {
  stream: RtpStreamState;
  outTimestamp: number;
  dtmfSent: number;
  dtmfReceived: number;
  media: NegotiatedMedia | undefined;
  signallingAddress: string | undefined;
}

/**
 * The data plane of a phone leg: its RtpSession, the receiver (jitter buffer, decoder) of the
 * negotiated codec, its place in a mixer, RFC 4733 DTMF both ways, the SRTP contexts. Configured
 * by `configure(media)` after each negotiation; runs on whichever thread owns the channel's mixer.
 */
export class LegMediaPath {
  onDtmf: (event: DtmfEvent) => void = () => {};
  onTimeout: () => void = () => {};

  private participant: MixerParticipant;
  private media: NegotiatedMedia | undefined;
  /** the negotiated direction lets the peer send to us / lets us send to a real address */
  private receiving = false;
  private sending = false;
  private receiver: Receiver | undefined;
  private sendCodec: Codec | undefined;
  private outTimestamp: number;
  private restartMarker = true;
  private dtmfReceiver: DtmfReceiver;
  private dtmfQueue: string[] = [];
  private dtmfEvent: OutgoingEvent | undefined;
  private dtmfGapTicks = 0;
  private inband: { generator: InbandDtmfGenerator; encoder: AudioEncoder; codec: Codec } | undefined;
  private tick = 0;
  private dtmfReceived = 0;
  private dtmfSent = 0;
  private signallingAddress: string | undefined;
  private closed = false;
  private srtp: { send: SrtpSendContext; receive: SrtpReceiveContext } | undefined;
  /** Its end of a relayed pair in the mixer it is in now (a new one per mixer joined). */
  private relayEnd = new RelayEnd(this);
  private readonly relayed = new RelayedStream();
  /** The peer sent audio packets of another length than 20 ms: they are re-cut by the mixer, never relayed. */
  private unevenPackets = false;
  private readonly log: Logger;

  constructor(private readonly session: RtpSession, mixer: Mixer, private readonly o: MediaPathOptions, carry?: MediaPathCarry) {
    this.log = o.log.child({}, "media.leg");
    this.outTimestamp = carry?.outTimestamp ?? Math.floor(Math.random() * 2 ** 32);
    this.dtmfReceiver = this.createDtmfReceiver(8000);
    // Nothing negotiated yet: ask for the lowest rate until a codec says otherwise.
    this.participant = this.joinMixer(mixer, 8000);
    session.onPacket = (packet, arrivalMs) => this.receive(packet, arrivalMs);
    session.onNewSource = () => this.restartReceiver();
    session.onTimeout = () => {
      this.log.warn("media timeout: no RTP from the peer", { timeoutSec: o.mediaTimeoutSec ?? 30, remote: session.stats().remote });
      this.dtmfReceiver.finish();
      this.onTimeout();
    };
    if (carry) {
      this.dtmfSent = carry.dtmfSent;
      this.dtmfReceived = carry.dtmfReceived;
      if (carry.signallingAddress !== undefined) this.setSignallingAddress(carry.signallingAddress);
      if (carry.media) this.configure(carry.media);
      // The same stream goes on: no restart to mark (RFC 3551 §4.1).
      this.restartMarker = false;
    }
  }

  get localPort(): number {
    return this.session.localPort;
  }

  private joinMixer(mixer: Mixer, sampleRate: number): MixerParticipant {
    const previous = this.relayEnd;
    // Current before the join: the mixer may pair it at once.
    const relay = this.relayEnd = new RelayEnd(this);
    try {
      return mixer.join(this.o.participantId, (frame) => this.hear(frame), { pull: () => this.speak(), sampleRate, relay });
    } catch (error) {
      this.relayEnd = previous;
      throw error;
    }
  }

  /** @internal RelayEnd.format: what a peer's packets must be for this leg to take them as they are. */
  get relayFormat(): string | undefined {
    const codec = this.sendCodec;
    return codec?.relayFrameBytes !== undefined && !this.unevenPackets ? codec.name : undefined;
  }

  /** @internal RelayEnd.pair: the mixer paired or unpaired this leg's end. */
  relayPaired(end: RelayEnd): void {
    if (end !== this.relayEnd || this.closed) return;
    if (!end.peer && this.sendCodec) this.takeOverFromRelay(rtpTimestampsPerFrame(this.sendCodec, FRAME_MS));
    // Whatever the jitter buffer held is from before; each side's stream starts a new run.
    this.restartReceiver();
    this.relayed.resync();
    this.relayed.lastTick = -Infinity;
    this.relayed.carried = false;
  }

  /** @internal RelayEnd.deliver: one audio packet of the paired peer, sent on as our own stream. */
  relayedPacket(end: RelayEnd, packet: ParsedRtp, arrivalMs: number): void {
    const m = this.media;
    const codec = this.sendCodec;
    if (end !== this.relayEnd || !m || !codec || !this.sending || this.closed) return;
    const relayed = this.relayed;
    relayed.lastTick = this.tick;
    if (this.sendsOwnAudio || !relayed.map(packet, this.outTimestamp, arrivalMs)) return;
    this.session.sendFrom(m.payloadType, packet.data, packet.payloadOffset, packet.payloadLength, relayed.timestamp, packet.marker || this.restartMarker, relayed.gap);
    this.restartMarker = false;
    relayed.carried = true;
    relayTotals.packets++;
    this.outTimestamp = (relayed.timestamp + rtpTimestampsPerFrame(codec, FRAME_MS)) >>> 0;
  }

  /**
   * Our own frames take over from the relay (its peer went quiet, or we send DTMF): the stream goes
   * on from the last packet relayed, as far on as the ticks since then; a gap is a new talkspurt
   * (RFC 3551 §4.1).
   */
  private takeOverFromRelay(frameUnits: number): void {
    const relayed = this.relayed;
    relayed.resync();
    if (!relayed.carried) return;
    relayed.carried = false;
    const quietTicks = this.tick - relayed.lastTick - 1;
    if (quietTicks > 0) {
      this.outTimestamp = (this.outTimestamp + quietTicks * frameUnits) >>> 0;
      this.restartMarker = true;
    }
  }

  /** DTMF or in-band tones are being sent: they take the place of the audio (RFC 4733 §2.5.1). */
  private get sendsOwnAudio(): boolean {
    return this.dtmfEvent !== undefined || this.dtmfQueue.length > 0 || this.inband?.generator.pending === true;
  }

  /**
   * Leaves its mixer and joins `mixer` as the same participant, in one synchronous step: the
   * thread's mixers share one ticker, so no tick falls between the two, and the RTP stream
   * (timestamps, sequence numbers, codec state) carries on as if nothing happened.
   */
  moveTo(mixer: Mixer): void {
    if (this.closed) return;
    // Joined first: a refused join (closed mixer, duplicate id) leaves the leg where it was.
    const next = this.joinMixer(mixer, this.receiver?.codec.sampleRate ?? 8000);
    this.participant.leave();
    this.participant = next;
  }

  private createDtmfReceiver(clockRate: number): DtmfReceiver {
    return new DtmfReceiver((e) => {
      this.dtmfReceived++;
      this.onDtmf(e);
    }, clockRate);
  }

  /** Applies a completed negotiation (LegNegotiator). */
  configure(media: NegotiatedMedia): void {
    if (this.closed) return;
    const codec = codecByName(media.codec.name)!;
    const previous = this.media;
    this.media = media;
    this.receiving = media.direction === "sendrecv" || media.direction === "recvonly";
    const reachable = media.remotePort !== 0 && !isNullAddress(media.remoteAddress);
    this.sending = reachable && (media.direction === "sendrecv" || media.direction === "sendonly");
    if (!this.receiver || this.receiver.codec !== codec) {
      this.receiver = {
        codec,
        decoder: codec.createDecoder(),
        jitter: new JitterBuffer({ clockRate: codec.rtpClockRate }),
        pending: NOTHING_PENDING,
      };
      this.participant.setSampleRate(codec.sampleRate);
    }
    if (media.telephoneEventClockRate !== undefined && media.telephoneEventClockRate !== previous?.telephoneEventClockRate) {
      this.dtmfReceiver.finish();
      this.dtmfReceiver = this.createDtmfReceiver(media.telephoneEventClockRate);
    }
    if (this.sendCodec !== codec || previous?.direction !== media.direction) this.restartMarker = true;
    this.sendCodec = codec;
    const payloadTypes = media.telephoneEventPayloadType === undefined ? [media.payloadType] : [media.payloadType, media.telephoneEventPayloadType];
    this.session.configure({
      remote: {
        address: media.remoteAddress, port: media.remotePort,
        rtcpAddress: media.remoteRtcpAddress, rtcpPort: media.remoteRtcpPort, rtcpMux: media.rtcpMux,
      },
      payloadTypes,
      clockRate: codec.rtpClockRate,
      expectMedia: this.receiving && reachable,
      mediaTimeoutMs: (this.o.mediaTimeoutSec ?? 30) * 1000,
      strictSource: this.o.strictSource,
    });
    this.applySrtp(media.srtp);
    this.participant.relayChanged();
    this.log.debug("media negotiated", {
      codec: codec.name, direction: media.direction, remote: `${media.remoteAddress}:${media.remotePort}`, srtp: media.srtp?.local.suite ?? "none",
    });
  }

  /** Keeps each context while its key stays: a new send context would restart its counters under the same key. */
  private applySrtp(keys: NegotiatedMedia["srtp"]): void {
    if (!keys) {
      this.srtp = undefined;
    } else {
      const current = this.srtp;
      const send = current && sameSrtpKey(current.send.key, keys.local) ? current.send : new SrtpSendContext(keys.local);
      const receive = current && sameSrtpKey(current.receive.key, keys.remote) ? current.receive : new SrtpReceiveContext(keys.remote, current ? { previous: current.receive } : {});
      this.srtp = { send, receive };
    }
    this.session.useSrtp(this.srtp);
  }

  setSignallingAddress(address: string): void {
    this.signallingAddress = address;
    this.session.setSignallingAddress(address);
  }

  private restartReceiver(): void {
    const r = this.receiver;
    if (!r) return;
    r.jitter.reset();
    r.decoder = r.codec.createDecoder();
    r.pending = NOTHING_PENDING;
  }

  private receive(packet: ParsedRtp, arrivalMs: number): void {
    const m = this.media;
    const r = this.receiver;
    if (!m || !r || !this.receiving) return;
    if (packet.payloadType === m.payloadType) {
      const peer = this.relayEnd.peer;
      if (peer) {
        if (packet.payloadLength === r.codec.relayFrameBytes) return peer.deliver(packet, arrivalMs);
        this.unevenPackets = true;
        this.participant.relayChanged(); // unpaired: this packet and the rest go to the mixer
      }
      // The jitter buffer keeps a copy: the socket's buffer is reused for the next datagram.
      r.jitter.pushFrom(packet.sequenceNumber, packet.timestamp, packet.data, packet.payloadOffset, packet.payloadLength, arrivalMs);
    } else if (packet.payloadType === m.telephoneEventPayloadType) {
      // Events bypass the jitter buffer: a key press is reported when its end packet arrives.
      // The audio they displace shows up there as a short gap, concealed like loss.
      this.dtmfReceiver.receive({ timestamp: packet.timestamp, marker: packet.marker, payload: packet.payload });
    }
  }

  /** Mixer pull: the next 20 ms of what the phone says, at the codec's rate. */
  private speak(): Int16Array | undefined {
    const r = this.receiver;
    if (!r || !this.receiving) return undefined;
    const need = (r.codec.sampleRate * FRAME_MS) / 1000;
    let pcm = r.pending;
    while (pcm.length < need) {
      const frame = r.jitter.pop();
      if (frame === undefined) break;
      const decoded = frame === "lost"
        ? r.decoder.conceal(Math.round((r.jitter.frameTimestampUnits * r.codec.sampleRate) / r.codec.rtpClockRate))
        : r.decoder.decode(frame.payload);
      pcm = pcm.length === 0 ? decoded : concat(pcm, decoded);
    }
    if (pcm.length < need) {
      r.pending = pcm;
      return undefined;
    }
    r.pending = pcm.length === need ? NOTHING_PENDING : pcm.subarray(need);
    return pcm.length === need ? pcm : pcm.subarray(0, need);
  }

  /** Mixer output: what this leg hears this tick, sent as one RTP packet. */
  private hear(frame: MixedFrame): void {
    const codec = this.sendCodec;
    const m = this.media;
    if (!codec || !m) return;
    const frameUnits = rtpTimestampsPerFrame(codec, FRAME_MS);
    this.tick++;
    if (this.relayEnd.peer && this.sending) {
      // While the relay carries the stream, its packets set our timestamps.
      if (!this.sendsOwnAudio && this.tick - this.relayed.lastTick <= RELAY_QUIET_TICKS) return;
      this.takeOverFromRelay(frameUnits);
    }
    const timestamp = this.outTimestamp;
    this.outTimestamp = (timestamp + frameUnits) >>> 0;
    if (!this.sending) {
      this.restartMarker = true;
      return;
    }
    if (this.eventsUsable && this.sendEventPacket(m.telephoneEventPayloadType!, timestamp)) return;
    const payload = this.inbandTone(codec) ?? this.participant.encode(frame, codec);
    this.session.send(m.payloadType, payload, timestamp, this.restartMarker);
    this.restartMarker = false;
  }

  /** RFC 4733 §2.5.1: one event packet per tick, all with the event's start timestamp; true if sent. */
  private sendEventPacket(pt: number, timestamp: number): boolean {
    if (!this.dtmfEvent) {
      if (this.dtmfGapTicks > 0) {
        this.dtmfGapTicks--;
        return false;
      }
      if (this.dtmfQueue.length === 0) return false;
      const digit = this.dtmfQueue.shift()!;
      const packets = telephoneEventPackets(digit, { durationMs: this.o.dtmfDurationMs ?? 100, packetMs: FRAME_MS, clockRate: this.media?.telephoneEventClockRate ?? 8000 });
      if (!packets) return false;
      this.dtmfEvent = { packets, next: 0, timestamp, startTick: this.tick };
    }
    const e = this.dtmfEvent;
    const elapsedMs = (this.tick - e.startTick) * FRAME_MS;
    const packet = e.packets[e.next];
    if (packet && packet.atMs <= elapsedMs) {
      this.session.send(pt, packet.payload, e.timestamp, packet.marker);
      e.next++;
    }
    if (e.next >= e.packets.length) {
      this.dtmfEvent = undefined;
      this.dtmfGapTicks = DTMF_GAP_MS / FRAME_MS;
      this.restartMarker = true;
    }
    return true;
  }

  /** In-band tones for peers without telephone-event, encoded in place of the mix. */
  private inbandTone(codec: Codec): Uint8Array | undefined {
    const ib = this.inband;
    if (!ib?.generator.pending) return undefined;
    if (ib.codec !== codec) return undefined;
    const pcm = ib.generator.nextFrame((codec.sampleRate * FRAME_MS) / 1000);
    if (!pcm) return undefined;
    return ib.encoder.encode(pcm);
  }

  /** Events share our audio timestamps, so they need telephone-event at the codec's clock (RFC 4733 §2.1). */
  private get eventsUsable(): boolean {
    const m = this.media;
    return m?.telephoneEventPayloadType !== undefined && m.telephoneEventClockRate === this.sendCodec?.rtpClockRate;
  }

  sendDtmf(digits: string): void {
    const valid = [...digits].filter((d) => digitToEvent(d) !== undefined);
    this.dtmfSent += valid.length;
    if (this.eventsUsable) {
      this.dtmfQueue.push(...valid);
      return;
    }
    const codec = this.sendCodec;
    if (!codec) return;
    if (!this.inband || this.inband.codec !== codec) {
      this.inband = { generator: new InbandDtmfGenerator(codec.sampleRate), encoder: codec.createEncoder(), codec };
    }
    for (const d of valid) this.inband.generator.queueDigit(d, this.o.dtmfDurationMs ?? 100, DTMF_GAP_MS);
  }

  /** stats()'s counters, into `into`: no object made. */
  readCounters(into: LegCounters): void {
    this.session.readCounters(into);
    const jitter = this.receiver?.jitter;
    into.framesConcealed = jitter ? jitter.lostFrames : 0;
    into.latePackets = jitter ? jitter.latePackets : 0;
    into.dtmfReceived = this.dtmfReceived;
  }

  stats(): PhoneLegStats {
    return {
      codec: this.sendCodec?.name,
      direction: this.media?.direction,
      ...(this.srtp ? { srtp: this.srtp.send.suite } : {}),
      rtp: this.session.stats(),
      jitter: this.receiver ? this.receiver.jitter.stats() : NO_JITTER_STATS,
      dtmfReceived: this.dtmfReceived,
      dtmfSent: this.dtmfSent,
    };
  }

  /** Leaves the mixer and closes the RTP session (RTCP BYE). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.dtmfReceiver.finish();
    this.participant.leave();
    this.session.close();
  }

  /**
   * Leaves the mixer and closes the socket without a BYE, returning what another media path on the
   * same port needs to carry on the stream (a leg re-homed to another media worker).
   */
  detach(): MediaPathCarry {
    this.closed = true;
    this.participant.leave();
    const carry: MediaPathCarry = {
      stream: this.session.stream, outTimestamp: this.outTimestamp, dtmfSent: this.dtmfSent, dtmfReceived: this.dtmfReceived,
      media: this.media, signallingAddress: this.signallingAddress,
    };
    this.session.close({ bye: false });
    return carry;
  }
}

function concat(a: Int16Array, b: Int16Array): Int16Array {
  const out = new Int16Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** A leg's end of a relayed pair in one mixer (relay.ts). */
class RelayEnd implements PacketRelay {
  peer: PacketRelay | undefined;

  constructor(private readonly path: LegMediaPath) {}

  get format(): string | undefined {
    return this.path.relayFormat;
  }

  pair(peer: PacketRelay | undefined): void {
    this.peer = peer;
    this.path.relayPaired(this);
  }

  deliver(packet: ParsedRtp, arrivalMs: number): void {
    this.path.relayedPacket(this, packet, arrivalMs);
  }
}
