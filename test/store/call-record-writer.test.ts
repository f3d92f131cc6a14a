// The call record writer (src/store/callRecordWriter.ts) on both drivers: changes coalesced per
// call and committed together, reads that see queued changes, `committed` resolving only once the
// row is in the database (read through another connection), a record the database refuses dropped
// alone after its retries, a failing database retried until it answers, close flushing.
import { Database } from "bun:sqlite";
import { SQL } from "bun";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setLogSink } from "../../src/log.ts";
import type { CallRecordWriterOptions } from "../../src/store/callRecordWriter.ts";
import { CallStore, type CallDirection } from "../../src/store/calls.ts";
import { openDatabase } from "../../src/store/db.ts";
import { openPostgresStore } from "../../src/store/index.ts";
import { PostgresExecutor, SqliteExecutor, type SqlExecutor, type SqlValue } from "../../src/store/sql.ts";
import { createDatabase, startPostgres, type Postgres } from "../helpers/postgres.ts";
import { until } from "../helpers/until.ts";

const dir = mkdtempSync(join(tmpdir(), "trunkline-record-writer-"));
let pg: Postgres | undefined;
const cleanups: (() => unknown)[] = [];
const lines: string[] = [];
beforeAll(async () => {
  pg = await startPostgres();
  setLogSink((line) => lines.push(line));
}, 60_000);
afterAll(async () => {
  setLogSink((line) => process.stdout.write(line + "\n"));
  for (const cleanup of cleanups.reverse()) await cleanup();
  await pg?.stop();
  rmSync(dir, { recursive: true, force: true });
});
const logged = (msg: string) => lines.filter((l) => l.includes(`"msg":"${msg}"`));

type Statement = { sql: string; params: SqlValue[] };

/** A driver's executor that counts the transactions of call record writes and their statements. */
function counting(sql: SqlExecutor): SqlExecutor & { batches: Statement[][] } {
  const batches: Statement[][] = [];
  return {
    dialect: sql.dialect,
    batches,
    query: (text, params) => sql.query(text, params),
    transaction: (work) => sql.transaction(work),
    serial: (work) => sql.serial(work),
    batch(statements) {
      batches.push([...statements]);
      return sql.batch(statements);
    },
  };
}

interface Fixture {
  calls: CallStore;
  sql: ReturnType<typeof counting>;
  /** Through another connection: what is committed. */
  committedRow(id: string): Promise<Record<string, unknown> | undefined>;
  /** Schema change through another connection (to make every write fail, then heal). */
  ddl(statement: string): Promise<void>;
  /** A new store on the same database (as after a restart). */
  reopen(): CallStore;
}

let databases = 0;
const drivers: { name: string; fresh(options?: CallRecordWriterOptions): Promise<Fixture> }[] = [
  {
    name: "SQLite",
    fresh(options) {
      const path = join(dir, `records-${++databases}.db`);
      const open = () => {
        const db = openDatabase(path);
        cleanups.push(() => db.close());
        return db;
      };
      const sql = counting(new SqliteExecutor(open()));
      const other = new Database(path);
      cleanups.push(() => other.close());
      const calls = new CallStore(sql, "n1", options);
      cleanups.push(() => calls.close());
      return Promise.resolve({
        calls,
        sql,
        committedRow: (id) => Promise.resolve(other.query<Record<string, unknown>, [string]>("SELECT * FROM calls WHERE id = ?1").get(id) ?? undefined),
        ddl: (statement) => Promise.resolve(void other.run(statement)),
        reopen: () => new CallStore(new SqliteExecutor(open()), "n1"),
      });
    },
  },
  {
    name: "PostgreSQL",
    async fresh(options) {
      const url = await createDatabase(pg!, `record_writer_${++databases}`);
      // Migrates the database.
      await (await openPostgresStore({ url })).close();
      const client = () => {
        const c = new SQL(url);
        cleanups.push(() => c.close());
        return c;
      };
      const sql = counting(new PostgresExecutor(client()));
      const other = client();
      const calls = new CallStore(sql, "n1", options);
      cleanups.push(() => calls.close());
      return {
        calls,
        sql,
        async committedRow(id) {
          const [row] = (await other.unsafe("SELECT * FROM calls WHERE id = $1", [id])) as Record<string, unknown>[];
          return row;
        },
        ddl: async (statement) => void (await other.unsafe(statement)),
        reopen: () => new CallStore(new PostgresExecutor(client()), "n1"),
      };
    },
  },
];

const newCall = (id: string, direction: CallDirection = "inbound") => ({ id, direction, from: "sip:a@x", to: "sip:100@y" });

