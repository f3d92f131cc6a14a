// SRTP and SRTCP (RFC 3711) for legs keyed by SDES (RFC 4568): one context per direction.
//
//   const key = generateSrtpKey("AES_CM_128_HMAC_SHA1_80");            // ours, goes into our a=crypto
//   const send = new SrtpSendContext(key);                              // protects what we send
//   const receive = new SrtpReceiveContext(theirKey);                   // checks what the peer sends
//   send.protectRtp(rtp); send.protectRtcp(rtcp);                        // → new packet with the tag
//   receive.unprotectRtp(srtp); receive.unprotectRtcp(srtcp);            // → plain packet, or "auth" | "replay"
//   new SrtpReceiveContext(newKey, { previous: receive })               // re-keyed (re-INVITE): the old key
//                                                                        // still opens packets until the new one does
//
// The session keys are werift's (its SRTP session's key derivation, RFC 3711 §4.3); the transform is
// srtp-transform.ts's AES-CM and HMAC-SHA1 on node:crypto, which the WebRTC direct path shares. Here
// are the rest: the 32-bit tag of AES_CM_128_HMAC_SHA1_32, the receiver's packet index estimate with
// the rollover counter (RFC 3711 §3.3.1, Appendix A), the replay lists of SRTP and SRTCP (§3.3.2) and
// a bound on the SSRCs a context tracks. A packet is accepted only after its tag checks out, so nothing
// a stranger sends changes any state; failures are counted (`srtpDropTotals`) and never thrown.
import { timingSafeEqual } from "node:crypto";
import { ProtectionProfileAes128CmHmacSha1_80, SrtpSession } from "werift";
import { readUint32, rtpHeaderLength } from "./rtp-packet.ts";
import { AesCmHmacSha1, RTCP_HEADER_SIZE, SRTCP_INDEX_LENGTH, SRTCP_TAG_LENGTH, TAG_LENGTH_32, TAG_LENGTH_80 } from "./srtp-transform.ts";

/** RFC 4568 §6.2: the crypto suites we support, in our order of preference. */
export const SRTP_SUITES = ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"] as const;
export type SrtpSuite = (typeof SRTP_SUITES)[number];

/** RFC 4568 §6.2.1: a 128-bit master key followed by a 112-bit master salt. */
export const MASTER_KEY_LENGTH = 16;
export const MASTER_SALT_LENGTH = 14;
export const KEY_AND_SALT_LENGTH = MASTER_KEY_LENGTH + MASTER_SALT_LENGTH;

export interface SrtpKey {
  suite: SrtpSuite;
  /** master key ‖ master salt, KEY_AND_SALT_LENGTH bytes (the key-salt of an a=crypto inline: key) */
  keyAndSalt: Uint8Array;
}

export type SrtpDropReason = "auth" | "replay";

/** Packets dropped by every receive context of the process, for the metric. */
export const srtpDropTotals: Record<SrtpDropReason, number> = { auth: 0, replay: 0 };

/** RFC 4568 §6.2.1 / §6.2.2: SRTP tags of 80 or 32 bits; SRTCP's is 80 bits for both suites. */
const RTP_TAG_LENGTH: Record<SrtpSuite, number> = { AES_CM_128_HMAC_SHA1_80: TAG_LENGTH_80, AES_CM_128_HMAC_SHA1_32: TAG_LENGTH_32 };
/** RFC 3711 §3.4: the 31-bit SRTCP index. */
const SRTCP_INDEX_LIMIT = 0x80000000;
/** RFC 3711 §3.3.2: a replay list of at least 64 packets. */
const REPLAY_WINDOW = 64;
/** A peer sends one SSRC per leg (a new one after a restart); a few cover every legitimate case. */
const MAX_TRACKED_SSRCS = 4;

export function generateSrtpKey(suite: SrtpSuite): SrtpKey {
  return { suite, keyAndSalt: crypto.getRandomValues(new Uint8Array(KEY_AND_SALT_LENGTH)) };
}

/** Same suite and key bytes (a re-offer repeating a key keeps its context, RFC 4568 §7.1.4). */
export function sameSrtpKey(a: SrtpKey, b: SrtpKey): boolean {
  return a.suite === b.suite && a.keyAndSalt.length === b.keyAndSalt.length && timingSafeEqual(a.keyAndSalt, b.keyAndSalt);
}

/** The SRTP and SRTCP transforms under werift's session keys for one master key (RFC 3711 §4.3, key derivation rate 0). */
class SessionTransforms {
  readonly rtp: AesCmHmacSha1;
  readonly rtcp: AesCmHmacSha1;

