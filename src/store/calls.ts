// Call records: one row per call, answered or not, updated in place at every state change. Each
// change is its own committed statement (WAL), so a kill -9 loses nothing that was written; calls
// still open when the process died are closed as `interrupted` by closeInterruptedCalls at start.
import type { Database, Statement } from "bun:sqlite";

/** Appended to the store's migration list. */
export const callsMigration = `
CREATE TABLE calls (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  direction TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
  state TEXT NOT NULL,
  sip_call_id TEXT,
  trunk_id TEXT,
  from_uri TEXT NOT NULL,
  to_uri TEXT NOT NULL,
  application_id TEXT,
  channel_id TEXT,
  user_id TEXT,
  client_id TEXT,
  created_at INTEGER NOT NULL,
  ringing_at INTEGER,
  answered_at INTEGER,
  ended_at INTEGER,
  end_reason TEXT,
  sip_status INTEGER,
  codec TEXT,
  media_stats TEXT
);
CREATE INDEX calls_state ON calls (state, seq);
`;

/** Retention prunes by end time: each batch is a range read of this index, whatever the table size. */
export const callsEndedAtMigration = "CREATE INDEX calls_ended_at ON calls (ended_at) WHERE ended_at IS NOT NULL";

export type CallDirection = "inbound" | "outbound";
/** `trying`: routing / trunk choice / INVITE sent; `ringing`: 18x; `answered`; `ended`. */
export type CallState = "trying" | "ringing" | "answered" | "ended";

export interface CallRecord {
  id: string;
  direction: CallDirection;
  state: CallState;
  sipCallId?: string;
  trunkId?: string;
  from: string;
  to: string;
  applicationId?: string;
  channelId?: string;
  userId?: string;
  clientId?: string;
  createdAt: string;
  ringingAt?: string;
  answeredAt?: string;
  endedAt?: string;
  endReason?: string;
  sipStatus?: number;
  codec?: string;
  mediaStats?: Record<string, unknown>;
}

export type NewCall = Pick<CallRecord, "id" | "direction" | "from" | "to"> &
  Partial<Pick<CallRecord, "sipCallId" | "trunkId" | "applicationId" | "channelId" | "userId" | "clientId">>;

export type CallUpdate = Partial<
  Pick<CallRecord, "state" | "sipCallId" | "trunkId" | "from" | "to" | "applicationId" | "channelId" | "userId" | "clientId" | "endReason" | "sipStatus" | "codec" | "mediaStats">
>;

interface CallRow {
  seq: number;
  id: string;
  direction: CallDirection;
  state: CallState;
  sip_call_id: string | null;
  trunk_id: string | null;
  from_uri: string;
  to_uri: string;
  application_id: string | null;
  channel_id: string | null;
  user_id: string | null;
  client_id: string | null;
  created_at: number;
  ringing_at: number | null;
  answered_at: number | null;
  ended_at: number | null;
  end_reason: string | null;
  sip_status: number | null;
  codec: string | null;
  media_stats: string | null;
}

const columnOf: Record<keyof CallUpdate, string> = {
  state: "state",
  sipCallId: "sip_call_id",
  trunkId: "trunk_id",
  from: "from_uri",
  to: "to_uri",
  applicationId: "application_id",
  channelId: "channel_id",
  userId: "user_id",
  clientId: "client_id",
  endReason: "end_reason",
  sipStatus: "sip_status",
  codec: "codec",
  mediaStats: "media_stats",
};

/** The timestamp column stamped when a call enters a state (only the first time). */
const stampOf: Partial<Record<CallState, string>> = { ringing: "ringing_at", answered: "answered_at", ended: "ended_at" };

export interface CallListQuery {
  state?: "active" | "ended";
  limit: number;
  /** Opaque: the `nextCursor` of the previous page. */
  cursor?: string;
}

export class CallStore {
  private readonly insert: Statement;
  private readonly byId: Statement<CallRow, [string]>;
  private readonly pruneStatement: Statement;

