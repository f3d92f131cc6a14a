// A HEP3 reader written from the spec, independent of src/traces/hep.ts: chunks of vendor 0 by type.
export interface HepPacket {
  chunks: Map<number, Uint8Array>;
  protocolType: number;
  captureId: number;
  authKey?: string;
  correlationId?: string;
  source: string;
  destination: string;
  payload: string;
}

export function decodeHep3(data: Uint8Array): HepPacket | undefined {
  if (new TextDecoder().decode(data.subarray(0, 4)) !== "HEP3") return undefined;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const total = view.getUint16(4);
  if (total !== data.length) return undefined;
  const chunks = new Map<number, Uint8Array>();
  for (let o = 6; o + 6 <= total; ) {
    const type = view.getUint16(o + 2);
    const length = view.getUint16(o + 4);
    if (length < 6 || o + length > total) return undefined;
    chunks.set(type, data.subarray(o + 6, o + length));
    o += length;
  }
  const text = (type: number) => (chunks.has(type) ? new TextDecoder().decode(chunks.get(type)) : undefined);
  const u = (type: number) => {
    const b = chunks.get(type);
    return b ? b.reduce((n, x) => n * 256 + x, 0) : -1;
  };
  const ip = (type4: number, type6: number) => {
    const v4 = chunks.get(type4);
    if (v4) return [...v4].join(".");
    const v6 = chunks.get(type6);
    return v6 ? Array.from({ length: 8 }, (_, i) => ((v6[i * 2]! << 8) | v6[i * 2 + 1]!).toString(16)).join(":") : "";
  };
  return {
    chunks,
    protocolType: u(0x000b),
    captureId: u(0x000c),
    ...(chunks.has(0x000e) ? { authKey: text(0x000e)! } : {}),
    ...(chunks.has(0x0011) ? { correlationId: text(0x0011)! } : {}),
    source: `${ip(0x0003, 0x0005)}:${u(0x0007)}`,
    destination: `${ip(0x0004, 0x0006)}:${u(0x0008)}`,
    payload: text(0x000f) ?? "",
  };
}
