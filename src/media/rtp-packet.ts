// RTP fixed header parse/serialize (RFC 3550 §5.1) and RTP/RTCP demultiplexing (RFC 5761 §4).

export interface RtpPacket {
  marker: boolean;
  payloadType: number;
  sequenceNumber: number;
  timestamp: number;
  ssrc: number;
  csrcs: readonly number[];
  /** view into the received datagram; copy it if it must outlive the handler */
  payload: Uint8Array;
}

/**
 * A parsed datagram: the payload is where it lies in `data` (`payloadOffset`, `payloadLength`), and
 * `payload` makes a view of it only when asked. A view of a small typed array costs JavaScriptCore
 * a native call that moves the array's bytes to a buffer of their own, per packet; the per-packet
 * path copies from `data` by offset instead (JitterBuffer.pushFrom).
 */
export class ParsedRtp implements RtpPacket {
  constructor(
    readonly data: Uint8Array,
    readonly marker: boolean,
    readonly payloadType: number,
    readonly sequenceNumber: number,
    readonly timestamp: number,
    readonly ssrc: number,
    readonly csrcs: readonly number[],
    readonly payloadOffset: number,
    readonly payloadLength: number,
  ) {}

  get payload(): Uint8Array {
    return this.data.subarray(this.payloadOffset, this.payloadOffset + this.payloadLength);
  }
}

export const RTP_HEADER_SIZE = 12;

const NO_CSRCS: readonly number[] = Object.freeze([]);

/** The big-endian unsigned 32-bit value at `o`. */
export function readUint32(d: Uint8Array, o: number): number {
  return ((d[o]! << 24) | (d[o + 1]! << 16) | (d[o + 2]! << 8) | d[o + 3]!) >>> 0;
}

/**
 * Length of the RTP header (RFC 3550 §5.1, §5.3.1: CSRCs and an extension, which SRTP leaves in the
 * clear) when `packet` holds one followed by at least `trailer` bytes (an SRTP tag); -1 otherwise.
 */
export function rtpHeaderLength(packet: Uint8Array, trailer: number): number {
  if (packet.length < RTP_HEADER_SIZE + trailer || packet[0]! >> 6 !== 2) return -1;
  let length = RTP_HEADER_SIZE + (packet[0]! & 0x0f) * 4;
  if (packet[0]! & 0x10) {
    if (packet.length < length + 4 + trailer) return -1;
    length += 4 + ((packet[length + 2]! << 8) | packet[length + 3]!) * 4;
  }
  return packet.length < length + trailer ? -1 : length;
}

/** Returns undefined for anything that is not a well-formed RTP v2 packet. */
export function parseRtp(data: Uint8Array): ParsedRtp | undefined {
  if (data.length < RTP_HEADER_SIZE) return undefined;
  const b0 = data[0]!;
  if (b0 >> 6 !== 2) return undefined;
  const b1 = data[1]!;
  const csrcCount = b0 & 0x0f;
  let offset = RTP_HEADER_SIZE + csrcCount * 4;
  if (data.length < offset) return undefined;
  let csrcs = NO_CSRCS;
  if (csrcCount > 0) {
    const list: number[] = [];
    for (let i = 0; i < csrcCount; i++) list.push(readUint32(data, RTP_HEADER_SIZE + i * 4));
    csrcs = list;
  }
  if (b0 & 0x10) {
    // RFC 3550 §5.3.1 header extension: 16-bit profile, 16-bit length in 32-bit words.
    if (data.length < offset + 4) return undefined;
    offset += 4 + ((data[offset + 2]! << 8) | data[offset + 3]!) * 4;
    if (data.length < offset) return undefined;
  }
  let end = data.length;
  if (b0 & 0x20) {
    // RFC 3550 §5.1 padding: the last octet counts the padding octets, itself included.
    const pad = data[end - 1]!;
    if (pad === 0 || offset + pad > end) return undefined;
    end -= pad;
  }
  return new ParsedRtp(data, (b1 & 0x80) !== 0, b1 & 0x7f, (data[2]! << 8) | data[3]!, readUint32(data, 4), readUint32(data, 8), csrcs, offset, end - offset);
}

export interface RtpHeaderFields {
  marker?: boolean;
  payloadType: number;
  sequenceNumber: number;
  timestamp: number;
  ssrc: number;
}

/** A 12-byte-header packet (no CSRCs, no extension) carrying `payload`. */
export function serializeRtp(h: RtpHeaderFields, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(RTP_HEADER_SIZE + payload.length);
  writeRtpHeader(out, h);
  out.set(payload, RTP_HEADER_SIZE);
  return out;
}

export function writeRtpHeader(out: Uint8Array, h: RtpHeaderFields): void {
  out[0] = 0x80;
  out[1] = (h.marker ? 0x80 : 0) | (h.payloadType & 0x7f);
  out[2] = (h.sequenceNumber >>> 8) & 0xff;
  out[3] = h.sequenceNumber & 0xff;
  const ts = h.timestamp >>> 0;
  out[4] = ts >>> 24; out[5] = (ts >>> 16) & 0xff; out[6] = (ts >>> 8) & 0xff; out[7] = ts & 0xff;
  const ssrc = h.ssrc >>> 0;
  out[8] = ssrc >>> 24; out[9] = (ssrc >>> 16) & 0xff; out[10] = (ssrc >>> 8) & 0xff; out[11] = ssrc & 0xff;
}

/** RFC 5761 §4: with rtcp-mux, RTCP packet types 192–223 sit where RTP's marker+PT would be. */
export function looksLikeRtcp(data: Uint8Array): boolean {
  if (data.length < 8 || data[0]! >> 6 !== 2) return false;
  const pt = data[1]!;
  return pt >= 192 && pt <= 223;
}
