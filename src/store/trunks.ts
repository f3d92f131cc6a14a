// Trunk rows. Passwords are stored (digest auth needs them) but never leave through `toView`.
import type { Database } from "bun:sqlite";
import type { TrunkInput } from "../config/entities.ts";
import type { ChangeFeed, Source } from "./changes.ts";

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
  allowed_addresses: string;
  early_offer: number;
  options_interval_sec: number;
  tls_verify: number;
  enabled: number;
  media_encryption: Trunk["mediaEncryption"];
  allow_sdes_without_tls: number;
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
    optionsIntervalSec: row.options_interval_sec,
    tlsVerify: row.tls_verify === 1,
    enabled: row.enabled === 1,
    mediaEncryption: row.media_encryption,
    allowSdesWithoutTls: row.allow_sdes_without_tls === 1,
    source: row.source,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
  if (row.port !== null) trunk.port = row.port;
  if (row.auth_id !== null) trunk.authId = row.auth_id;
  if (row.max_concurrent_calls !== null) trunk.maxConcurrentCalls = row.max_concurrent_calls;
  return trunk;
}

export class TrunkStore {
  constructor(
    private readonly db: Database,
    private readonly changes: ChangeFeed,
  ) {}

  /** In configuration order: YAML trunks as the file lists them, then API-made ones by creation. */
  list(): Trunk[] {
    return this.db
      .query<TrunkRow, []>("SELECT * FROM trunks ORDER BY yaml_position IS NULL, yaml_position, created_at, rowid")
      .all()
      .map(fromRow);
  }

  /** Records the YAML file's trunk order (ids in file order); each trunk whose place moved is a change. */
  setYamlOrder(ids: readonly string[]): void {
    const before = this.list().map((t) => t.id);
    this.db.query("UPDATE trunks SET yaml_position = NULL WHERE source = 'api'").run();
    const place = this.db.query("UPDATE trunks SET yaml_position = $position WHERE id = $id");
    ids.forEach((id, position) => place.run({ id, position }));
    const after = this.list().map((t) => t.id);
    after.forEach((id, index) => {
      if (before[index] !== id) this.changes.emit({ entity: "trunk", action: "updated", id });
    });
  }

  get(id: string): Trunk | undefined {
    const row = this.db.query<TrunkRow, { id: string }>("SELECT * FROM trunks WHERE id = $id").get({ id });
    return row ? fromRow(row) : undefined;
  }

  /** Inserts or replaces; emits a change only when something actually changed. */
  put(input: TrunkInput, source: Source): Trunk {
    const existing = this.get(input.id);
    const now = new Date().toISOString();
    if (existing && existing.source === source && sameTrunk(existing, input)) return existing;
    this.db
      .query(
        `INSERT INTO trunks (id, source, domain, port, transport, register, can_terminate, username, password, auth_id,
           register_expires, max_concurrent_calls, allowed_addresses, early_offer, options_interval_sec, tls_verify, enabled,
           media_encryption, allow_sdes_without_tls, created_at, updated_at)
         VALUES ($id, $source, $domain, $port, $transport, $register, $canTerminate, $username, $password, $authId,
           $registerExpires, $maxConcurrentCalls, $allowedAddresses, $earlyOffer, $optionsIntervalSec, $tlsVerify, $enabled,
           $mediaEncryption, $allowSdesWithoutTls, $now, $now)
         ON CONFLICT (id) DO UPDATE SET source = $source, domain = $domain, port = $port, transport = $transport,
           register = $register, can_terminate = $canTerminate, username = $username, password = $password, auth_id = $authId,
           register_expires = $registerExpires, max_concurrent_calls = $maxConcurrentCalls, allowed_addresses = $allowedAddresses,
           early_offer = $earlyOffer, options_interval_sec = $optionsIntervalSec, tls_verify = $tlsVerify, enabled = $enabled,
           media_encryption = $mediaEncryption, allow_sdes_without_tls = $allowSdesWithoutTls, updated_at = $now`,
      )
      .run({
        id: input.id,
        source,
        domain: input.domain,
        port: input.port ?? null,
        transport: input.transport,
        register: input.register ? 1 : 0,
        canTerminate: input.canTerminate ? 1 : 0,
        username: input.username,
        password: input.password,
        authId: input.authId ?? null,
        registerExpires: input.registerExpires,
        maxConcurrentCalls: input.maxConcurrentCalls ?? null,
        allowedAddresses: JSON.stringify(input.allowedAddresses),
        earlyOffer: input.earlyOffer ? 1 : 0,
        optionsIntervalSec: input.optionsIntervalSec,
        tlsVerify: input.tlsVerify ? 1 : 0,
        enabled: input.enabled ? 1 : 0,
        mediaEncryption: input.mediaEncryption,
        allowSdesWithoutTls: input.allowSdesWithoutTls ? 1 : 0,
        now,
      });
    this.changes.emit({ entity: "trunk", action: existing ? "updated" : "created", id: input.id });
    return this.get(input.id)!;
  }

  delete(id: string): boolean {
    const deleted = this.db.query("DELETE FROM trunks WHERE id = $id").run({ id }).changes > 0;
    if (deleted) this.changes.emit({ entity: "trunk", action: "deleted", id });
    return deleted;
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
