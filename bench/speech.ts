// Speech as a browser sends it, for benchmarks: 8 s of Opus packets (see fixtures/speech-opus.json).
import fixture from "./fixtures/speech-opus.json";

const packets: readonly Uint8Array[] = fixture.packets.map((p) => Uint8Array.from(Buffer.from(p, "base64")));

/** The speech as 20 ms Opus packets, looped, from packet `offset` on: a different talker per offset. */
export function speechPackets(offset: number, count: number): Uint8Array[] {
  return Array.from({ length: count }, (_, i) => packets[(offset + i) % packets.length] as Uint8Array);
}

/** How many distinct packets the fixture holds (8 s). */
export const speechPacketCount = packets.length;
