// The store: configuration entities (trunks, applications, inbound routes, caller IDs, settings)
// served from an in-memory snapshot, call records, one change feed. Two drivers:
//   const store = openStore("data/trunkline.db", undefined, { nodeId: "single" });   // embedded SQLite
//   const store = await openPostgresStore({ url: "postgres://…", nodeId: "node-1" });
//   store.trunks.list(); await store.trunks.put(...); store.changes.subscribe((change) => ...);
// Reads never wait on the database. Writes go to the database, then to the snapshot, then to the
// change feed. On PostgreSQL each write also NOTIFYs the other nodes (the channel below); each node
// LISTENs, reloads the entity named by the notification and emits the change on its own feed.
// Call records live in the same database, each owned by the node (nodeId) that handled the call.
import type { Database } from "bun:sqlite";
import { SQL } from "bun";
import { statSync, statfsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { createLogger } from "../log.ts";
import { metrics } from "../metrics.ts";
import { type ApplicationRow, ApplicationStore, selectApplications } from "./applications.ts";
import { CallerIdStore, type CallerIdRow, selectCallerIds } from "./callerIds.ts";
import type { CallRecordWriterOptions } from "./callRecordWriter.ts";
import { CallStore } from "./calls.ts";
import { ChannelHomeStore, HOMES_CHANNEL } from "./channelHomes.ts";
import { checkpointInBackground } from "./checkpointer.ts";
import { ChangeFeed, type StoreChange } from "./changes.ts";
import { migratePostgres, openDatabase } from "./db.ts";
import { InboundRouteStore, type RouteRow, selectInboundRoutes } from "./inboundRoutes.ts";
import { postgresMigrations, type Migration, type PostgresMigration } from "./migrations.ts";
import { NodeStore } from "./nodes.ts";
import { RegistrationLeaseStore } from "./registrations.ts";
import { SipTraceStore } from "./sipTraces.ts";
import { RecordingStore } from "./recordings.ts";
import { selectSettings, type SettingRow, SettingsStore } from "./settings.ts";
import { PostgresExecutor, type SqlExecutor, SqliteExecutor } from "./sql.ts";
import { selectTrunks, type TrunkSnapshotRow, TrunkStore } from "./trunks.ts";

export interface Store {
  readonly driver: "sqlite" | "postgres";
  readonly changes: ChangeFeed;
  readonly trunks: TrunkStore;
  readonly applications: ApplicationStore;
  readonly inboundRoutes: InboundRouteStore;
  readonly callerIds: CallerIdStore;
  readonly settings: SettingsStore;
  readonly calls: CallStore;
  /** SIP traces of calls (records.sipTraceDays). */
  readonly sipTraces: SipTraceStore;
  /** Recordings' metadata (the audio files are on the recording node's disk). */
  readonly recordings: RecordingStore;
  /** The cluster's nodes and their heartbeats (on SQLite: this one process). */
  readonly nodes: NodeStore;
  /** Which node homes which channel (leases; on PostgreSQL with notices from the other nodes). */
  readonly homes: ChannelHomeStore;
  /** Which node registers each registering trunk (cluster.front set), and that registration's state. */
  readonly registrations: RegistrationLeaseStore;
  /**
   * Runs the writes in `work` as one transaction: all or none reach the database; the snapshot and
   * the change feed (local, and NOTIFY on PostgreSQL) hear of them only once it commits.
   */
  transaction<T>(work: () => Promise<T>): Promise<T>;
  isOpen(): boolean;
  /** Whether the database answers (and, on PostgreSQL, the LISTEN for changes was acknowledged). */
  healthy(): Promise<boolean>;
  close(): Promise<void>;
}

/** The PostgreSQL channel that carries every configuration change, JSON: `{ origin, change }`. */
export const CHANGE_CHANNEL = "trunkline_changes";

interface ChangeNotification {
  /** The store instance that made the change; it ignores its own notifications. */
  origin: string;
  change: StoreChange;
}

const log = createLogger("store");
const KNOWN_ENTITIES = new Set<unknown>(["trunk", "application", "inboundRoute", "callerId", "webhooks"] satisfies StoreChange["entity"][]);

interface ConfigRows {
  trunks: TrunkSnapshotRow[];
  applications: ApplicationRow[];
  inboundRoutes: RouteRow[];
  callerIds: CallerIdRow[];
  settings: SettingRow[];
}

async function loadRows(sql: SqlExecutor): Promise<ConfigRows> {
  const [trunks, applications, inboundRoutes, callerIds, settings] = await Promise.all([
    sql.query<TrunkSnapshotRow>(selectTrunks(sql)),
    sql.query<ApplicationRow>(selectApplications),
    sql.query<RouteRow>(selectInboundRoutes),
    sql.query<CallerIdRow>(selectCallerIds),
    sql.query<SettingRow>(selectSettings),
  ]);
  return { trunks, applications, inboundRoutes, callerIds, settings };
}

function entityStores(sql: SqlExecutor, changes: ChangeFeed, rows: ConfigRows) {
  const inboundRoutes = new InboundRouteStore(sql, changes, rows.inboundRoutes);
  const callerIds = new CallerIdStore(sql, changes, rows.callerIds);
  return {
    trunks: new TrunkStore(sql, changes, rows.trunks),
    applications: new ApplicationStore(sql, changes, rows.applications, async () => {
      await inboundRoutes.reload();
      await callerIds.reload();
    }),
    inboundRoutes,
    callerIds,
    settings: new SettingsStore(sql, changes, rows.settings),
  };
}

type EntityStores = ReturnType<typeof entityStores>;

async function reloadAll(entities: EntityStores): Promise<void> {
  await entities.trunks.reload();
  await entities.applications.reload();
  await entities.inboundRoutes.reload();
  await entities.callerIds.reload();
  await entities.settings.reload();
}

/** The embedded store, with its SQLite database at hand. */
export interface SqliteStore extends Store {
  readonly db: Database;
  readonly path: string;
}

export interface StoreIdentity {
  /** The node whose call records this store writes (cluster.nodeId). */
  nodeId?: string;
  /** The call record writer's window and bound (callRecordWriter.ts; defaults there). */
  callRecords?: CallRecordWriterOptions;
  /** SQLite: WAL checkpoints on a worker thread instead of inside the main thread's commits (checkpointer.ts). */
  backgroundCheckpoints?: boolean;
}

const DEFAULT_NODE_ID = "single";

// The disk the call records fill: the SQLite file (with its WAL) and the filesystem it is on, read at
// scrape time. On PostgreSQL the database's disk is the database server's to watch.
const openSqlitePaths = new Set<string>();
function openDatabasePath(): string | undefined {
  for (const path of openSqlitePaths) return path;
  return undefined;
}
function fileBytes(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
function filesystem(read: (fs: ReturnType<typeof statfsSync>) => number): () => { labels: Record<string, string>; value: number }[] {
  return () => {
    const path = openDatabasePath();
    if (path === undefined) return [];
    try {
      return [{ labels: {}, value: read(statfsSync(dirname(path))) }];
    } catch {
      return [];
    }
  };
}
metrics.gauge("trunkline_database_file_bytes", "Size of the SQLite database (call records and configuration), with its write-ahead log.", [], () => {
  const path = openDatabasePath();
  return path === undefined ? [] : [{ labels: {}, value: fileBytes(path) + fileBytes(`${path}-wal`) }];
});
metrics.gauge("trunkline_database_filesystem_avail_bytes", "Bytes free to Trunkline on the filesystem of the SQLite database.", [], filesystem((fs) => Number(fs.bavail) * Number(fs.bsize)));
metrics.gauge("trunkline_database_filesystem_size_bytes", "Size of the filesystem of the SQLite database.", [], filesystem((fs) => Number(fs.blocks) * Number(fs.bsize)));

export function openStore(path: string, migrations?: Migration[], identity: StoreIdentity = {}): SqliteStore {
  const db = openDatabase(path, migrations);
  const sql = new SqliteExecutor(db);
  const changes = new ChangeFeed();
  const rows: ConfigRows = {
    trunks: sql.querySync<TrunkSnapshotRow>(selectTrunks(sql)),
    applications: sql.querySync<ApplicationRow>(selectApplications),
    inboundRoutes: sql.querySync<RouteRow>(selectInboundRoutes),
    callerIds: sql.querySync<CallerIdRow>(selectCallerIds),
    settings: sql.querySync<SettingRow>(selectSettings),
  };
  const entities = entityStores(sql, changes, rows);
  let open = true;
  const absolutePath = resolve(path);
  if (path !== ":memory:") openSqlitePaths.add(absolutePath);
  const calls = new CallStore(sql, identity.nodeId ?? DEFAULT_NODE_ID, identity.callRecords);
  const sipTraces = new SipTraceStore(sql);
  const checkpointer = identity.backgroundCheckpoints && path !== ":memory:" ? checkpointInBackground(db, absolutePath) : undefined;
  return {
    driver: "sqlite",
    db,
    path,
    changes,
    ...entities,
    calls,
    sipTraces,
    recordings: new RecordingStore(sql, identity.nodeId ?? DEFAULT_NODE_ID),
    nodes: new NodeStore(sql),
    homes: new ChannelHomeStore(sql),
    registrations: new RegistrationLeaseStore(sql),
    transaction: (work) => atomically(sql, changes, entities, work),
    isOpen: () => open,
    healthy: () => Promise.resolve(open && db.query("SELECT 1 AS ok").get() !== null),
    async close() {
      if (!open) return;
      open = false;
      await calls.close();
      await sipTraces.flush();
      await checkpointer?.stop();
      openSqlitePaths.delete(absolutePath);
      // Folds the WAL back into the main file so a copied database is complete.
      db.run("PRAGMA wal_checkpoint(TRUNCATE)");
      db.close();
    },
  };
}

export interface PostgresStoreOptions extends StoreIdentity {
  /** postgres://user:password@host:port/database */
  url: string;
  migrations?: PostgresMigration[];
}

export async function openPostgresStore(options: PostgresStoreOptions): Promise<Store> {
  const client = new SQL(options.url);
  try {
    await migratePostgres(client, options.migrations ?? postgresMigrations);
  } catch (err) {
    await client.close();
    throw err;
  }
  const sql = new PostgresExecutor(client);
  const changes = new ChangeFeed();
  const origin = crypto.randomUUID();
  let entities: EntityStores | undefined;
  let listening = false;
  let open = true;
  let changedDuringLoad = false;

  const onNotification = (payload: string) => {
    let notification: ChangeNotification | null;
    try {
      notification = JSON.parse(payload) as ChangeNotification | null;
    } catch {
      notification = null;
    }
    if (typeof notification !== "object" || notification === null || !KNOWN_ENTITIES.has(notification.change?.entity)) {
      return log.warn("unreadable change notification ignored", { payload });
    }
    if (notification.origin === origin || !open) return;
    if (!entities) return void (changedDuringLoad = true);
    const target = entities;
    const { change } = notification;
    void sql
      .serial(async () => {
        await reloadEntity(target, change);
        changes.emit(change);
      })
      .catch((err: unknown) => log.error("reloading a changed entity failed", { change, err }));
  };

  // After a reconnect, notifications sent while disconnected are lost: everything is reloaded.
  const onListen = () => {
    listening = true;
    if (!entities) return;
    const target = entities;
    void sql
      .serial(async () => {
        const applicationsBefore = target.applications.list().map((a) => a.id);
        await reloadAll(target);
        for (const id of applicationsBefore) {
          if (!target.applications.get(id)) changes.emit({ entity: "application", action: "deleted", id });
        }
        const firstTrunk = target.trunks.list()[0];
        if (firstTrunk) changes.emit({ entity: "trunk", action: "updated", id: firstTrunk.id });
        changes.emit({ entity: "webhooks", action: "updated" });
      })
      .catch((err: unknown) => log.error("reloading after reconnecting failed", { err }));
  };

  // Its own queue: a claim on a call path never waits behind a configuration reload.
  const homes = new ChannelHomeStore(new PostgresExecutor(client));
  const onHomeNotice = (payload: string) => {
    if (open && !homes.noticeReceived(payload)) log.warn("unreadable channel home notice ignored", { payload });
  };

  // LISTEN before the first load, so a change made in between is not missed.
  let subscription: SQL.ListenSubscription;
  let homesSubscription: SQL.ListenSubscription;
  try {
    subscription = await client.listen(CHANGE_CHANNEL, onNotification, onListen);
    homesSubscription = await client.listen(HOMES_CHANNEL, onHomeNotice);
    const loading = entityStores(sql, changes, await loadRows(sql));
    // A change notified while the tables were being read may have missed a table already read.
    if (changedDuringLoad) await reloadAll(loading);
    entities = loading;
  } catch (err) {
    await client.close();
    throw err;
  }

  // A write resolves once the other nodes are notified. The row is committed already: a failed
  // NOTIFY is logged, and the other nodes catch up at their next reload of that entity.
  changes.publisher = async (change) => {
    const notification: ChangeNotification = { origin, change };
    try {
      await sql.query("SELECT pg_notify($1, $2)", [CHANGE_CHANNEL, JSON.stringify(notification)]);
    } catch (err) {
      log.error("change notification failed", { change, err });
    }
  };

  const store: Store = {
    driver: "postgres",
    changes,
    ...entities,
    // Its own queue: call record writes never wait behind a configuration reload, nor delay one.
    calls: new CallStore(new PostgresExecutor(client), options.nodeId ?? DEFAULT_NODE_ID, options.callRecords),
    sipTraces: new SipTraceStore(new PostgresExecutor(client)),
    recordings: new RecordingStore(sql, options.nodeId ?? DEFAULT_NODE_ID),
    nodes: new NodeStore(sql),
    homes,
    registrations: new RegistrationLeaseStore(sql),
    transaction: (work) => atomically(sql, changes, entities!, work),
    isOpen: () => open,
    async healthy() {
      if (!open || !listening) return false;
      const [row] = await sql.query<{ ok: number }>("SELECT 1 AS ok");
      return row?.ok === 1;
    },
    async close() {
      if (!open) return;
      open = false;
      await sql.serial(() => Promise.resolve());
      await store.calls.close();
      await store.sipTraces.flush();
      await subscription.unlisten();
      await homesSubscription.unlisten();
      await client.close();
    },
  };
  return store;
}

/** One transaction; its changes are told after the commit, and a rollback restores the snapshot. */
async function atomically<T>(sql: SqlExecutor, changes: ChangeFeed, entities: EntityStores, work: () => Promise<T>): Promise<T> {
  try {
    return await changes.afterCommit(() => sql.transaction(work));
  } catch (err) {
    // The snapshot took writes the rollback undid.
    await sql.serial(() => reloadAll(entities));
    throw err;
  }
}

async function reloadEntity(entities: EntityStores, change: StoreChange): Promise<void> {
  switch (change.entity) {
    case "trunk":
      return entities.trunks.reload();
    case "application":
      // What a deleted application took with it goes first, so no reader sees it without its application.
      if (change.action === "deleted") {
        await entities.inboundRoutes.reload();
        await entities.callerIds.reload();
      }
      return entities.applications.reload();
    case "inboundRoute":
      return entities.inboundRoutes.reload();
    case "callerId":
      return entities.callerIds.reload();
    case "webhooks":
      return entities.settings.reload();
  }
}

export type { Application } from "./applications.ts";
export type { CallerIdConfig } from "./callerIds.ts";
export type { CallRecord } from "./calls.ts";
export type { StoreChange, Source } from "./changes.ts";
export type { InboundRoute } from "./inboundRoutes.ts";
export type { NodeLoad, NodeStatus } from "./nodes.ts";
export type { LeaseRegistrationStatus, RegistrationLease } from "./registrations.ts";
export type { RecordingRecord } from "./recordings.ts";
export type { WebhookSettings } from "./settings.ts";
export type { Trunk } from "./trunks.ts";
