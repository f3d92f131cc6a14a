// SRTP (RFC 3711) for the direct audio path, on werift's own SRTP session: its session keys and
// salts (derived by werift, RFC 3711 §4.3), its per-SSRC rollover counters and their update rule
// (RFC 3711 §3.3.1), for both profiles werift negotiates: AEAD_AES_128_GCM (RFC 7714; werift's
// first choice, what werift clients get; node:crypto's AES-GCM called as werift calls it) and
// AES_CM_128_HMAC_SHA1_80 (RFC 3711 §4.1.1, §4.2; what Chromium gets; the transform the phone
// legs' SRTP uses too, media/srtp-transform.ts). The same bytes on the
// wire: test/webrtc/direct-srtp.test.ts compares them with werift's. What is left out is werift's
// per-packet bookkeeping around the cipher: its encrypt serializes a header object, makes the
// AES-CM counter through a BigInt and concatenates three buffers; its decrypt parses the header
// into an object with its extensions, copies the rollover state into a new object, allocates and
// zero-fills buffers it then copies into, and slices. Here the header stays bytes and a decrypted
// packet is written once into a buffer that is reused (its reader copies what it keeps).
import { createCipheriv, createDecipheriv } from "node:crypto";
import { ProtectionProfileAeadAes128Gcm, ProtectionProfileAes128CmHmacSha1_80, type SrtpSession } from "werift";
import { readUint32, rtpHeaderLength } from "../media/rtp-packet.ts";
import { AesCmHmacSha1, TAG_LENGTH_80, writeSrtpIv } from "../media/srtp-transform.ts";

/** werift's rollover state of one SSRC (RFC 3711 §3.3.1: ROC and the highest sequence number). */
interface RolloverState {
  ssrc: number;
  rolloverCounter: number;
  lastSequenceNumber: number;
  rolloverHasProcessed?: boolean;
}

/** The parts of werift's SRTP context (private in its types, plain fields in its code) the direct path uses. */
export interface SrtpContextState {
  profile: number;
  srtpSessionKey: Buffer;
  srtpSessionSalt: Buffer;
  /** AES-CM's HMAC-SHA1 key (RFC 3711 §4.2) */
  srtpSessionAuthTag: Buffer;
  srtpSSRCStates: Record<number, RolloverState | undefined>;
  getSrtpSsrcState(ssrc: number): RolloverState;
  updateRolloverCount(sequenceNumber: number, state: RolloverState): void;
}

interface SessionContexts {
  localContext: SrtpContextState;
  remoteContext: SrtpContextState;
}

/** RFC 7714 §6: AEAD_AES_128_GCM's 16-octet authentication tag. */
const GCM_TAG_LENGTH = 16;
/** RFC 3711 §4.2 / RFC 5764 §4.1.2: AES_CM_128_HMAC_SHA1_80's 80-bit tag. */
const CM_TAG_LENGTH = TAG_LENGTH_80;

/** werift's contexts of `session` when it runs a profile this module implements, else undefined (werift's own path then). */
export function directSrtpContexts(session: SrtpSession): SessionContexts | undefined {
  const contexts = session as unknown as SessionContexts;
  const { profile } = contexts.localContext;
  return profile === ProtectionProfileAeadAes128Gcm || profile === ProtectionProfileAes128CmHmacSha1_80 ? contexts : undefined;
}

const gcmIv = Buffer.alloc(12);

/** The AES-CM transform under a werift context's SRTP session keys, made at its first packet. */
const aesCmTransforms = new WeakMap<SrtpContextState, AesCmHmacSha1>();

function aesCm(context: SrtpContextState): AesCmHmacSha1 {
  let transform = aesCmTransforms.get(context);
  if (!transform) {
    transform = new AesCmHmacSha1(context.srtpSessionKey, context.srtpSessionSalt, context.srtpSessionAuthTag);
    aesCmTransforms.set(context, transform);
  }
  return transform;
}

/**
 * One SRTP packet: `header` (a whole RTP header, authenticated but not encrypted) ‖ `payload`
 * encrypted ‖ the tag, advancing the sender's rollover state as werift's encrypt does.
 */
