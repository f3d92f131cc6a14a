// The linger queues (src/sip/linger-queue.ts) on a fake clock (jest.useFakeTimers), then a UDP
// call's two server transactions lingering on them at the default T1: the INVITE once its ACK
// came (RFC 6026 Timer L), the BYE once answered (RFC 3261 §17.2.2 Timer J).
import { expect, jest, test } from "bun:test";
import { LingerQueue } from "../../src/sip/linger-queue.ts";
import { createResponse } from "../../src/sip/message.ts";
import { COARSE_FROM_MS, GRID_MS } from "../../src/sip/timer-wheel.ts";
import { DEFAULT_TIMERS, TransactionLayer, type Wire } from "../../src/sip/transaction.ts";
import { callRequest } from "../helpers/callRequest.ts";
import { advance, fakeClockPerTest, rethrow } from "../helpers/fakeClock.ts";

fakeClockPerTest();

/** Records when (fake clock) it was ended. */
class Entry {
  endedAt: number | undefined;
  constructor(readonly name: string) {}
}
const ending = (entry: Entry) => {
  entry.endedAt = performance.now();
};

test("items end in the order they came, never before their duration, at most one grid step after it, with one timer for all", () => {
  const queue = new LingerQueue<Entry>(32_000, ending, rethrow);
  const t0 = performance.now();
  const entries = Array.from({ length: 1_000 }, (_, i) => new Entry(String(i)));
  for (const entry of entries) {
    queue.add(entry);
    advance(1);
  }
  expect(jest.getTimerCount()).toBe(1);
  expect(queue.size).toBe(1_000);
  advance(32_000 - 1_000 - 1);
  expect(entries.every((e) => e.endedAt === undefined)).toBe(true);
  advance(1_000 + GRID_MS);
  for (const [i, entry] of entries.entries()) {
    const late = entry.endedAt! - (t0 + i + 32_000);
    expect(late).toBeGreaterThanOrEqual(0);
    expect(late).toBeLessThanOrEqual(GRID_MS);
  }
  // A wake-up per grid step ends a batch, not one per entry.
  expect(new Set(entries.map((e) => e.endedAt)).size).toBeLessThanOrEqual(1_000 / GRID_MS + 1);
  expect(queue.size).toBe(0);
  expect(jest.getTimerCount()).toBe(0);
});

test("below COARSE_FROM_MS an item ends exactly at its deadline (Timer I, tests' scaled timers)", () => {
  const ms = COARSE_FROM_MS - 1;
  const queue = new LingerQueue<Entry>(ms, ending, rethrow);
  const first = new Entry("first");
  const second = new Entry("second");
  const t0 = performance.now();
  queue.add(first);
  advance(7);
  queue.add(second);
  advance(ms - 7 - 1);
  expect(first.endedAt).toBeUndefined();
  advance(1);
  expect(first.endedAt).toBe(t0 + ms);
  advance(7);
  expect(second.endedAt).toBe(t0 + 7 + ms);
});

test("order holds across the queue moving its live entries down; clear() forgets every item and its timer", () => {
  const ended: string[] = [];
  const queue = new LingerQueue<string>(100, (name) => ended.push(name), rethrow);
  const add = (name: string) => queue.add(name);
  for (let i = 0; i < 3_000; i++) add(`a${i}`);
  advance(50);
  for (let i = 0; i < 3_000; i++) add(`b${i}`);
  advance(50); // the a's end: 3,000 ended in front of 3,000 live ones
  for (let i = 0; i < 10; i++) add(`c${i}`);
  advance(100);
  expect(ended).toEqual([...Array.from({ length: 3_000 }, (_, i) => `a${i}`), ...Array.from({ length: 3_000 }, (_, i) => `b${i}`), ...Array.from({ length: 10 }, (_, i) => `c${i}`)]);
  add("d");
  expect(jest.getTimerCount()).toBe(1);
  queue.clear();
  expect([queue.size, jest.getTimerCount()]).toEqual([0, 0]);
  advance(1_000);
  expect(ended).not.toContain("d");
});

test("an item that throws as it ends is reported; the ones after it still end", () => {
  const errors: unknown[] = [];
  const queue = new LingerQueue<Entry | "throws">(
    10,
    (item) => {
      if (item === "throws") throw new Error("boom");
      ending(item);
    },
    (error) => errors.push(error),
  );
  const after = new Entry("after");
  queue.add("throws");
  queue.add(after);
  advance(10);
  expect(String(errors[0])).toContain("boom");
  expect(after.endedAt).toBeDefined();
});

/** A UDP wire that keeps the first line of what it sent. */
class LineWire implements Wire {
  readonly reliable = false;
  readonly lines: string[] = [];
  async send(data: Uint8Array): Promise<void> {
    this.lines.push(new TextDecoder().decode(data).split("\r\n")[0]!);
  }
}

test("a UDP call's INVITE (once ACKed) and BYE linger with no timer of their own, answer retransmissions through the wire they came by, and end in order 64*T1 later", () => {
  expect(64 * DEFAULT_TIMERS.T1).toBeGreaterThanOrEqual(COARSE_FROM_MS);
  const layer = new TransactionLayer();
  const first = new LineWire();
  const invite = layer.createServer(callRequest("INVITE", "z9hG4bK-inv", "linger@test"), first);
  invite.respondWith(createResponse(invite.request!, 200, undefined, { toTag: "b1" }));
  expect(layer.wheel.size).toBe(1); // Timer L, until the ACK
  const ack = callRequest("ACK", "z9hG4bK-ack", "linger@test");
  layer.matchAck2xx(ack)!.receiveAck2xx(ack);
  expect([invite.state, layer.wheel.size, layer.size.lingering]).toEqual(["accepted", 0, 1]);
  advance(1_000);
  const bye = layer.createServer(callRequest("BYE", "z9hG4bK-bye", "linger@test"), first);
  bye.respond(200);
  expect([bye.state, layer.wheel.size, layer.size.lingering]).toEqual(["completed", 0, 2]);
  expect(jest.getTimerCount()).toBe(1);

  // Retransmissions, by another path: the BYE's 200 goes back through it; the INVITE is absorbed.
  const later = new LineWire();
  for (const retransmitted of [callRequest("BYE", "z9hG4bK-bye", "linger@test"), callRequest("INVITE", "z9hG4bK-inv", "linger@test")]) {
    layer.matchServer(retransmitted)!.receiveRetransmission(retransmitted, later);
  }
  // A second ACK for the 2xx goes to the TU (RFC 6026 §8.7), whose dialog knows it has one.
  expect(layer.matchAck2xx(ack)).toBeUndefined();
  expect(later.lines).toEqual(["SIP/2.0 200 OK"]);
  expect(first.lines).toEqual(["SIP/2.0 200 OK", "SIP/2.0 200 OK"]);
  expect(layer.size.lingering).toBe(2);

  const ended: string[] = [];
  invite.on("terminated", () => ended.push("INVITE (Timer L)"));
  bye.on("terminated", () => ended.push("BYE (Timer J)"));
  advance(64 * DEFAULT_TIMERS.T1 - 1_000 - 1);
  expect(ended).toEqual([]);
  advance(1 + GRID_MS);
  expect(ended).toEqual(["INVITE (Timer L)"]);
  expect(bye.state).toBe("completed");
  advance(1_000);
  expect(ended).toEqual(["INVITE (Timer L)", "BYE (Timer J)"]);
  expect(layer.size).toEqual({ clients: 0, servers: 0, merged: 0, accepted: 0, lingering: 0 });
  expect(jest.getTimerCount()).toBe(0);
});
