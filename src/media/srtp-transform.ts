// The AES_CM_128_HMAC_SHA1 transform of SRTP and SRTCP (RFC 3711): AES-128 in counter mode (§4.1.1)
// and the HMAC-SHA1 tag (§4.2), on node:crypto, under one set of session keys (derived by werift,
// §4.3). The one implementation behind the phone legs' SDES contexts (srtp.ts: both tag lengths and
// SRTCP) and the WebRTC direct path (webrtc/direct-srtp.ts). It keeps no state: callers bring the
// rollover counter or SRTCP index and keep the replay rules. Headers stay bytes, the IV and ROC
// buffers are reused, and a packet is written once into its output.
import { createCipheriv, createHmac, timingSafeEqual, type Cipheriv } from "node:crypto";
import { readUint32 } from "./rtp-packet.ts";

/** RFC 4568 §6.2.1 / §6.2.2: an SRTP tag of 80 or 32 bits (AES_CM_128_HMAC_SHA1_80 / _32). */
export const TAG_LENGTH_80 = 10;
export const TAG_LENGTH_32 = 4;
/** RFC 3711 §3.4: SRTCP's E flag and 31-bit index, then its tag (80 bits for both suites, RFC 4568 §6.2). */
export const SRTCP_INDEX_LENGTH = 4;
export const SRTCP_TAG_LENGTH = TAG_LENGTH_80;
/** RFC 3711 §3.4: SRTCP leaves the first 8 octets (header and sender SSRC) in the clear. */
export const RTCP_HEADER_SIZE = 8;
const E_FLAG = 0x80000000;

const cmIv = Buffer.alloc(16);
const rolloverBytes = Buffer.alloc(4);

/**
 * The IV of a packet, XORed with the session salt: RFC 3711 §4.1.1 (AES-CM, 16 octets)
 * 00 00 00 00 ‖ SSRC ‖ ROC ‖ SEQ ‖ 00 00, where SRTCP puts its 31-bit index in ROC ‖ SEQ's place;
 * RFC 7714 §8.1 (AES-GCM, 12 octets) 00 00 ‖ SSRC ‖ ROC ‖ SEQ.
 */
export function writeSrtpIv(iv: Buffer, salt: Buffer, ssrc: number, rolloverCounter: number, sequenceNumber: number): Buffer {
  const at = iv.length === 16 ? 2 : 0;
  iv.fill(0);
  iv.writeUInt32BE(ssrc >>> 0, at + 2);
  iv.writeUInt32BE(rolloverCounter >>> 0, at + 6);
  iv.writeUInt16BE(sequenceNumber, at + 10);
  for (let i = 0; i < salt.length && i < iv.length; i++) iv[i]! ^= salt[i]!;
  return iv;
}

/** AES_CM_128 with HMAC-SHA1 under one set of session keys: SRTP's (labels 0–2) or SRTCP's (3–5). */
export class AesCmHmacSha1 {
  constructor(
    private readonly sessionKey: Buffer,
    private readonly sessionSalt: Buffer,
    private readonly authKey: Buffer,
  ) {}

  /** RFC 3711 §3.1: `header` in the clear ‖ `payload` encrypted ‖ the tag over both and the ROC. */
  protectRtp(header: Uint8Array, payload: Uint8Array, rolloverCounter: number, tagLength: number): Buffer {
    const end = header.length + payload.length;
    const packet = Buffer.allocUnsafe(end + tagLength);
    packet.set(header, 0);
    packet.set(this.rtpKeystream(header, rolloverCounter).update(payload), header.length);
    this.rtpTag(packet.subarray(0, end), rolloverCounter).copy(packet, end, 0, tagLength);
    return packet;
  }

  /** RFC 3711 §3.3 step 5, §4.2: whether `packet` ends in the tag of the rest and the ROC. */
  authenticRtp(packet: Uint8Array, rolloverCounter: number, tagLength: number): boolean {
    const tagAt = packet.length - tagLength;
    return timingSafeEqual(this.rtpTag(packet.subarray(0, tagAt), rolloverCounter).subarray(0, tagLength), packet.subarray(tagAt));
  }

