// Checkpoints of the SQLite WAL on a thread of their own. By default SQLite checkpoints inside the
// commit that takes the WAL past 1,000 pages: on the main thread, copying every page the WAL holds
// into the database file and syncing it, which stalls the main thread 15–30 ms on a real disk (every
// second or two at 1,000 calls/s: the call records and SIP traces) and costs it ≈ 40 µs of CPU per
// call. Here the main connection never checkpoints (wal_autocheckpoint = 0) and a worker with its
// own connection runs a PASSIVE checkpoint every CHECKPOINT_INTERVAL_MS, which never blocks a writer
// or a reader. Durability is unchanged: a commit is in the WAL when it returns.
// The WAL starts over only when a write begins after a checkpoint has copied all of it; a commit
// landing while a passive checkpoint runs leaves frames behind, so under steady writes the WAL can
// grow. Past MAX_WAL_PAGES the worker checkpoints in RESTART mode instead, which makes the next
// commit wait for it (as every checkpoint did before) and starts the WAL over: a bound, rarely met.
// Should the worker fail, the main connection checkpoints by itself again.
//
// The worker is a few lines of source made into a blob URL, so the compiled executable needs no
// entrypoint of its own for it (bun:sqlite is built in).
import type { Database } from "bun:sqlite";
import { createLogger } from "../log.ts";

const log = createLogger("store");

/** About 1–3 MB of WAL at 1,000 calls/s between two checkpoints. */
export const CHECKPOINT_INTERVAL_MS = 250;
/** 64 MiB of WAL at SQLite's 4 KiB pages. */
export const MAX_WAL_PAGES = 16_384;
const DEFAULT_AUTOCHECKPOINT_PAGES = 1000;

const WORKER_SOURCE = `
import { Database } from "bun:sqlite";
let db, timer;
self.onmessage = (event) => {
  const m = event.data;
  if (m.t === "start") {
    db = new Database(m.path);
    db.run("PRAGMA busy_timeout = 5000");
    timer = setInterval(() => {
      const { log } = db.query("PRAGMA wal_checkpoint(PASSIVE)").get();
      if (log > m.maxWalPages) db.run("PRAGMA wal_checkpoint(RESTART)");
    }, m.intervalMs);
  } else if (m.t === "stop") {
    clearInterval(timer);
    db?.close();
    postMessage({ t: "stopped" });
  }
};
`;

let workerUrl: string | undefined;

export interface Checkpointer {
  /** Stops the worker's checkpoints (resolves once its connection is closed) and gives them back to `db`. */
  stop(): Promise<void>;
}

export function checkpointInBackground(db: Database, path: string, intervalMs = CHECKPOINT_INTERVAL_MS, maxWalPages = MAX_WAL_PAGES): Checkpointer {
  workerUrl ??= URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "application/javascript" }));
  const worker = new Worker(workerUrl, { ref: false });
  db.run("PRAGMA wal_autocheckpoint = 0");
  let running = true;
  const fallBack = (reason: string) => {
    if (!running) return;
    running = false;
    log.error("WAL checkpoints back on the main thread", { reason });
    db.run(`PRAGMA wal_autocheckpoint = ${DEFAULT_AUTOCHECKPOINT_PAGES}`);
    worker.terminate();
  };
  worker.addEventListener("error", (event) => fallBack(event.message));
  worker.postMessage({ t: "start", path, intervalMs, maxWalPages });
  return {
    stop() {
      if (!running) return Promise.resolve();
      running = false;
      db.run(`PRAGMA wal_autocheckpoint = ${DEFAULT_AUTOCHECKPOINT_PAGES}`);
      return new Promise((resolve) => {
        const done = () => {
          worker.terminate();
          resolve();
        };
        worker.addEventListener("message", done, { once: true });
        worker.addEventListener("error", done, { once: true });
        worker.postMessage({ t: "stop" });
      });
    },
  };
}
