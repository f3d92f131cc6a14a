// Trunk registration leases on both drivers: one holder per trunk, renewed by it, refused to others
// while it lives, taken over once it lapses by the database's clock, the holder's state readable by
// all; on PostgreSQL, nodes claiming the same trunks at once get one winner each.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { openPostgresStore, openStore, type Store } from "../../src/store/index.ts";
import type { LeaseRegistrationStatus } from "../../src/store/registrations.ts";
import { createDatabase, startPostgres, type Postgres } from "../helpers/postgres.ts";
import { until } from "../helpers/until.ts";

let pg: Postgres | undefined;
const stores: Store[] = [];
beforeAll(async () => {
  pg = await startPostgres();
}, 60_000);
afterAll(async () => {
  for (const store of stores) await store.close();
  await pg?.stop();
});

let databases = 0;
const drivers: { name: string; fresh(): Promise<Store> }[] = [
  {
    name: "SQLite",
    fresh: () => {
      const store = openStore(":memory:");
      stores.push(store);
      return Promise.resolve(store);
    },
  },
  {
    name: "PostgreSQL",
    async fresh() {
      const store = await openPostgresStore({ url: await createDatabase(pg!, `leases_${++databases}`) });
      stores.push(store);
      return store;
    },
  },
];

const registering: LeaseRegistrationStatus = { state: "registering", expiresAt: null, lastError: null, lastStatusCode: null };
const registered: LeaseRegistrationStatus = { state: "registered", expiresAt: "2026-12-06T06:00:00.000Z", lastError: null, lastStatusCode: 200 };

for (const driver of drivers) {
  describe(`registration leases (${driver.name})`, () => {
    test("one holder while its lease lives; its renewals and reports count, another node's do not", async () => {
      const store = await driver.fresh();
      const leases = store.registrations;
      expect(await leases.claim({ trunkId: "main", nodeId: "a", ttlMs: 60_000, status: registering })).toBe(true);
      expect(await leases.claim({ trunkId: "main", nodeId: "b", ttlMs: 60_000, status: registering })).toBe(false);
      expect(await leases.claim({ trunkId: "main", nodeId: "a", ttlMs: 60_000, status: registering })).toBe(true);
      await leases.report("main", "a", registered);
      await leases.report("main", "b", { ...registering, state: "failed", lastError: "not mine" });
      const [lease] = await leases.list();
      expect(lease).toMatchObject({ trunkId: "main", nodeId: "a", status: registered });
      expect(lease!.remainingMs).toBeGreaterThan(50_000);
      expect(lease!.remainingMs).toBeLessThanOrEqual(60_000);
      // Another trunk is another lease.
      expect(await leases.claim({ trunkId: "backup", nodeId: "b", ttlMs: 60_000, status: registering })).toBe(true);
      expect((await leases.list()).map((l) => [l.trunkId, l.nodeId])).toEqual([["backup", "b"], ["main", "a"]]);
    });

    test("a lapsed lease (database clock) goes to the next claimant; the old holder's renewal is then refused", async () => {
      const store = await driver.fresh();
      const leases = store.registrations;
      expect(await leases.claim({ trunkId: "main", nodeId: "a", ttlMs: 1, status: registered })).toBe(true);
      await until(async () => (await leases.list())[0]!.remainingMs < 0);
      expect(await leases.claim({ trunkId: "main", nodeId: "b", ttlMs: 60_000, status: registering })).toBe(true);
      expect(await leases.claim({ trunkId: "main", nodeId: "a", ttlMs: 60_000, status: registered })).toBe(false);
      expect((await leases.list())[0]).toMatchObject({ nodeId: "b", status: registering });
    });

    test("release: only the holder's removes the row, and the next claim wins at once", async () => {
      const store = await driver.fresh();
      const leases = store.registrations;
      await leases.claim({ trunkId: "main", nodeId: "a", ttlMs: 60_000, status: registered });
      await leases.release("main", "b");
      expect(await leases.list()).toHaveLength(1);
      await leases.release("main", "a");
      expect(await leases.list()).toEqual([]);
      expect(await leases.claim({ trunkId: "main", nodeId: "b", ttlMs: 60_000, status: registering })).toBe(true);
    });
  });
}

describe("registration leases claimed at once by three nodes (PostgreSQL)", () => {
  test("every trunk gets exactly one holder, whatever the interleaving", async () => {
    const url = await createDatabase(pg!, `leases_${++databases}`);
    const nodes = await Promise.all(["a", "b", "c"].map(async (nodeId) => {
      const store = await openPostgresStore({ url, nodeId });
      stores.push(store);
      return { nodeId, store };
    }));
    const trunks = Array.from({ length: 20 }, (_, i) => `trunk-${i}`);
    const claims = await Promise.all(
      trunks.flatMap((trunkId) =>
        nodes.map(async ({ nodeId, store }) => ({ trunkId, nodeId, won: await store.registrations.claim({ trunkId, nodeId, ttlMs: 60_000, status: registering }) })),
      ),
    );
    const rows = await nodes[0]!.store.registrations.list();
    expect(rows).toHaveLength(trunks.length);
    for (const trunkId of trunks) {
      const winners = claims.filter((c) => c.trunkId === trunkId && c.won);
      expect(winners).toHaveLength(1);
      expect(rows.find((r) => r.trunkId === trunkId)!.nodeId).toBe(winners[0]!.nodeId);
    }
  });
});
