// Application rows (tenants); the shared secret signs client tokens and is never returned by the API.
import type { ApplicationInput } from "../config/entities.ts";
import type { ChangeFeed, Source } from "./changes.ts";
import type { SqlExecutor } from "./sql.ts";

export interface Application extends ApplicationInput {
  source: Source;
  createdAt: string;
  updatedAt: string;
}

export interface ApplicationRow {
  id: string;
  source: Source;
  name: string;
  shared_secret: string;
  max_duration_sec: number | null;
  created_at: string;
  updated_at: string;
}

const fromRow = (row: ApplicationRow): Application => ({
  id: row.id,
  name: row.name,
  sharedSecret: row.shared_secret,
  ...(row.max_duration_sec !== null ? { maxDurationSec: row.max_duration_sec } : {}),
  source: row.source,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

export const selectApplications = "SELECT * FROM applications";

/** Reads come from the in-memory snapshot; writes go to the database, then to the snapshot. */
export class ApplicationStore {
  private readonly byId = new Map<string, Application>();

  constructor(
    private readonly sql: SqlExecutor,
    private readonly changes: ChangeFeed,
    rows: ApplicationRow[],
    /** Reloads what a deleted application takes with it (its inbound routes and caller-ID configs). */
    private readonly reloadCascade: () => Promise<void>,
  ) {
    this.replace(rows);
  }

  replace(rows: ApplicationRow[]): void {
    this.byId.clear();
    for (const row of rows) this.byId.set(row.id, fromRow(row));
  }

  async reload(): Promise<void> {
    this.replace(await this.sql.query<ApplicationRow>(selectApplications));
  }

  list(): Application[] {
    return [...this.byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  get(id: string): Application | undefined {
    return this.byId.get(id);
  }

  put(input: ApplicationInput, source: Source): Promise<Application> {
    return this.sql.serial(async () => {
      const existing = this.get(input.id);
      if (existing && existing.source === source && existing.name === input.name && existing.sharedSecret === input.sharedSecret && existing.maxDurationSec === input.maxDurationSec) {
        return existing;
      }
      const [row] = await this.sql.query<ApplicationRow>(
        `INSERT INTO applications (id, source, name, shared_secret, max_duration_sec, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $6, $5, $5)
         ON CONFLICT (id) DO UPDATE SET source = $2, name = $3, shared_secret = $4, max_duration_sec = $6, updated_at = $5
         RETURNING *`,
        [input.id, source, input.name, input.sharedSecret, new Date().toISOString(), input.maxDurationSec ?? null],
      );
      const application = fromRow(row!);
      this.byId.set(application.id, application);
      await this.changes.committed({ entity: "application", action: existing ? "updated" : "created", id: input.id });
      return application;
    });
  }

  /** Deletes the application with its inbound routes and caller-ID configs (ON DELETE CASCADE). */
  delete(id: string): Promise<boolean> {
    return this.sql.serial(async () => {
      const deleted = (await this.sql.query("DELETE FROM applications WHERE id = $1 RETURNING id", [id])).length > 0;
      if (!deleted) return false;
      await this.reloadCascade();
      this.byId.delete(id);
      await this.changes.committed({ entity: "application", action: "deleted", id });
      return true;
    });
  }
}
