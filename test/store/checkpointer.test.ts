import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkpointInBackground } from "../../src/store/checkpointer.ts";
import { openDatabase } from "../../src/store/db.ts";
import { openStore } from "../../src/store/index.ts";
import { until } from "../helpers/until.ts";

const dirs: string[] = [];
function tempDbPath(): string {
  const dir = mkdtempSync(join(tmpdir(), "trunkline-checkpoint-"));
  dirs.push(dir);
  return join(dir, "t.db");
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const autocheckpoint = (db: ReturnType<typeof openDatabase>) => (db.query("PRAGMA wal_autocheckpoint").get() as { wal_autocheckpoint: number }).wal_autocheckpoint;

test("with background checkpoints the WAL reaches the database file from the worker while the main connection never checkpoints; closing commits everything", async () => {
  const path = tempDbPath();
  const store = openStore(path, undefined, { backgroundCheckpoints: true });
  expect(autocheckpoint(store.db)).toBe(0);
  const fileBefore = statSync(path).size;
  const message = "x".repeat(5_000);
  for (let i = 0; i < 300; i++) {
    const messages = [{ time: i, direction: "sent", transport: "udp", source: { address: "127.0.0.1", port: 5060 }, destination: { address: "127.0.0.2", port: 5060 }, message }];
    store.sipTraces.save({ callId: `call-${i}`, bytes: message.length, droppedMessages: 0, messagesJson: JSON.stringify(messages) }, Date.now());
  }
  await store.sipTraces.flush();
  // 300 traces of 5 kB: ≈ 1.5 MB in the WAL, under the 1,000 pages at which SQLite would checkpoint anyway.
  expect(statSync(`${path}-wal`).size).toBeGreaterThan(1_000_000);
  await until(() => statSync(path).size >= fileBefore + 1_000_000, { what: () => ({ file: statSync(path).size, wal: statSync(`${path}-wal`).size }) });
  await store.close();

  const reopened = openStore(path);
  expect((await reopened.sipTraces.get("call-299"))?.messages[0]?.message).toBe(message);
  await reopened.close();
});

test("stopping the background checkpoints gives them back to the main connection", async () => {
  const db = openDatabase(tempDbPath());
  const checkpointer = checkpointInBackground(db, db.filename);
  expect(autocheckpoint(db)).toBe(0);
  await checkpointer.stop();
  expect(autocheckpoint(db)).toBe(1000);
  db.close();
});

test("under writes a millisecond apart the WAL stays bounded: past its limit the worker restarts it", async () => {
  const db = openDatabase(tempDbPath());
  db.run("CREATE TABLE blobs (b TEXT)");
  const checkpointer = checkpointInBackground(db, db.filename, 5, 256); // restart past 1 MiB of WAL
  const insert = db.prepare("INSERT INTO blobs (b) VALUES (?)");
  const row = "y".repeat(100_000);
  let written = 0;
  let walHighWater = 0;
  // Commits of 100 kB a millisecond apart (the record and trace writers commit every 20 and 100 ms),
  // too close for the WAL to start over by itself after a passive checkpoint, until the worker's
  // checkpoints have put 60 MB into the database file. Without the restart the WAL would hold
  // everything written.
  while (statSync(db.filename).size < 60_000_000) {
    insert.run(row);
    written += row.length;
    walHighWater = Math.max(walHighWater, statSync(`${db.filename}-wal`).size);
    await Bun.sleep(1);
  }
  await checkpointer.stop();
  db.close();
  expect(walHighWater).toBeLessThan(written / 4);
});
