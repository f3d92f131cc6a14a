import { describe, expect, test } from "bun:test";
import { serializeRtp } from "../../src/media/rtp-packet.ts";
import {
  ADMIT, LEARN_PROBATION, LEARN_WINDOW_MS, PROBATION, STRANGER, SourceLatch, canonicalAddress,
} from "../../src/media/source-latch.ts";

const SDP = { address: "203.0.113.5", port: 4000 };

function rtp(seq: number, ssrc = 0x1111): Uint8Array {
  return serializeRtp({ payloadType: 0, sequenceNumber: seq & 0xffff, timestamp: seq * 160, ssrc }, new Uint8Array(160));
}

function latch(o: { strict?: boolean; expected?: { address: string; port: number } } = {}): SourceLatch {
  const l = new SourceLatch();
  l.expect(o.expected ?? SDP, { strict: o.strict ?? false });
  return l;
}

/** Sends `count` in-sequence packets from address:port at time `at`; the admissions in order. */
function burst(l: SourceLatch, address: string, port: number, from: number, count: number, at = 0, ssrc = 0x1111) {
  const out = [];
  for (let i = 0; i < count; i++) out.push(l.admitRtp(address, port, rtp(from + i, ssrc), at));
  return out;
}

describe("SourceLatch (RTP)", () => {
  test("the SDP's exact address and port is learned from its first packet and locks at once", () => {
    const l = latch();
    expect(l.admitRtp(SDP.address, SDP.port, rtp(1), 0)).toBe(ADMIT);
    expect([l.address, l.port]).toEqual([SDP.address, SDP.port]);
    // Nothing else of that address takes over, however long its run of sequence numbers.
    expect(burst(l, SDP.address, 5000, 1, 20, 1)).toEqual(Array(20).fill(STRANGER));
    expect(l.admitRtp(SDP.address, SDP.port, rtp(2), 10_000)).toBe(ADMIT);
  });

  test("another address is a stranger before, during and after learning, even in perfect sequence", () => {
    const l = latch();
    expect(burst(l, "198.51.100.66", SDP.port, 1, 50)).toEqual(Array(50).fill(STRANGER));
    expect(l.address).toBeUndefined();
    expect(l.admitRtp(SDP.address, SDP.port, rtp(1), 1)).toBe(ADMIT);
    expect(burst(l, "198.51.100.66", SDP.port, 51, 50, 2)).toEqual(Array(50).fill(STRANGER));
    expect(l.address).toBe(SDP.address);
  });

  test(`another port of the SDP address (a NAT's) is learned after ${LEARN_PROBATION} consecutive sequence numbers of one SSRC`, () => {
    const l = latch();
    const probation = Array(LEARN_PROBATION - 1).fill(PROBATION);
    expect(burst(l, SDP.address, 61000, 100, LEARN_PROBATION)).toEqual([...probation, ADMIT]);
    expect(l.port).toBe(61000);
    // A gap, another SSRC or another port starts the count again.
    const gap = latch();
    expect(burst(gap, SDP.address, 61000, 100, LEARN_PROBATION - 1)).toEqual(probation);
    expect(gap.admitRtp(SDP.address, 61000, rtp(200), 0)).toBe(PROBATION);
    expect(burst(gap, SDP.address, 61000, 100, LEARN_PROBATION - 1, 0, 0x2222)).toEqual(probation);
    expect(gap.admitRtp(SDP.address, 61002, rtp(LEARN_PROBATION + 99, 0x2222), 0)).toBe(PROBATION);
    expect(gap.address).toBeUndefined();
    // Runt or non-RTP datagrams never count towards probation.
    const runt = latch();
    for (let i = 0; i < 10; i++) expect(runt.admitRtp(SDP.address, 61000, new Uint8Array(8), 0)).toBe(PROBATION);
    expect(runt.address).toBeUndefined();
  });

  test(`for ${LEARN_WINDOW_MS} ms after a NAT source is learned the exact SDP source may take over; then it is locked`, () => {
    const l = latch();
    burst(l, SDP.address, 61000, 1, LEARN_PROBATION, 0);
    // During the window: a second NAT port waits; the exact SDP source wins at once.
    expect(burst(l, SDP.address, 62000, 1, LEARN_PROBATION, 10)).toEqual(Array(LEARN_PROBATION).fill(PROBATION));
    expect(l.admitRtp(SDP.address, SDP.port, rtp(1), LEARN_WINDOW_MS - 1)).toBe(ADMIT);
    expect(l.port).toBe(SDP.port);
    expect(l.admitRtp(SDP.address, 61000, rtp(LEARN_PROBATION + 1), LEARN_WINDOW_MS)).toBe(STRANGER);

    const late = latch();
    burst(late, SDP.address, 61000, 1, LEARN_PROBATION, 0);
    expect(late.admitRtp(SDP.address, SDP.port, rtp(1), LEARN_WINDOW_MS)).toBe(STRANGER);
    expect(late.admitRtp(SDP.address, 61000, rtp(LEARN_PROBATION + 1), LEARN_WINDOW_MS + 5000)).toBe(ADMIT);
    expect(late.port).toBe(61000);
  });

  test("strict: only the SDP's exact address and port, never another port of it", () => {
    const l = latch({ strict: true });
    expect(burst(l, SDP.address, 61000, 1, 50)).toEqual(Array(50).fill(STRANGER));
    expect(l.admitRtp(SDP.address, SDP.port, rtp(1), 0)).toBe(ADMIT);
  });

  test("expect() with a new transport address (re-INVITE) learns afresh", () => {
    const l = latch();
    l.admitRtp(SDP.address, SDP.port, rtp(1), 0);
    l.expect({ address: "203.0.113.9", port: 5000 }, { strict: false });
    expect(l.address).toBeUndefined();
    expect(l.admitRtp(SDP.address, SDP.port, rtp(2), 1)).toBe(STRANGER);
    expect(l.admitRtp("203.0.113.9", 5000, rtp(3), 2)).toBe(ADMIT);
  });

  test("the address the call's SIP comes from is allowed too, any port, on probation (NAT, multi-homed peers); not with strict", () => {
    const l = latch({ expected: { address: "192.168.1.20", port: 4000 } });
    l.setSignallingAddress("198.51.100.7");
    expect(l.admitRtp("198.51.100.66", 30000, rtp(1), 0)).toBe(STRANGER);
    expect(burst(l, "198.51.100.7", 4000, 1, LEARN_PROBATION)).toEqual([...Array(LEARN_PROBATION - 1).fill(PROBATION), ADMIT]);
    expect(l.address).toBe("198.51.100.7");
    // Before the dialog names it, the SIP peer's address is a stranger like any other.
    const early = latch();
    expect(burst(early, "198.51.100.7", 30000, 1, 10)).toEqual(Array(10).fill(STRANGER));
    const strict = latch({ strict: true, expected: { address: "192.168.1.20", port: 4000 } });
    strict.setSignallingAddress("198.51.100.7");
    expect(burst(strict, "198.51.100.7", 4000, 1, 10)).toEqual(Array(10).fill(STRANGER));
  });

  test("a dual-stack socket's IPv4-mapped source matches the SDP's IPv4 address", () => {
    const l = latch({ expected: { address: "127.0.0.1", port: 4000 } });
    expect(l.admitRtp("::ffff:127.0.0.1", 4000, rtp(1), 0)).toBe(ADMIT);
    expect(l.admitRtp("::ffff:127.0.0.66", 4000, rtp(2), 0)).toBe(STRANGER);
  });
});