for (const driver of drivers) {
  describe(`call record writer (${driver.name})`, () => {
    test("a call's changes in one window are one row write; the calls of a window share one transaction", async () => {
      const { calls, sql } = await driver.fresh();
      calls.create(newCall("c1"), 1000);
      calls.update("c1", { state: "ringing", sipStatus: 180 }, 2000);
      calls.update("c1", { state: "ringing" }, 2500);
      calls.update("c1", { state: "answered", codec: "PCMU", channelId: "room" }, 3000);
      calls.update("c1", { state: "ended", endReason: "remote_bye" }, 4000);
      calls.update("c1", { state: "answered", endReason: "late" }, 5000);
      calls.create(newCall("c2", "outbound"), 1500);
      expect(sql.batches).toEqual([]);
      expect(await calls.committed("c1")).toBe(true);
      expect(sql.batches).toHaveLength(1);
      expect(sql.batches[0]!.map((s) => s.sql.split(" ")[0])).toEqual(["INSERT", "INSERT"]);
      expect(await calls.get("c1")).toMatchObject({
        state: "ended",
        endReason: "remote_bye",
        sipStatus: 180,
        codec: "PCMU",
        channelId: "room",
        ringingAt: new Date(2000).toISOString(),
        answeredAt: new Date(3000).toISOString(),
        endedAt: new Date(4000).toISOString(),
      });
      expect(await calls.get("c2")).toMatchObject({ direction: "outbound", state: "trying" });

      // A record already in the database: its next changes are one UPDATE, its stamps kept.
      calls.update("c2", { state: "ringing" }, 6000);
      calls.update("c2", { state: "answered", codec: "PCMA" }, 7000);
      calls.update("c2", { state: "ringing" }, 8000);
      await calls.committed("c2");
      expect(sql.batches).toHaveLength(2);
      expect(sql.batches[1]!.map((s) => s.sql.split(" ")[0])).toEqual(["UPDATE"]);
      expect(await calls.get("c2")).toMatchObject({ state: "ringing", codec: "PCMA", ringingAt: new Date(6000).toISOString(), answeredAt: new Date(7000).toISOString() });
    });

    test("reads see queued changes at once; committed resolves only once the row is in the database", async () => {
      // A window longer than any test: only a read, a flush or close commits.
      const { calls, sql, committedRow } = await driver.fresh({ windowMs: 600_000 });
      calls.create(newCall("r1"));
      calls.update("r1", { state: "ended", endReason: "local_hangup" });
      let committed: boolean | undefined;
      void calls.committed("r1").then((ok) => (committed = ok));
      expect(await committedRow("r1")).toBeUndefined();
      expect(committed).toBeUndefined();
      // The read commits what waits first.
      expect(await calls.get("r1")).toMatchObject({ state: "ended", endReason: "local_hangup" });
      expect(sql.batches).toHaveLength(1);
      await until(() => committed === true);
      expect(await committedRow("r1")).toMatchObject({ state: "ended", end_reason: "local_hangup" });

      calls.create(newCall("r2"));
      expect((await calls.list({ limit: 10, state: "active" })).calls.map((c) => c.id)).toEqual(["r2"]);
      calls.update("r2", { state: "ended", endReason: "remote_bye" });
      expect((await calls.list({ limit: 10, state: "ended" })).calls.map((c) => c.id)).toEqual(["r2", "r1"]);
    });

    test("close commits what waits: a store reopened on the database reads it", async () => {
      const { calls, reopen } = await driver.fresh({ windowMs: 600_000 });
      calls.create(newCall("s1"));
      calls.update("s1", { state: "answered" });
      calls.update("s1", { state: "ended", endReason: "shutdown" });
      await calls.close();
      expect(await reopen().get("s1")).toMatchObject({ state: "ended", endReason: "shutdown" });
    });

    test("a record the database refuses is dropped alone after its retries; the others of its batch land", async () => {
      const { calls } = await driver.fresh({ retryMinMs: 1, retryMaxMs: 4, maxAttempts: 3 });
      calls.create(newCall("good-1"));
      // Refused by the direction CHECK constraint.
      calls.create({ ...newCall("bad"), direction: "sideways" as CallDirection });
      calls.create(newCall("good-2"));
      expect(await calls.committed("good-1")).toBe(true);
      expect(await calls.committed("good-2")).toBe(true);
      expect(await calls.committed("bad")).toBe(false);
      expect(await calls.get("good-1")).toMatchObject({ state: "trying" });
      expect(await calls.get("good-2")).toMatchObject({ state: "trying" });
      expect(await calls.get("bad")).toBeUndefined();
      expect(logged("call records dropped: their writes failed every retry").some((l) => l.includes('"bad"'))).toBe(true);
      expect(calls.queuedWrites).toBe(0);
    });

    test("changes flushed inside another transaction are not rolled back with it", async () => {
      const { calls, sql } = await driver.fresh({ retryMinMs: 1 });
      const rolledBack = sql.transaction(async () => {
        calls.create(newCall("t1"));
        await calls.flush();
        throw new Error("rolled back");
      });
      await expect(rolledBack).rejects.toThrow("rolled back");
      expect(await calls.committed("t1")).toBe(true);
      expect(await calls.get("t1")).toMatchObject({ state: "trying" });
    });

    test("a database failing every write: the records wait, retried with backoff, and land once it heals", async () => {
      const { calls, ddl } = await driver.fresh({ retryMinMs: 1, retryMaxMs: 20, maxAttempts: 1_000 });
      calls.create(newCall("before"));
      await calls.committed("before");
      await ddl("ALTER TABLE calls RENAME TO calls_away");
      const failuresBefore = logged("call record batch failed; its records are retried one by one").length;
      calls.update("before", { state: "ended", endReason: "remote_bye" });
      calls.create(newCall("during"));
      let committed: boolean | undefined;
      void calls.committed("during").then((ok) => (committed = ok));
      // Two failed rounds: the retry happened.
      await until(() => logged("call record batch failed; its records are retried one by one").length >= failuresBefore + 2);
      expect(committed).toBeUndefined();
      expect(calls.queuedWrites).toBe(2);
      await ddl("ALTER TABLE calls_away RENAME TO calls");
      await until(() => committed !== undefined);
      expect(committed).toBe(true);
      expect(await calls.get("before")).toMatchObject({ state: "ended", endReason: "remote_bye" });
      expect(await calls.get("during")).toMatchObject({ state: "trying" });
    });
  });
}
