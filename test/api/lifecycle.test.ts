import { afterEach, describe, expect, test } from "bun:test";
import type { Service } from "../../src/app.ts";
import { s } from "../../src/config/schema.ts";
import type { StoreChange } from "../../src/store/index.ts";
import { startHarness, type Harness } from "./harness.ts";

const yaml = `
trunks:
  - { id: carrier, domain: sip.carrier.example, password: yaml-password }
applications:
  - id: managed
    name: Managed
    sharedSecret: managed-secret-0123456789
    inboundRoutes: [{ sipUsername: "100", channelId: lobby }]
    channels: { lobby: { callerId: { displayName: "{userAlias}" } } }
webhooks: { inboundUrl: "https://hooks.example.com/in", secret: yaml-webhook-secret }
`;

const harnesses: Harness[] = [];
async function harness(text: string, compose?: Parameters<typeof startHarness>[1]): Promise<Harness> {
  const h = await startHarness(text, compose);
  harnesses.push(h);
  return h;
}
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
});

describe("YAML-declared objects are read-only through the API", () => {
  test("changing, deleting or re-creating a YAML trunk is a 409 saying so", async () => {
    const h = await harness(yaml);
    const trunk = await h.call("GET", "/api/v1/trunks/carrier");
    expect(trunk.json).toMatchObject({ source: "yaml", passwordSet: true });
    for (const [method, path, body] of [
      ["PATCH", "/api/v1/trunks/carrier", { port: 5080 }],
      ["DELETE", "/api/v1/trunks/carrier", undefined],
      ["POST", "/api/v1/trunks", { id: "carrier", domain: "x.example" }],
    ] as const) {
      const res = await h.call(method, path, body);
      expect(res.status).toBe(409);
      expect(res.json.error).toEqual({ code: "managed_by_config", message: expect.stringContaining("declared in the YAML config and is read-only") });
    }
  });

  test("a YAML application, its routes, caller IDs and the YAML webhooks are read-only too", async () => {
    const h = await harness(yaml);
    const writes: [string, string, unknown][] = [
      ["PATCH", "/api/v1/applications/managed", { name: "x" }],
      ["DELETE", "/api/v1/applications/managed", undefined],
      ["POST", "/api/v1/applications/managed/inbound-routes", { sipUsername: "101", channelId: "x" }],
      ["DELETE", "/api/v1/applications/managed/inbound-routes/100", undefined],
      ["PUT", "/api/v1/applications/managed/channels/lobby/caller-id", { username: "{userId}" }],
      ["PUT", "/api/v1/settings/webhooks", { inboundUrl: "https://elsewhere.example.com" }],
    ];
    for (const [method, path, body] of writes) expect((await h.call(method, path, body)).status).toBe(409);
    expect((await h.call("GET", "/api/v1/applications/managed/inbound-routes/100")).json.channelId).toBe("lobby");
    expect((await h.call("GET", "/api/v1/settings/webhooks")).json).toMatchObject({ source: "yaml", secretSet: true });
  });

  test("API-made objects survive a restart next to the YAML ones", async () => {
    const h = await harness(yaml);
    expect((await h.call("POST", "/api/v1/trunks", { id: "backup", domain: "sip.backup.example" })).status).toBe(201);
    expect((await h.call("POST", "/api/v1/applications", { id: "api-app", name: "A", sharedSecret: "api-secret-0123456789" })).status).toBe(201);
    await h.call("POST", "/api/v1/applications/api-app/inbound-routes", { sipUsername: "500", channelId: "c" });
    await h.restart();
    expect((await h.call("GET", "/api/v1/trunks")).json.map((t: { id: string; source: string }) => [t.id, t.source])).toEqual([
      ["carrier", "yaml"],
      ["backup", "api"],
    ]);
    expect((await h.call("GET", "/api/v1/applications/api-app/inbound-routes/500")).status).toBe(200);
  });
});

