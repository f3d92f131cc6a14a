import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { SQL } from "bun";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyConfigToStore } from "../../src/config/apply.ts";
import { parseConfigText } from "../../src/config/load.ts";
import type { TrunkInput } from "../../src/config/entities.ts";
import { schemaVersion } from "../../src/store/db.ts";
import { CHANGE_CHANNEL, openPostgresStore, openStore, type SqliteStore, type Store, type StoreChange } from "../../src/store/index.ts";
import { migrations, postgresMigrations } from "../../src/store/migrations.ts";
import { createDatabase, startPostgres, type Postgres } from "../helpers/postgres.ts";
import { until } from "../helpers/until.ts";

const dirs: string[] = [];
const stores: Store[] = [];
function tempDbPath(): string {
  const dir = mkdtempSync(join(tmpdir(), "trunkline-store-"));
  dirs.push(dir);
  return join(dir, "sub", "t.db");
}
function open(path: string, list = migrations): SqliteStore {
  const store = openStore(path, list);
  stores.push(store);
  return store;
}
afterEach(async () => {
  for (const store of stores.splice(0)) await store.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

let pg: Postgres | undefined;
beforeAll(async () => {
  pg = await startPostgres();
}, 60_000);
afterAll(async () => {
  await pg?.stop();
});

let databases = 0;
/** One driver: `fresh` opens a store on an empty database, `again` a second store on the same one. */
interface Driver {
  name: string;
  fresh(): Promise<Store>;
  again(store: Store): Promise<Store>;
}
const urls = new WeakMap<Store, string>();
const drivers: Driver[] = [
  {
    name: "SQLite",
    fresh: () => Promise.resolve(open(tempDbPath())),
    again: (store) => Promise.resolve(open((store as SqliteStore).path)),
  },
  {
    name: "PostgreSQL",
    async fresh() {
      const url = await createDatabase(pg!, `store_${++databases}`);
      const store = await openPostgresStore({ url });
      stores.push(store);
      urls.set(store, url);
      return store;
    },
    async again(store) {
      const url = urls.get(store)!;
      const other = await openPostgresStore({ url });
      stores.push(other);
      urls.set(other, url);
      return other;
    },
  },
];

const trunk = (id: string, extra: Partial<TrunkInput> = {}): TrunkInput => ({
  id,
  domain: "sip.example.com",
  transport: "udp",
  register: true,
  canTerminate: true,
  username: "alice",
  password: "pw",
  registerExpires: 3600,
  allowedAddresses: ["203.0.113.0/24"],
  earlyOffer: false,
  prack: "supported",
  optionsIntervalSec: 30,
  tlsVerify: true,
  enabled: true,
  mediaEncryption: "none",
  allowSdesWithoutTls: false, redirects: "sameTrunk", referPolicy: "decline",
  ...extra,
});

describe("SQLite database", () => {
  test("migrations run from empty: WAL, foreign keys, every table, recorded version", () => {
    const store = open(tempDbPath());
    expect(store.db.query<{ journal_mode: string }, []>("PRAGMA journal_mode").get()?.journal_mode).toBe("wal");
    expect(store.db.query<{ foreign_keys: number }, []>("PRAGMA foreign_keys").get()?.foreign_keys).toBe(1);
    const tables = store.db
      .query<{ name: string }, []>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
      .all()
      .map((t) => t.name);
    expect(tables).toEqual(expect.arrayContaining(["applications", "calls", "caller_ids", "inbound_routes", "schema_migrations", "settings", "trunks"]));
    expect(schemaVersion(store.db)).toBe(Math.max(...migrations.map((m) => m.version)));
  });

  test("a reopen applies only migrations appended since", () => {
    const path = tempDbPath();
    open(path).close();
    const extended = [...migrations, { version: 1000, name: "test column", up: "ALTER TABLE calls ADD COLUMN test_note TEXT" }];
    const store = open(path, extended);
    expect(schemaVersion(store.db)).toBe(1000);
    const applied = store.db.query<{ n: number }, []>("SELECT COUNT(*) AS n FROM schema_migrations").get()?.n;
    expect(applied).toBe(extended.length);
  });
});

describe("PostgreSQL database", () => {
  test("migrations run from empty: every table, recorded version; a reopen applies only those appended since", async () => {
    const url = await createDatabase(pg!, `store_${++databases}`);
    const first = await openPostgresStore({ url });
    stores.push(first);
    const sql = new SQL(url);
    try {
      const tables = ((await sql.unsafe("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")) as { tablename: string }[]).map((t) => t.tablename);
      expect(tables).toEqual(expect.arrayContaining(["applications", "caller_ids", "calls", "inbound_routes", "nodes", "schema_migrations", "settings", "trunks"]));
      const extended = [...postgresMigrations, { version: 1000, name: "test column", up: "ALTER TABLE trunks ADD COLUMN test_note TEXT" }];
      stores.push(await openPostgresStore({ url, migrations: extended }));
      const versions = ((await sql.unsafe("SELECT version FROM schema_migrations ORDER BY version")) as { version: number }[]).map((r) => r.version);
      expect(versions).toEqual(extended.map((m) => m.version));
    } finally {
      await sql.close();
    }
  });

  test("a change made through one node reaches another node's snapshot and change feed (LISTEN/NOTIFY)", async () => {
    const one = await drivers[1]!.fresh();
    const other = await drivers[1]!.again(one);
    const seen: StoreChange[] = [];
    other.changes.subscribe((c) => seen.push(c));

    // Anyone who may NOTIFY on the channel can send garbage: it is ignored, and the change after it arrives.
    const raw = new SQL(urls.get(one)!);
    try {
      for (const payload of ["not json", "null", '{"origin":"x","change":{"entity":"nope","id":"t1"}}']) {
        await raw.unsafe("SELECT pg_notify($1, $2)", [CHANGE_CHANNEL, payload]);
      }
    } finally {
      await raw.close();
    }
    await one.trunks.put(trunk("t1"), "api");
    await until(() => other.trunks.get("t1") !== undefined, { timeoutMs: 1000, what: () => seen });
    expect(seen).toEqual([{ entity: "trunk", action: "created", id: "t1" }]);

    await one.applications.put({ id: "app", name: "App", sharedSecret: "0123456789abcdef" }, "api");
    await one.inboundRoutes.put("app", { sipUsername: "100", channelId: "lobby" });
    await one.callerIds.put("app", "lobby", { displayName: "{userAlias}" });
    await one.settings.putWebhooks({ inboundUrl: "https://example.com/in", timeoutMs: 2000 }, "api");
    await until(() => other.settings.webhooks() !== undefined && other.callerIds.get("app", "lobby") !== undefined, { timeoutMs: 1000, what: () => seen });
    expect(other.inboundRoutes.find("100")).toMatchObject({ applicationId: "app", channelId: "lobby" });

    await one.applications.delete("app");
    await until(() => other.applications.get("app") === undefined, { timeoutMs: 1000, what: () => seen });
    expect(other.inboundRoutes.find("100")).toBeUndefined();
    expect(other.callerIds.get("app", "lobby")).toBeUndefined();
    expect(seen).toEqual([
      { entity: "trunk", action: "created", id: "t1" },
      { entity: "application", action: "created", id: "app" },
      { entity: "inboundRoute", action: "created", applicationId: "app", sipUsername: "100" },
      { entity: "callerId", action: "created", applicationId: "app", channelId: "lobby" },
      { entity: "webhooks", action: "created" },
      { entity: "application", action: "deleted", id: "app" },
    ]);
    // Its own writes come back on the channel too, and are not emitted twice.
    const own: StoreChange[] = [];
    one.changes.subscribe((c) => own.push(c));
    await other.trunks.delete("t1");
    await until(() => one.trunks.get("t1") === undefined, { timeoutMs: 1000 });
    await one.trunks.put(trunk("t2"), "api");
    await until(() => other.trunks.get("t2") !== undefined, { timeoutMs: 1000 });
    expect(own).toEqual([
      { entity: "trunk", action: "deleted", id: "t1" },
      { entity: "trunk", action: "created", id: "t2" },
    ]);
  });
});

for (const driver of drivers) {
  describe(`persistence (${driver.name})`, () => {
    test("everything persists across a close and reopen", async () => {
      const first = await driver.fresh();
      await first.trunks.put(trunk("t1", { port: 5080, authId: "auth", maxConcurrentCalls: 4, prack: "off" }), "api");
      await first.applications.put({ id: "app", name: "App", sharedSecret: "0123456789abcdef" }, "api");
      await first.inboundRoutes.put("app", { sipUsername: "100", channelId: "lobby" });
      await first.callerIds.put("app", "lobby", { displayName: "{userAlias}" });
      await first.settings.putWebhooks({ inboundUrl: "https://example.com/in", timeoutMs: 2000, secret: "whsec" }, "api");
      first.calls.create({ id: "c1", direction: "inbound", from: "sip:a@x", to: "sip:100@y" });
      first.calls.update("c1", { state: "ended", endReason: "bye" });
      await first.close();

      const second = await driver.again(first);
      expect(second.trunks.get("t1")).toMatchObject({ ...trunk("t1"), port: 5080, authId: "auth", maxConcurrentCalls: 4, prack: "off", source: "api" });
      expect(second.applications.get("app")).toMatchObject({ name: "App", sharedSecret: "0123456789abcdef" });
      expect(second.inboundRoutes.find("100")).toMatchObject({ applicationId: "app", channelId: "lobby" });
      expect(second.callerIds.get("app", "lobby")).toMatchObject({ displayName: "{userAlias}" });
      expect(second.callerIds.get("app", "lobby")?.username).toBeUndefined();
      expect(second.settings.webhooks()).toMatchObject({ inboundUrl: "https://example.com/in", timeoutMs: 2000, secret: "whsec" });
      expect(await second.calls.get("c1")).toMatchObject({ direction: "inbound", state: "ended", endReason: "bye" });
    });
  });

  describe(`entities (${driver.name})`, () => {
    test("deleting an application removes its routes and caller IDs (foreign keys cascade)", async () => {
      const store = await driver.fresh();
      await store.applications.put({ id: "app", name: "App", sharedSecret: "0123456789abcdef" }, "api");
      await store.inboundRoutes.put("app", { sipUsername: "100", channelId: "lobby" });
      await store.callerIds.put("app", "lobby", { username: "{userId}" });
      await store.applications.delete("app");
      expect(store.inboundRoutes.find("100")).toBeUndefined();
      expect(store.callerIds.get("app", "lobby")).toBeUndefined();
    });

    test("a route cannot point at a missing application", async () => {
      const store = await driver.fresh();
      await expect(store.inboundRoutes.put("ghost", { sipUsername: "1", channelId: "c" })).rejects.toThrow();
    });

    test("the change feed reports creations, real updates and deletions, and not no-op writes", async () => {
      const store = await driver.fresh();
      const seen: StoreChange[] = [];
      const unsubscribe = store.changes.subscribe((c) => seen.push(c));
      await store.trunks.put(trunk("t1"), "api");
      await store.trunks.put(trunk("t1"), "api");
      await store.trunks.put(trunk("t1", { domain: "other.example.com" }), "api");
      await store.trunks.delete("t1");
      await store.trunks.delete("t1");
      unsubscribe();
      await store.trunks.put(trunk("t2"), "api");
      expect(seen).toEqual([
        { entity: "trunk", action: "created", id: "t1" },
        { entity: "trunk", action: "updated", id: "t1" },
        { entity: "trunk", action: "deleted", id: "t1" },
      ]);
    });

    test("a failing listener does not stop the others", async () => {
      const store = await driver.fresh();
      let reached = false;
      store.changes.subscribe(() => {
        throw new Error("boom");
      });
      store.changes.subscribe(() => {
        reached = true;
      });
      await store.trunks.put(trunk("t1"), "api");
      expect(reached).toBe(true);
    });

  });

  describe(`applying the YAML config (${driver.name})`, () => {
    function config(text: string) {
      const result = parseConfigText(text, "t.yaml", { env: {} });
      if (!result.ok) throw new Error(result.errors.join("\n"));
      return result.config;
    }
    const v1 = config(`
  trunks:
    - { id: yaml-a, domain: a.example.com }
    - { id: yaml-b, domain: b.example.com }
  applications:
    - id: app
      name: App
      sharedSecret: 0123456789abcdef
      inboundRoutes: [{ sipUsername: "100", channelId: lobby }, { sipUsername: "101", channelId: hall }]
      channels: { lobby: { callerId: { displayName: "{userAlias}" } } }
  webhooks: { inboundUrl: "https://example.com/in" }
  `);
    const v2 = config(`
  trunks:
    - { id: yaml-a, domain: a2.example.com }
  applications:
    - id: app
      name: App
      sharedSecret: 0123456789abcdef
      inboundRoutes: [{ sipUsername: "100", channelId: lobby }]
  `);

    test("declared objects are written with source yaml; API-made objects are untouched", async () => {
      const store = await driver.fresh();
      await store.trunks.put(trunk("api-t"), "api");
      await applyConfigToStore(v1, store);
      expect(store.trunks.list().map((t) => [t.id, t.source])).toEqual([
        ["yaml-a", "yaml"],
        ["yaml-b", "yaml"],
        ["api-t", "api"],
      ]);
      expect(store.inboundRoutes.listByApplication("app").map((r) => r.sipUsername)).toEqual(["100", "101"]);
      expect(store.callerIds.get("app", "lobby")?.displayName).toBe("{userAlias}");
      expect(store.settings.webhooks()?.source).toBe("yaml");
    });

    test("trunks keep configuration order (the YAML file's, then API-made by creation), not id order", async () => {
      const store = await driver.fresh();
      await store.trunks.put(trunk("api-late"), "api");
      await store.trunks.put(trunk("api-early"), "api");
      await applyConfigToStore(config("trunks: [{ id: zeta, domain: z.example.com }, { id: alpha, domain: a.example.com }]"), store);
      expect(store.trunks.list().map((t) => t.id)).toEqual(["zeta", "alpha", "api-late", "api-early"]);

      const seen: StoreChange[] = [];
      store.changes.subscribe((c) => seen.push(c));
      await applyConfigToStore(config("trunks: [{ id: alpha, domain: a.example.com }, { id: zeta, domain: z.example.com }]"), store);
      expect(store.trunks.list().map((t) => t.id)).toEqual(["alpha", "zeta", "api-late", "api-early"]);
      expect(seen).toEqual([
        { entity: "trunk", action: "updated", id: "alpha" },
        { entity: "trunk", action: "updated", id: "zeta" },
      ]);
    });

    test("a reload applies differences only: changed, removed, and nothing for unchanged objects", async () => {
      const store = await driver.fresh();
      await applyConfigToStore(v1, store);
      const seen: StoreChange[] = [];
      store.changes.subscribe((c) => seen.push(c));
      await applyConfigToStore(v1, store);
      expect(seen).toEqual([]);
      await applyConfigToStore(v2, store);
      expect(seen).toEqual(
        expect.arrayContaining([
          { entity: "trunk", action: "deleted", id: "yaml-b" },
          { entity: "trunk", action: "updated", id: "yaml-a" },
          { entity: "inboundRoute", action: "deleted", applicationId: "app", sipUsername: "101" },
          { entity: "callerId", action: "deleted", applicationId: "app", channelId: "lobby" },
          { entity: "webhooks", action: "deleted" },
        ]),
      );
      expect(seen).toHaveLength(5);
      expect(store.trunks.get("yaml-a")?.domain).toBe("a2.example.com");
    });

    test("a failing apply changes nothing: the database, the snapshot, the change feed and the other nodes keep the previous state", async () => {
      const store = await driver.fresh();
      await applyConfigToStore(v1, store);
      const other = await driver.again(store);
      const state = (s: Store) => ({
        trunks: s.trunks.list().map((t) => [t.id, t.domain]),
        routes: s.inboundRoutes.listByApplication("app").map((r) => [r.sipUsername, r.channelId]),
        callerId: s.callerIds.get("app", "lobby")?.displayName,
        webhooks: s.settings.webhooks()?.inboundUrl,
      });
      const before = state(store);
      const seen: StoreChange[] = [];
      const seenByOther: StoreChange[] = [];
      store.changes.subscribe((c) => seen.push(c));
      other.changes.subscribe((c) => seenByOther.push(c));

      // Everything else of this file is written first (webhooks come last), then the database refuses.
      store.settings.putWebhooks = () => Promise.reject(new Error("database refused the webhooks row"));
      const changedEverything = config(`
  trunks:
    - { id: yaml-a, domain: changed.example.com }
    - { id: yaml-c, domain: c.example.com }
  applications:
    - id: app
      name: App renamed
      sharedSecret: 0123456789abcdef
      inboundRoutes: [{ sipUsername: "100", channelId: hall }, { sipUsername: "102", channelId: lobby }]
  webhooks: { inboundUrl: "https://example.com/other" }
  `);
      await expect(applyConfigToStore(changedEverything, store)).rejects.toThrow("database refused the webhooks row");

      expect(state(store)).toEqual(before);
      expect(store.applications.get("app")?.name).toBe("App");
      expect(seen).toEqual([]);
      const reopened = await driver.again(store);
      expect(state(reopened)).toEqual(before);
      expect(state(other)).toEqual(before);
      if (driver.name === "PostgreSQL") {
        // The other node heard nothing (no NOTIFY) before a later write that did reach it.
        await store.trunks.put(trunk("marker"), "api");
        await until(() => other.trunks.get("marker") !== undefined, { timeoutMs: 2000, what: () => seenByOther });
        expect(seenByOther).toEqual([{ entity: "trunk", action: "created", id: "marker" }]);
        expect(state(other)).toEqual({ ...before, trunks: [...before.trunks, ["marker", "sip.example.com"]] });
      }
    });

    test("a YAML object takes over an API-made object of the same id", async () => {
      const store = await driver.fresh();
      await store.trunks.put(trunk("yaml-a", { domain: "api.example.com" }), "api");
      await applyConfigToStore(v1, store);
      expect(store.trunks.get("yaml-a")).toMatchObject({ source: "yaml", domain: "a.example.com" });
    });
  });
}
