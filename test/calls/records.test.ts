import { Database } from "bun:sqlite";
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CallStore, callsMigration, isValidCursor } from "../../src/store/calls.ts";

const dir = mkdtempSync(join(tmpdir(), "trunkline-calls-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function openStore(path = ":memory:"): { db: Database; store: CallStore } {
  const db = new Database(path, { create: true });
  db.exec("PRAGMA journal_mode = WAL");
  db.exec("CREATE TABLE IF NOT EXISTS migrated (done INTEGER)");
  if (!db.query("SELECT done FROM migrated").get()) {
    db.exec(callsMigration);
    db.exec("INSERT INTO migrated VALUES (1)");
  }
  return { db, store: new CallStore(db) };
}

describe("call records", () => {
  test("state changes stamp their time once and an ended record is final", () => {
    const { store } = openStore();
    store.create({ id: "c1", direction: "inbound", from: "sip:a@x", to: "sip:b@y", trunkId: "t1" }, 1000);
    store.update("c1", { state: "ringing", sipStatus: 180 }, 2000);
    store.update("c1", { state: "ringing" }, 2500);
    store.update("c1", { state: "answered", codec: "PCMU", applicationId: "app", channelId: "room", userId: "u" }, 3000);
    store.update("c1", { state: "ended", endReason: "remote_bye", mediaStats: { packetsReceived: 5 } }, 4000);
    store.update("c1", { state: "answered", endReason: "late" }, 5000);
    expect(store.get("c1")).toEqual({
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

  test("listing filters by state and pages newest first with a cursor", () => {
    const { store } = openStore();
    for (let i = 0; i < 5; i++) store.create({ id: `c${i}`, direction: "outbound", from: "a", to: "b" });
    store.update("c1", { state: "ended", endReason: "x" });
    const first = store.list({ limit: 2 });
    expect(first.calls.map((c) => c.id)).toEqual(["c4", "c3"]);
    const second = store.list({ limit: 2, cursor: first.nextCursor });
    expect(second.calls.map((c) => c.id)).toEqual(["c2", "c1"]);
    const third = store.list({ limit: 2, cursor: second.nextCursor });
    expect(third.calls.map((c) => c.id)).toEqual(["c0"]);
    expect(third.nextCursor).toBeUndefined();
    expect(store.list({ limit: 10, state: "ended" }).calls.map((c) => c.id)).toEqual(["c1"]);
    expect(store.list({ limit: 10, state: "active" }).calls).toHaveLength(4);
    expect(isValidCursor(first.nextCursor!)).toBe(true);
    expect(isValidCursor("garbage")).toBe(false);
  });

  test("a kill -9 keeps every written record; live calls close as interrupted at the next start", async () => {
    const path = join(dir, "kill.db");
    openStore(path).db.close();
    const script = `
      import { Database } from "bun:sqlite";
      import { CallStore } from ${JSON.stringify(join(import.meta.dir, "../../src/store/calls.ts"))};
      const db = new Database(${JSON.stringify(path)});
      db.exec("PRAGMA journal_mode = WAL");
      const store = new CallStore(db);
      store.create({ id: "done", direction: "inbound", from: "a", to: "b" });
      store.update("done", { state: "answered" });
      store.update("done", { state: "ended", endReason: "remote_bye", sipStatus: 200 });
      store.create({ id: "live", direction: "outbound", from: "a", to: "c" });
      store.update("live", { state: "answered" });
      console.log("written");
      setInterval(() => {}, 1000);
    `;
    const child = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "inherit" });
    const reader = child.stdout.getReader();
    const { value } = await reader.read();
    expect(new TextDecoder().decode(value)).toContain("written");
    child.kill("SIGKILL");
    await child.exited;

    const { db, store } = openStore(path);
    expect(store.get("done")).toMatchObject({ state: "ended", endReason: "remote_bye", sipStatus: 200 });
    expect(store.closeInterruptedCalls()).toBe(1);
    expect(store.get("live")).toMatchObject({ state: "ended", endReason: "interrupted" });
    expect(store.get("live")?.answeredAt).toBeDefined();
    db.close();
  });
});