describe("SourceLatch (RTCP on its own port)", () => {
  test("learned from its first packet from the SDP address; the exact port takes over within the window; then locked", () => {
    const l = latch({ expected: { address: SDP.address, port: 4001 } });
    expect(l.admitControl("198.51.100.66", 4001, 0)).toBe(STRANGER);
    expect(l.admitControl(SDP.address, 61001, 0)).toBe(ADMIT);
    expect(l.admitControl(SDP.address, 62001, 1)).toBe(PROBATION);
    expect(l.admitControl(SDP.address, 4001, 2)).toBe(ADMIT);
    expect(l.admitControl(SDP.address, 61001, 3)).toBe(STRANGER);
    const late = latch({ expected: { address: SDP.address, port: 4001 } });
    late.admitControl(SDP.address, 61001, 0);
    expect(late.admitControl(SDP.address, 4001, LEARN_WINDOW_MS)).toBe(STRANGER);
  });

  test("allows(): what RTCP on the RTP port (rtcp-mux) may be read — allowed sources before learning, the learned one after", () => {
    const l = latch();
    expect(l.allows(SDP.address, 61000)).toBe(true);
    expect(l.allows("198.51.100.66", SDP.port)).toBe(false);
    l.admitRtp(SDP.address, SDP.port, rtp(1), 0);
    expect(l.allows(SDP.address, 61000)).toBe(false);
    expect(l.allows(SDP.address, SDP.port)).toBe(true);
  });
});

describe("addresses", () => {
  test("canonical forms: IPv6 compressed and lower case, IPv4-mapped as IPv4", () => {
    expect(canonicalAddress("2001:DB8:0:0::1")).toBe("2001:db8::1");
    expect(canonicalAddress("::FFFF:127.0.0.1")).toBe("127.0.0.1");
    expect(canonicalAddress("::ffff:7f00:1")).toBe("127.0.0.1");
    expect(canonicalAddress("203.0.113.5")).toBe("203.0.113.5");
  });
});

describe("SourceLatch.mayAdmit (the screen before SRTP authentication)", () => {
  test("answers as admitRtp would on strangers, and changes nothing", () => {
    const l = latch();
    expect(l.mayAdmit("198.51.100.66", SDP.port, 0)).toBe(false);
    // Asked as often as a sprayer likes, the question never starts a probation.
    for (let i = 0; i < 2 * LEARN_PROBATION; i++) expect(l.mayAdmit(SDP.address, 5000, 0)).toBe(true);
    expect(burst(l, SDP.address, 5000, 1, LEARN_PROBATION - 1)).toEqual(Array(LEARN_PROBATION - 1).fill(PROBATION));
    expect(l.address).toBeUndefined();
    expect(l.admitRtp(SDP.address, 5000, rtp(LEARN_PROBATION), 0)).toBe(ADMIT);
    // Learned, then locked: only the learned source may still be admitted.
    expect(l.mayAdmit(SDP.address, 5000, LEARN_WINDOW_MS)).toBe(true);
    expect(l.mayAdmit(SDP.address, 5002, LEARN_WINDOW_MS)).toBe(false);
    expect(l.admitRtp(SDP.address, 5002, rtp(1), LEARN_WINDOW_MS)).toBe(STRANGER);
  });
});