  constructor(key: SrtpKey) {
    if (key.keyAndSalt.length !== KEY_AND_SALT_LENGTH) throw new Error(`an SRTP key and salt is ${KEY_AND_SALT_LENGTH} bytes, got ${key.keyAndSalt.length}`);
    const masterKey = Buffer.from(key.keyAndSalt.subarray(0, MASTER_KEY_LENGTH));
    const masterSalt = Buffer.from(key.keyAndSalt.subarray(MASTER_KEY_LENGTH));
    // Both suites share AES-CM-128 and HMAC-SHA1 (RFC 4568 §6.2); only the SRTP tag length differs.
    const session = new SrtpSession({
      keys: { localMasterKey: masterKey, localMasterSalt: masterSalt, remoteMasterKey: masterKey, remoteMasterSalt: masterSalt },
      profile: ProtectionProfileAes128CmHmacSha1_80,
    });
    const context = session.localContext;
    this.rtp = new AesCmHmacSha1(context.srtpSessionKey, context.srtpSessionSalt, context.srtpSessionAuthTag);
    this.rtcp = new AesCmHmacSha1(context.srtcpSessionKey, context.srtcpSessionSalt, context.srtcpSessionAuthTag);
  }
}

/** A plain view: a Buffer's slice() would share memory where callers expect a copy. */
function asUint8Array(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** RFC 3711 §3.3.2: which of the last REPLAY_WINDOW indexes below the highest one were seen. */
class ReplayList {
  private readonly seen = new Uint8Array(REPLAY_WINDOW);
  constructor(public highest: number) {
    this.seen[highest % REPLAY_WINDOW] = 1;
  }

  /** False for an index seen already or too old to tell. */
  fresh(index: number): boolean {
    if (index > this.highest) return true;
    if (this.highest - index >= REPLAY_WINDOW) return false;
    return this.seen[index % REPLAY_WINDOW] === 0;
  }

  /** Records an authenticated index. */
  add(index: number): void {
    if (index > this.highest) {
      const advance = Math.min(index - this.highest, REPLAY_WINDOW);
      for (let i = 1; i <= advance; i++) this.seen[(this.highest + i) % REPLAY_WINDOW] = 0;
      this.highest = index;
    }
    this.seen[index % REPLAY_WINDOW] = 1;
  }
}

/** Keeps at most MAX_TRACKED_SSRCS entries, forgetting the longest-unused one. */
function track<T>(map: Map<number, T>, ssrc: number, value: T): void {
  map.delete(ssrc);
  if (map.size >= MAX_TRACKED_SSRCS) map.delete(map.keys().next().value!);
  map.set(ssrc, value);
}

/** Protects what we send under our master key. */
export class SrtpSendContext {
  readonly suite: SrtpSuite;
  private readonly transforms: SessionTransforms;
  private readonly tagLength: number;
  private ssrc = -1;
  private rolloverCounter = 0;
  private lastSequence = 0;
  private srtcpIndex = 0;

  constructor(readonly key: SrtpKey) {
    this.suite = key.suite;
    this.transforms = new SessionTransforms(key);
    this.tagLength = RTP_TAG_LENGTH[key.suite];
  }

  /** RFC 3711 §3.1: header in the clear, payload encrypted, tag over both and the rollover counter. */
  protectRtp(packet: Uint8Array): Uint8Array {
    const headerLength = rtpHeaderLength(packet, 0);
    if (headerLength < 0) throw new Error("not an RTP packet");
    const sequence = (packet[2]! << 8) | packet[3]!;
    const ssrc = readUint32(packet, 8);
    if (ssrc !== this.ssrc) {
      this.ssrc = ssrc;
      this.rolloverCounter = 0;
    } else if (sequence < this.lastSequence && this.lastSequence - sequence > 0x8000) {
      // §3.3.1: the sender's sequence numbers wrapped.
      this.rolloverCounter = (this.rolloverCounter + 1) >>> 0;
    }
    this.lastSequence = sequence;
    return asUint8Array(this.transforms.rtp.protectRtp(packet.subarray(0, headerLength), packet.subarray(headerLength), this.rolloverCounter, this.tagLength));
  }

  /** RFC 3711 §3.4: encrypted after the first 8 bytes, then E flag + index and an 80-bit tag. */
  protectRtcp(packet: Uint8Array): Uint8Array {
    if (packet.length < RTCP_HEADER_SIZE) throw new Error("not an RTCP packet");
    // The index starts at 1 and never repeats under one key (2^31 reports outlast any call).
    this.srtcpIndex = (this.srtcpIndex + 1) % SRTCP_INDEX_LIMIT || 1;
    return asUint8Array(this.transforms.rtcp.protectRtcp(packet, this.srtcpIndex));
  }
}

interface RtpStream { replay: ReplayList }

/** Checks and decrypts what the peer sends under its master key. */
export class SrtpReceiveContext {
  readonly suite: SrtpSuite;
  private readonly transforms: SessionTransforms;
  private readonly tagLength: number;
  private readonly rtpStreams = new Map<number, RtpStream>();
  private readonly rtcpStreams = new Map<number, ReplayList>();
  /** the context this one replaced, tried while the peer may still send under its old key */
  private previous: SrtpReceiveContext | undefined;

  constructor(readonly key: SrtpKey, o: { previous?: SrtpReceiveContext } = {}) {
    this.suite = key.suite;
    this.transforms = new SessionTransforms(key);
    this.tagLength = RTP_TAG_LENGTH[key.suite];
    // One step back only: the previous context's own predecessor is dropped.
    if (o.previous) {
      o.previous.previous = undefined;
      this.previous = o.previous;
    }
  }

  /** The plain RTP packet, or why it was dropped. */
  unprotectRtp(packet: Uint8Array): Uint8Array | SrtpDropReason {
    let result = this.openRtp(packet);
    if (result === "auth" && this.previous) {
      result = this.previous.openRtp(packet);
    } else if (typeof result !== "string") {
      this.previous = undefined;
    }
    if (typeof result === "string") srtpDropTotals[result]++;
    return result;
  }

  /** The plain RTCP compound packet, or why it was dropped. */
  unprotectRtcp(packet: Uint8Array): Uint8Array | SrtpDropReason {
    let result = this.openRtcp(packet);
    if (result === "auth" && this.previous) result = this.previous.openRtcp(packet);
    if (typeof result === "string") srtpDropTotals[result]++;
    return result;
  }

  private openRtp(packet: Uint8Array): Uint8Array | SrtpDropReason {
    const headerLength = rtpHeaderLength(packet, this.tagLength);
    if (headerLength < 0) return "auth";
    const sequence = (packet[2]! << 8) | packet[3]!;
    const ssrc = readUint32(packet, 8);
    const stream = this.rtpStreams.get(ssrc);
    // RFC 3711 §3.3.1 / Appendix A: the index closest to the highest one seen; a new SSRC starts
    // at rollover counter 0 (SDES carries no other).
    let index = sequence;
    if (stream) {
      const highest = stream.replay.highest;
      const rolloverCounter = Math.floor(highest / 0x10000);
      const highestSequence = highest % 0x10000;
      let guess = rolloverCounter;
      if (highestSequence < 0x8000) {
        if (sequence - highestSequence > 0x8000) guess = rolloverCounter - 1;
      } else if (highestSequence - 0x8000 > sequence) {
        guess = rolloverCounter + 1;
      }
      if (guess < 0 || guess > 0xffffffff) return "replay";
      index = guess * 0x10000 + sequence;
      if (!stream.replay.fresh(index)) return "replay";
    }
    const rolloverCounter = Math.floor(index / 0x10000);
    const { rtp } = this.transforms;
    if (!rtp.authenticRtp(packet, rolloverCounter, this.tagLength)) return "auth";
    const plain = new Uint8Array(packet.length - this.tagLength);
    rtp.decryptRtp(packet, headerLength, rolloverCounter, this.tagLength, plain);
    if (stream) {
      stream.replay.add(index);
      track(this.rtpStreams, ssrc, stream);
    } else {
      track(this.rtpStreams, ssrc, { replay: new ReplayList(index) });
    }
    return plain;
  }

  private openRtcp(packet: Uint8Array): Uint8Array | SrtpDropReason {
    if (packet.length < RTCP_HEADER_SIZE + SRTCP_INDEX_LENGTH + SRTCP_TAG_LENGTH || packet[0]! >> 6 !== 2) return "auth";
    const ssrc = readUint32(packet, 4);
    const index = readUint32(packet, packet.length - SRTCP_TAG_LENGTH - SRTCP_INDEX_LENGTH) & 0x7fffffff;
    const replay = this.rtcpStreams.get(ssrc);
    if (replay && !replay.fresh(index)) return "replay";
    const plain = this.transforms.rtcp.unprotectRtcp(packet);
    if (!plain) return "auth";
    if (replay) {
      replay.add(index);
      track(this.rtcpStreams, ssrc, replay);
    } else {
      track(this.rtcpStreams, ssrc, new ReplayList(index));
    }
    return asUint8Array(plain);
  }
}
