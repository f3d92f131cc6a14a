// The shared wheel for long transaction timers (src/sip/timer-wheel.ts) on a fake clock
// (jest.useFakeTimers: setTimeout, Date.now and performance.now), so "not before its deadline" and
// "at most one grid step after it" are checked at exact times; then the RFC 3261 / RFC 6026 timers
// of real transactions at the default T1 (Timer J, L, the no-final guard) going through it.
import { afterEach, beforeEach, expect, jest, test } from "bun:test";
import { createResponse, parseMessage, type SipRequest } from "../../src/sip/message.ts";
import { COARSE_FROM_MS, GRID_MS, TimerWheel } from "../../src/sip/timer-wheel.ts";
import { DEFAULT_TIMERS, TransactionLayer, type Wire } from "../../src/sip/transaction.ts";

beforeEach(() => {
  jest.useFakeTimers();
});
afterEach(() => {
  jest.useRealTimers();
});

const advance = (ms: number) => jest.advanceTimersByTime(ms);
const noErrors = (error: unknown) => {
  throw error;
};

test("timers fire in deadline order, never before their deadline and at most one grid step after it", () => {
  const wheel = new TimerWheel(noErrors);
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
  const wheel = new TimerWheel(noErrors);
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
  const wheel = new TimerWheel(noErrors);
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
  const wheel = new TimerWheel(noErrors);
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

// Real transactions at the default timers (T1 = 500 ms): 64*T1 = 32 s goes on the wheel.
class CountingWire implements Wire {
  readonly reliable = false;
  sent = 0;
  async send(): Promise<void> {
    this.sent++;
  }
}

function request(method: string, branch: string, callId: string): SipRequest {
  const text = [
    `${method} sip:bob@127.0.0.1 SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:5999;branch=${branch}`,
    "From: <sip:alice@127.0.0.1>;tag=a1",
    `To: <sip:bob@127.0.0.1>${method === "BYE" ? ";tag=b1" : ""}`,
    `Call-ID: ${callId}`,
    `CSeq: ${method === "BYE" ? 2 : 1} ${method}`,
    "Max-Forwards: 70",
    "Content-Length: 0",
    "",
    "",
  ].join("\r\n");
  const r = parseMessage(new TextEncoder().encode(text), "datagram");
  if (!r.ok || "status" in r.message) throw new Error("bad test request");
  return r.message;
}

test("RFC 6026 Timer L and RFC 3261 Timer J of a UDP call end their transactions in order, 64*T1 after the final responses and not before", () => {
  expect(64 * DEFAULT_TIMERS.T1).toBeGreaterThanOrEqual(COARSE_FROM_MS);
  const layer = new TransactionLayer();
  const wire = new CountingWire();
  const invite = layer.createServer(request("INVITE", "z9hG4bK-inv", "wheel@test"), wire);
  // The no-final guard (minutes) waits on the wheel until the 200 clears it.
  expect(layer.wheel.size).toBe(1);
  invite.respondWith(createResponse(invite.request!, 200, undefined, { toTag: "b1" }));
  expect(invite.state).toBe("accepted");
  expect(layer.wheel.size).toBe(1); // Timer L alone
  advance(1_000);
  const bye = layer.createServer(request("BYE", "z9hG4bK-bye", "wheel@test"), wire);
  bye.respond(200);
  expect(bye.state).toBe("completed");
  expect(layer.wheel.size).toBe(2); // L and J
  const ended: string[] = [];
  invite.on("terminated", () => ended.push("INVITE (Timer L)"));
  bye.on("terminated", () => ended.push("BYE (Timer J)"));
  advance(64 * DEFAULT_TIMERS.T1 - 1_000 - 1);
  expect(ended).toEqual([]);
  expect(invite.state).toBe("accepted");
  advance(1 + GRID_MS);
  expect(ended).toEqual(["INVITE (Timer L)"]);
  advance(1_000 - GRID_MS - 2);
  expect(bye.state).toBe("completed");
  advance(2 + GRID_MS);
  expect(ended).toEqual(["INVITE (Timer L)", "BYE (Timer J)"]);
  expect(layer.size.servers).toBe(0);
  expect(layer.wheel.size).toBe(0);
  expect(jest.getTimerCount()).toBe(0);
});
