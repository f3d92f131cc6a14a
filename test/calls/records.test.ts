// Call records on both drivers: state stamps, paging, a kill -9 losing nothing, and ownership by
// node: at start a node closes only its own open records; a survivor closes a dead node's.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initialRecord, isValidCursor } from "../../src/store/calls.ts";
import { openPostgresStore, openStore, type Store } from "../../src/store/index.ts";
import { createDatabase, startPostgres, type Postgres } from "../helpers/postgres.ts";
import { until } from "../helpers/until.ts";

const dir = mkdtempSync(join(tmpdir(), "trunkline-calls-"));
let pg: Postgres | undefined;
const stores: Store[] = [];
beforeAll(async () => {
  pg = await startPostgres();
}, 60_000);
afterAll(async () => {
  for (const store of stores) await store.close();
  await pg?.stop();
  rmSync(dir, { recursive: true, force: true });
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
      const store = await openPostgresStore({ url: await createDatabase(pg!, `records_${++databases}`) });
      stores.push(store);
      return store;
    },
  },
];

for (const driver of drivers) {
  describe(`call records (${driver.name})`, () => {
    test("state changes stamp their time once and an ended record is final", async () => {
      const store = (await driver.fresh()).calls;
      const call = { id: "c1", direction: "inbound", from: "sip:a@x", to: "sip:b@y", trunkId: "t1" } as const;
      store.create(call, 1000);
      const created = { id: "c1", direction: "inbound", state: "trying", trunkId: "t1", from: "sip:a@x", to: "sip:b@y", createdAt: new Date(1000).toISOString() } as const;
      expect(initialRecord(call, 1000)).toEqual(created);
      expect(await store.get("c1")).toEqual(created);
      store.update("c1", { state: "ringing", sipStatus: 180 }, 2000);
      store.update("c1", { state: "ringing" }, 2500);
      store.update("c1", { state: "answered", codec: "PCMU", applicationId: "app", channelId: "room", userId: "u" }, 3000);
      store.update("c1", { state: "ended", endReason: "remote_bye", mediaStats: { packetsReceived: 5 } }, 4000);
      store.update("c1", { state: "answered", endReason: "late" }, 5000);
      expect(await store.get("c1")).toEqual({
        id: "c1",
        direction: "inbound",
        state: "ended",
        trunkId: "t1",
        from: "sip:a@x",
        to: "sip:b@y",
        applicationId: "app",
        channelId: "room",
        userId: "u",
        createdAt: new Date(1000).toISOString(),
        ringingAt: new Date(2000).toISOString(),
        answeredAt: new Date(3000).toISOString(),
        endedAt: new Date(4000).toISOString(),
        endReason: "remote_bye",
        sipStatus: 180,
        codec: "PCMU",
        mediaStats: { packetsReceived: 5 },
      });
    });

    test("listing filters by state and pages newest first with a cursor", async () => {
      const store = (await driver.fresh()).calls;
      for (let i = 0; i < 5; i++) store.create({ id: `c${i}`, direction: "outbound", from: "a", to: "b" });
      store.update("c1", { state: "ended", endReason: "x" });
      const first = await store.list({ limit: 2 });
      expect(first.calls.map((c) => c.id)).toEqual(["c4", "c3"]);
      const second = await store.list({ limit: 2, cursor: first.nextCursor });
      expect(second.calls.map((c) => c.id)).toEqual(["c2", "c1"]);
      const third = await store.list({ limit: 2, cursor: second.nextCursor });
      expect(third.calls.map((c) => c.id)).toEqual(["c0"]);
      expect(third.nextCursor).toBeUndefined();
      expect((await store.list({ limit: 10, state: "ended" })).calls.map((c) => c.id)).toEqual(["c1"]);
      expect((await store.list({ limit: 10, state: "active" })).calls).toHaveLength(4);
      expect(isValidCursor(first.nextCursor!)).toBe(true);
      expect(isValidCursor("garbage")).toBe(false);
    });

    test("old ended records are pruned, live ones never", async () => {
      const store = (await driver.fresh()).calls;
      store.create({ id: "old", direction: "inbound", from: "a", to: "b" }, 1000);
      store.update("old", { state: "ended", endReason: "bye" }, 2000);
      store.create({ id: "live", direction: "inbound", from: "a", to: "b" }, 1000);
      expect(await store.pruneEnded(10_000, 100)).toBe(1);
      expect((await store.list({ limit: 10 })).calls.map((c) => c.id)).toEqual(["live"]);
    });
  });
}

