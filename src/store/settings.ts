// Deployment-level settings kept as validated JSON values under a key; today: the webhooks.
import type { Database } from "bun:sqlite";
import type { WebhooksInput } from "../config/entities.ts";
import type { ChangeFeed, Source } from "./changes.ts";

export interface WebhookSettings extends WebhooksInput {
  source: Source;
  updatedAt: string;
}

interface SettingRow {
  source: Source;
  value: string;
  updated_at: string;
}

const WEBHOOKS = "webhooks";

export class SettingsStore {
  constructor(
    private readonly db: Database,
    private readonly changes: ChangeFeed,
  ) {}

  /** The configured webhooks, or undefined when none were ever set. */
  webhooks(): WebhookSettings | undefined {
    const row = this.db.query<SettingRow, { key: string }>("SELECT * FROM settings WHERE key = $key").get({ key: WEBHOOKS });
    if (!row) return undefined;
    return { ...(JSON.parse(row.value) as WebhooksInput), source: row.source, updatedAt: row.updated_at };
  }

  putWebhooks(input: WebhooksInput, source: Source): WebhookSettings {
    const existing = this.webhooks();
    const value = JSON.stringify(input);
    if (existing && existing.source === source && JSON.stringify(withoutMeta(existing)) === value) return existing;
    this.db
      .query(
        `INSERT INTO settings (key, source, value, updated_at) VALUES ($key, $source, $value, $now)
         ON CONFLICT (key) DO UPDATE SET source = $source, value = $value, updated_at = $now`,
      )
      .run({ key: WEBHOOKS, source, value, now: new Date().toISOString() });
    this.changes.emit({ entity: "webhooks", action: existing ? "updated" : "created" });
    return this.webhooks()!;
  }

  deleteWebhooks(): boolean {
    const deleted = this.db.query("DELETE FROM settings WHERE key = $key").run({ key: WEBHOOKS }).changes > 0;
    if (deleted) this.changes.emit({ entity: "webhooks", action: "deleted" });
    return deleted;
  }
}

function withoutMeta(settings: WebhookSettings): WebhooksInput {
  const { source: _source, updatedAt: _updatedAt, ...input } = settings;
  return input;
}
