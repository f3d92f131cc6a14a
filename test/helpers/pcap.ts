// Minimal libpcap reader for test captures: UDP payloads of Ethernet/IPv4 or raw IPv4 frames.
import { readFileSync } from "node:fs";

export interface CapturedRtp {
  payloadType: number;
  marker: boolean;
  sequence: number;
  timestamp: number;
  ssrc: number;
  payload: Uint8Array;
}

/** UDP payloads in capture order (classic pcap, either byte order; link types 1 and 101). */
export function readPcapUdpPayloads(path: string): Uint8Array[] {
  const data = new Uint8Array(readFileSync(path));
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const little = view.getUint32(0, true) === 0xa1b2c3d4;
  const linkType = view.getUint32(20, little);
  const linkHeader = linkType === 1 ? 14 : 0;
  const out: Uint8Array[] = [];
  for (let o = 24; o + 16 <= data.length; ) {
    const captured = view.getUint32(o + 8, little);
    const frame = data.subarray(o + 16, o + 16 + captured);
    o += 16 + captured;
    const ip = frame.subarray(linkHeader);
    if ((ip[0] ?? 0) >> 4 !== 4 || ip[9] !== 17) continue;
    const udp = ip.subarray(((ip[0] ?? 0) & 0x0f) * 4);
    out.push(udp.subarray(8));
  }
  return out;
}

/** RTP packets (RFC 3550 §5.1 fixed header, no CSRC/extension handling beyond skipping them). */
export function readPcapRtp(path: string): CapturedRtp[] {
  return readPcapUdpPayloads(path).flatMap((p) => {
    if (p.length < 12 || (p[0] ?? 0) >> 6 !== 2) return [];
    const v = new DataView(p.buffer, p.byteOffset, p.byteLength);
    const headerLength = 12 + ((p[0] ?? 0) & 0x0f) * 4;
    return [{
      payloadType: (p[1] ?? 0) & 0x7f,
      marker: ((p[1] ?? 0) & 0x80) !== 0,
      sequence: v.getUint16(2),
      timestamp: v.getUint32(4),
      ssrc: v.getUint32(8),
      payload: p.subarray(headerLength),
    }];
  });
}
