// Call records: one row per call, answered or not, updated in place at every state change, owned by
// the node that handles the call (node_id). In the SQLite file, or in PostgreSQL shared by the
// cluster. Calls never wait for their records: changes are written behind (callRecordWriter.ts),
// one transaction per few milliseconds, and `committed(id)` says when a call's changes are in the
// database (what tells the outside world of an end waits for it). Reads commit what waits first,
// so this node reads its own writes. Records still open when their node died end as
// `interrupted`: the node's own at its next start (closeInterruptedCalls), a dead node's by a
// surviving node (closeCallsOfDeadNodes, after each heartbeat).
import { createLogger } from "../log.ts";
import { metrics } from "../metrics.ts";
import { CallRecordWriter, type CallRecordWriterOptions } from "./callRecordWriter.ts";
import { databaseNowMs } from "./nodes.ts";
import type { SqlExecutor, SqlValue } from "./sql.ts";

const log = createLogger("store.calls");

const startedCalls = metrics.counter("trunkline_calls_started_total", "Calls started (a record made), by direction: its rate is the calls per second.", ["direction"]);
for (const direction of ["inbound", "outbound"] as const) startedCalls.inc({ direction }, 0);
/**
 * The state of every open record this process wrote (a record enters `trying` at create and leaves
 * at `ended`): calls in progress by state, read at scrape time. At most the live calls.
 */
const openRecords = new Map<string, { direction: CallDirection; state: Exclude<CallState, "ended"> }>();
metrics.gauge("trunkline_calls_by_state", "Calls in progress by direction and state (trying, ringing, answered).", ["direction", "state"], () => {
  const counts = new Map<string, number>();
  for (const direction of ["inbound", "outbound"] as const) for (const state of ["trying", "ringing", "answered"]) counts.set(`${direction} ${state}`, 0);
  for (const { direction, state } of openRecords.values()) counts.set(`${direction} ${state}`, counts.get(`${direction} ${state}`)! + 1);
  return [...counts].map(([key, value]) => {
    const [direction, state] = key.split(" ");
    return { labels: { direction: direction!, state: state! }, value };
  });
});

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

/** Records made before nodes have no owner: on SQLite all of them are this process's. */
export const callsNodeMigration = "ALTER TABLE calls ADD COLUMN node_id TEXT";

/** The 3xx chain of an outbound call (JSON), and each trunk's redirect policy; SQLite and PostgreSQL alike. */
export const redirectsMigration = `
ALTER TABLE calls ADD COLUMN redirects TEXT;
ALTER TABLE trunks ADD COLUMN redirects TEXT NOT NULL DEFAULT 'sameTrunk' CHECK (redirects IN ('sameTrunk', 'any', 'off'));
`;

/** Attributes of an inbound call from its INVITE's headers (calls.headersToAttributes), as JSON. */
export const callAttributesMigration = `
ALTER TABLE calls ADD COLUMN attributes TEXT;
`;

/** The same table on PostgreSQL, where the cluster's nodes share it. */
export const postgresCallsMigration = `
CREATE TABLE calls (
  seq BIGSERIAL PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  node_id TEXT NOT NULL,
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
  created_at BIGINT NOT NULL,
  ringing_at BIGINT,
  answered_at BIGINT,
  ended_at BIGINT,
  end_reason TEXT,
  sip_status INTEGER,
  codec TEXT,
  media_stats TEXT
);
CREATE INDEX calls_state ON calls (state, seq);
CREATE INDEX calls_ended_at ON calls (ended_at) WHERE ended_at IS NOT NULL;
CREATE INDEX calls_open_by_node ON calls (node_id) WHERE state != 'ended';
`;

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
  /** Outbound: the 301/302 Contacts looked at, in order, and what became of each (redirects.ts). */
  redirects?: RedirectHop[];
  /** Inbound: attributes from the INVITE's headers (calls.headersToAttributes). */
  attributes?: Record<string, string>;
}

/** One Contact of a 301/302 to an outbound INVITE, and what became of it. */
export interface RedirectHop {
  /** The target that answered the 3xx. */
  from: string;
  status: number;
  /** The Contact's URI. */
  to: string;
  outcome: "followed" | "forbidden" | "loop" | "unresolvable" | "too_many_redirects";
}

export type NewCall = Pick<CallRecord, "id" | "direction" | "from" | "to"> &
  Partial<Pick<CallRecord, "sipCallId" | "trunkId" | "applicationId" | "channelId" | "userId" | "clientId" | "attributes">>;

export type CallUpdate = Partial<
  Pick<CallRecord, "state" | "sipCallId" | "trunkId" | "from" | "to" | "applicationId" | "channelId" | "userId" | "clientId" | "endReason" | "sipStatus" | "codec" | "mediaStats" | "redirects">
>;

/** PostgreSQL returns BIGINT columns as strings. */
type Int = number | string;

interface CallRow {
  seq: Int;
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
  created_at: Int;
  ringing_at: Int | null;
  answered_at: Int | null;
  ended_at: Int | null;
  end_reason: string | null;
  sip_status: number | null;
  codec: string | null;
  media_stats: string | null;
  redirects: string | null;
  attributes: string | null;
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
  redirects: "redirects",
};

