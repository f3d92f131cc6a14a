// Two app instances ("nodes") on one PostgreSQL: a change made through either node's admin API
// reaches the other node's snapshot, API and change feed within a second.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { StoreChange } from "../../src/store/index.ts";
import { createDatabase, startPostgres, type Postgres } from "../helpers/postgres.ts";
import { until } from "../helpers/until.ts";
import { startHarness, type Harness } from "./harness.ts";

let pg: Postgres | undefined;
let node1: Harness | undefined;
let node2: Harness | undefined;

const YAML = `
trunks:
  - { id: yaml-trunk, domain: yaml.example.com }
`;

beforeAll(async () => {
  pg = await startPostgres();
  const databaseUrl = await createDatabase(pg, "shared_store");
  node1 = await startHarness(YAML, undefined, "warn", { databaseUrl });
  node2 = await startHarness(YAML, undefined, "warn", { databaseUrl });
}, 60_000);

afterAll(async () => {
  await node1?.close();
  await node2?.close();
  await pg?.stop();
});

describe("a shared PostgreSQL store", () => {
  test("both nodes are ready and see the YAML trunk once", async () => {
    for (const node of [node1!, node2!]) {
      expect((await node.call("GET", "/readyz")).json.checks.database).toEqual({ ok: true });
      expect((await node.call("GET", "/api/v1/trunks")).json.map((t: { id: string }) => t.id)).toEqual(["yaml-trunk"]);
    }
  });

  test("a trunk and an inbound route made through node 1 reach node 2 within a second, and back", async () => {
    const seen: StoreChange[] = [];
    node2!.app.ctx.store.changes.subscribe((c) => seen.push(c));
    const trunk = { id: "shared", domain: "sip.example.com", transport: "udp", register: false, username: "alice", password: "secret" };
    expect((await node1!.call("POST", "/api/v1/trunks", trunk)).status).toBe(201);
    await until(async () => (await node2!.call("GET", "/api/v1/trunks/shared")).status === 200, { timeoutMs: 1000 });
    expect(node2!.app.ctx.store.trunks.get("shared")?.password).toBe("secret");
    expect(seen).toEqual([{ entity: "trunk", action: "created", id: "shared" }]);

    expect((await node1!.call("POST", "/api/v1/applications", { id: "acme", name: "Acme", sharedSecret: "0123456789abcdef0123" })).status).toBe(201);
    expect((await node1!.call("POST", "/api/v1/applications/acme/inbound-routes", { sipUsername: "100", channelId: "lobby" })).status).toBe(201);
    await until(() => node2!.app.ctx.store.inboundRoutes.find("100") !== undefined, { timeoutMs: 1000 });

    expect((await node2!.call("PATCH", "/api/v1/trunks/shared", { maxConcurrentCalls: 3 })).status).toBe(200);
    await until(() => node1!.app.ctx.store.trunks.get("shared")?.maxConcurrentCalls === 3, { timeoutMs: 1000 });
    expect((await node2!.call("DELETE", "/api/v1/applications/acme")).status).toBe(204);
    await until(() => node1!.app.ctx.store.applications.get("acme") === undefined, { timeoutMs: 1000 });
    expect(node1!.app.ctx.store.inboundRoutes.find("100")).toBeUndefined();
  });
});
