import { afterAll, describe, expect, test } from "bun:test";
import { RtpPortAllocator, bindRtpPair } from "../../src/media/ports.ts";
import { inThreadUdpIo, type UdpIo } from "../../src/media/udp-io.ts";

const ignore = { data() {}, error() {} };
const noop = { rtp: ignore, rtcp: ignore };

/**
 * Four ports from an even `base` on 127.0.0.1, each free when probed just now, with base + 1 held by
 * a squatter (another process, as far as the allocator can tell). Probed rather than assumed free:
 * other test runs share the machine. Below the ephemeral range and the ranges other helpers use.
 */
async function squattedRange(): Promise<{ base: number; squatter: { close(): void } }> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20000 + 2 * Math.floor(Math.random() * 1380);
    const probes: { close(): void }[] = [];
    try {
      for (let port = base; port < base + 4; port++) probes.push(await Bun.udpSocket({ hostname: "127.0.0.1", port }));
    } catch {
      for (const probe of probes) probe.close();
      continue;
    }
    const [first, squatter, third, fourth] = probes;
    for (const probe of [first, third, fourth]) probe!.close();
    return { base, squatter: squatter! };
  }
  throw new Error("found no four free ports in 50 tries");
}

describe("RtpPortAllocator", () => {
  test("hands out even ports inside the range, each once, until exhausted", () => {
    const a = new RtpPortAllocator({ min: 30001, max: 30010 });
    expect(a.capacity).toBe(4);
    const got = [a.reserve(), a.reserve(), a.reserve(), a.reserve()];
    expect(got.every((p) => p !== undefined && p % 2 === 0 && p >= 30002 && p + 1 <= 30010)).toBe(true);
    expect(new Set(got).size).toBe(4);
    expect(a.reserve()).toBeUndefined();
    a.release(got[0]!);
    expect(a.reserve()).toBe(got[0]!);
  });

  test("draws ports at random: consecutive reservations are not neighbours and two allocators disagree", () => {
    const a = new RtpPortAllocator({ min: 10000, max: 19999 });
    const b = new RtpPortAllocator({ min: 10000, max: 19999 });
    const first = Array.from({ length: 200 }, () => a.reserve()!);
    const second = Array.from({ length: 200 }, () => b.reserve()!);
    expect(new Set(first).size).toBe(200);
    // Round-robin would step by 2 every time; 5,000 pairs drawn at random step by 2 about once in 2,500.
    const neighbours = first.slice(1).filter((p, i) => Math.abs(p - first[i]!) === 2).length;
    expect(neighbours).toBeLessThan(10);
    expect(first.filter((p, i) => p === second[i]).length).toBeLessThan(10);
  });

  test("a released port waits behind every other free port before it is handed out again", () => {
    const a = new RtpPortAllocator({ min: 30000, max: 30199 });
    expect(a.capacity).toBe(100);
    const held = Array.from({ length: 50 }, () => a.reserve()!);
    a.release(held[0]!);
    a.release(held[0]!); // twice: no effect
    expect(a.used).toBe(49);
    const next = Array.from({ length: 50 }, () => a.reserve()!);
    expect(next).not.toContain(held[0]!);
    expect(new Set([...held.slice(1), ...next]).size).toBe(99);
    expect(a.reserve()).toBe(held[0]!);
    expect(a.reserve()).toBeUndefined();
  });

  test("with half the range cooling, the longest-released ports rejoin the random draw", () => {
    const a = new RtpPortAllocator({ min: 30000, max: 30039 });
    const all = Array.from({ length: 20 }, () => a.reserve()!);
    for (const p of all) a.release(p);
    // 10 of 20 may cool; the first 10 released are free again and drawn in any order.
    const again = Array.from({ length: 10 }, () => a.reserve()!);
    expect(new Set(again)).toEqual(new Set(all.slice(0, 10)));
    expect(a.used).toBe(10);
  });

  test("rejects a range without one even/odd pair", () => {
    expect(() => new RtpPortAllocator({ min: 40001, max: 40002 })).toThrow(RangeError);
  });

  test.each<[string, UdpIo]>([["in-thread", inThreadUdpIo]])("binds RTP on the even port and RTCP on +1, skipping pairs another process holds (%s sockets)", async (_name, io) => {
    const { base, squatter } = await squattedRange();
    const a = new RtpPortAllocator({ min: base, max: base + 3 });
    const first = await bindRtpPair(a, "127.0.0.1", noop, io);
    if ("error" in first) throw new Error(first.error);
    expect(first.port).toBe(base + 2);
    expect(first.rtcp.port).toBe(base + 3);
    const second = await bindRtpPair(a, "127.0.0.1", noop, io);
    expect("error" in second).toBe(true);
    first.close();
    squatter.close();
    const again = await bindRtpPair(a, "127.0.0.1", noop, io);
    expect("error" in again).toBe(false);
    if (!("error" in again)) again.close();
  });
});
