// Channel homes: which node's mixer a channel lives on, as a lease row per (application, channel).
// Every time is the DATABASE's clock (epoch ms), as in nodes.ts. A claim is one statement: insert,
// or take over a row whose lease expired, whose node is dead (no heartbeat for deadAfterMs), or that
// is already the claimer's. On PostgreSQL a won claim and a release also NOTIFY the other nodes
// (HOMES_CHANNEL), in the same statement.
//   await homes.claim({ applicationId, channelId }, "node-1", { leaseMs: 6000, deadAfterMs: 6000 })
//     → { won: true } | { won: false, home: { nodeId, sipAddress, httpUrl } | undefined }
//   await homes.renew("node-1", 6000)      // the keys of every lease node-1 still holds, extended
//   await homes.release(key, "node-1"); await homes.list(6000);
import { databaseNowMs } from "./nodes.ts";
import type { SqlExecutor } from "./sql.ts";

const sqliteHomesTable = `
CREATE TABLE channel_homes (
  application_id TEXT NOT NULL,
  channel_id TEXT NOT NULL,
  node_id TEXT NOT NULL,
  claimed_at INTEGER NOT NULL,
  lease_expires_at INTEGER NOT NULL,
  PRIMARY KEY (application_id, channel_id)
) STRICT;
CREATE INDEX channel_homes_by_node ON channel_homes (node_id);
`;

const postgresHomesTable = `
CREATE TABLE channel_homes (
  application_id TEXT NOT NULL,
  channel_id TEXT NOT NULL,
  node_id TEXT NOT NULL,
  claimed_at BIGINT NOT NULL,
  lease_expires_at BIGINT NOT NULL,
  PRIMARY KEY (application_id, channel_id)
);
CREATE INDEX channel_homes_by_node ON channel_homes (node_id);
`;

export const channelHomesMigration = { sqlite: sqliteHomesTable, postgres: postgresHomesTable };

/** The PostgreSQL channel of claim and release notices, JSON: HomeNotice. */
export const HOMES_CHANNEL = "trunkline_homes";

export interface ChannelKey {
  applicationId: string;
  channelId: string;
}

export interface HomeNode {
  nodeId: string;
  /** Empty when the node never wrote a heartbeat. */
  sipAddress: string;
  httpUrl: string;
}

export interface HomeNotice extends ChannelKey {
  action: "claimed" | "released";
  nodeId: string;
}

export interface ChannelHome extends ChannelKey {
  nodeId: string;
  claimedAt: string;
  leaseExpiresInMs: number;
}

export type ClaimResult = { won: true } | { won: false; home: HomeNode | undefined };

interface HomeRow {
  application_id: string;
  channel_id: string;
  node_id: string;
  claimed_at: number | string;
  lease_left_ms: number | string;
}

export class ChannelHomeStore {
  private readonly listeners = new Set<(notice: HomeNotice) => void>();

  constructor(private readonly sql: SqlExecutor) {}

  /** Takes the channel for `nodeId` unless a live node holds an unexpired lease on it. */
  async claim(key: ChannelKey, nodeId: string, o: { leaseMs: number; deadAfterMs: number }): Promise<ClaimResult> {
    const now = databaseNowMs(this.sql);
    const upsert = `INSERT INTO channel_homes (application_id, channel_id, node_id, claimed_at, lease_expires_at)
       VALUES ($1, $2, $3, ${now}, ${now} + $4)
       ON CONFLICT (application_id, channel_id) DO UPDATE SET
         node_id = excluded.node_id, lease_expires_at = excluded.lease_expires_at,
         claimed_at = CASE WHEN channel_homes.node_id = excluded.node_id THEN channel_homes.claimed_at ELSE excluded.claimed_at END
       WHERE channel_homes.node_id = excluded.node_id
          OR channel_homes.lease_expires_at < ${now}
          OR NOT EXISTS (SELECT 1 FROM nodes WHERE nodes.node_id = channel_homes.node_id AND nodes.heartbeat_at >= ${now} - $5)
       RETURNING node_id`;
    const params = [key.applicationId, key.channelId, nodeId, o.leaseMs, o.deadAfterMs];
    const won =
      this.sql.dialect === "postgres"
        ? await this.sql.query(`WITH claimed AS (${upsert}) SELECT pg_notify($6, $7) FROM claimed`, [
            ...params,
            HOMES_CHANNEL,
            JSON.stringify({ action: "claimed", nodeId, ...pick(key) } satisfies HomeNotice),
          ])
        : await this.sql.query(upsert, params);
    if (won.length > 0) return { won: true };
    const [home] = await this.sql.query<{ node_id: string; sip_address: string | null; http_url: string | null }>(
      `SELECT h.node_id, n.sip_address, n.http_url FROM channel_homes h LEFT JOIN nodes n ON n.node_id = h.node_id
       WHERE h.application_id = $1 AND h.channel_id = $2`,
      [key.applicationId, key.channelId],
    );
    return { won: false, home: home ? { nodeId: home.node_id, sipAddress: home.sip_address ?? "", httpUrl: home.http_url ?? "" } : undefined };
  }