/** The timestamp column stamped when a call enters a state (only the first time). */
const stampOf: Partial<Record<CallState, string>> = { ringing: "ringing_at", answered: "answered_at", ended: "ended_at" };

export interface CallListQuery {
  state?: "active" | "ended";
  limit: number;
  /** Opaque: the `nextCursor` of the previous page. */
  cursor?: string;
}

/** Told of every record write as it is queued (the SIP trace recorder follows calls with it). */
export type CallRecordWatcher = (id: string, change: CallUpdate) => void;

export class CallStore {
  private readonly watchers = new Set<CallRecordWatcher>();
  private readonly writer: CallRecordWriter;

  constructor(
    private readonly sql: SqlExecutor,
    /** The node whose calls this store records (cluster.nodeId). */
    private readonly nodeId: string,
    writer: CallRecordWriterOptions = {},
  ) {
    this.writer = new CallRecordWriter(sql, writer);
  }

  /** Returns the function that stops watching. */
  watch(watcher: CallRecordWatcher): () => void {
    this.watchers.add(watcher);
    return () => this.watchers.delete(watcher);
  }

  private tell(id: string, change: CallUpdate): void {
    for (const watcher of this.watchers) {
      try {
        watcher(id, change);
      } catch (err) {
        log.error("call record watcher failed", { err });
      }
    }
  }

  /** Records whose changes wait for the database (queued, or in the transaction being committed). */
  get queuedWrites(): number {
    return this.writer.waiting;
  }

  /** Records a new call (state `trying`); never waits for the database. `initialRecord` is its record. */
  create(call: NewCall, now = Date.now()): void {
    startedCalls.inc({ direction: call.direction });
    openRecords.set(call.id, { direction: call.direction, state: "trying" });
    if (this.watchers.size > 0) this.tell(call.id, { state: "trying", ...(call.sipCallId ? { sipCallId: call.sipCallId } : {}) });
    const columns = new Map<string, SqlValue>([
      ["id", call.id],
      ["node_id", this.nodeId],
      ["direction", call.direction],
      ["state", "trying"],
      ["from_uri", call.from],
      ["to_uri", call.to],
      ["created_at", now],
    ]);
    if (call.sipCallId) columns.set("sip_call_id", call.sipCallId);
    if (call.trunkId) columns.set("trunk_id", call.trunkId);
    if (call.applicationId) columns.set("application_id", call.applicationId);
    if (call.channelId) columns.set("channel_id", call.channelId);
    if (call.userId) columns.set("user_id", call.userId);
    if (call.clientId) columns.set("client_id", call.clientId);
    if (call.attributes && Object.keys(call.attributes).length > 0) columns.set("attributes", JSON.stringify(call.attributes));
    this.writer.insert(call.id, columns, new Map());
  }

  /**
   * Queues the change, coalesced with the call's other changes not yet committed; a state's timestamp
   * is set the first time it is entered. An ended record is final: late updates (a retransmission
   * racing the hang-up, or a node declared dead that was not) cannot reopen it.
   */
  update(id: string, change: CallUpdate, now = Date.now()): void {
    const open = openRecords.get(id);
    if (open && change.state !== undefined) {
      if (change.state === "ended") openRecords.delete(id);
      else open.state = change.state;
    }
    const columns = new Map<string, SqlValue>();
    let key: keyof CallUpdate;
    for (key in change) {
      const value = change[key];
      if (value === undefined) continue;
      // Serialized now: the caller may change its object after.
      columns.set(columnOf[key], key === "mediaStats" || key === "redirects" ? JSON.stringify(value) : (value as string | number));
    }
    const stamp = change.state ? stampOf[change.state] : undefined;
    const stamps = new Map<string, number>(stamp ? [[stamp, now]] : []);
    if (columns.size === 0) return;
    if (this.watchers.size > 0) this.tell(id, change);
    this.writer.update(id, columns, stamps);
  }

  /**
   * Resolves once every change of the call queued so far is committed (true), or given up after
   * failed writes (false, logged). What tells the outside world of a call's end waits for it.
   */
  committed(id: string): Promise<boolean> {
    return this.writer.committed(id);
  }

  async get(id: string): Promise<CallRecord | undefined> {
    const [row] = await this.read<CallRow>("SELECT * FROM calls WHERE id = $1", [id]);
    return row ? toRecord(row) : undefined;
  }

  /** Newest first, every node's calls. */
  async list(query: CallListQuery): Promise<{ calls: CallRecord[]; nextCursor?: string }> {
    const where: string[] = [];
    const values: SqlValue[] = [];
    if (query.state === "active") where.push("state != 'ended'");
    if (query.state === "ended") where.push("state = 'ended'");
    const after = query.cursor !== undefined ? decodeCursor(query.cursor) : undefined;
    if (after !== undefined) {
      values.push(after);
      where.push(`seq < $${values.length}`);
    }
    values.push(query.limit + 1);
    const rows = await this.read<CallRow>(`SELECT * FROM calls ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY seq DESC LIMIT $${values.length}`, values);
    const page = rows.slice(0, query.limit);
    const last = page.at(-1);
    return { calls: page.map(toRecord), ...(rows.length > query.limit && last ? { nextCursor: encodeCursor(Number(last.seq)) } : {}) };
  }

