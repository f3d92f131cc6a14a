// Application rows (tenants); the shared secret signs client tokens and is never returned by the API.
import type { Database } from "bun:sqlite";
import type { ApplicationInput } from "../config/entities.ts";
import type { ChangeFeed, Source } from "./changes.ts";

export interface Application extends ApplicationInput {
  source: Source;
  createdAt: string;
  updatedAt: string;
}

interface ApplicationRow {
  id: string;
  source: Source;
  name: string;
  shared_secret: string;
  created_at: string;
  updated_at: string;
}

const fromRow = (row: ApplicationRow): Application => ({
  id: row.id,
  name: row.name,
  sharedSecret: row.shared_secret,
  source: row.source,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

export class ApplicationStore {
  constructor(
    private readonly db: Database,
    private readonly changes: ChangeFeed,
  ) {}

  list(): Application[] {
    return this.db.query<ApplicationRow, []>("SELECT * FROM applications ORDER BY id").all().map(fromRow);
  }

  get(id: string): Application | undefined {
    const row = this.db.query<ApplicationRow, { id: string }>("SELECT * FROM applications WHERE id = $id").get({ id });
    return row ? fromRow(row) : undefined;
  }

  put(input: ApplicationInput, source: Source): Application {
    const existing = this.get(input.id);
    if (existing && existing.source === source && existing.name === input.name && existing.sharedSecret === input.sharedSecret) {
      return existing;
    }
    this.db
      .query(
        `INSERT INTO applications (id, source, name, shared_secret, created_at, updated_at)
         VALUES ($id, $source, $name, $secret, $now, $now)
         ON CONFLICT (id) DO UPDATE SET source = $source, name = $name, shared_secret = $secret, updated_at = $now`,
      )
      .run({ id: input.id, source, name: input.name, secret: input.sharedSecret, now: new Date().toISOString() });
    this.changes.emit({ entity: "application", action: existing ? "updated" : "created", id: input.id });
    return this.get(input.id)!;
  }

  /** Deletes the application with its inbound routes and caller-ID configs (ON DELETE CASCADE). */
  delete(id: string): boolean {
    const deleted = this.db.query("DELETE FROM applications WHERE id = $id").run({ id }).changes > 0;
    if (deleted) this.changes.emit({ entity: "application", action: "deleted", id });
    return deleted;
  }
}
