// SIP traces of calls: one row per call, written once when the call's trace is complete (the trace
// recorder buffers the messages in memory meanwhile), pruned by records.sipTraceDays. The messages
// are a JSON array, already masked (no credentials, no SDES keys).
//
// Written behind: a saved trace waits up to TRACE_WINDOW_MS (or until TRACE_BATCH wait) and the
// traces of a window are committed in one transaction, so a call no longer costs a commit of its
// own. Nobody is told a trace was stored, so nothing waits for it; reads see a waiting trace
// (read-your-writes), pruning and flush() commit what waits first. One batch is in flight at a time.
import { createLogger } from "../log.ts";
import type { SqlExecutor, SqlValue } from "./sql.ts";

const log = createLogger("store.sipTraces");

/** How long the first waiting trace waits for others to share its transaction. */
export const TRACE_WINDOW_MS = 100;
/** This many traces waiting are committed at once, without waiting for the window. */
export const TRACE_BATCH = 200;

const SAVE_STATEMENT = `INSERT INTO sip_traces (call_id, ended_at, bytes, dropped_messages, messages) VALUES ($1, $2, $3, $4, $5)
  ON CONFLICT (call_id) DO UPDATE SET ended_at = excluded.ended_at, bytes = excluded.bytes,
    dropped_messages = excluded.dropped_messages, messages = excluded.messages`;

export const sipTracesMigration = {
  sqlite: `
    CREATE TABLE sip_traces (
      call_id TEXT PRIMARY KEY,
      ended_at INTEGER NOT NULL,
      bytes INTEGER NOT NULL,
      dropped_messages INTEGER NOT NULL,
      messages TEXT NOT NULL
    ) STRICT;
    CREATE INDEX sip_traces_ended_at ON sip_traces (ended_at);
  `,
  postgres: `
    CREATE TABLE sip_traces (
      call_id TEXT PRIMARY KEY,
      ended_at BIGINT NOT NULL,
      bytes INTEGER NOT NULL,
      dropped_messages INTEGER NOT NULL,
      messages TEXT NOT NULL
    );
    CREATE INDEX sip_traces_ended_at ON sip_traces (ended_at);
  `,
};

/** One SIP message of a call as kept: masked text, both addresses, epoch-millisecond time. */
export interface TracedMessage {
  time: number;
  direction: "sent" | "received";
  transport: "udp" | "tcp" | "tls";
  source: { address: string; port: number };
  destination: { address: string; port: number };
  message: string;
}

export interface SipTrace {
  callId: string;
  messages: TracedMessage[];
  /** Bytes of the messages kept. */
  bytes: number;
  /** Messages not kept because the call's trace reached records.sipTraceMaxBytes. */
  droppedMessages: number;
}

/** A trace as it is saved: its messages already the JSON array of the `messages` column. */
export interface SerializedSipTrace {
  callId: string;
  bytes: number;
  droppedMessages: number;
  messagesJson: string;
}

interface TraceRow {
  call_id: string;
  bytes: number;
  dropped_messages: number;
  messages: string;
}

interface WaitingTrace {
  trace: SerializedSipTrace;
  endedAt: number;
}

export class SipTraceStore {
  /** Saved, not yet in a transaction. */
  private waiting = new Map<string, WaitingTrace>();
  /** In the transaction being committed. */
  private writing = new Map<string, WaitingTrace>();
  private window: ReturnType<typeof setTimeout> | undefined;
  private inFlight: Promise<void> | undefined;

  constructor(private readonly sql: SqlExecutor) {}

  /** Queued for the next batch; a failure is logged (the call is over, nothing waits for it). */
  save(trace: SerializedSipTrace, endedAt: number): void {
    this.waiting.set(trace.callId, { trace, endedAt: Math.round(endedAt) });
    if (this.waiting.size >= TRACE_BATCH) {
      void this.commitWaiting();
      return;
    }
    if (!this.window) {
      this.window = setTimeout(() => void this.commitWaiting(), TRACE_WINDOW_MS);
      this.window.unref?.();
    }
  }

  /** Commits what waits (after the batch in flight); resolves once it is done. */
  private async commitWaiting(): Promise<void> {
    clearTimeout(this.window);
    this.window = undefined;
    while (this.inFlight) await this.inFlight;
    if (this.waiting.size === 0) return;
    this.writing = this.waiting;
    this.waiting = new Map();
    this.inFlight = this.write([...this.writing.values()]).finally(() => {
      this.writing = new Map();
      this.inFlight = undefined;
    });
    await this.inFlight;
  }

  private async write(traces: WaitingTrace[]): Promise<void> {
    const statement = ({ trace, endedAt }: WaitingTrace): { sql: string; params: SqlValue[] } => ({
      sql: SAVE_STATEMENT,
      params: [trace.callId, endedAt, trace.bytes, trace.droppedMessages, trace.messagesJson],
    });
    try {
      await this.sql.batch(traces.map(statement));
    } catch {
      // One trace the database refuses must not take the others with it: each alone, a moment
      // later (SQLite refuses a batch while another transaction is open).
      await Bun.sleep(TRACE_WINDOW_MS);
      for (const waiting of traces) {
        await this.sql.batch([statement(waiting)]).catch((err: unknown) => log.error("sip trace write failed", { callId: waiting.trace.callId, err }));
      }
    }
  }

  async get(callId: string): Promise<SipTrace | undefined> {
    const waiting = this.waiting.get(callId) ?? this.writing.get(callId);
    if (waiting) {
      const { trace } = waiting;
      return { callId, bytes: trace.bytes, droppedMessages: trace.droppedMessages, messages: JSON.parse(trace.messagesJson) as TracedMessage[] };
    }
    const [row] = await this.sql.serial(() => this.sql.query<TraceRow>("SELECT call_id, bytes, dropped_messages, messages FROM sip_traces WHERE call_id = $1", [callId]));
    if (!row) return undefined;
    return { callId: row.call_id, bytes: Number(row.bytes), droppedMessages: Number(row.dropped_messages), messages: JSON.parse(row.messages) as TracedMessage[] };
  }

  /** Deletes up to `limit` traces of calls that ended before `cutoff`, oldest first; returns how many. */
  async pruneEnded(cutoff: number, limit: number): Promise<number> {
    await this.commitWaiting();
    const deleted = await this.sql.serial(() =>
      this.sql.query<{ call_id: string }>(
        `DELETE FROM sip_traces WHERE call_id IN (SELECT call_id FROM sip_traces WHERE ended_at < $1 ORDER BY ended_at LIMIT $2) RETURNING call_id`,
        [cutoff, limit],
      ),
    );
    return deleted.length;
  }

  /** Commits every trace saved so far; resolves once that and every earlier write is done. */
  async flush(): Promise<void> {
    await this.commitWaiting();
    await this.sql.serial(() => Promise.resolve());
  }
}