export function protectRtp(context: SrtpContextState, header: Uint8Array, payload: Uint8Array): Buffer {
  const sequenceNumber = (header[2]! << 8) | header[3]!;
  const ssrc = readUint32(header, 8);
  const state = context.getSrtpSsrcState(ssrc);
  context.updateRolloverCount(sequenceNumber, state);
  const roc = state.rolloverCounter;
  if (context.profile !== ProtectionProfileAeadAes128Gcm) return aesCm(context).protectRtp(header, payload, roc, CM_TAG_LENGTH);
  const packet = Buffer.allocUnsafe(header.length + payload.length + GCM_TAG_LENGTH);
  packet.set(header, 0);
  const cipher = createCipheriv("aes-128-gcm", context.srtpSessionKey, writeSrtpIv(gcmIv, context.srtpSessionSalt, ssrc, roc, sequenceNumber));
  cipher.setAAD(header); // RFC 7714 §7.1: the header is the associated data
  packet.set(cipher.update(payload), header.length);
  cipher.final();
  packet.set(cipher.getAuthTag(), header.length + payload.length);
  return packet;
}

let plain = Buffer.alloc(1500);
/** Only an authentic packet may grow the buffer: a stranger's packets cost no memory. */
function growPlain(length: number): void {
  if (plain.length < length) plain = Buffer.alloc(length);
}
const trial: RolloverState = { ssrc: 0, rolloverCounter: 0, lastSequenceNumber: 0 };

/**
 * The decrypted RTP packet of an SRTP packet, or undefined when it does not authenticate (a
 * packet that does not leaves no trace in the rollover state, as with werift's decrypt). The
 * result is a view into a buffer the next call overwrites: copy what must outlive the caller.
 */
export function unprotectRtp(context: SrtpContextState, packet: Buffer): Buffer | undefined {
  const gcm = context.profile === ProtectionProfileAeadAes128Gcm;
  const tagLength = gcm ? GCM_TAG_LENGTH : CM_TAG_LENGTH;
  const payloadAt = rtpHeaderLength(packet, tagLength);
  if (payloadAt < 0) return undefined;
  const tagAt = packet.length - tagLength;
  const sequenceNumber = (packet[2]! << 8) | packet[3]!;
  const ssrc = readUint32(packet, 8);
  const known = context.srtpSSRCStates[ssrc];
  trial.ssrc = ssrc;
  trial.rolloverCounter = known?.rolloverCounter ?? 0;
  trial.lastSequenceNumber = known?.lastSequenceNumber ?? 0;
  if (known?.rolloverHasProcessed === undefined) delete trial.rolloverHasProcessed;
  else trial.rolloverHasProcessed = known.rolloverHasProcessed;
  context.updateRolloverCount(sequenceNumber, trial);
  const roc = trial.rolloverCounter;
  if (gcm) {
    const decipher = createDecipheriv("aes-128-gcm", context.srtpSessionKey, writeSrtpIv(gcmIv, context.srtpSessionSalt, ssrc, roc, sequenceNumber));
    decipher.setAAD(packet.subarray(0, payloadAt));
    decipher.setAuthTag(packet.subarray(tagAt));
    const payload = decipher.update(packet.subarray(payloadAt, tagAt));
    try {
      decipher.final();
    } catch {
      return undefined;
    }
    growPlain(tagAt);
    plain.set(packet.subarray(0, payloadAt), 0);
    plain.set(payload, payloadAt);
  } else {
    // RFC 3711 §3.3: authenticate before decrypting.
    const transform = aesCm(context);
    if (!transform.authenticRtp(packet, roc, CM_TAG_LENGTH)) return undefined;
    growPlain(tagAt);
    transform.decryptRtp(packet, payloadAt, roc, CM_TAG_LENGTH, plain);
  }
  if (known) {
    known.rolloverCounter = trial.rolloverCounter;
    known.lastSequenceNumber = trial.lastSequenceNumber;
    known.rolloverHasProcessed = trial.rolloverHasProcessed;
  } else context.srtpSSRCStates[ssrc] = { ...trial };
  return plain.subarray(0, tagAt);
}