describe("reload", () => {
  test("a reload applies YAML changes, keeps API objects and notifies subscribers", async () => {
    const h = await harness(yaml);
    await h.call("POST", "/api/v1/trunks", { id: "backup", domain: "sip.backup.example" });
    const seen: StoreChange[] = [];
    h.app.ctx.store.changes.subscribe((c) => seen.push(c));
    h.writeConfig(yaml.replace("sip.carrier.example", "sip2.carrier.example"));
    expect(await h.app.reload()).toEqual({ ok: true });
    expect(seen).toEqual([{ entity: "trunk", action: "updated", id: "carrier" }]);
    expect((await h.call("GET", "/api/v1/trunks/carrier")).json.domain).toBe("sip2.carrier.example");
    expect((await h.call("GET", "/api/v1/trunks/backup")).status).toBe(200);
  });

  test("an invalid file is rejected with its errors and the running config stays", async () => {
    const h = await harness(yaml);
    h.writeConfig(`${yaml}\nbogus: true\n`);
    const result = await h.app.reload();
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.errors).toEqual([expect.stringMatching(/config\.yaml:\d+:1: bogus: unknown key$/)]);
    expect((await h.call("GET", "/api/v1/trunks/carrier")).status).toBe(200);
  });
});

describe("services", () => {
  test("services start in order, add routes and readiness, get reloads, and stop in reverse", async () => {
    const events: string[] = [];
    let sipBound = false;
    const service = (name: string, extra: Partial<Service> = {}): Service => ({
      name,
      start: () => void events.push(`start ${name}`),
      stop: () => void events.push(`stop ${name}`),
      reload: (config) => void events.push(`reload ${name} ${config.calls.ringTimeoutSec}`),
      ...extra,
    });
    const h = await harness("", () => [
      service("sip", { ready: () => (sipBound ? { ok: true } : { ok: false, detail: "sockets not bound" }) }),
      service("trunks", {
        routes: (api) =>
          api.route(
            { method: "get", path: "/trunks/status", summary: "Status", tag: "trunks", response: { status: 200, description: "ok", schema: s.object({}) } },
            (c) => c.json({}),
          ),
      }),
    ]);
    expect(events).toEqual(["start sip", "start trunks"]);

    const notReady = await h.call("GET", "/readyz");
    expect(notReady.status).toBe(503);
    expect(notReady.json).toEqual({ status: "not_ready", checks: { database: { ok: true }, sip: { ok: false, detail: "sockets not bound" } } });
    sipBound = true;
    expect((await h.call("GET", "/readyz")).status).toBe(200);

    // A service's static path wins over the admin resource's /trunks/:id, and needs the admin token.
    expect((await h.call("GET", "/api/v1/trunks/status")).json).toEqual({});
    expect((await h.call("GET", "/api/v1/trunks/status", undefined, { authorization: "" })).status).toBe(401);
    expect((await h.call("GET", "/api/v1/openapi.json")).json.paths["/api/v1/trunks/status"]).toBeDefined();

    h.writeConfig("calls: { ringTimeoutSec: 30 }\n");
    await h.app.reload();
    expect(events.slice(2)).toEqual(["reload sip 30", "reload trunks 30"]);
    await h.app.stop();
    expect(events.slice(4)).toEqual(["stop trunks", "stop sip"]);
  });

  test("stop is bounded by shutdownGraceSec even when a service never finishes", async () => {
    const h = await harness("limits: { shutdownGraceSec: 1 }\n", () => [{ name: "stuck", stop: () => new Promise<void>(() => {}) }]);
    const started = performance.now();
    await h.app.stop();
    const elapsed = performance.now() - started;
    // The stuck service gets its grace (not cut short: 10 ms for clock rounding), then stop goes on
    // without it: a stop that waited for it would never return.
    expect(elapsed).toBeGreaterThanOrEqual(1000 - 10);
    expect(elapsed).toBeLessThan(1000 + 5000);
    expect(h.app.ctx.store.isOpen()).toBe(false);
  });

  test("a service that fails to start stops the ones already started and closes the store", async () => {
    const stopped: string[] = [];
    const dirLess = startHarness("", () => [
      { name: "ok", stop: () => void stopped.push("ok") },
      {
        name: "broken",
        start: () => {
          throw new Error("port in use");
        },
      },
    ]);
    await expect(dirLess).rejects.toThrow("port in use");
    expect(stopped).toEqual(["ok"]);
  });
});
