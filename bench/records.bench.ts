// Call record writes, CPU per call of this process, side by side in one run: before (every state
// change its own committed statement, as the store wrote them until the write-behind) and after
// (src/store/callRecordWriter.ts: changes queued, coalesced per call, one transaction per 5 ms
// window). Calls arrive at a steady rate in real time, each making the writes of an inbound call:
// created, routed, answered (codec), ended (reason, media stats); the writer's own timers commit.
// CPU time, not wall time: the idle event loop costs nothing, other processes inflate it little.
// SQLite on a file (WAL, as in production); PostgreSQL too when a server can be started here.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SQL } from "bun";
import { CallStore, type CallUpdate, type NewCall } from "../src/store/calls.ts";
import { openDatabase } from "../src/store/db.ts";
import { openPostgresStore } from "../src/store/index.ts";
import { PostgresExecutor, SqliteExecutor, type SqlExecutor, type SqlValue } from "../src/store/sql.ts";
import { setLogSink } from "../src/log.ts";
import { reportGoal } from "./goals.ts";

const RATE_PER_SEC = 1_000;
const SECONDS = 3;
const ANSWER_AFTER_MS = 20;
const END_AFTER_MS = 200;
/** The load's own pace: calls start in bursts this far apart (a SIP socket's reads are bursts too). */
const TICK_MS = 2;

interface RecordWriter {
  create(call: NewCall): void;
  update(id: string, change: CallUpdate): void;
  /** Resolves once every write is in the database. */
  drain(): Promise<void>;
}

