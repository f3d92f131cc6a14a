// The per-source screen on a fake clock: strangers dropped or rejected, token buckets (burst,
// refill), and the bucket table's cap and expiry.
import { afterEach, expect, test } from "bun:test";
import { SourceGuard, type SourceLimits, type StrangerPolicy } from "../../src/sip/source-guard.ts";

const guards: SourceGuard[] = [];
afterEach(() => {
  for (const g of guards.splice(0)) g.close();
});

const TRUNK = "192.0.2.10";

function guard(strangers: StrangerPolicy, limits: Partial<SourceLimits> = {}) {
  const clock = { now: 1_000_000 };
  const g = new SourceGuard(
    strangers,
    { messagesPerSecond: 2, trunkMessagesPerSecond: 4, trackedSources: 3, ...limits },
    { isKnown: (address) => address === TRUNK, now: () => clock.now },
  );
  guards.push(g);
  return { g, clock };
}

test("drop: a stranger's requests are dropped before any bucket exists; its responses take the stranger budget", () => {
  const { g } = guard("drop");
  for (let i = 0; i < 100; i++) expect(g.admit("203.0.113.5", true, false)).toBe("drop");
  expect(g.counters.strangersDropped).toBe(100);
  expect(g.trackedSources).toBe(0);
  expect(g.admit("203.0.113.5", false, false)).toBe("accept");
  expect(g.trackedSources).toBe(1);
  expect(g.admitConnection("203.0.113.5")).toBe(false);
  expect(g.admitConnection(TRUNK)).toBe(true);
});

test("reject: a stranger's requests are admitted to be refused, within the stranger budget", () => {
  const { g } = guard("reject");
  expect([g.admit("203.0.113.5", true, false), g.admit("203.0.113.5", true, false), g.admit("203.0.113.5", true, false)]).toEqual(["reject", "reject", "drop"]);
  expect(g.counters).toEqual({ strangersDropped: 0, strangersRejected: 2, rateLimited: 1, tableFull: 0 });
  expect(g.admitConnection("203.0.113.5")).toBe(true);
});

test("a bucket holds one second's worth and refills at the rate", () => {
  const { g, clock } = guard("drop");
  const burst = Array.from({ length: 6 }, () => g.admit(TRUNK, true, false));
  expect(burst).toEqual(["accept", "accept", "accept", "accept", "drop", "drop"]);
  clock.now += 250; // one token at 4/s
  expect([g.admit(TRUNK, true, false), g.admit(TRUNK, true, false)]).toEqual(["accept", "drop"]);
  clock.now += 10_000; // never more than the burst
  expect(Array.from({ length: 5 }, () => g.admit(TRUNK, true, false)).filter((a) => a === "accept")).toHaveLength(4);
  expect(g.counters.rateLimited).toBe(4);
});

test("a clock read earlier than the last refill (a fake clock put back) drains nothing", () => {
  const { g, clock } = guard("drop");
  expect(g.admit(TRUNK, true, false)).toBe("accept");
  clock.now -= 5000;
  expect(Array.from({ length: 4 }, () => g.admit(TRUNK, true, false))).toEqual(["accept", "accept", "accept", "drop"]);
  clock.now += 5000 + 250; // refills from the last real refill on: one token at 4/s
  expect([g.admit(TRUNK, true, false), g.admit(TRUNK, true, false)]).toEqual(["accept", "drop"]);
});

test("a trunk's TCP/TLS messages are exempt (proven address, no retransmission); a stranger's are not", () => {
  const { g } = guard("reject");
  for (let i = 0; i < 100; i++) expect(g.admit(TRUNK, true, true)).toBe("accept");
  expect([g.admit("203.0.113.5", true, true), g.admit("203.0.113.5", true, true), g.admit("203.0.113.5", true, true)]).toEqual(["reject", "reject", "drop"]);
});

test("0 means unlimited and keeps no bucket", () => {
  const { g } = guard("drop", { trunkMessagesPerSecond: 0 });
  for (let i = 0; i < 1000; i++) expect(g.admit(TRUNK, true, false)).toBe("accept");
  expect(g.trackedSources).toBe(0);
});

test("the table is capped: new strangers wait while it is full, a trunk evicts the oldest, idle buckets expire", () => {
  const { g, clock } = guard("reject");
  for (const a of ["203.0.113.1", "203.0.113.2", "203.0.113.3"]) expect(g.admit(a, false, false)).toBe("accept");
  expect(g.admit("203.0.113.4", false, false)).toBe("drop");
  expect(g.counters.tableFull).toBe(1);
  expect(g.trackedSources).toBe(3);
  // A trunk is never locked out by a spray of strangers.
  expect(g.admit(TRUNK, true, false)).toBe("accept");
  expect(g.trackedSources).toBe(3);
  // A bucket idle for a second is full again, as good as none: the next newcomer's sweep frees it.
  clock.now += 1000;
  expect(g.admit("203.0.113.4", false, false)).toBe("accept");
  expect(g.trackedSources).toBe(1);
  // The periodic sweep does the same without a newcomer.
  clock.now += 1000;
  g.sweep();
  expect(g.trackedSources).toBe(0);
});

test("the screen can be replaced: a source becomes known when its trunk is added", () => {
  const { g } = guard("drop");
  expect(g.admit("198.51.100.7", true, false)).toBe("drop");
  g.setKnownSources((a) => a === "198.51.100.7");
  expect(g.admit("198.51.100.7", true, false)).toBe("accept");
});

test("a trusted front spends no budget and holds no bucket; the senders it relays are screened and budgeted as themselves", () => {
  const FRONT = "198.51.100.1";
  for (const strangers of ["drop", "reject"] as const) {
    const clock = { now: 1_000_000 };
    const g = new SourceGuard(strangers, { messagesPerSecond: 2, trunkMessagesPerSecond: 4, trackedSources: 3 }, {
      isKnown: (address) => address === TRUNK,
      isFront: (address) => address === FRONT,
      now: () => clock.now,
    });
    guards.push(g);
    for (let i = 0; i < 50; i++) expect(g.admit(FRONT, i % 2 === 0, false)).toBe("accept");
    expect(g.admitConnection(FRONT)).toBe(true);
    expect(g.trackedSources).toBe(0);
    for (let i = 0; i < 50; i++) expect(g.admitRelayed(TRUNK)).toBe("accept");
    const relayedStranger = [1, 2, 3].map(() => g.admitRelayed("203.0.113.5"));
    expect(relayedStranger).toEqual(strangers === "drop" ? ["drop", "drop", "drop"] : ["reject", "reject", "drop"]);
    expect(g.counters).toEqual(
      strangers === "drop"
        ? { strangersDropped: 3, strangersRejected: 0, rateLimited: 0, tableFull: 0 }
        : { strangersDropped: 0, strangersRejected: 2, rateLimited: 1, tableFull: 0 },
    );
  }
});
