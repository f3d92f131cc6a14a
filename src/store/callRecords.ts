// One row per call, answered or not. The call layer adds columns with later migrations and
// extends this module; rows are written as the call progresses so a crash loses no ended call.
import type { Database } from "bun:sqlite";

export type CallDirection = "inbound" | "outbound";

export interface CallRecord {
  id: string;
  direction: CallDirection;
  state: string;
  trunkId?: string;
  applicationId?: string;
  channelId?: string;
  fromUri?: string;
  toUri?: string;
  sipCallId?: string;
  startedAt: string;
  answeredAt?: string;
  endedAt?: string;
  endReason?: string;
}

interface CallRecordRow {
  id: string;
  direction: CallDirection;
  state: string;
  trunk_id: string | null;
  application_id: string | null;
  channel_id: string | null;
  from_uri: string | null;
  to_uri: string | null;
  sip_call_id: string | null;
  started_at: string;
  answered_at: string | null;
  ended_at: string | null;
  end_reason: string | null;
}

const columns: Record<Exclude<keyof CallRecord, "id">, keyof CallRecordRow> = {
  direction: "direction",
  state: "state",
  trunkId: "trunk_id",
  applicationId: "application_id",
  channelId: "channel_id",
  fromUri: "from_uri",
  toUri: "to_uri",
  sipCallId: "sip_call_id",
  startedAt: "started_at",
  answeredAt: "answered_at",
  endedAt: "ended_at",
  endReason: "end_reason",
};

function fromRow(row: CallRecordRow): CallRecord {
  const record: Record<string, unknown> = { id: row.id };
  for (const [field, column] of Object.entries(columns)) {
    const value = row[column];
    if (value !== null) record[field] = value;
  }
  return record as unknown as CallRecord;
}

export class CallRecordStore {
  constructor(private readonly db: Database) {}

  insert(record: CallRecord): void {
    const fields = Object.keys(columns) as (keyof typeof columns)[];
    const names = ["id", ...fields.map((f) => columns[f])];
    const params: Record<string, string | null> = { id: record.id };
    for (const f of fields) params[columns[f]] = record[f] ?? null;
    this.db
      .query(`INSERT INTO call_records (${names.join(", ")}) VALUES (${names.map((n) => `$${n}`).join(", ")})`)
      .run(params);
  }

  update(id: string, changes: Partial<Omit<CallRecord, "id">>): boolean {
    const entries = Object.entries(changes).filter(([, v]) => v !== undefined) as [keyof typeof columns, string][];
    if (entries.length === 0) return this.get(id) !== undefined;
    const params: Record<string, string> = { id };
    for (const [field, value] of entries) params[columns[field]] = value;
    const sets = entries.map(([field]) => `${columns[field]} = $${columns[field]}`).join(", ");
    return this.db.query(`UPDATE call_records SET ${sets} WHERE id = $id`).run(params).changes > 0;
  }

  get(id: string): CallRecord | undefined {
    const row = this.db.query<CallRecordRow, { id: string }>("SELECT * FROM call_records WHERE id = $id").get({ id });
    return row ? fromRow(row) : undefined;
  }

  /** Newest first; `before` is the startedAt/id cursor of the last row of the previous page. */
  list(options: { limit: number; before?: { startedAt: string; id: string } }): CallRecord[] {
    const { limit, before } = options;
    const rows = before
      ? this.db
          .query<CallRecordRow, { at: string; id: string; limit: number }>(
            `SELECT * FROM call_records WHERE (started_at, id) < ($at, $id) ORDER BY started_at DESC, id DESC LIMIT $limit`,
          )
          .all({ at: before.startedAt, id: before.id, limit })
      : this.db
          .query<CallRecordRow, { limit: number }>("SELECT * FROM call_records ORDER BY started_at DESC, id DESC LIMIT $limit")
          .all({ limit });
    return rows.map(fromRow);
  }
}
