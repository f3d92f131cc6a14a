import { describe, expect, test } from "bun:test";
import { looksLikeRtcp, parseRtp, serializeRtp } from "../../src/media/rtp-packet.ts";

describe("RTP packet", () => {
  test("serialize → parse round trip keeps every header field", () => {
    const payload = new Uint8Array([1, 2, 3, 4, 5]);
    const bytes = serializeRtp({ marker: true, payloadType: 101, sequenceNumber: 65535, timestamp: 0xfffffff0, ssrc: 0xdeadbeef }, payload);
    const p = parseRtp(bytes)!;
    expect(p).toMatchObject({ marker: true, payloadType: 101, sequenceNumber: 65535, timestamp: 0xfffffff0, ssrc: 0xdeadbeef });
    expect([...p.payload]).toEqual([1, 2, 3, 4, 5]);
  });

  test("CSRCs, header extension and padding are skipped (RFC 3550 §5.1, §5.3.1)", () => {
    const bytes = new Uint8Array([
      0xb1, 0x00, 0x00, 0x01, 0, 0, 0, 160, 0, 0, 0, 9, // V=2 P=1 X=1 CC=1
      0, 0, 0, 7, // CSRC
      0xbe, 0xde, 0x00, 0x01, 1, 2, 3, 4, // extension, 1 word
      0xaa, 0xbb, // payload
      0, 0, 3, // padding: 3 octets
    ]);
    const p = parseRtp(bytes)!;
    expect(p.csrcs).toEqual([7]);
    expect([...p.payload]).toEqual([0xaa, 0xbb]);
  });

  test("the payload's place in the datagram (what the receive path copies by) is the payload view's", () => {
    const bytes = new Uint8Array([
      0xb1, 0x00, 0x00, 0x01, 0, 0, 0, 160, 0, 0, 0, 9,
      0, 0, 0, 7,
      0xbe, 0xde, 0x00, 0x01, 1, 2, 3, 4,
      0xaa, 0xbb,
      0, 0, 3,
    ]);
    const p = parseRtp(bytes)!;
    expect(p.data).toBe(bytes);
    expect([p.payloadOffset, p.payloadLength]).toEqual([24, 2]);
    expect([...bytes.subarray(p.payloadOffset, p.payloadOffset + p.payloadLength)]).toEqual([...p.payload]);
  });

  test.each([
    ["short", new Uint8Array(11)],
    ["version 1", new Uint8Array([0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])],
    ["CSRC count past end", new Uint8Array([0x8f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])],
    ["padding longer than packet", new Uint8Array([0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 200])],
    ["extension past end", new Uint8Array([0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9])],
  ])("malformed (%s) → undefined", (_n, bytes) => {
    expect(parseRtp(bytes)).toBeUndefined();
  });

  test("rtcp-mux demultiplexing by packet type (RFC 5761 §4)", () => {
    expect(looksLikeRtcp(new Uint8Array([0x80, 200, 0, 6, 0, 0, 0, 1]))).toBe(true);
    expect(looksLikeRtcp(serializeRtp({ payloadType: 0, sequenceNumber: 1, timestamp: 1, ssrc: 1 }, new Uint8Array(160)))).toBe(false);
    expect(looksLikeRtcp(serializeRtp({ marker: true, payloadType: 8, sequenceNumber: 1, timestamp: 1, ssrc: 1 }, new Uint8Array(160)))).toBe(false);
  });
});