  /**
   * Deletes up to `limit` records of calls that ended before `cutoff` (epoch ms), oldest first, in
   * one statement; records of live calls have no end and are never touched. Returns how many.
   */
  async pruneEnded(cutoff: number, limit: number): Promise<number> {
    // SQLite: `+state` keeps the state check from steering the planner to calls_state (a scan of every ended call).
    const state = this.sql.dialect === "sqlite" ? "+state" : "state";
    const deleted = await this.read<{ seq: Int }>(
      `DELETE FROM calls WHERE seq IN
         (SELECT seq FROM calls WHERE ended_at < $1 AND ${state} = 'ended' ORDER BY ended_at LIMIT $2) RETURNING seq`,
      [cutoff, limit],
    );
    return deleted.length;
  }

  /**
   * At start: this node's calls that were live when it stopped end as `interrupted` (on SQLite,
   * every open record: the file is this process's alone). Returns how many.
   */
  async closeInterruptedCalls(now = Date.now()): Promise<number> {
    const own = this.sql.dialect === "sqlite" ? "" : "AND node_id = $2";
    const closed = await this.read<{ id: string }>(
      `UPDATE calls SET state = 'ended', end_reason = 'interrupted', ended_at = $1 WHERE state != 'ended' ${own} RETURNING id`,
      this.sql.dialect === "sqlite" ? [now] : [now, this.nodeId],
    );
    return closed.length;
  }

  /**
   * The open records of nodes whose heartbeat is older than `deadAfterMs` (database clock) end as
   * `interrupted`. Several survivors may run it at once: the update only touches records still open,
   * so each record is closed once. Returns how many this call closed.
   */
  async closeCallsOfDeadNodes(deadAfterMs: number, now = Date.now()): Promise<number> {
    const closed = await this.read<{ id: string }>(
      `UPDATE calls SET state = 'ended', end_reason = 'interrupted', ended_at = $1
       WHERE state != 'ended' AND node_id IN (SELECT node_id FROM nodes WHERE heartbeat_at < ${databaseNowMs(this.sql)} - $2)
       RETURNING id`,
      [now, deadAfterMs],
    );
    return closed.length;
  }

  /** Resolves once every change queued so far is committed (a failed one stays queued for its retry). */
  flush(): Promise<void> {
    return this.writer.flush();
  }

  /** Commits what waits, then stops retrying (the store is closing). */
  close(): Promise<void> {
    return this.writer.close();
  }

  /**
   * After this node's queued changes are committed, so it reads its own writes. Committing early
   * rather than overlaying the queued changes on what the database returns: a read costs at most
   * one early transaction (of rows due within milliseconds anyway), and filters, order and paging
   * (by seq, which the insert assigns) stay the database's.
   */
  private async read<T>(statement: string, params: SqlValue[]): Promise<T[]> {
    await this.writer.flush();
    return this.sql.serial(() => this.sql.query<T>(statement, params));
  }
}

/** The record `create(call, now)` starts, as `get` would read it back. */
export function initialRecord(call: NewCall, now: number): CallRecord {
  return toRecord({
    seq: 0, id: call.id, direction: call.direction, state: "trying", sip_call_id: call.sipCallId ?? null, trunk_id: call.trunkId ?? null,
    from_uri: call.from, to_uri: call.to, application_id: call.applicationId ?? null, channel_id: call.channelId ?? null,
    user_id: call.userId ?? null, client_id: call.clientId ?? null, created_at: now, ringing_at: null, answered_at: null,
    ended_at: null, end_reason: null, sip_status: null, codec: null, media_stats: null, redirects: null,
    attributes: call.attributes && Object.keys(call.attributes).length > 0 ? JSON.stringify(call.attributes) : null,
  });
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
  const iso = (ms: Int | null) => (ms === null ? undefined : new Date(Number(ms)).toISOString());
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
    createdAt: new Date(Number(row.created_at)).toISOString(),
    ringingAt: iso(row.ringing_at),
    answeredAt: iso(row.answered_at),
    endedAt: iso(row.ended_at),
    endReason: row.end_reason ?? undefined,
    sipStatus: row.sip_status ?? undefined,
    codec: row.codec ?? undefined,
    mediaStats: row.media_stats ? (JSON.parse(row.media_stats) as Record<string, unknown>) : undefined,
    redirects: row.redirects ? (JSON.parse(row.redirects) as RedirectHop[]) : undefined,
    attributes: row.attributes ? (JSON.parse(row.attributes) as Record<string, string>) : undefined,
  };
  return Object.fromEntries(Object.entries(record).filter(([, v]) => v !== undefined)) as unknown as CallRecord;
}
