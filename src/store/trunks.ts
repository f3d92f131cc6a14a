// Trunk rows, served from an in-memory snapshot. Passwords are stored (digest auth needs them) but never leave through `toView`.
import type { TrunkInput } from "../config/entities.ts";
import type { ChangeFeed, Source } from "./changes.ts";
import type { SqlExecutor } from "./sql.ts";

export interface Trunk extends TrunkInput {
  source: Source;
  createdAt: string;
  updatedAt: string;
}

interface TrunkRow {
  id: string;
  source: Source;
  domain: string;
  port: number | null;
  transport: Trunk["transport"];
  register: number;
  can_terminate: number;
  username: string;
  password: string;
  auth_id: string | null;
  register_expires: number;
  max_concurrent_calls: number | null;
  max_duration_sec: number | null;
  allowed_addresses: string;
  early_offer: number;
  prack: Trunk["prack"];
  options_interval_sec: number;
  tls_verify: number;
  enabled: number;
  media_encryption: Trunk["mediaEncryption"];
  allow_sdes_without_tls: number;
  redirects: Trunk["redirects"];
  refer_policy: Trunk["referPolicy"];
  created_at: string;
  updated_at: string;
}

function fromRow(row: TrunkRow): Trunk {
  const trunk: Trunk = {
    id: row.id,
    domain: row.domain,
    transport: row.transport,
    register: row.register === 1,
    canTerminate: row.can_terminate === 1,
    username: row.username,
    password: row.password,
    registerExpires: row.register_expires,
    allowedAddresses: JSON.parse(row.allowed_addresses) as string[],
    earlyOffer: row.early_offer === 1,
    prack: row.prack,
    optionsIntervalSec: row.options_interval_sec,
    tlsVerify: row.tls_verify === 1,
    enabled: row.enabled === 1,
    mediaEncryption: row.media_encryption,
    allowSdesWithoutTls: row.allow_sdes_without_tls === 1,
    redirects: row.redirects,
    referPolicy: row.refer_policy,
    source: row.source,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
  if (row.port !== null) trunk.port = row.port;
  if (row.auth_id !== null) trunk.authId = row.auth_id;
  if (row.max_concurrent_calls !== null) trunk.maxConcurrentCalls = row.max_concurrent_calls;
  if (row.max_duration_sec !== null) trunk.maxDurationSec = row.max_duration_sec;
  return trunk;
}

export interface TrunkSnapshotRow extends TrunkRow {
  yaml_position: number | null;
  /** Creation order among trunks created in the same millisecond: SQLite's rowid, PostgreSQL's seq. */
  row_seq: number | string;
}

/** Every trunk row with its creation order. */
export const selectTrunks = (sql: SqlExecutor) =>
  `SELECT *, ${sql.dialect === "sqlite" ? "rowid" : "seq"} AS row_seq FROM trunks`;

/** Configuration order: YAML trunks as the file lists them, then API-made ones by creation. */
function byConfigurationOrder(a: TrunkSnapshotRow, b: TrunkSnapshotRow): number {
  if ((a.yaml_position === null) !== (b.yaml_position === null)) return a.yaml_position === null ? 1 : -1;
  if (a.yaml_position !== null && b.yaml_position !== null && a.yaml_position !== b.yaml_position) return a.yaml_position - b.yaml_position;
  if (a.created_at !== b.created_at) return a.created_at < b.created_at ? -1 : 1;
  return Number(a.row_seq) - Number(b.row_seq);
}

/** Reads come from the in-memory snapshot; writes go to the database, then to the snapshot. */
export class TrunkStore {
  private ordered: Trunk[] = [];
  private readonly byId = new Map<string, Trunk>();

  constructor(
    private readonly sql: SqlExecutor,
    private readonly changes: ChangeFeed,
    rows: TrunkSnapshotRow[],
  ) {
    this.replace(rows);
  }

  /** Replaces the snapshot with these rows (all of the table). */
  replace(rows: TrunkSnapshotRow[]): void {
    this.ordered = [...rows].sort(byConfigurationOrder).map(fromRow);
    this.byId.clear();
    for (const trunk of this.ordered) this.byId.set(trunk.id, trunk);
  }

  async reload(): Promise<void> {
    this.replace(await this.sql.query<TrunkSnapshotRow>(selectTrunks(this.sql)));
  }

  /** In configuration order: YAML trunks as the file lists them, then API-made ones by creation. */
  list(): Trunk[] {
    return [...this.ordered];
  }

  get(id: string): Trunk | undefined {
    return this.byId.get(id);
  }

  /** Records the YAML file's trunk order (ids in file order); each trunk whose place moved is a change. */
  setYamlOrder(ids: readonly string[]): Promise<void> {
    return this.sql.serial(async () => {
      const before = this.ordered.map((t) => t.id);
      await this.sql.query("UPDATE trunks SET yaml_position = NULL WHERE source = 'api' AND yaml_position IS NOT NULL");
      for (const [position, id] of ids.entries()) {
        await this.sql.query("UPDATE trunks SET yaml_position = $1 WHERE id = $2", [position, id]);
      }
      await this.reload();
      for (const [index, trunk] of this.ordered.entries()) {
        if (before[index] !== trunk.id) await this.changes.committed({ entity: "trunk", action: "updated", id: trunk.id });
      }
    });
  }

  /** Inserts or replaces; emits a change only when something actually changed. */
  put(input: TrunkInput, source: Source): Promise<Trunk> {
    return this.sql.serial(async () => {
      const existing = this.get(input.id);
      if (existing && existing.source === source && sameTrunk(existing, input)) return existing;
      await this.sql.query(
        `INSERT INTO trunks (id, source, domain, port, transport, register, can_terminate, username, password, auth_id,
           register_expires, max_concurrent_calls, allowed_addresses, early_offer, options_interval_sec, tls_verify, enabled,
           media_encryption, allow_sdes_without_tls, prack, redirects, max_duration_sec, refer_policy, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $22, $23, $24, $21, $21)
         ON CONFLICT (id) DO UPDATE SET source = $2, domain = $3, port = $4, transport = $5,
           register = $6, can_terminate = $7, username = $8, password = $9, auth_id = $10,
           register_expires = $11, max_concurrent_calls = $12, allowed_addresses = $13,
           early_offer = $14, options_interval_sec = $15, tls_verify = $16, enabled = $17,
           media_encryption = $18, allow_sdes_without_tls = $19, prack = $20, redirects = $22, max_duration_sec = $23, refer_policy = $24, updated_at = $21`,
        [
          input.id,
          source,
          input.domain,
          input.port ?? null,
          input.transport,
          input.register ? 1 : 0,
          input.canTerminate ? 1 : 0,
          input.username,
          input.password,
          input.authId ?? null,
          input.registerExpires,
          input.maxConcurrentCalls ?? null,
          JSON.stringify(input.allowedAddresses),
          input.earlyOffer ? 1 : 0,
          input.optionsIntervalSec,
          input.tlsVerify ? 1 : 0,
          input.enabled ? 1 : 0,
          input.mediaEncryption,
          input.allowSdesWithoutTls ? 1 : 0,
          input.prack,
          new Date().toISOString(),
          input.redirects,
          input.maxDurationSec ?? null,
          input.referPolicy,
        ],
      );
      await this.reload();
      await this.changes.committed({ entity: "trunk", action: existing ? "updated" : "created", id: input.id });
      return this.get(input.id)!;
    });
  }

  delete(id: string): Promise<boolean> {
    return this.sql.serial(async () => {
      const deleted = (await this.sql.query("DELETE FROM trunks WHERE id = $1 RETURNING id", [id])).length > 0;
      if (!deleted) return false;
      await this.reload();
      await this.changes.committed({ entity: "trunk", action: "deleted", id });
      return true;
    });
  }
}

export function trunkInput(trunk: Trunk): TrunkInput {
  const { source: _source, createdAt: _createdAt, updatedAt: _updatedAt, ...input } = trunk;
  return input;
}

function sameTrunk(existing: Trunk, input: TrunkInput): boolean {
  return JSON.stringify(sortedEntries(trunkInput(existing))) === JSON.stringify(sortedEntries(input));
}

function sortedEntries(value: object): [string, unknown][] {
  return Object.entries(value)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => a.localeCompare(b));
}
