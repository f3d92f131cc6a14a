import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyConfigToStore } from "../../src/config/apply.ts";
import { parseConfigText } from "../../src/config/load.ts";
import type { TrunkInput } from "../../src/config/entities.ts";
import { schemaVersion } from "../../src/store/db.ts";
import { openStore, type Store, type StoreChange } from "../../src/store/index.ts";
import { migrations } from "../../src/store/migrations.ts";

const dirs: string[] = [];
const stores: Store[] = [];
function tempDbPath(): string {
  const dir = mkdtempSync(join(tmpdir(), "trunkline-store-"));
  dirs.push(dir);
  return join(dir, "sub", "t.db");
}
function open(path: string, list = migrations): Store {
  const store = openStore(path, list);
  stores.push(store);
  return store;
}
afterEach(() => {
  for (const store of stores.splice(0)) store.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

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
  optionsIntervalSec: 30,
  tlsVerify: true,
  enabled: true,
  mediaEncryption: "none",
  allowSdesWithoutTls: false,
  ...extra,
});

describe("database", () => {
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

  test("everything persists across a close and reopen", () => {
    const path = tempDbPath();
    const first = open(path);
    first.trunks.put(trunk("t1", { port: 5080, authId: "auth", maxConcurrentCalls: 4 }), "api");
    first.applications.put({ id: "app", name: "App", sharedSecret: "0123456789abcdef" }, "api");
    first.inboundRoutes.put("app", { sipUsername: "100", channelId: "lobby" });
    first.callerIds.put("app", "lobby", { displayName: "{userAlias}" });
    first.settings.putWebhooks({ inboundUrl: "https://example.com/in", timeoutMs: 2000, secret: "whsec" }, "api");
    first.calls.create({ id: "c1", direction: "inbound", from: "sip:a@x", to: "sip:100@y" });
    first.calls.update("c1", { state: "ended", endReason: "bye" });
    first.close();

    const second = open(path);
    expect(second.trunks.get("t1")).toMatchObject({ ...trunk("t1"), port: 5080, authId: "auth", maxConcurrentCalls: 4, source: "api" });
    expect(second.applications.get("app")).toMatchObject({ name: "App", sharedSecret: "0123456789abcdef" });
    expect(second.inboundRoutes.find("100")).toMatchObject({ applicationId: "app", channelId: "lobby" });
    expect(second.callerIds.get("app", "lobby")).toMatchObject({ displayName: "{userAlias}" });
    expect(second.callerIds.get("app", "lobby")?.username).toBeUndefined();
    expect(second.settings.webhooks()).toMatchObject({ inboundUrl: "https://example.com/in", timeoutMs: 2000, secret: "whsec" });
    expect(second.calls.get("c1")).toMatchObject({ direction: "inbound", state: "ended", endReason: "bye" });
  });
});

describe("entities", () => {
  test("deleting an application removes its routes and caller IDs (foreign keys cascade)", () => {
    const store = open(tempDbPath());
    store.applications.put({ id: "app", name: "App", sharedSecret: "0123456789abcdef" }, "api");
    store.inboundRoutes.put("app", { sipUsername: "100", channelId: "lobby" });
    store.callerIds.put("app", "lobby", { username: "{userId}" });
    store.applications.delete("app");
    expect(store.inboundRoutes.find("100")).toBeUndefined();
    expect(store.callerIds.get("app", "lobby")).toBeUndefined();
  });

  test("a route cannot point at a missing application", () => {
    const store = open(tempDbPath());
    expect(() => store.inboundRoutes.put("ghost", { sipUsername: "1", channelId: "c" })).toThrow();
  });

  test("the change feed reports creations, real updates and deletions, and not no-op writes", () => {
    const store = open(tempDbPath());
    const seen: StoreChange[] = [];
    const unsubscribe = store.changes.subscribe((c) => seen.push(c));
    store.trunks.put(trunk("t1"), "api");
    store.trunks.put(trunk("t1"), "api");
    store.trunks.put(trunk("t1", { domain: "other.example.com" }), "api");
    store.trunks.delete("t1");
    store.trunks.delete("t1");
    unsubscribe();
    store.trunks.put(trunk("t2"), "api");
    expect(seen).toEqual([
      { entity: "trunk", action: "created", id: "t1" },
      { entity: "trunk", action: "updated", id: "t1" },
      { entity: "trunk", action: "deleted", id: "t1" },
    ]);
  });

  test("a failing listener does not stop the others", () => {
    const store = open(tempDbPath());
    let reached = false;
    store.changes.subscribe(() => {
      throw new Error("boom");
    });
    store.changes.subscribe(() => {
      reached = true;
    });
    store.trunks.put(trunk("t1"), "api");
    expect(reached).toBe(true);
  });

});

describe("applying the YAML config", () => {
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

  test("declared objects are written with source yaml; API-made objects are untouched", () => {
    const store = open(tempDbPath());
    store.trunks.put(trunk("api-t"), "api");
    applyConfigToStore(v1, store);
    expect(store.trunks.list().map((t) => [t.id, t.source])).toEqual([
      ["yaml-a", "yaml"],
      ["yaml-b", "yaml"],
      ["api-t", "api"],
    ]);
    expect(store.inboundRoutes.listByApplication("app").map((r) => r.sipUsername)).toEqual(["100", "101"]);
    expect(store.callerIds.get("app", "lobby")?.displayName).toBe("{userAlias}");
    expect(store.settings.webhooks()?.source).toBe("yaml");
  });

  test("trunks keep configuration order (the YAML file's, then API-made by creation), not id order", () => {
    const store = open(tempDbPath());
    store.trunks.put(trunk("api-late"), "api");
    store.trunks.put(trunk("api-early"), "api");
    applyConfigToStore(config("trunks: [{ id: zeta, domain: z.example.com }, { id: alpha, domain: a.example.com }]"), store);
    expect(store.trunks.list().map((t) => t.id)).toEqual(["zeta", "alpha", "api-late", "api-early"]);

    const seen: StoreChange[] = [];
    store.changes.subscribe((c) => seen.push(c));
    applyConfigToStore(config("trunks: [{ id: alpha, domain: a.example.com }, { id: zeta, domain: z.example.com }]"), store);
    expect(store.trunks.list().map((t) => t.id)).toEqual(["alpha", "zeta", "api-late", "api-early"]);
    expect(seen).toEqual([
      { entity: "trunk", action: "updated", id: "alpha" },
      { entity: "trunk", action: "updated", id: "zeta" },
    ]);
  });

  test("a reload applies differences only: changed, removed, and nothing for unchanged objects", () => {
    const store = open(tempDbPath());
    applyConfigToStore(v1, store);
    const seen: StoreChange[] = [];
    store.changes.subscribe((c) => seen.push(c));
    applyConfigToStore(v1, store);
    expect(seen).toEqual([]);
    applyConfigToStore(v2, store);
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

  test("a YAML object takes over an API-made object of the same id", () => {
    const store = open(tempDbPath());
    store.trunks.put(trunk("yaml-a", { domain: "api.example.com" }), "api");
    applyConfigToStore(v1, store);
    expect(store.trunks.get("yaml-a")).toMatchObject({ source: "yaml", domain: "a.example.com" });
  });
});
