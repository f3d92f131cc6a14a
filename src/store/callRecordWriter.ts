// Write-behind for call records: a call's state changes are queued here and committed together, one
// transaction per window (CALL_RECORD_WINDOW_MS, or at once when CALL_RECORD_BATCH records wait),
// several changes of one call coalesced into one row write (an insert, or one UPDATE). The calls
// never wait for it; what tells the outside world of a call's end waits for `committed(id)`.
//
// One batch is in flight at a time: while the database commits one (PostgreSQL), the next gathers
// and coalesces, so a slow database makes bigger batches rather than a longer queue of statements.
// A failed batch is retried record by record (a record the database refuses cannot hold back the
// others) with backoff; a record failing MAX_WRITE_ATTEMPTS times is dropped, logged and counted.
// Records waiting are bounded (maxPending): past it, changes of calls not already waiting are
// dropped, counted, logged once per episode.
import { createLogger } from "../log.ts";
import { metrics } from "../metrics.ts";
import type { SqlExecutor, SqlValue } from "./sql.ts";

const log = createLogger("store.calls");

/**
 * How long the first queued change waits for others to share its transaction. Each commit costs the
 * main thread ≈ 200 µs before its rows (WAL frames of the pages it dirties, checkpoints), so this
 * bounds that cost to 50 commits a second; it delays only what waits for the commit (a call's end).
 */
export const CALL_RECORD_WINDOW_MS = 20;
/** This many records waiting are committed at once, without waiting for the window. */
export const CALL_RECORD_BATCH = 500;
/**
 * Records waiting for the database, at most (about 1 KB each): 10 s of 1,000 calls/s from a database
 * that stopped answering. Past it a hung database would grow the heap without end.
 */
export const MAX_PENDING_CALL_RECORDS = 10_000;
/** With the backoff (RETRY_MIN_MS doubling up to RETRY_MAX_MS) about 20 s of a failing database. */
const MAX_WRITE_ATTEMPTS = 10;
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5_000;

const droppedWrites = metrics.counter(
  "trunkline_call_record_writes_dropped_total",
  "Call record writes dropped: the records waiting for the database were at their bound, or a record's write failed every retry.",
);
const batchesCommitted = metrics.counter("trunkline_call_record_batches_total", "Transactions of call record writes committed (each holds the records that changed in one window).");
/** Every open writer (one per store), for the gauge. */
const openWriters = new Set<CallRecordWriter>();
metrics.gauge("trunkline_call_records_waiting", "Call records with changes not yet committed (queued, or in the transaction being committed).", [], () => {
  let waiting = 0;
  for (const writer of openWriters) waiting += writer.waiting;
  return [{ labels: {}, value: waiting }];
});

/** Every column a record's insert names, in order. */
const INSERT_COLUMNS = [
  "id", "node_id", "direction", "state", "sip_call_id", "trunk_id", "from_uri", "to_uri", "application_id", "channel_id", "user_id",
  "client_id", "created_at", "ringing_at", "answered_at", "ended_at", "end_reason", "sip_status", "codec", "media_stats", "redirects", "attributes",
] as const;
const IMMUTABLE_COLUMNS = new Set<string>(["id", "node_id", "created_at"]);
// An upsert: should a commit have landed unseen (the connection lost after COMMIT was sent), the
// retry updates the row it made instead of failing on the id for ever.
const INSERT_STATEMENT = `INSERT INTO calls (${INSERT_COLUMNS.join(", ")}) VALUES (${INSERT_COLUMNS.map((_, i) => `$${i + 1}`).join(", ")})
  ON CONFLICT (id) DO UPDATE SET ${INSERT_COLUMNS.filter((c) => !IMMUTABLE_COLUMNS.has(c)).map((c) => `${c} = excluded.${c}`).join(", ")}
  WHERE calls.state != 'ended'`;

/** The changes of one call not yet committed, coalesced. */
interface PendingRecord {
  id: string;
  /** Not in the database yet: written as an insert of the whole row. */
  isNew: boolean;
  /** Column → latest value. */
  columns: Map<string, SqlValue>;
  /** Timestamp column → when the state was first entered (kept by COALESCE should the row have one). */
  stamps: Map<string, number>;
  attempts: number;
  /** Told true once committed, false once given up. */
  waiters: ((committed: boolean) => void)[];
}

