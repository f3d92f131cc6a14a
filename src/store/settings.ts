// Deployment-level settings kept as validated JSON values under a key; today: the webhooks.
import type { WebhooksInput } from "../config/entities.ts";
import type { ChangeFeed, Source } from "./changes.ts";
import type { SqlExecutor } from "./sql.ts";

export interface WebhookSettings extends WebhooksInput {
  source: Source;
  updatedAt: string;
}

export interface SettingRow {
  key: string;
  source: Source;
  value: string;
  updated_at: string;
}

const WEBHOOKS = "webhooks";

export const selectSettings = "SELECT * FROM settings";

/** Reads come from the in-memory snapshot; writes go to the database, then to the snapshot. */
export class SettingsStore {
  private current: WebhookSettings | undefined;

  constructor(
    private readonly sql: SqlExecutor,
    private readonly changes: ChangeFeed,
    rows: SettingRow[],
  ) {
    this.replace(rows);
  }

  replace(rows: SettingRow[]): void {
    const row = rows.find((r) => r.key === WEBHOOKS);
    this.current = row ? { ...(JSON.parse(row.value) as WebhooksInput), source: row.source, updatedAt: row.updated_at } : undefined;
  }

  async reload(): Promise<void> {
    this.replace(await this.sql.query<SettingRow>(selectSettings));
  }

  /** The configured webhooks, or undefined when none were ever set. */
  webhooks(): WebhookSettings | undefined {
    return this.current;
  }

  putWebhooks(input: WebhooksInput, source: Source): Promise<WebhookSettings> {
    return this.sql.serial(async () => {
      const existing = this.webhooks();
      const value = JSON.stringify(input);
      if (existing && existing.source === source && JSON.stringify(withoutMeta(existing)) === value) return existing;
      const rows = await this.sql.query<SettingRow>(
        `INSERT INTO settings (key, source, value, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (key) DO UPDATE SET source = $2, value = $3, updated_at = $4
         RETURNING *`,
        [WEBHOOKS, source, value, new Date().toISOString()],
      );
      this.replace(rows);
      await this.changes.committed({ entity: "webhooks", action: existing ? "updated" : "created" });
      return this.current!;
    });
  }

  deleteWebhooks(): Promise<boolean> {
    return this.sql.serial(async () => {
      const deleted = (await this.sql.query("DELETE FROM settings WHERE key = $1 RETURNING key", [WEBHOOKS])).length > 0;
      if (!deleted) return false;
      this.current = undefined;
      await this.changes.committed({ entity: "webhooks", action: "deleted" });
      return true;
    });
  }
}

function withoutMeta(settings: WebhookSettings): WebhooksInput {
  const { source: _source, updatedAt: _updatedAt, ...input } = settings;
  return input;
}
