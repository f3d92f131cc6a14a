import { describe, expect, test } from "bun:test";
import { ReceptionStats, buildCompound, ntpNow, parseCompound, roundTripMs } from "../../src/media/rtcp.ts";

describe("ReceptionStats (RFC 3550 A.1, A.3, A.8)", () => {
  test("counts loss over a stream with gaps and reports the fraction per interval", () => {
    const s = new ReceptionStats(0x1234, 100, 8000);
    for (let seq = 100; seq < 200; seq++) {
      if (seq % 10 === 5) continue; // 10% loss
      s.updateSeq(seq);
    }
    const block = s.reportBlock(0);
    expect(block.extendedHighestSeq).toBe(199);
    expect(block.cumulativeLost).toBe(10);
    expect(block.fractionLost).toBe(Math.floor((10 << 8) / 99));
    // A clean next interval reports zero fraction but keeps the cumulative count.
    for (let seq = 200; seq < 250; seq++) s.updateSeq(seq);
    const next = s.reportBlock(0);
    expect(next.fractionLost).toBe(0);
    expect(next.cumulativeLost).toBe(10);
  });

  test("sequence wrap extends the highest sequence number by a cycle", () => {
    const s = new ReceptionStats(1, 65500, 8000);
    for (let i = 0; i < 100; i++) s.updateSeq((65500 + i) & 0xffff);
    expect(s.extendedHighestSeq).toBe(65536 + 63);
    expect(s.cumulativeLost).toBe(0);
  });

  test("duplicates make cumulative loss negative rather than hiding real loss", () => {
    const s = new ReceptionStats(1, 10, 8000);
    for (let seq = 10; seq < 20; seq++) { s.updateSeq(seq); if (seq === 15) s.updateSeq(seq); }
    expect(s.cumulativeLost).toBe(-1);
  });

  test("jitter: perfectly paced packets → 0, alternating ±10 ms arrival → ~10 ms", () => {
    const steady = new ReceptionStats(1, 0, 8000);
    for (let i = 0; i < 200; i++) steady.updateJitter(i * 160, 1000 + i * 20);
    expect(steady.jitterMs).toBe(0);
    const jittery = new ReceptionStats(1, 0, 8000);
    for (let i = 0; i < 400; i++) jittery.updateJitter(i * 160, 1000 + i * 20 + (i % 2 ? 5 : -5));
    expect(jittery.jitterMs).toBeGreaterThan(9);
    expect(jittery.jitterMs).toBeLessThan(11);
  });

  test("a timestamp jump is not counted as jitter", () => {
    const s = new ReceptionStats(1, 0, 8000);
    for (let i = 0; i < 50; i++) s.updateJitter(i * 160 + (i >= 25 ? 800000 : 0), 1000 + i * 20);
    expect(s.jitterMs).toBe(0);
  });
});

describe("compound packets", () => {
  test("SR + SDES + BYE round trip", () => {
    const s = new ReceptionStats(0xabcdef01, 5, 8000);
    for (let seq = 5; seq < 50; seq += seq === 20 ? 2 : 1) s.updateSeq(seq);
    const bytes = buildCompound({
      ssrc: 0x11223344, cname: "leg-1@trunkline",
      sender: { ntpSec: 3900000000, ntpFrac: 0x80000000, rtpTimestamp: 1234, packetCount: 77, octetCount: 77 * 160 },
      reports: [s.reportBlock(0)], bye: true,
    });
    expect(bytes.length % 4).toBe(0);
    const packets = parseCompound(bytes)!;
    expect(packets.map((p) => p.type)).toEqual(["sr", "sdes", "bye"]);
    const sr = packets[0]!;
    if (sr.type !== "sr") throw new Error("expected SR");
    expect(sr.ssrc).toBe(0x11223344);
    expect(sr.sender.packetCount).toBe(77);
    expect(sr.reports[0]).toMatchObject({ ssrc: 0xabcdef01, cumulativeLost: 1, extendedHighestSeq: 49 });
    expect(packets[1]).toEqual({ type: "sdes", chunks: [{ ssrc: 0x11223344, cname: "leg-1@trunkline" }] });
    expect(packets[2]).toEqual({ type: "bye", ssrcs: [0x11223344] });
  });

  test("RR without sender info; garbage is rejected without throwing", () => {
    const rr = parseCompound(buildCompound({ ssrc: 9, cname: "x", reports: [] }))!;
    expect(rr[0]).toEqual({ type: "rr", ssrc: 9, reports: [] });
    expect(parseCompound(new Uint8Array([1, 2, 3]))).toBeUndefined();
    let seed = 1;
    for (let i = 0; i < 2000; i++) {
      const b = new Uint8Array(8 + (i % 60));
      for (let k = 0; k < b.length; k++) b[k] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
      b[0] = 0x80 | (b[0]! & 0x3f);
      parseCompound(b);
    }
  });

  test("round-trip time from LSR/DLSR (RFC 3550 §6.4.1)", () => {
    const sentMs = Date.now() - 300;
    const sent = ntpNow(sentMs);
    const peer = new ReceptionStats(1, 0, 8000);
    peer.noteSenderReport(sent.sec, sent.frac, sentMs + 50); // 50 ms one-way
    const block = peer.reportBlock(sentMs + 250);            // peer holds the SR for 200 ms
    const rtt = roundTripMs(block, sentMs + 300)!;
    expect(rtt).toBeGreaterThan(95);
    expect(rtt).toBeLessThan(105);
  });
});

test("NTP timestamps are seconds since 1900 and a binary fraction (RFC 3550 §4)", () => {
  expect(ntpNow(Date.UTC(2000, 0, 1, 0, 0, 0, 250))).toEqual({ sec: 3_155_673_600, frac: 0x4000_0000 });
  expect(ntpNow(Date.UTC(2036, 1, 7, 6, 28, 15, 500))).toEqual({ sec: 0xffff_ffff, frac: 0x8000_0000 });
});