export interface CallRecordWriterOptions {
  maxPending?: number;
  windowMs?: number;
  /** A failed record is given up after this many tries. */
  maxAttempts?: number;
  /** The first retry's delay, doubled at each failed round up to retryMaxMs. */
  retryMinMs?: number;
  retryMaxMs?: number;
}

export class CallRecordWriter {
  private pending = new Map<string, PendingRecord>();
  /** The batch the database is committing. */
  private inFlight = new Map<string, PendingRecord>();
  private round?: Promise<void>;
  private timer?: ReturnType<typeof setTimeout>;
  /** Set while backing off after a failed batch: no round starts before it fires (flush excepted). */
  private retryTimer?: ReturnType<typeof setTimeout>;
  private failedRounds = 0;
  private closing = false;
  /** Changes dropped since the bound was last hit (0: changes are flowing). */
  private droppedThisEpisode = 0;
  private readonly options: Required<CallRecordWriterOptions>;

  constructor(
    private readonly sql: SqlExecutor,
    options: CallRecordWriterOptions = {},
  ) {
    this.options = {
      maxPending: MAX_PENDING_CALL_RECORDS,
      windowMs: CALL_RECORD_WINDOW_MS,
      maxAttempts: MAX_WRITE_ATTEMPTS,
      retryMinMs: RETRY_MIN_MS,
      retryMaxMs: RETRY_MAX_MS,
      ...options,
    };
    openWriters.add(this);
  }

  /** Records whose changes wait for the database (queued or being committed). */
  get waiting(): number {
    return this.pending.size + this.inFlight.size;
  }

  /** A new record: every column of its row. */
  insert(id: string, columns: Map<string, SqlValue>, stamps: Map<string, number>): void {
    this.enqueue(id, true, columns, stamps);
  }

  /** Changes of a record: columns set, and a state's timestamp set the first time it is entered. */
  update(id: string, columns: Map<string, SqlValue>, stamps: Map<string, number>): void {
    this.enqueue(id, false, columns, stamps);
  }

  /** Resolves once every change of `id` queued so far is committed (true), or given up (false). */
  committed(id: string): Promise<boolean> {
    const entry = this.pending.get(id) ?? this.inFlight.get(id);
    if (!entry) return Promise.resolve(true);
    return new Promise((resolve) => entry.waiters.push(resolve));
  }

  /**
   * Commits what waits now, without waiting for the window or a backoff: the batch in flight, then
   * the queued one. Failed records stay queued for their retry.
   */
  async flush(): Promise<void> {
    if (this.round) await this.round;
    if (this.pending.size > 0) await this.startRound();
  }

  /** Flushes, then stops retrying; what could not be written is logged, and later changes are ignored. */
  async close(): Promise<void> {
    this.closing = true;
    await this.flush();
    clearTimeout(this.timer);
    clearTimeout(this.retryTimer);
    this.timer = this.retryTimer = undefined;
    openWriters.delete(this);
    if (this.pending.size > 0) {
      log.error("call records not written at close: the database failed", { records: this.pending.size });
      this.drop([...this.pending.values()]);
      this.pending.clear();
    }
  }

  private enqueue(id: string, isNew: boolean, columns: Map<string, SqlValue>, stamps: Map<string, number>): void {
    if (this.closing) {
      droppedWrites.inc();
      return void log.warn("call record change after the store closed, ignored", { callId: id });
    }
    const existing = this.pending.get(id);
    if (existing) {
      mergeInto(existing, columns, stamps);
    } else {
      if (this.waiting >= this.options.maxPending) {
        droppedWrites.inc();
        if (this.droppedThisEpisode++ === 0) {
          log.error("call record writes dropped: the database is not keeping up", { waiting: this.waiting, maxPending: this.options.maxPending });
        }
        return;
      }
      this.pending.set(id, { id, isNew, columns, stamps, attempts: 0, waiters: [] });
    }
    if (this.round || this.retryTimer) return;
    if (this.pending.size >= CALL_RECORD_BATCH) {
      // A full batch goes at the next turn, not inside whatever the caller is doing (its own transaction).
      clearTimeout(this.timer);
      this.timer = setTimeout(() => void this.startRound(), 0);
    } else {
      this.timer ??= setTimeout(() => void this.startRound(), this.options.windowMs);
    }
  }

