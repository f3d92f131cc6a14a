// Opens the SQLite database (WAL journal, foreign keys) and applies pending migrations in order, on
// SQLite or on PostgreSQL.
import { Database } from "bun:sqlite";
import type { SQL } from "bun";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { createLogger } from "../log.ts";
import { migrations as defaultMigrations, type Migration, type PostgresMigration } from "./migrations.ts";

const log = createLogger("store");

export function openDatabase(path: string, migrations: Migration[] = defaultMigrations): Database {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path, { create: true, strict: true });
  db.run("PRAGMA journal_mode = WAL");
  db.run("PRAGMA foreign_keys = ON");
  db.run("PRAGMA busy_timeout = 5000");
  db.run("PRAGMA synchronous = NORMAL");
  migrate(db, migrations);
  return db;
}

export function migrate(db: Database, migrations: Migration[]): void {
  db.run(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT`);
  const applied = new Set(db.query<{ version: number }, []>("SELECT version FROM schema_migrations").all().map((r) => r.version));
  const ordered = [...migrations].sort((a, b) => a.version - b.version);
  for (const migration of ordered) {
    if (applied.has(migration.version)) continue;
    db.transaction(() => {
      if (typeof migration.up === "string") db.run(migration.up);
      else migration.up(db);
      db.query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($version, $name, $at)").run({
        version: migration.version,
        name: migration.name,
        at: new Date().toISOString(),
      });
    })();
    log.info("migration applied", { version: migration.version, name: migration.name });
  }
}

export function schemaVersion(db: Database): number {
  return db.query<{ v: number | null }, []>("SELECT MAX(version) AS v FROM schema_migrations").get()?.v ?? 0;
}

/** Pending migrations in one transaction; an advisory lock keeps nodes starting together from racing. */
export async function migratePostgres(sql: SQL, migrations: PostgresMigration[]): Promise<void> {
  await sql.begin(async (tx) => {
    await tx.unsafe("SELECT pg_advisory_xact_lock(7130013)");
    await tx.unsafe(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`);
    const applied = new Set(((await tx.unsafe("SELECT version FROM schema_migrations")) as { version: number }[]).map((r) => r.version));
    for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
      if (applied.has(migration.version)) continue;
      await tx.unsafe(migration.up);
      await tx.unsafe("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)", [
        migration.version,
        migration.name,
        new Date().toISOString(),
      ]);
      log.info("migration applied", { version: migration.version, name: migration.name, database: "postgres" });
    }
  });
}
