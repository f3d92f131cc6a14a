// The shared wheel for long transaction timers (src/sip/timer-wheel.ts) on a fake clock
// (jest.useFakeTimers: setTimeout, Date.now and performance.now), so "not before its deadline" and
// "at most one grid step after it" are checked at exact times; then the RFC 6026 timer of a real
// transaction at the default T1 (Timer L before the ACK, the no-final guard) going through it.
import { expect, jest, test } from "bun:test";
import { createResponse } from "../../src/sip/message.ts";
import { COARSE_FROM_MS, GRID_MS, TimerWheel } from "../../src/sip/timer-wheel.ts";
import { DEFAULT_TIMERS, TransactionLayer, type Wire } from "../../src/sip/transaction.ts";
import { callRequest } from "../helpers/callRequest.ts";
import { advance, fakeClockPerTest, rethrow } from "../helpers/fakeClock.ts";

fakeClockPerTest();

test("timers fire in deadline order, never before their deadline and at most one grid step after it", () => {
  const wheel = new TimerWheel(rethrow);
  const fired: string[] = [];
  const t0 = performance.now();
  const firedAt = new Map<string, number>();
  const at = (name: string, ms: number) => wheel.schedule(ms, () => (fired.push(name), firedAt.set(name, performance.now() - t0)));
  // Scheduled out of order; L and J fall in one grid slot or two, whatever the clock's phase.
  at("noFinal", 180_000);
  at("L", 32_030);
  at("J", 32_000);
  at("M", 32_000 + GRID_MS * 5);
  advance(31_999);
  expect(fired).toEqual([]);
  advance(GRID_MS + 31);
  expect(fired).toEqual(["J", "L"]);
  for (const name of ["J", "L"] as const) {
    const deadline = name === "J" ? 32_000 : 32_030;
    expect(firedAt.get(name)!).toBeGreaterThanOrEqual(deadline);
    expect(firedAt.get(name)!).toBeLessThanOrEqual(deadline + GRID_MS);
  }
  advance(GRID_MS * 5);
  expect(fired).toEqual(["J", "L", "M"]);
  advance(180_000);
  expect(fired).toEqual(["J", "L", "M", "noFinal"]);
  expect(wheel.size).toBe(0);
});

test("a cancelled timer never fires, also when one due in the same slot cancels it", () => {
  const wheel = new TimerWheel(rethrow);
  const fired: string[] = [];
  const a = wheel.schedule(20_000, () => fired.push("a"));
  wheel.schedule(20_000, () => {
    fired.push("b");
    c.cancel();
  });
  const c = wheel.schedule(20_001, () => fired.push("c"));
  wheel.schedule(20_002, () => fired.push("d"));
  a.cancel();
  a.cancel();
  advance(20_000 + GRID_MS * 2);
  expect(fired).toEqual(["b", "d"]);
});

test("with every timer cancelled, the wheel holds no timer of its own; an earlier timer re-arms it", () => {
  const wheel = new TimerWheel(rethrow);
  const fired: string[] = [];
  const late = wheel.schedule(60_000, () => fired.push("late"));
  expect(jest.getTimerCount()).toBe(1);
  late.cancel();
  expect(jest.getTimerCount()).toBe(0);
  wheel.schedule(60_000, () => fired.push("60 s"));
  wheel.schedule(15_000, () => fired.push("15 s"));
  advance(15_000 + GRID_MS);
  expect(fired).toEqual(["15 s"]);
  advance(45_000);
  expect(fired).toEqual(["15 s", "60 s"]);
  expect(jest.getTimerCount()).toBe(0);
});

test("a wall-clock step back does not hold timers back: the wheel runs on the monotonic clock", () => {
  const wheel = new TimerWheel(rethrow);
  const fired: string[] = [];
  wheel.schedule(20_000, () => fired.push("20 s"));
  jest.setSystemTime(Date.now() - 3_600_000);
  advance(20_000 + GRID_MS);
  expect(fired).toEqual(["20 s"]);
});

test("a timer that throws is reported; the others of its slot still fire", () => {
  const errors: unknown[] = [];
  const wheel = new TimerWheel((error) => errors.push(error));
  const fired: string[] = [];
  wheel.schedule(30_000, () => {
    throw new Error("boom");
  });
  wheel.schedule(30_000, () => fired.push("after"));
  advance(30_000 + GRID_MS);
  expect(fired).toEqual(["after"]);
  expect(String(errors[0])).toContain("boom");
});

// A real transaction at the default timers (T1 = 500 ms): 64*T1 = 32 s goes on the wheel.
const udp: Wire = { reliable: false, send: async () => {} };

test("the no-final guard and Timer L of an INVITE whose ACK never comes wait on the wheel; L ends it 64*T1 after the 2xx, not before", () => {
  expect(64 * DEFAULT_TIMERS.T1).toBeGreaterThanOrEqual(COARSE_FROM_MS);
  const layer = new TransactionLayer();
  const invite = layer.createServer(callRequest("INVITE", "z9hG4bK-inv", "wheel@test"), udp);
  // The no-final guard (minutes) waits on the wheel until the 200 clears it.
  expect(layer.wheel.size).toBe(1);
  invite.respondWith(createResponse(invite.request!, 200, undefined, { toTag: "b1" }));
  expect(invite.state).toBe("accepted");
  expect(layer.wheel.size).toBe(1); // Timer L alone
  advance(64 * DEFAULT_TIMERS.T1 - 1);
  expect(invite.state).toBe("accepted");
  advance(1 + GRID_MS);
  expect(invite.state).toBe("terminated");
  expect(layer.size.servers).toBe(0);
  expect(layer.wheel.size).toBe(0);
  expect(jest.getTimerCount()).toBe(0);
});
