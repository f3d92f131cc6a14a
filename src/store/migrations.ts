// Ordered schema migrations. Append new entries at the end with the next version; never edit an
// applied one. Each runs once, in its own transaction, recorded in schema_migrations.
import type { Database } from "bun:sqlite";
import { callerIdHeadersMigration } from "./callerIds.ts";
import { callAttributesMigration, callsEndedAtMigration, callsMigration, callsNodeMigration, postgresCallsMigration, redirectsMigration } from "./calls.ts";
import { channelHomesMigration } from "./channelHomes.ts";
import { nodesMigration } from "./nodes.ts";
import { registrationLeasesMigration } from "./registrations.ts";
import { sipTracesMigration } from "./sipTraces.ts";
import { recordingsMigration } from "./recordings.ts";

export interface Migration {
  version: number;
  name: string;
  up: string | ((db: Database) => void);
}

/** RFC 3262 per trunk (outbound INVITEs): the same statement on both drivers. */
const trunkPrackMigration = `ALTER TABLE trunks ADD COLUMN prack TEXT NOT NULL DEFAULT 'supported' CHECK (prack IN ('supported', 'required', 'off'))`;
/** RFC 3515 §2.4.2: how a REFER from the trunk is answered; the same statement on both drivers. */
const trunkReferPolicyMigration = `ALTER TABLE trunks ADD COLUMN refer_policy TEXT NOT NULL DEFAULT 'decline' CHECK (refer_policy IN ('decline', 'accept'))`;
/** calls.maxDurationSec per trunk and per application (NULL: no limit of its own); the same SQL on both. */
const maxDurationMigration = `
  ALTER TABLE trunks ADD COLUMN max_duration_sec INTEGER;
  ALTER TABLE applications ADD COLUMN max_duration_sec INTEGER;
`;

export const migrations: Migration[] = [
  {
    version: 1,
    name: "core entities",
    up: `
      CREATE TABLE trunks (
        id TEXT PRIMARY KEY,
        source TEXT NOT NULL CHECK (source IN ('yaml', 'api')),
        domain TEXT NOT NULL,
        port INTEGER,
        transport TEXT NOT NULL CHECK (transport IN ('udp', 'tcp', 'tls')),
        register INTEGER NOT NULL,
        can_terminate INTEGER NOT NULL,
        username TEXT NOT NULL,
        password TEXT NOT NULL,
        auth_id TEXT,
        register_expires INTEGER NOT NULL,
        max_concurrent_calls INTEGER,
        allowed_addresses TEXT NOT NULL,
        early_offer INTEGER NOT NULL,
        options_interval_sec INTEGER NOT NULL,
        tls_verify INTEGER NOT NULL,
        enabled INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      ) STRICT;
      CREATE TABLE applications (
        id TEXT PRIMARY KEY,
        source TEXT NOT NULL CHECK (source IN ('yaml', 'api')),
        name TEXT NOT NULL,
        shared_secret TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      ) STRICT;
      CREATE TABLE inbound_routes (
        sip_username TEXT PRIMARY KEY,
        application_id TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
        channel_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      ) STRICT;
      CREATE INDEX inbound_routes_by_application ON inbound_routes(application_id);
      CREATE TABLE caller_ids (
        application_id TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
        channel_id TEXT NOT NULL,
        display_name TEXT,
        username TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (application_id, channel_id)
      ) STRICT;
      CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        source TEXT NOT NULL CHECK (source IN ('yaml', 'api')),
        value TEXT NOT NULL,
        updated_at TEXT NOT NULL
      ) STRICT;
    `,
  },
  { version: 2, name: "call records", up: callsMigration },
  // "The first available trunk" follows configuration order: YAML trunks by their place in the file.
  { version: 3, name: "trunk order", up: "ALTER TABLE trunks ADD COLUMN yaml_position INTEGER" },
  { version: 4, name: "call records by end time", up: callsEndedAtMigration },
  {
    version: 5,
    name: "trunk media encryption",
    up: `
      ALTER TABLE trunks ADD COLUMN media_encryption TEXT NOT NULL DEFAULT 'none' CHECK (media_encryption IN ('none', 'optional', 'required'));
      ALTER TABLE trunks ADD COLUMN allow_sdes_without_tls INTEGER NOT NULL DEFAULT 0;
    `,
  },
  // A single node keeps its own heartbeat row too, so GET /api/v1/cluster answers alike on both drivers.
  { version: 6, name: "cluster nodes", up: nodesMigration.sqlite },
  { version: 7, name: "call records by node", up: callsNodeMigration },
  // On SQLite the one node homes every channel; the table keeps GET /api/v1/cluster alike on both drivers.
  { version: 8, name: "channel homes", up: channelHomesMigration.sqlite },
  { version: 9, name: "trunk registration leases", up: registrationLeasesMigration.sqlite },
  { version: 10, name: "sip traces", up: sipTracesMigration.sqlite },
  { version: 11, name: "recordings", up: recordingsMigration.sqlite },
  { version: 12, name: "trunk prack", up: trunkPrackMigration },
  { version: 13, name: "outbound redirects", up: redirectsMigration },
  { version: 14, name: "caller-ID headers and call attributes", up: callerIdHeadersMigration + callAttributesMigration },
  { version: 15, name: "trunk refer policy", up: trunkReferPolicyMigration },
  { version: 16, name: "max call duration", up: maxDurationMigration },
];