/** The store's writes before the write-behind: every change one statement, committed at once, in order. */
function perWrite(sql: SqlExecutor): RecordWriter {
  const columns: Record<string, string> = { state: "state", applicationId: "application_id", channelId: "channel_id", userId: "user_id", endReason: "end_reason", codec: "codec", mediaStats: "media_stats", sipStatus: "sip_status" };
  const stamps: Record<string, string> = { ringing: "ringing_at", answered: "answered_at", ended: "ended_at" };
  const write = (statement: string, params: SqlValue[]) => void sql.serial(() => sql.query(statement, params)).catch((err: unknown) => console.error(err));
  return {
    create(call) {
      write(
        `INSERT INTO calls (id, node_id, direction, state, sip_call_id, trunk_id, from_uri, to_uri, application_id, channel_id, user_id, client_id, created_at, attributes)
         VALUES ($1, $2, $3, 'trying', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
        [call.id, "bench", call.direction, call.sipCallId ?? null, call.trunkId ?? null, call.from, call.to, null, null, null, null, Date.now(), null],
      );
    },
    update(id, change) {
      const sets: string[] = [];
      const values: SqlValue[] = [];
      const bind = (value: SqlValue) => `$${values.push(value)}`;
      for (const [key, value] of Object.entries(change)) {
        if (value === undefined) continue;
        sets.push(`${columns[key]} = ${bind(key === "mediaStats" ? JSON.stringify(value) : (value as string | number))}`);
      }
      const stamp = change.state ? stamps[change.state] : undefined;
      if (stamp) sets.push(`${stamp} = COALESCE(${stamp}, ${bind(Date.now())})`);
      write(`UPDATE calls SET ${sets.join(", ")} WHERE id = ${bind(id)} AND state != 'ended'`, values);
    },
    drain: () => sql.serial(() => Promise.resolve()),
  };
}

function batched(sql: SqlExecutor): RecordWriter {
  const calls = new CallStore(sql, "bench");
  return { create: (call) => void calls.create(call), update: (id, change) => calls.update(id, change), drain: () => calls.flush() };
}

/** Calls at RATE_PER_SEC for SECONDS, real time; returns CPU µs per call (all its writes, committed). */
async function cpuPerCall(records: RecordWriter, prefix: string): Promise<number> {
  const answering: { id: string; at: number }[] = [];
  const ending: { id: string; at: number }[] = [];
  const total = RATE_PER_SEC * SECONDS;
  let started = 0;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  while (started < total || answering.length > 0 || ending.length > 0) {
    const now = performance.now();
    const due = Math.min(total, Math.floor(((now - t0) * RATE_PER_SEC) / 1000));
    for (; started < due; started++) {
      const id = `${prefix}-${started}`;
      records.create({ id, direction: "inbound", from: "sip:+15551230000@carrier.example", to: "sip:1000@trunkline.example", sipCallId: `${id}@carrier`, trunkId: "carrier" });
      records.update(id, { applicationId: "app", channelId: `room-${started % 100}`, userId: "+15551230000" });
      answering.push({ id, at: now + ANSWER_AFTER_MS });
    }
    while (answering[0] && answering[0].at <= now) {
      const { id } = answering.shift()!;
      records.update(id, { state: "answered", codec: "PCMU" });
      ending.push({ id, at: now + END_AFTER_MS });
    }
    while (ending[0] && ending[0].at <= now) {
      const { id } = ending.shift()!;
      records.update(id, { state: "ended", endReason: "remote_bye", mediaStats: { packetsReceived: 10, packetsSent: 10, packetsLost: 0, jitterMs: 1 } });
    }
    await Bun.sleep(TICK_MS);
  }
  await records.drain();
  const used = process.cpuUsage(cpu0);
  return (used.user + used.system) / total;
}

/** The load's pacing alone, no writes: taken off both figures. */
const idle: RecordWriter = { create: () => undefined, update: () => undefined, drain: () => Promise.resolve() };

async function compare(name: string, executor: () => Promise<{ sql: SqlExecutor; close(): Promise<void> }>): Promise<void> {
  // Two rounds each, alternating; the lower figure of each counts (the machine is shared).
  let before = Infinity;
  let after = Infinity;
  let pacing = Infinity;
  for (let round = 0; round < 2; round++) {
    pacing = Math.min(pacing, await cpuPerCall(idle, `idle-${round}`));
    const a = await executor();
    before = Math.min(before, await cpuPerCall(perWrite(a.sql), `before-${round}`));
    await a.close();
    const b = await executor();
    after = Math.min(after, await cpuPerCall(batched(b.sql), `after-${round}`));
    await b.close();
  }
  before -= pacing;
  after -= pacing;
  console.log(`${`${name}: the load's pacing alone (taken off both)`.padEnd(58)} ${pacing.toFixed(0).padStart(6)} µs CPU per call`);
  console.log(`${`${name}: one transaction per write`.padEnd(58)} ${before.toFixed(0).padStart(6)} µs CPU per call`);
  console.log(`${`${name}: write-behind, one transaction per 5 ms`.padEnd(58)} ${after.toFixed(0).padStart(6)} µs CPU per call`);
  console.log(`${name}: after / before ${(after / before).toFixed(2)}×`);
  reportGoal({
    goal: `call record writes, CPU per call (${name}, ${RATE_PER_SEC} calls/s, 4 changes each)`,
    figure: `${after.toFixed(0)} µs batched`,
    anchor: `${before.toFixed(0)} µs with one transaction per write`,
  });
}

export async function run(): Promise<void> {
  // Migration lines would interleave with the figures.
  setLogSink(() => undefined);
  const dir = mkdtempSync(join(tmpdir(), "trunkline-records-bench-"));
  let files = 0;
  try {
    await compare("SQLite", () => {
      const db = openDatabase(join(dir, `records-${++files}.db`));
      return Promise.resolve({ sql: new SqliteExecutor(db), close: () => Promise.resolve(db.close()) });
    });
    let pg: { stop(): Promise<void>; url: string } | undefined;
    try {
      const { startPostgres, createDatabase } = await import("../test/helpers/postgres.ts");
      pg = await startPostgres();
      const server = pg;
      await compare("PostgreSQL", async () => {
        const url = await createDatabase(server as Parameters<typeof createDatabase>[0], `records_bench_${++files}`);
        await (await openPostgresStore({ url })).close();
        const client = new SQL(url);
        return { sql: new PostgresExecutor(client), close: () => client.close() };
      });
    } catch (err) {
      console.log(`PostgreSQL skipped: ${(err as Error).message.split("\n")[0]}`);
    } finally {
      await pg?.stop();
    }
  } finally {
    setLogSink((line) => process.stdout.write(line + "\n"));
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) await run();
