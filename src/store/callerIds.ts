// Per-channel outbound caller-ID templates (display name and From user), validated on save.
import type { Database } from "bun:sqlite";
import type { CallerIdInput } from "../config/entities.ts";
import type { ChangeFeed } from "./changes.ts";

export interface CallerIdConfig extends CallerIdInput {
  applicationId: string;
  channelId: string;
  updatedAt: string;
}

interface CallerIdRow {
  application_id: string;
  channel_id: string;
  display_name: string | null;
  username: string | null;
  updated_at: string;
}

function fromRow(row: CallerIdRow): CallerIdConfig {
  const config: CallerIdConfig = { applicationId: row.application_id, channelId: row.channel_id, updatedAt: row.updated_at };
  if (row.display_name !== null) config.displayName = row.display_name;
  if (row.username !== null) config.username = row.username;
  return config;
}

export class CallerIdStore {
  constructor(
    private readonly db: Database,
    private readonly changes: ChangeFeed,
  ) {}

  get(applicationId: string, channelId: string): CallerIdConfig | undefined {
    const row = this.db
      .query<CallerIdRow, { app: string; channel: string }>("SELECT * FROM caller_ids WHERE application_id = $app AND channel_id = $channel")
      .get({ app: applicationId, channel: channelId });
    return row ? fromRow(row) : undefined;
  }

  listByApplication(applicationId: string): CallerIdConfig[] {
    return this.db
      .query<CallerIdRow, { app: string }>("SELECT * FROM caller_ids WHERE application_id = $app ORDER BY channel_id")
      .all({ app: applicationId })
      .map(fromRow);
  }

  put(applicationId: string, channelId: string, input: CallerIdInput): CallerIdConfig {
    const existing = this.get(applicationId, channelId);
    if (existing && existing.displayName === input.displayName && existing.username === input.username) return existing;
    this.db
      .query(
        `INSERT INTO caller_ids (application_id, channel_id, display_name, username, updated_at)
         VALUES ($app, $channel, $displayName, $username, $now)
         ON CONFLICT (application_id, channel_id) DO UPDATE SET display_name = $displayName, username = $username, updated_at = $now`,
      )
      .run({
        app: applicationId,
        channel: channelId,
        displayName: input.displayName ?? null,
        username: input.username ?? null,
        now: new Date().toISOString(),
      });
    this.changes.emit({ entity: "callerId", action: existing ? "updated" : "created", applicationId, channelId });
    return this.get(applicationId, channelId)!;
  }

  delete(applicationId: string, channelId: string): boolean {
    const deleted =
      this.db
        .query("DELETE FROM caller_ids WHERE application_id = $app AND channel_id = $channel")
        .run({ app: applicationId, channel: channelId }).changes > 0;
    if (deleted) this.changes.emit({ entity: "callerId", action: "deleted", applicationId, channelId });
    return deleted;
  }
}