describe("call records owned by nodes (PostgreSQL)", () => {
  test("at start a node closes only its own open records", async () => {
    const url = await createDatabase(pg!, `records_${++databases}`);
    const node1 = await openPostgresStore({ url, nodeId: "node-1" });
    const node2 = await openPostgresStore({ url, nodeId: "node-2" });
    stores.push(node1, node2);
    node1.calls.create({ id: "n1-live", direction: "inbound", from: "a", to: "b" });
    node2.calls.create({ id: "n2-live", direction: "inbound", from: "a", to: "c" });
    await node1.calls.flush();
    await node2.calls.flush();

    await node1.close();
    const restarted = await openPostgresStore({ url, nodeId: "node-1" });
    stores.push(restarted);
    expect(await restarted.calls.closeInterruptedCalls()).toBe(1);
    expect(await restarted.calls.get("n1-live")).toMatchObject({ state: "ended", endReason: "interrupted" });
    expect(await restarted.calls.get("n2-live")).toMatchObject({ state: "trying" });
  });

  test("a survivor closes a dead node's open records as interrupted, once, and leaves live nodes' records open", async () => {
    const url = await createDatabase(pg!, `records_${++databases}`);
    const [dead, survivor, other] = await Promise.all(["dead", "survivor", "other"].map((nodeId) => openPostgresStore({ url, nodeId })));
    stores.push(dead!, survivor!, other!);
    const load = { activeCalls: 1, mediaLegs: 1, cpuPercent: 0 };
    for (const [store, nodeId] of [[dead!, "dead"], [survivor!, "survivor"], [other!, "other"]] as const) {
      await store.nodes.beat({ nodeId, sipAddress: "127.0.0.1:5060", httpUrl: "http://127.0.0.1", load }, { starting: true });
    }
    dead!.calls.create({ id: "dead-answered", direction: "inbound", from: "a", to: "b" });
    dead!.calls.update("dead-answered", { state: "answered" });
    dead!.calls.create({ id: "dead-ended", direction: "inbound", from: "a", to: "b" });
    dead!.calls.update("dead-ended", { state: "ended", endReason: "remote_bye" });
    survivor!.calls.create({ id: "survivor-live", direction: "outbound", from: "a", to: "c" });
    await dead!.calls.flush();
    await survivor!.calls.flush();

    // Everyone alive: nothing to close.
    expect(await survivor!.calls.closeCallsOfDeadNodes(60_000)).toBe(0);
    // "dead" stops beating; the others go on until its heartbeat is older than deadAfterMs.
    await until(async () => {
      for (const [store, nodeId] of [[survivor!, "survivor"], [other!, "other"]] as const) {
        await store.nodes.beat({ nodeId, sipAddress: "127.0.0.1:5060", httpUrl: "http://127.0.0.1", load }, { starting: false });
      }
      return (await survivor!.nodes.list(300)).find((n) => n.nodeId === "dead")?.health === "dead";
    });
    expect((await survivor!.nodes.list(300)).filter((n) => n.health === "alive").map((n) => n.nodeId)).toEqual(["other", "survivor"]);
    // Two survivors sweep at once: the record is closed once.
    const [a, b] = await Promise.all([survivor!.calls.closeCallsOfDeadNodes(300), other!.calls.closeCallsOfDeadNodes(300)]);
    expect(a + b).toBe(1);
    expect(await survivor!.calls.get("dead-answered")).toMatchObject({ state: "ended", endReason: "interrupted" });
    expect((await survivor!.calls.get("dead-answered"))?.answeredAt).toBeDefined();
    expect(await survivor!.calls.get("dead-ended")).toMatchObject({ state: "ended", endReason: "remote_bye" });
    expect(await survivor!.calls.get("survivor-live")).toMatchObject({ state: "trying" });
    // A late write of the node declared dead cannot reopen its record.
    dead!.calls.update("dead-answered", { state: "answered" });
    await dead!.calls.flush();
    expect(await survivor!.calls.get("dead-answered")).toMatchObject({ state: "ended", endReason: "interrupted" });
  });
});

describe("a kill -9 (SQLite)", () => {
  test("keeps every committed record; live calls close as interrupted at the next start", async () => {
    const path = join(dir, "kill.db");
    const script = `
      import { openStore } from ${JSON.stringify(join(import.meta.dir, "../../src/store/index.ts"))};
      const store = openStore(${JSON.stringify(path)});
      store.calls.create({ id: "done", direction: "inbound", from: "a", to: "b" });
      store.calls.update("done", { state: "answered" });
      store.calls.update("done", { state: "ended", endReason: "remote_bye", sipStatus: 200 });
      store.calls.create({ id: "live", direction: "outbound", from: "a", to: "c" });
      store.calls.update("live", { state: "answered" });
      // What the process tells the world once committed: the batch is in the database.
      await Promise.all([store.calls.committed("done"), store.calls.committed("live")]);
      console.log("written");
      setInterval(() => {}, 1000);
    `;
    const child = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "inherit" });
    try {
      // Log lines (migrations applied) come first.
      const reader = child.stdout.getReader();
      let output = "";
      while (!output.includes("written")) {
        const { value, done } = await reader.read();
        if (done) break;
        output += new TextDecoder().decode(value);
      }
      expect(output).toContain("written");
    } finally {
      child.kill("SIGKILL");
      await child.exited;
    }

    const store = openStore(path);
    stores.push(store);
    expect(await store.calls.get("done")).toMatchObject({ state: "ended", endReason: "remote_bye", sipStatus: 200 });
    expect(await store.calls.closeInterruptedCalls()).toBe(1);
    expect(await store.calls.get("live")).toMatchObject({ state: "ended", endReason: "interrupted" });
    expect((await store.calls.get("live"))?.answeredAt).toBeDefined();
  });
});
