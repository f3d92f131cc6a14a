// records.retentionDays: old records of ended calls go, in small batches between which other store
// work runs; recent records and records of live calls stay.
import { describe, expect, test } from "bun:test";
import { metrics } from "../../src/metrics.ts";
import { openStore, type SqliteStore, type Store } from "../../src/store/index.ts";
import { CallRecordRetention } from "../../src/store/retention.ts";
import { startHarness } from "../api/harness.ts";
import { until } from "../helpers/until.ts";

const DAY = 86_400_000;
const NOW = Date.parse("2025-06-01T12:00:00Z");

function endedCall(store: Store, id: string, createdAt: number, endedAt: number): void {
  store.calls.create({ id, direction: "inbound", from: "sip:a@x", to: "sip:b@y" }, createdAt);
  store.calls.update(id, { state: "answered" }, createdAt + 1000);
  store.calls.update(id, { state: "ended", endReason: "remote_bye" }, endedAt);
}

const prunedTotal = () => metrics.counter("trunkline_call_records_pruned_total", "").get();
const oldRows = (store: SqliteStore) => store.db.query<{ n: number }, []>(`SELECT COUNT(*) AS n FROM calls WHERE ended_at < ${NOW - 90 * DAY}`).get()!.n;

describe("call record retention", () => {
  test("records ended before the limit go; recent ones, long calls that ended recently and live calls stay; 0 keeps all", async () => {
    const store = openStore(":memory:");
    endedCall(store, "old", NOW - 200 * DAY, NOW - 200 * DAY);
    endedCall(store, "just-old", NOW - 91 * DAY, NOW - 91 * DAY);
    endedCall(store, "recent", NOW - 10 * DAY, NOW - 10 * DAY);
    endedCall(store, "long-call", NOW - 95 * DAY, NOW - 80 * DAY);
    store.calls.create({ id: "live", direction: "outbound", from: "a", to: "b" }, NOW - 200 * DAY);
    store.calls.update("live", { state: "answered" }, NOW - 200 * DAY);

    const keepAll = new CallRecordRetention({ records: store.calls, retentionDays: () => 0, now: () => NOW });
    expect(await keepAll.run()).toEqual({ pruned: 0, batches: 0 });
    expect((await store.calls.list({ limit: 10 })).calls).toHaveLength(5);

    const before = prunedTotal();
    const retention = new CallRecordRetention({ records: store.calls, retentionDays: () => 90, now: () => NOW });
    expect((await retention.run()).pruned).toBe(2);
    expect((await store.calls.list({ limit: 10 })).calls.map((c) => c.id).sort()).toEqual(["live", "long-call", "recent"]);
    expect((await store.calls.get("live"))?.state).toBe("answered");
    expect(prunedTotal() - before).toBe(2);
    store.close();
  });

  test("many rows are pruned in batches with other store work running in between, each batch reading the end-time index", async () => {
    const store = openStore(":memory:");
    store.db.transaction(() => {
      for (let i = 0; i < 2000; i++) endedCall(store, `old-${i}`, NOW - 100 * DAY, NOW - 100 * DAY + i);
    })();
    const explain = store.db.prepare<{ detail: string }, []>(
      "EXPLAIN QUERY PLAN SELECT seq FROM calls WHERE ended_at < 1 AND +state = 'ended' ORDER BY ended_at LIMIT 100",
    );
    const plan = explain.all();
    explain.finalize();
    expect(plan.map((p) => p.detail).join(" ")).toContain("calls_ended_at");

    const retention = new CallRecordRetention({ records: store.calls, retentionDays: () => 90, batchSize: 100, now: () => NOW });
    const run = retention.run();
    let done = false;
    void run.then(() => (done = true));
    // Another store user: a new call record per turn of the event loop, noting the old rows left.
    const seenOldRows: number[] = [];
    while (!done) {
      seenOldRows.push(oldRows(store));
      store.calls.create({ id: `new-${seenOldRows.length}`, direction: "inbound", from: "a", to: "b" }, NOW);
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(await run).toEqual({ pruned: 2000, batches: 21 });
    expect(seenOldRows.some((n) => n > 0 && n < 2000)).toBe(true);
    expect(oldRows(store)).toBe(0);
    expect((await store.calls.list({ limit: 5000 })).calls).toHaveLength(seenOldRows.length);
    store.close();
  });

  test("stop() ends a run after its current batch", async () => {
    const store = openStore(":memory:");
    store.db.transaction(() => {
      for (let i = 0; i < 500; i++) endedCall(store, `old-${i}`, NOW - 100 * DAY, NOW - 100 * DAY);
    })();
    const retention = new CallRecordRetention({ records: store.calls, retentionDays: () => 90, batchSize: 100, now: () => NOW });
    const run = retention.run();
    await retention.stop();
    expect(await run).toEqual({ pruned: 100, batches: 1 });
    expect(oldRows(store)).toBe(400);
    store.close();
  });

  test("the app prunes at start with the configured retention", async () => {
    const h = await startHarness("records: { retentionDays: 30 }\n");
    try {
      endedCall(h.app.ctx.store, "stale", Date.now() - 40 * DAY, Date.now() - 40 * DAY);
      endedCall(h.app.ctx.store, "fresh", Date.now() - 20 * DAY, Date.now() - 20 * DAY);
      await h.restart();
      await until(async () => (await h.app.ctx.store.calls.get("stale")) === undefined);
      expect((await h.app.ctx.store.calls.get("fresh"))?.state).toBe("ended");
    } finally {
      await h.close();
    }
  });
});
