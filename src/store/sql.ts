// The two database drivers behind the configuration entities, one interface. Entity modules write
// SQL both engines accept, with numbered placeholders ($1, $2…), and get rows back.
//   SQLite: bun:sqlite, every statement runs at once (the returned promise is already settled), so
//   the embedded store behaves as a synchronous one.
//   PostgreSQL: Bun's built-in SQL client (a pool); statements of one store run one after another
//   (`serial`) so a snapshot reload never overtakes a write made just before it. A transaction
//   holds one connection of the pool: the statements of its work (found by async context) go there.
import type { Database } from "bun:sqlite";
import type { SQL, TransactionSQL } from "bun";
import { AsyncLocalStorage } from "node:async_hooks";

export type SqlValue = string | number | null;

export interface SqlExecutor {
  readonly dialect: "sqlite" | "postgres";
  query<T>(sql: string, params?: SqlValue[]): Promise<T[]>;
  /** Runs the statements of `work` as one transaction: all commit, or none. */
  transaction<T>(work: () => Promise<T>): Promise<T>;
  /** Queues `work` after every earlier queued piece of work of this store (PostgreSQL); runs it now on SQLite. */
  serial<T>(work: () => Promise<T>): Promise<T>;
  /** Runs the statements, in order, as one transaction (SQLite: synchronously, nothing else runs in between). */
  batch(statements: readonly { sql: string; params: SqlValue[] }[]): Promise<void>;
}

/** SQLite binds ?NNN where PostgreSQL binds $NNN. */
const toSqlite = (sql: string) => sql.replace(/\$(\d+)/g, "?$1");

export class SqliteExecutor implements SqlExecutor {
  readonly dialect = "sqlite";
  /** Batched statements in SQLite's spelling: few shapes (the code writes them), each converted once. */
  private readonly batchSql = new Map<string, string>();
  constructor(readonly db: Database) {}

  querySync<T>(sql: string, params: SqlValue[] = []): T[] {
    return this.db.query<T, SqlValue[]>(toSqlite(sql)).all(...params);
  }

  query<T>(sql: string, params: SqlValue[] = []): Promise<T[]> {
    try {
      return Promise.resolve(this.querySync<T>(sql, params));
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  async transaction<T>(work: () => Promise<T>): Promise<T> {
    // Every statement inside settles at once, so only this work runs between BEGIN and COMMIT.
    this.db.run("BEGIN IMMEDIATE");
    try {
      const result = await work();
      this.db.run("COMMIT");
      return result;
    } catch (err) {
      this.db.run("ROLLBACK");
      throw err;
    }
  }

  serial<T>(work: () => Promise<T>): Promise<T> {
    return work();
  }

  private sqliteSpelling(sql: string): string {
    let converted = this.batchSql.get(sql);
    if (converted === undefined) {
      // A bound, should a caller ever vary its statements' text with data.
      if (this.batchSql.size >= 256) this.batchSql.clear();
      converted = toSqlite(sql);
      this.batchSql.set(sql, converted);
    }
    return converted;
  }

  batch(statements: readonly { sql: string; params: SqlValue[] }[]): Promise<void> {
    // Inside another transaction the batch would commit or roll back with it: it waits for its retry.
    if (this.db.inTransaction) return Promise.reject(new Error("another transaction is open"));
    try {
      this.db
        .transaction(() => {
          for (const { sql, params } of statements) this.db.query<unknown, SqlValue[]>(this.sqliteSpelling(sql)).run(...params);
        })
        .immediate();
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }
}

export class PostgresExecutor implements SqlExecutor {
  readonly dialect = "postgres";
  private tail: Promise<unknown> = Promise.resolve();
  /** The connection of the transaction the running work belongs to. */
  private readonly inTransaction = new AsyncLocalStorage<TransactionSQL>();
  constructor(readonly sql: SQL) {}

  async query<T>(sql: string, params: SqlValue[] = []): Promise<T[]> {
    const connection = this.inTransaction.getStore() ?? this.sql;
    return [...((await connection.unsafe(sql, params)) as T[])];
  }

  /**
   * Takes the queue for the whole transaction: other work of this store waits for its commit or
   * rollback; `serial` work inside it runs at once, on its connection.
   */
  transaction<T>(work: () => Promise<T>): Promise<T> {
    if (this.inTransaction.getStore()) return work();
    return this.serial(() => this.sql.begin((tx) => this.inTransaction.run(tx, work)) as Promise<T>);
  }

  serial<T>(work: () => Promise<T>): Promise<T> {
    if (this.inTransaction.getStore()) return work();
    const run = this.tail.then(work);
    this.tail = run.catch(() => undefined);
    return run;
  }

  async batch(statements: readonly { sql: string; params: SqlValue[] }[]): Promise<void> {
    // Sent back to back on the transaction's connection (pipelined), answered in order.
    await this.sql.begin((tx) => Promise.all(statements.map(({ sql, params }) => tx.unsafe(sql, params))));
  }
}
