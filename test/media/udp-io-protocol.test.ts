import { describe, expect, test } from "bun:test";
import { BatchReader, BatchWriter, type DatagramBatch } from "../../src/media/udp-io-protocol.ts";

type Decoded = [socketId: number, data: number[], port: number, address: string, time: number] | ["error", number];

function readAll(batches: DatagramBatch[]): Decoded[] {
  const reader = new BatchReader();
  const records: Decoded[] = [];
  for (const batch of batches) {
    reader.read(batch, (id, data, port, address, time) => records.push([id, [...data], port, address, time]), (id) => records.push(["error", id]));
  }
  return records;
}

describe("datagram batches between the main thread and the RTP I/O worker", () => {
  test("records come out as written, in order, across batches and past the first buffer's size", () => {
    const batches: DatagramBatch[] = [];
    const writer = new BatchWriter((b) => batches.push(b));
    const expected: Decoded[] = [];
    for (let i = 0; i < 300; i++) {
      // 300 × ~220 bytes: more than the first 16 KiB buffer holds
      const data = Array.from({ length: 200 }, (_, k) => (i + k) & 0xff);
      const address = i % 3 === 0 ? "::1" : `192.0.2.${i % 7}`;
      writer.datagram(i, new Uint8Array(data), 1024 + i, address, 1.5 * i);
      expected.push([i, data, 1024 + i, address, 1.5 * i]);
      if (i % 50 === 0) {
        writer.error(i);
        expected.push(["error", i]);
      }
      if (i === 100) writer.flush();
    }
    writer.datagram(7, new Uint8Array(0), 65535, "::1", 0);
    expected.push([7, [], 65535, "::1", 0]);
    writer.flush();
    writer.flush();
    expect(batches.length).toBe(2);
    expect(readAll(batches)).toEqual(expected);
    // Each address travels once, with the batch that first uses it.
    expect(batches.flatMap((b) => b.addresses).sort()).toEqual(["192.0.2.0", "192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5", "192.0.2.6", "::1"].sort());
  });

  test("a full address table starts afresh without changing what earlier records say", () => {
    const batches: DatagramBatch[] = [];
    const writer = new BatchWriter((b) => batches.push(b), 2);
    const addresses = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.1", "10.0.0.4", "10.0.0.2"];
    addresses.forEach((address, i) => writer.datagram(1, new Uint8Array([i]), 5000, address, 0));
    writer.flush();
    expect(batches.some((b) => b.resetAddresses)).toBe(true);
    expect(batches.every((b) => new Set(b.addresses).size <= 2)).toBe(true);
    expect(readAll(batches).map((r) => r[3])).toEqual(addresses);
  });
});
