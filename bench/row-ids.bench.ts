// The ids of rows written at call rate (src/store/ids.ts): random (UUIDv4, as call and recording ids
// were) against time-ordered (UUIDv7), side by side in alternating rounds. Each call is written as
// the node writes it: its record through the store's write-behind (created, answered, ended) and its
// SIP trace (six messages, ≈ 5 KB), both committed in transactions of BATCH calls, on a SQLite file
// with the production schema (WAL; checkpoints as SQLite makes them by default, so their copying is
// counted). Reported: CPU per call of this process, and the bytes it wrote per call (/proc's wchar:
// the WAL's frames and the checkpoints' copies into the database file).
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setLogSink } from "../src/log.ts";
import { CallStore } from "../src/store/calls.ts";
import { openDatabase } from "../src/store/db.ts";
import { timeOrderedId } from "../src/store/ids.ts";
import { SipTraceStore, type TracedMessage } from "../src/store/sipTraces.ts";
import { SqliteExecutor } from "../src/store/sql.ts";

const CALLS = 40_000;
/** Calls per transaction: 100 ms of SIP traces at 800 calls/s. */
const BATCH = 80;
const ROUNDS = 2;

const message = (method: string): TracedMessage => ({
  time: Date.now(),
  direction: "received",
  transport: "udp",
  source: { address: "192.0.2.10", port: 5060 },
  destination: { address: "192.0.2.20", port: 5060 },
  message: `${method} sip:7000@192.0.2.20:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1\r\n${"X-Filler: header of a real message\r\n".repeat(20)}\r\n`,
});
const MESSAGES = ["INVITE", "SIP/2.0 180", "SIP/2.0 200", "ACK", "BYE", "SIP/2.0 200"].map(message);
const BYTES = MESSAGES.reduce((sum, m) => sum + m.message.length, 0);

/** Bytes this process has passed to write(2) and its kin so far. */
function bytesWritten(): number {
  return Number(/^wchar: (\d+)$/m.exec(readFileSync("/proc/self/io", "utf8"))?.[1] ?? NaN);
}

const random = (prefix: string) => `${prefix}_${randomUUID().replace(/-/g, "")}`;

/** CPU µs and bytes written per call for CALLS calls with ids from `id`, on a new database file. */
async function perCall(dir: string, name: string, id: (prefix: string) => string): Promise<{ cpuUs: number; bytes: number }> {
  const path = join(dir, `${name}.db`);
  const db = openDatabase(path);
  const sql = new SqliteExecutor(db);
  const calls = new CallStore(sql, "bench");
  const traces = new SipTraceStore(sql);
  const written0 = bytesWritten();
  const cpu0 = process.cpuUsage();
  for (let made = 0; made < CALLS; made += BATCH) {
    for (let k = 0; k < BATCH; k++) {
      const callId = id("call");
      calls.create({ id: callId, direction: "inbound", from: "sip:+15551230000@carrier.example", to: "sip:7000@trunkline.example", sipCallId: `${callId}@carrier`, trunkId: "carrier" });
      calls.update(callId, { state: "answered", codec: "PCMU" });
      calls.update(callId, { state: "ended", endReason: "remote_bye", mediaStats: { packetsReceived: 50, packetsSent: 50, packetsLost: 0, jitterMs: 1 } });
      traces.save({ callId, messagesJson: JSON.stringify(MESSAGES), bytes: BYTES, droppedMessages: 0 }, Date.now());
    }
    await calls.flush();
    await traces.flush();
  }
  const used = process.cpuUsage(cpu0);
  const bytes = bytesWritten() - written0;
  db.close();
  return { cpuUs: (used.user + used.system) / CALLS, bytes: bytes / CALLS };
}

export async function run(): Promise<void> {
  setLogSink(() => undefined);
  const dir = mkdtempSync(join(tmpdir(), "trunkline-row-ids-bench-"));
  const rows: Record<string, { cpuUs: number; bytes: number }[]> = { "random (UUIDv4)": [], "time-ordered (UUIDv7)": [] };
  try {
    for (let round = 0; round < ROUNDS; round++) {
      rows["random (UUIDv4)"]!.push(await perCall(dir, `random-${round}`, random));
      rows["time-ordered (UUIDv7)"]!.push(await perCall(dir, `ordered-${round}`, timeOrderedId));
    }
  } finally {
    setLogSink((line) => process.stdout.write(line + "\n"));
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`${CALLS.toLocaleString("en")} calls (record + ${BYTES.toLocaleString("en")}-byte SIP trace each), ${BATCH} per transaction, ${ROUNDS} alternating rounds:`);
  for (const [label, values] of Object.entries(rows)) {
    console.log(`  ${label.padEnd(24)} CPU per call ${values.map((v) => `${v.cpuUs.toFixed(1)} µs`).join(", ")}; written per call ${values.map((v) => `${(v.bytes / 1024).toFixed(1)} KiB`).join(", ")}`);
  }
  const best = (values: { cpuUs: number }[]) => Math.min(...values.map((v) => v.cpuUs));
  console.log(`  random / time-ordered, CPU per call (best of each): ${(best(rows["random (UUIDv4)"]!) / best(rows["time-ordered (UUIDv7)"]!)).toFixed(2)}×`);
}

if (import.meta.main) await run();
