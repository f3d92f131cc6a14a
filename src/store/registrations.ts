// Trunk registration leases: in a cluster with a front, one node registers each registering trunk.
// A row per trunk names the node holding its lease, until when (the DATABASE's clock, epoch ms, as
// in nodes.ts), and the registration's state as that node last wrote it, so every node can show it.
//   const lease = await store.registrations.claim({ trunkId, nodeId, ttlMs, status });  // true: ours now
//   await store.registrations.report(trunkId, nodeId, status);   // the holder's state changed
//   await store.registrations.list();                            // every row, with its lease's remaining time
//   await store.registrations.release(trunkId, nodeId);          // the holder lets it go
import { databaseNowMs } from "./nodes.ts";
import type { SqlExecutor } from "./sql.ts";

const table = (integer: string, strict: string) => `
CREATE TABLE trunk_registrations (
  trunk_id TEXT PRIMARY KEY,
  node_id TEXT NOT NULL,
  lease_until ${integer} NOT NULL,
  state TEXT NOT NULL,
  expires_at TEXT,
  last_error TEXT,
  last_status_code INTEGER
)${strict};
`;

export const registrationLeasesMigration = { sqlite: table("INTEGER", " STRICT"), postgres: table("BIGINT", "") };

/** What the holder says of its registration (the trunk manager's RegistrationStatus). */
export interface LeaseRegistrationStatus {
  state: string;
  expiresAt: string | null;
  lastError: string | null;
  lastStatusCode: number | null;
}

export interface RegistrationLease {
  trunkId: string;
  nodeId: string;
  /** Milliseconds the lease has left by the database's clock; 0 or less: lapsed, anyone may take it. */
  remainingMs: number;
  status: LeaseRegistrationStatus;
}

interface LeaseRow {
  trunk_id: string;
  node_id: string;
  remaining_ms: number | string;
  state: string;
  expires_at: string | null;
  last_error: string | null;
  last_status_code: number | string | null;
}

export class RegistrationLeaseStore {
  constructor(private readonly sql: SqlExecutor) {}

  /**
   * Takes or renews the trunk's lease for `ttlMs` (database clock): granted when nobody holds it,
   * this node already does, or the holder's lease has lapsed. Two nodes claiming at once: one row,
   * one winner (the other's conditional update sees the winner's fresh lease and changes nothing).
   * The winner's `status` is written with it.
   */
  async claim(o: { trunkId: string; nodeId: string; ttlMs: number; status: LeaseRegistrationStatus }): Promise<boolean> {
    const now = databaseNowMs(this.sql);
    const rows = await this.sql.query<{ node_id: string }>(
      `INSERT INTO trunk_registrations (trunk_id, node_id, lease_until, state, expires_at, last_error, last_status_code)
       VALUES ($1, $2, ${now} + $3, $4, $5, $6, $7)
       ON CONFLICT (trunk_id) DO UPDATE SET
         node_id = excluded.node_id, lease_until = excluded.lease_until, state = excluded.state,
         expires_at = excluded.expires_at, last_error = excluded.last_error, last_status_code = excluded.last_status_code
       WHERE trunk_registrations.node_id = excluded.node_id OR trunk_registrations.lease_until < ${now}
       RETURNING node_id`,
      [o.trunkId, o.nodeId, o.ttlMs, o.status.state, o.status.expiresAt, o.status.lastError, o.status.lastStatusCode],
    );
    return rows.length === 1;
  }

  /** The holder's registration state changed; a node that no longer holds the lease writes nothing. */
  async report(trunkId: string, nodeId: string, status: LeaseRegistrationStatus): Promise<void> {
    await this.sql.query(
      `UPDATE trunk_registrations SET state = $3, expires_at = $4, last_error = $5, last_status_code = $6
       WHERE trunk_id = $1 AND node_id = $2`,
      [trunkId, nodeId, status.state, status.expiresAt, status.lastError, status.lastStatusCode],
    );
  }

  /** The holder lets the lease go (shutdown, trunk removed or no longer registering): the next claim wins at once. */
  async release(trunkId: string, nodeId: string): Promise<void> {
    await this.sql.query("DELETE FROM trunk_registrations WHERE trunk_id = $1 AND node_id = $2", [trunkId, nodeId]);
  }

  async list(): Promise<RegistrationLease[]> {
    const rows = await this.sql.query<LeaseRow>(
      `SELECT trunk_id, node_id, lease_until - ${databaseNowMs(this.sql)} AS remaining_ms, state, expires_at, last_error, last_status_code
       FROM trunk_registrations ORDER BY trunk_id`,
    );
    return rows.map((row) => ({
      trunkId: row.trunk_id,
      nodeId: row.node_id,
      remainingMs: Number(row.remaining_ms),
      status: {
        state: row.state,
        expiresAt: row.expires_at,
        lastError: row.last_error,
        lastStatusCode: row.last_status_code === null ? null : Number(row.last_status_code),
      },
    }));
  }
}