/**
 * The PostgreSQL schema of the shared configuration entities: the same tables and columns as the
 * SQLite migrations above end with.
 */
export const postgresMigrations: PostgresMigration[] = [
  {
    version: 1,
    name: "core entities",
    up: `
      CREATE TABLE trunks (
        id TEXT PRIMARY KEY,
        seq BIGSERIAL NOT NULL,
        source TEXT NOT NULL CHECK (source IN ('yaml', 'api')),
        domain TEXT NOT NULL,
        port INTEGER,
        transport TEXT NOT NULL CHECK (transport IN ('udp', 'tcp', 'tls')),
        register INTEGER NOT NULL,
        can_terminate INTEGER NOT NULL,
        username TEXT NOT NULL,
        password TEXT NOT NULL,
        auth_id TEXT,
        register_expires INTEGER NOT NULL,
        max_concurrent_calls INTEGER,
        allowed_addresses TEXT NOT NULL,
        early_offer INTEGER NOT NULL,
        options_interval_sec INTEGER NOT NULL,
        tls_verify INTEGER NOT NULL,
        enabled INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        yaml_position INTEGER,
        media_encryption TEXT NOT NULL DEFAULT 'none' CHECK (media_encryption IN ('none', 'optional', 'required')),
        allow_sdes_without_tls INTEGER NOT NULL DEFAULT 0
      );
      CREATE TABLE applications (
        id TEXT PRIMARY KEY,
        source TEXT NOT NULL CHECK (source IN ('yaml', 'api')),
        name TEXT NOT NULL,
        shared_secret TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
      CREATE TABLE inbound_routes (
        sip_username TEXT PRIMARY KEY,
        application_id TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
        channel_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
      CREATE INDEX inbound_routes_by_application ON inbound_routes(application_id);
      CREATE TABLE caller_ids (
        application_id TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
        channel_id TEXT NOT NULL,
        display_name TEXT,
        username TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (application_id, channel_id)
      );
      CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        source TEXT NOT NULL CHECK (source IN ('yaml', 'api')),
        value TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
    `,
  },
  { version: 2, name: "cluster nodes", up: nodesMigration.postgres },
  { version: 3, name: "call records", up: postgresCallsMigration },
  { version: 4, name: "channel homes", up: channelHomesMigration.postgres },
  { version: 5, name: "trunk registration leases", up: registrationLeasesMigration.postgres },
  { version: 6, name: "sip traces", up: sipTracesMigration.postgres },
  { version: 7, name: "recordings", up: recordingsMigration.postgres },
  { version: 8, name: "trunk prack", up: trunkPrackMigration },
  { version: 9, name: "outbound redirects", up: redirectsMigration },
  { version: 10, name: "caller-ID headers and call attributes", up: callerIdHeadersMigration + callAttributesMigration },
  { version: 11, name: "trunk refer policy", up: trunkReferPolicyMigration },
  { version: 12, name: "max call duration", up: maxDurationMigration },
];

export interface PostgresMigration {
  version: number;
  name: string;
  up: string;
}
