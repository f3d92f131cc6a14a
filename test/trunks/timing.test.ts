import { describe, expect, spyOn, test } from "bun:test";
import { backoffDelayMs, parseRetryAfter, refreshDelaySec } from "../../src/trunks/timing.ts";

describe("refresh schedule", () => {
  test("half the expiry when that leaves a full transaction timeout of margin", () => {
    expect(refreshDelaySec(3600)).toBe(1800);
    expect(refreshDelaySec(64)).toBe(32);
  });
  test("earlier than half for short expiries, never later than the grant", () => {
    for (const granted of [1, 3, 10, 30, 60]) {
      expect(refreshDelaySec(granted)).toBeLessThan(granted / 2 + 1e-9);
      expect(refreshDelaySec(granted)).toBeGreaterThan(0);
    }
    expect(refreshDelaySec(10)).toBe(4);
  });
});

describe("backoff", () => {
  const policy = { baseMs: 1000, capMs: 60_000 };
  test("doubles per failure within the upper half of each step, capped", () => {
    expect(backoffDelayMs(1, policy, () => 0)).toBe(500);
    expect(backoffDelayMs(1, policy, () => 1)).toBe(1000);
    expect(backoffDelayMs(3, policy, () => 0)).toBe(2000);
    expect(backoffDelayMs(3, policy, () => 1)).toBe(4000);
    expect(backoffDelayMs(50, policy, () => 1)).toBe(60_000);
    expect(backoffDelayMs(50, policy, () => 0)).toBe(30_000);
  });
  test("jitter spreads trunks that fail together", () => {
    // 50 trunks failing together draw 50 different numbers: they get 50 different delays, spread
    // over the whole upper half of the step (4-8 s for the 4th failure).
    const delays = Array.from({ length: 50 }, (_, i) => backoffDelayMs(4, policy, () => i / 49));
    expect(new Set(delays).size).toBe(50);
    expect([Math.min(...delays), Math.max(...delays)]).toEqual([4000, 8000]);
    // Without a random source of its own, each call draws from Math.random.
    const random = spyOn(Math, "random").mockReturnValueOnce(0.25).mockReturnValueOnce(0.75);
    try {
      expect([backoffDelayMs(4, policy), backoffDelayMs(4, policy)]).toEqual([5000, 7000]);
    } finally {
      random.mockRestore();
    }
  });
});

test("Retry-After seconds, with comment and parameters ignored", () => {
  expect(parseRetryAfter("120")).toBe(120);
  expect(parseRetryAfter(" 18000;duration=3600")).toBe(18000);
  expect(parseRetryAfter("120 (I'm in a meeting)")).toBe(120);
  expect(parseRetryAfter("soon")).toBeUndefined();
  expect(parseRetryAfter(undefined)).toBeUndefined();
});
