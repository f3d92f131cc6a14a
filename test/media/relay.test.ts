import { describe, expect, test } from "bun:test";
import { RELAY_BURST, RelayedStream } from "../../src/media/relay.ts";
import { parseRtp, serializeRtp } from "../../src/media/rtp-packet.ts";

function packet(sequenceNumber: number, timestamp: number, ssrc = 0xa11ce) {
  return parseRtp(serializeRtp({ payloadType: 0, sequenceNumber, timestamp, ssrc }, new Uint8Array(160)))!;
}

/** Maps packets 20 ms apart; returns [timestamp, gap] of each relayed one, or "dropped". */
function mapAll(stream: RelayedStream, packets: ReturnType<typeof packet>[], next: () => number) {
  return packets.map((p, i) => (stream.map(p, next(), i * 20) ? [stream.timestamp, stream.gap] : "dropped"));
}

describe("RelayedStream", () => {
  test("the first packet continues our stream at its next timestamp; later ones keep the source's steps", () => {
    const stream = new RelayedStream();
    expect(mapAll(stream, [packet(10, 5000), packet(11, 5160), packet(13, 5480)], () => 90_000)).toEqual([[90_000, 0], [90_160, 0], [90_480, 1]]);
  });

  test("a new SSRC or a sequence jump beyond 100 is a new stream: it continues ours again, with no gap", () => {
    const stream = new RelayedStream();
    let next = 1000;
    const mapped = mapAll(stream, [packet(1, 0), packet(2, 160), packet(7, 777, 0xb0b), packet(500, 99_999, 0xb0b)], () => (next += 160));
    expect(mapped).toEqual([[1160, 0], [1320, 0], [1480, 0], [1640, 0]]);
  });

  test("a duplicate and a packet behind the last one relayed are dropped; a resync takes whatever comes next", () => {
    const stream = new RelayedStream();
    expect(mapAll(stream, [packet(65535, 0), packet(0, 160), packet(0, 160), packet(65534, 0)], () => 0)).toEqual([[0, 0], [160, 0], "dropped", "dropped"]);
    stream.resync();
    expect(stream.map(packet(65534, 0), 4000, 100)).toBe(true);
    expect(stream.timestamp).toBe(4000);
  });

  test("packets beyond a second's worth at once and 1.5 per 20 ms after are dropped", () => {
    const stream = new RelayedStream();
    let relayed = 0;
    for (let seq = 0; seq < 200; seq++) if (stream.map(packet(seq, seq * 160), 0, 0)) relayed++;
    expect(relayed).toBe(RELAY_BURST);
    // 100 ms later: 7.5 more.
    for (let seq = 200; seq < 220; seq++) if (stream.map(packet(seq, seq * 160), 0, 100)) relayed++;
    expect(relayed).toBe(RELAY_BURST + 7);
  });
});