  /**
   * Writes an authentic SRTP packet without its tag into `out`: the header (`payloadAt` bytes) as it
   * is, the payload decrypted (RFC 3711 §3.3 step 6).
   */
  decryptRtp(packet: Uint8Array, payloadAt: number, rolloverCounter: number, tagLength: number, out: Uint8Array): void {
    out.set(packet.subarray(0, payloadAt), 0);
    out.set(this.rtpKeystream(packet, rolloverCounter).update(packet.subarray(payloadAt, packet.length - tagLength)), payloadAt);
  }

  /** RFC 3711 §3.4: the first 8 octets in the clear, the rest encrypted, E flag ‖ index, the tag over all of it. */
  protectRtcp(packet: Uint8Array, srtcpIndex: number): Buffer {
    const tagAt = packet.length + SRTCP_INDEX_LENGTH;
    const out = Buffer.allocUnsafe(tagAt + SRTCP_TAG_LENGTH);
    out.set(packet.subarray(0, RTCP_HEADER_SIZE), 0);
    out.set(this.rtcpKeystream(packet, srtcpIndex).update(packet.subarray(RTCP_HEADER_SIZE)), RTCP_HEADER_SIZE);
    out.writeUInt32BE((E_FLAG | srtcpIndex) >>> 0, packet.length);
    this.rtcpTag(out.subarray(0, tagAt)).copy(out, tagAt, 0, SRTCP_TAG_LENGTH);
    return out;
  }

  /**
   * The RTCP packet of an SRTCP packet (at least header, index and tag long), or undefined when its
   * tag is wrong; decrypted when its E flag says it is encrypted (RFC 3711 §3.4).
   */
  unprotectRtcp(packet: Uint8Array): Buffer | undefined {
    const tagAt = packet.length - SRTCP_TAG_LENGTH;
    if (!timingSafeEqual(this.rtcpTag(packet.subarray(0, tagAt)).subarray(0, SRTCP_TAG_LENGTH), packet.subarray(tagAt))) return undefined;
    const indexAt = tagAt - SRTCP_INDEX_LENGTH;
    const indexField = readUint32(packet, indexAt);
    const out = Buffer.allocUnsafe(indexAt);
    out.set(packet.subarray(0, RTCP_HEADER_SIZE), 0);
    const body = packet.subarray(RTCP_HEADER_SIZE, indexAt);
    out.set(indexField & E_FLAG ? this.rtcpKeystream(packet, indexField & ~E_FLAG).update(body) : body, RTCP_HEADER_SIZE);
    return out;
  }

  /** RFC 3711 §4.1.1: the keystream of an RTP packet at index ROC ‖ SEQ. */
  private rtpKeystream(header: Uint8Array, rolloverCounter: number): Cipheriv {
    const iv = writeSrtpIv(cmIv, this.sessionSalt, readUint32(header, 8), rolloverCounter, (header[2]! << 8) | header[3]!);
    return createCipheriv("aes-128-ctr", this.sessionKey, iv);
  }

  /** RFC 3711 §4.1.1: SRTCP's keystream, its index in place of ROC ‖ SEQ and the sender SSRC. */
  private rtcpKeystream(packet: Uint8Array, srtcpIndex: number): Cipheriv {
    const iv = writeSrtpIv(cmIv, this.sessionSalt, readUint32(packet, 4), srtcpIndex >>> 16, srtcpIndex & 0xffff);
    return createCipheriv("aes-128-ctr", this.sessionKey, iv);
  }

  /** RFC 3711 §4.2: HMAC-SHA1 over the authenticated portion ‖ ROC (§3.1: the ROC is authenticated, not sent). */
  private rtpTag(authenticated: Uint8Array, rolloverCounter: number): Buffer {
    rolloverBytes.writeUInt32BE(rolloverCounter >>> 0, 0);
    return createHmac("sha1", this.authKey).update(authenticated).update(rolloverBytes).digest();
  }

  /** RFC 3711 §3.4, §4.2: SRTCP's tag covers the packet up to and with E flag ‖ index, nothing more. */
  private rtcpTag(authenticated: Uint8Array): Buffer {
    return createHmac("sha1", this.authKey).update(authenticated).digest();
  }
}
