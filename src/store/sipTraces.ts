// SIP traces of calls: one row per call, written once when the call's trace is complete (the trace
// recorder buffers the messages in memory meanwhile), pruned by records.sipTraceDays. The messages
// are a JSON array, already masked (no credentials, no SDES keys).
import { createLogger } from "../log.ts";
import type { SqlExecutor } from "./sql.ts";

const log = createLogger("store.sipTraces");

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

interface TraceRow {
  call_id: string;
  bytes: number;
  dropped_messages: number;
  messages: string;
}

export class SipTraceStore {
  constructor(private readonly sql: SqlExecutor) {}

  /** Queued behind earlier writes; a failure is logged (the call is over, nothing waits for it). */
  save(trace: SipTrace, endedAt: number): void {
    this.sql
      .serial(() =>
        this.sql.query(
          `INSERT INTO sip_traces (call_id, ended_at, bytes, dropped_messages, messages) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (call_id) DO UPDATE SET ended_at = excluded.ended_at, bytes = excluded.bytes,
             dropped_messages = excluded.dropped_messages, messages = excluded.messages`,
          [trace.callId, Math.round(endedAt), trace.bytes, trace.droppedMessages, JSON.stringify(trace.messages)],
        ),
      )
      .catch((err: unknown) => log.error("sip trace write failed", { callId: trace.callId, err }));
  }

  async get(callId: string): Promise<SipTrace | undefined> {
    const [row] = await this.sql.serial(() => this.sql.query<TraceRow>("SELECT call_id, bytes, dropped_messages, messages FROM sip_traces WHERE call_id = $1", [callId]));
    if (!row) return undefined;
    return { callId: row.call_id, bytes: Number(row.bytes), droppedMessages: Number(row.dropped_messages), messages: JSON.parse(row.messages) as TracedMessage[] };
  }

  /** Deletes up to `limit` traces of calls that ended before `cutoff`, oldest first; returns how many. */
  async pruneEnded(cutoff: number, limit: number): Promise<number> {
    const deleted = await this.sql.serial(() =>
      this.sql.query<{ call_id: string }>(
        `DELETE FROM sip_traces WHERE call_id IN (SELECT call_id FROM sip_traces WHERE ended_at < $1 ORDER BY ended_at LIMIT $2) RETURNING call_id`,
        [cutoff, limit],
      ),
    );
    return deleted.length;
  }

  /** Resolves once every write queued so far is done. */
  flush(): Promise<void> {
    return this.sql.serial(() => Promise.resolve());
  }
}