  /** Extends every lease `nodeId` holds; returns the channels it still holds. */
  async renew(nodeId: string, leaseMs: number): Promise<ChannelKey[]> {
    const rows = await this.sql.query<{ application_id: string; channel_id: string }>(
      `UPDATE channel_homes SET lease_expires_at = ${databaseNowMs(this.sql)} + $2 WHERE node_id = $1 RETURNING application_id, channel_id`,
      [nodeId, leaseMs],
    );
    return rows.map((r) => ({ applicationId: r.application_id, channelId: r.channel_id }));
  }

  /** Gives the channel up, if `nodeId` still holds it. */
  async release(key: ChannelKey, nodeId: string): Promise<void> {
    const remove = `DELETE FROM channel_homes WHERE application_id = $1 AND channel_id = $2 AND node_id = $3 RETURNING node_id`;
    const params = [key.applicationId, key.channelId, nodeId];
    if (this.sql.dialect === "sqlite") return void (await this.sql.query(remove, params));
    await this.sql.query(`WITH released AS (${remove}) SELECT pg_notify($4, $5) FROM released`, [
      ...params,
      HOMES_CHANNEL,
      JSON.stringify({ action: "released", nodeId, ...pick(key) } satisfies HomeNotice),
    ]);
  }

  /** Every lease of `nodeId` (a starting node has no channel open yet). */
  async releaseAll(nodeId: string): Promise<number> {
    return (await this.sql.query(`DELETE FROM channel_homes WHERE node_id = $1 RETURNING node_id`, [nodeId])).length;
  }

  /** Every channel's home, by application and channel. */
  async list(): Promise<ChannelHome[]> {
    const rows = await this.sql.query<HomeRow>(
      `SELECT application_id, channel_id, node_id, claimed_at, lease_expires_at - ${databaseNowMs(this.sql)} AS lease_left_ms
       FROM channel_homes ORDER BY application_id, channel_id`,
    );
    return rows.map((row) => ({
      applicationId: row.application_id,
      channelId: row.channel_id,
      nodeId: row.node_id,
      claimedAt: new Date(Number(row.claimed_at)).toISOString(),
      leaseExpiresInMs: Number(row.lease_left_ms),
    }));
  }

  /** Claims and releases other nodes made (PostgreSQL's notices). Returns the unsubscribe function. */
  onNotice(listener: (notice: HomeNotice) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A notice's payload as it came from the database; anything unreadable is ignored. */
  noticeReceived(payload: string): boolean {
    let notice: unknown;
    try {
      notice = JSON.parse(payload);
    } catch {
      return false;
    }
    if (!isNotice(notice)) return false;
    for (const listener of this.listeners) listener(notice);
    return true;
  }
}

function pick(key: ChannelKey): ChannelKey {
  return { applicationId: key.applicationId, channelId: key.channelId };
}

function isNotice(value: unknown): value is HomeNotice {
  if (typeof value !== "object" || value === null) return false;
  const o = value as Record<string, unknown>;
  return (
    (o.action === "claimed" || o.action === "released") &&
    typeof o.nodeId === "string" &&
    typeof o.applicationId === "string" &&
    typeof o.channelId === "string"
  );
}
