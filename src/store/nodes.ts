// Cluster nodes: one row per node (cluster.nodeId), rewritten by the node's heartbeat with its load.
// Every time here is the DATABASE's clock (epoch ms), so the nodes' own clocks do not matter: a node
// whose last heartbeat is older than cluster.deadAfterMs, by that clock, is dead.
//   await store.nodes.beat({ nodeId: "node-1", sipAddress, httpUrl, load }, { starting: true });
//   await store.nodes.list(6000);   // every node with its heartbeat age and health (alive / dead)
import type { SqlExecutor } from "./sql.ts";

const sqliteNodesTable = `
CREATE TABLE nodes (
  node_id TEXT PRIMARY KEY,
  sip_address TEXT NOT NULL,
  http_url TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  heartbeat_at INTEGER NOT NULL,
  active_calls INTEGER NOT NULL,
  media_legs INTEGER NOT NULL,
  cpu_percent INTEGER NOT NULL
) STRICT;
`;

const postgresNodesTable = `
CREATE TABLE nodes (
  node_id TEXT PRIMARY KEY,
  sip_address TEXT NOT NULL,
  http_url TEXT NOT NULL,
  started_at BIGINT NOT NULL,
  heartbeat_at BIGINT NOT NULL,
  active_calls INTEGER NOT NULL,
  media_legs INTEGER NOT NULL,
  cpu_percent INTEGER NOT NULL
);
`;

export const nodesMigration = { sqlite: sqliteNodesTable, postgres: postgresNodesTable };

/** The database's clock in epoch milliseconds, as an SQL expression. */
export function databaseNowMs(sql: SqlExecutor): string {
  return sql.dialect === "postgres"
    ? "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT"
    : "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";
}

export interface NodeLoad {
  activeCalls: number;
  mediaLegs: number;
  /** CPU time of the process over the last heartbeat interval, whole percent of one core. */
  cpuPercent: number;
}

export interface NodeBeat {
  nodeId: string;
  sipAddress: string;
  httpUrl: string;
  load: NodeLoad;
}

export interface NodeStatus {
  nodeId: string;
  sipAddress: string;
  httpUrl: string;
  startedAt: string;
  lastHeartbeatAt: string;
  lastHeartbeatAgeMs: number;
  health: "alive" | "dead";
  load: NodeLoad;
}

interface NodeRow {
  node_id: string;
  sip_address: string;
  http_url: string;
  started_at: number | string;
  heartbeat_at: number | string;
  active_calls: number;
  media_legs: number;
  cpu_percent: number;
  age_ms: number | string;
}

export class NodeStore {
  constructor(private readonly sql: SqlExecutor) {}

  /** Writes the node's row at the database's time; `starting` also resets its start time. */
  async beat(beat: NodeBeat, options: { starting: boolean }): Promise<void> {
    const now = databaseNowMs(this.sql);
    await this.sql.query(
      `INSERT INTO nodes (node_id, sip_address, http_url, started_at, heartbeat_at, active_calls, media_legs, cpu_percent)
       VALUES ($1, $2, $3, ${now}, ${now}, $4, $5, $6)
       ON CONFLICT (node_id) DO UPDATE SET
         sip_address = excluded.sip_address, http_url = excluded.http_url,
         started_at = ${options.starting ? "excluded.started_at" : "nodes.started_at"},
         heartbeat_at = excluded.heartbeat_at, active_calls = excluded.active_calls,
         media_legs = excluded.media_legs, cpu_percent = excluded.cpu_percent`,
      [beat.nodeId, beat.sipAddress, beat.httpUrl, beat.load.activeCalls, beat.load.mediaLegs, beat.load.cpuPercent],
    );
  }

  /** Every node that ever beat, by id; dead when its last heartbeat is older than `deadAfterMs`. */
  async list(deadAfterMs: number): Promise<NodeStatus[]> {
    const rows = await this.sql.query<NodeRow>(
      `SELECT node_id, sip_address, http_url, started_at, heartbeat_at, active_calls, media_legs, cpu_percent,
              ${databaseNowMs(this.sql)} - heartbeat_at AS age_ms
       FROM nodes ORDER BY node_id`,
    );
    return rows.map((row) => {
      const age = Math.max(0, Number(row.age_ms));
      return {
        nodeId: row.node_id,
        sipAddress: row.sip_address,
        httpUrl: row.http_url,
        startedAt: new Date(Number(row.started_at)).toISOString(),
        lastHeartbeatAt: new Date(Number(row.heartbeat_at)).toISOString(),
        lastHeartbeatAgeMs: age,
        health: age <= deadAfterMs ? "alive" : "dead",
        load: { activeCalls: Number(row.active_calls), mediaLegs: Number(row.media_legs), cpuPercent: Number(row.cpu_percent) },
      };
    });
  }
}