  /** Takes the queued records as one batch; the next round starts when it is done. */
  private startRound(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.round) return this.round;
    if (this.pending.size === 0) return Promise.resolve();
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const batch = this.pending;
    this.inFlight = batch;
    this.pending = new Map();
    const round = this.commit([...batch.values()]).then((failed) => {
      this.inFlight = new Map();
      this.round = undefined;
      if (failed.length > 0) this.requeue(failed);
      else this.failedRounds = 0;
      this.afterRound(failed.length > 0);
    });
    this.round = round;
    return round;
  }

  private afterRound(failed: boolean): void {
    if (this.waiting === 0 && this.droppedThisEpisode > 0) {
      log.warn("call record writes flowing again", { dropped: this.droppedThisEpisode });
      this.droppedThisEpisode = 0;
    }
    if (this.pending.size === 0) return;
    if (failed) {
      const delay = Math.min(this.options.retryMaxMs, this.options.retryMinMs * 2 ** (this.failedRounds - 1));
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        void this.startRound();
      }, delay);
    } else {
      // These gathered while the last batch was committed: they have waited a window already.
      void this.startRound();
    }
  }

  /** Commits the batch; returns the records that failed (empty: all committed). */
  private async commit(batch: PendingRecord[]): Promise<PendingRecord[]> {
    try {
      await this.sql.serial(() => this.sql.batch(batch.map(statementOf)));
      batchesCommitted.inc();
      for (const entry of batch) for (const tell of entry.waiters) tell(true);
      return [];
    } catch (err) {
      this.failedRounds++;
      log.error("call record batch failed; its records are retried one by one", { records: batch.length, failedRounds: this.failedRounds, err });
    }
    // One by one: a record the database refuses (a constraint, a value) fails alone. Should the
    // first fail too, the database as a whole is failing: all wait for the retry, the one that
    // failed at the back, so that a record the database refuses cannot hold the others back.
    const failed: PendingRecord[] = [];
    for (const [index, entry] of batch.entries()) {
      try {
        await this.sql.serial(() => this.sql.batch([statementOf(entry)]));
        for (const tell of entry.waiters) tell(true);
      } catch (err) {
        if (index === 0) return [...batch.slice(1), entry];
        log.error("call record write failed", { callId: entry.id, attempt: entry.attempts + 1, err });
        failed.push(entry);
      }
    }
    return failed;
  }

  /** Failed records go back in front of the changes queued since (theirs are newer and win). */
  private requeue(failed: PendingRecord[]): void {
    const given: PendingRecord[] = [];
    const queued = new Map<string, PendingRecord>();
    for (const entry of failed) {
      if (++entry.attempts >= this.options.maxAttempts) {
        given.push(entry);
        continue;
      }
      const newer = this.pending.get(entry.id);
      if (newer) {
        mergeInto(entry, newer.columns, newer.stamps);
        entry.waiters.push(...newer.waiters);
        this.pending.delete(entry.id);
      }
      queued.set(entry.id, entry);
    }
    for (const [id, entry] of this.pending) queued.set(id, entry);
    this.pending = queued;
    if (given.length > 0) {
      log.error("call records dropped: their writes failed every retry", { records: given.length, callIds: given.slice(0, 10).map((e) => e.id) });
      this.drop(given);
    }
  }

  private drop(entries: PendingRecord[]): void {
    droppedWrites.inc({}, entries.length);
    for (const entry of entries) for (const tell of entry.waiters) tell(false);
  }
}

/** Newer changes over older ones; an ended record is final, as the database's `state != 'ended'` makes it. */
function mergeInto(entry: PendingRecord, columns: Map<string, SqlValue>, stamps: Map<string, number>): void {
  if (entry.columns.get("state") === "ended") return;
  for (const [column, value] of columns) entry.columns.set(column, value);
  for (const [column, at] of stamps) if (!entry.stamps.has(column)) entry.stamps.set(column, at);
}

function statementOf(entry: PendingRecord): { sql: string; params: SqlValue[] } {
  if (entry.isNew) {
    return { sql: INSERT_STATEMENT, params: INSERT_COLUMNS.map((c) => entry.columns.get(c) ?? entry.stamps.get(c) ?? null) };
  }
  const sets: string[] = [];
  const params: SqlValue[] = [];
  for (const [column, value] of entry.columns) {
    params.push(value);
    sets.push(`${column} = $${params.length}`);
  }
  for (const [column, at] of entry.stamps) {
    params.push(at);
    sets.push(`${column} = COALESCE(${column}, $${params.length})`);
  }
  params.push(entry.id);
  return { sql: `UPDATE calls SET ${sets.join(", ")} WHERE id = $${params.length} AND state != 'ended'`, params };
}
