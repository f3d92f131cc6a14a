// Per-channel outbound caller-ID templates (display name, From user, P-Asserted-Identity) and
// Privacy, validated on save.
import type { CallerIdInput } from "../config/entities.ts";
import type { ChangeFeed } from "./changes.ts";
import type { SqlExecutor } from "./sql.ts";

export interface CallerIdConfig extends CallerIdInput {
  applicationId: string;
  channelId: string;
  updatedAt: string;
}

export interface CallerIdRow {
  application_id: string;
  channel_id: string;
  display_name: string | null;
  username: string | null;
  asserted_identity: string | null;
  privacy: string | null;
  updated_at: string;
}

/** P-Asserted-Identity and Privacy templates of a channel's outbound calls; SQLite and PostgreSQL alike. */
export const callerIdHeadersMigration = `
ALTER TABLE caller_ids ADD COLUMN asserted_identity TEXT;
ALTER TABLE caller_ids ADD COLUMN privacy TEXT;
`;

function fromRow(row: CallerIdRow): CallerIdConfig {
  const config: CallerIdConfig = { applicationId: row.application_id, channelId: row.channel_id, updatedAt: row.updated_at };
  if (row.display_name !== null) config.displayName = row.display_name;
  if (row.username !== null) config.username = row.username;
  if (row.asserted_identity !== null) config.assertedIdentity = row.asserted_identity;
  if (row.privacy !== null) config.privacy = row.privacy;
  return config;
}

export const selectCallerIds = "SELECT * FROM caller_ids";

const keyOf = (applicationId: string, channelId: string) => `${applicationId}\u0000${channelId}`;

/** Reads come from the in-memory snapshot; writes go to the database, then to the snapshot. */
export class CallerIdStore {
  private readonly byKey = new Map<string, CallerIdConfig>();

  constructor(
    private readonly sql: SqlExecutor,
    private readonly changes: ChangeFeed,
    rows: CallerIdRow[],
  ) {
    this.replace(rows);
  }

  replace(rows: CallerIdRow[]): void {
    this.byKey.clear();
    for (const row of rows) this.byKey.set(keyOf(row.application_id, row.channel_id), fromRow(row));
  }

  async reload(): Promise<void> {
    this.replace(await this.sql.query<CallerIdRow>(selectCallerIds));
  }

  get(applicationId: string, channelId: string): CallerIdConfig | undefined {
    return this.byKey.get(keyOf(applicationId, channelId));
  }

  listByApplication(applicationId: string): CallerIdConfig[] {
    return [...this.byKey.values()]
      .filter((c) => c.applicationId === applicationId)
      .sort((a, b) => (a.channelId < b.channelId ? -1 : a.channelId > b.channelId ? 1 : 0));
  }

  put(applicationId: string, channelId: string, input: CallerIdInput): Promise<CallerIdConfig> {
    return this.sql.serial(async () => {
      const existing = this.get(applicationId, channelId);
      if (
        existing &&
        existing.displayName === input.displayName &&
        existing.username === input.username &&
        existing.assertedIdentity === input.assertedIdentity &&
        existing.privacy === input.privacy
      ) {
        return existing;
      }
      const [row] = await this.sql.query<CallerIdRow>(
        `INSERT INTO caller_ids (application_id, channel_id, display_name, username, asserted_identity, privacy, updated_at)
         VALUES ($1, $2, $3, $4, $6, $7, $5)
         ON CONFLICT (application_id, channel_id) DO UPDATE SET display_name = $3, username = $4, asserted_identity = $6, privacy = $7, updated_at = $5
         RETURNING *`,
        [applicationId, channelId, input.displayName ?? null, input.username ?? null, new Date().toISOString(), input.assertedIdentity ?? null, input.privacy ?? null],
      );
      const config = fromRow(row!);
      this.byKey.set(keyOf(applicationId, channelId), config);
      await this.changes.committed({ entity: "callerId", action: existing ? "updated" : "created", applicationId, channelId });
      return config;
    });
  }

  delete(applicationId: string, channelId: string): Promise<boolean> {
    return this.sql.serial(async () => {
      const deleted =
        (await this.sql.query("DELETE FROM caller_ids WHERE application_id = $1 AND channel_id = $2 RETURNING channel_id", [applicationId, channelId]))
          .length > 0;
      if (!deleted) return false;
      this.byKey.delete(keyOf(applicationId, channelId));
      await this.changes.committed({ entity: "callerId", action: "deleted", applicationId, channelId });
      return true;
    });
  }
}