  constructor(private readonly db: Database) {
    this.insert = db.prepare(
      `INSERT INTO calls (id, direction, state, sip_call_id, trunk_id, from_uri, to_uri, application_id, channel_id, user_id, client_id, created_at)
       VALUES (?, ?, 'trying', ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.byId = db.prepare<CallRow, [string]>("SELECT * FROM calls WHERE id = ?");
    // `+state`: the state check must not steer the planner to calls_state (a scan of every ended call).
    this.pruneStatement = db.prepare(
      `DELETE FROM calls WHERE seq IN
         (SELECT seq FROM calls WHERE ended_at < ? AND +state = 'ended' ORDER BY ended_at LIMIT ?)`,
    );
  }

  create(call: NewCall, now = Date.now()): CallRecord {
    this.insert.run(
      call.id, call.direction, call.sipCallId ?? null, call.trunkId ?? null, call.from, call.to,
      call.applicationId ?? null, call.channelId ?? null, call.userId ?? null, call.clientId ?? null, now,
    );
    return this.get(call.id)!;
  }

  /** Applies the change in one committed statement; a state's timestamp is set the first time it is entered. */
  update(id: string, change: CallUpdate, now = Date.now()): void {
    const sets: string[] = [];
    const values: (string | number | null)[] = [];
    for (const [key, value] of Object.entries(change) as [keyof CallUpdate, unknown][]) {
      if (value === undefined) continue;
      sets.push(`${columnOf[key]} = ?`);
      values.push(key === "mediaStats" ? JSON.stringify(value) : (value as string | number));
    }
    const stamp = change.state ? stampOf[change.state] : undefined;
    if (stamp) {
      sets.push(`${stamp} = COALESCE(${stamp}, ?)`);
      values.push(now);
    }
    if (sets.length === 0) return;
    // An ended record is final: late updates (a retransmission racing the hang-up) cannot reopen it.
    this.db.prepare(`UPDATE calls SET ${sets.join(", ")} WHERE id = ? AND state != 'ended'`).run(...values, id);
  }

  get(id: string): CallRecord | undefined {
    const row = this.byId.get(id);
    return row ? toRecord(row) : undefined;
  }

  /** Newest first. */
  list(query: CallListQuery): { calls: CallRecord[]; nextCursor?: string } {
    const where: string[] = [];
    const values: (string | number)[] = [];
    if (query.state === "active") where.push("state != 'ended'");
    if (query.state === "ended") where.push("state = 'ended'");
    const after = query.cursor !== undefined ? decodeCursor(query.cursor) : undefined;
    if (after !== undefined) {
      where.push("seq < ?");
      values.push(after);
    }
    const sql = `SELECT * FROM calls ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY seq DESC LIMIT ?`;
    const rows = this.db.prepare<CallRow, (string | number)[]>(sql).all(...values, query.limit + 1);
    const page = rows.slice(0, query.limit);
    const last = page.at(-1);
    return { calls: page.map(toRecord), ...(rows.length > query.limit && last ? { nextCursor: encodeCursor(last.seq) } : {}) };
  }

  /**
   * Deletes up to `limit` records of calls that ended before `cutoff` (epoch ms), oldest first, in
   * one statement; records of live calls have no end and are never touched. Returns how many.
   */
  pruneEnded(cutoff: number, limit: number): number {
    return this.pruneStatement.run(cutoff, limit).changes;
  }

  /** At start: calls that were live when the process died end as `interrupted`. Returns how many. */
  closeInterruptedCalls(now = Date.now()): number {
    return this.db.prepare("UPDATE calls SET state = 'ended', end_reason = 'interrupted', ended_at = ? WHERE state != 'ended'").run(now).changes;
  }
}

/** Whether `cursor` is one this store produced (the API answers 400 otherwise). */
export function isValidCursor(cursor: string): boolean {
  return decodeCursor(cursor) !== undefined;
}

function encodeCursor(seq: number): string {
  return Buffer.from(`c${seq}`).toString("base64url");
}

function decodeCursor(cursor: string): number | undefined {
  const match = /^c(\d{1,15})$/.exec(Buffer.from(cursor, "base64url").toString());
  return match ? Number(match[1]) : undefined;
}

function toRecord(row: CallRow): CallRecord {
  const iso = (ms: number | null) => (ms === null ? undefined : new Date(ms).toISOString());
  const record: CallRecord = {
    id: row.id,
    direction: row.direction,
    state: row.state,
    sipCallId: row.sip_call_id ?? undefined,
    trunkId: row.trunk_id ?? undefined,
    from: row.from_uri,
    to: row.to_uri,
    applicationId: row.application_id ?? undefined,
    channelId: row.channel_id ?? undefined,
    userId: row.user_id ?? undefined,
    clientId: row.client_id ?? undefined,
    createdAt: new Date(row.created_at).toISOString(),
    ringingAt: iso(row.ringing_at),
    answeredAt: iso(row.answered_at),
    endedAt: iso(row.ended_at),
    endReason: row.end_reason ?? undefined,
    sipStatus: row.sip_status ?? undefined,
    codec: row.codec ?? undefined,
    mediaStats: row.media_stats ? (JSON.parse(row.media_stats) as Record<string, unknown>) : undefined,
  };
  return Object.fromEntries(Object.entries(record).filter(([, v]) => v !== undefined)) as unknown as CallRecord;
}
