import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { applicationView } from "../../src/api/routes/applications.ts";
import { callerIdView } from "../../src/api/routes/callerIds.ts";
import { inboundRouteView } from "../../src/api/routes/inboundRoutes.ts";
import { trunkView } from "../../src/api/routes/trunks.ts";
import { webhooksView } from "../../src/api/routes/webhooks.ts";
import { s, validate, type Schema } from "../../src/config/schema.ts";
import { setLogSink } from "../../src/log.ts";
import { verifyWebhookSignature } from "../../src/routing/webhooks.ts";
import { startWebhookServer } from "../helpers/webhookServer.ts";
import { startHarness, type Harness } from "./harness.ts";

const TRUNK_PASSWORD = "trunk-password-never-echoed";
const APP_SECRET = "application-secret-never-echoed";
const WEBHOOK_SECRET = "webhook-secret-never-echoed";

let h: Harness;
const logLines: string[] = [];

beforeAll(async () => {
  setLogSink((line) => logLines.push(line));
  h = await startHarness("", undefined, "info");
});
afterAll(async () => {
  await h.close();
  setLogSink((line) => process.stdout.write(line + "\n"));
});

/** The response matches the documented view schema exactly (no undocumented or secret fields). */
function expectView(schema: Schema<unknown>, body: unknown): void {
  const result = validate(schema, body);
  if (!result.ok) throw new Error(`response does not match its schema: ${JSON.stringify(result.issues)} in ${JSON.stringify(body)}`);
}

describe("authentication", () => {
  test("admin routes answer 401 JSON without a token, with a wrong one, or with another scheme", async () => {
    for (const authorization of ["", "Bearer wrong-token", `Basic ${btoa("admin:x")}`]) {
      const res = await h.call("GET", "/api/v1/trunks", undefined, { authorization });
      expect(res.status).toBe(401);
      expect(res.json).toEqual({ error: { code: "unauthorized", message: expect.any(String) } });
    }
  });

  test("the right token is accepted (scheme case-insensitive)", async () => {
    expect((await h.call("GET", "/api/v1/trunks")).status).toBe(200);
    expect((await h.call("GET", "/api/v1/trunks", undefined, { authorization: "bearer test-admin-token-0123456789" })).status).toBe(200);
  });

  test("health, readiness, metrics and the OpenAPI document need no token", async () => {
    for (const path of ["/healthz", "/readyz", "/metrics", "/api/v1/openapi.json"]) {
      expect((await h.call("GET", path, undefined, { authorization: "" })).status).toBe(200);
    }
    const ready = (await h.call("GET", "/readyz")).json;
    expect(ready).toEqual({ status: "ready", checks: { database: { ok: true } } });
    const doc = (await h.call("GET", "/api/v1/openapi.json")).json;
    expectView(s.object({ status: s.string(), checks: s.record(s.string(), s.object({ ok: s.boolean() })) }), ready);
    expect(doc.paths["/readyz"].get.responses["200"].content["application/json"].schema.properties.status.enum).toEqual(["ready", "not_ready"]);
  });
});

describe("trunks", () => {
  const body = { id: "main", domain: "sip.example.com", transport: "tcp", register: true, username: "alice", password: TRUNK_PASSWORD };

  test("create, get, list, patch and delete", async () => {
    const created = await h.call("POST", "/api/v1/trunks", body);
    expect(created.status).toBe(201);
    expectView(trunkView, created.json);
    expect(created.json).toMatchObject({ id: "main", transport: "tcp", register: true, registerExpires: 3600, passwordSet: true, source: "api" });

    expect((await h.call("GET", "/api/v1/trunks/main")).json).toEqual(created.json);
    expect((await h.call("GET", "/api/v1/trunks")).json.map((t: { id: string }) => t.id)).toContain("main");

    const patched = await h.call("PATCH", "/api/v1/trunks/main", { maxConcurrentCalls: 5, allowedAddresses: ["198.51.100.7"] });
    expect(patched.status).toBe(200);
    expect(patched.json).toMatchObject({ domain: "sip.example.com", maxConcurrentCalls: 5, allowedAddresses: ["198.51.100.7"], passwordSet: true });
    expect(h.app.ctx.store.trunks.get("main")?.password).toBe(TRUNK_PASSWORD);

    expect((await h.call("DELETE", "/api/v1/trunks/main")).status).toBe(204);
    expect((await h.call("GET", "/api/v1/trunks/main")).status).toBe(404);
  });

  test("bad bodies are 400 naming the field", async () => {
    const cases: [unknown, string][] = [
      [{ ...body, port: 0 }, "port"],
      [{ ...body, transport: "sctp" }, "transport"],
      [{ id: "x" }, "domain"],
      [{ ...body, id: "bad id!" }, "id"],
      [{ ...body, colour: "red" }, "colour"],
      [{ ...body, allowedAddresses: ["10.0.0.1", "not-an-ip"] }, "allowedAddresses[1]"],
      [{ ...body, optionsIntervalSec: -1 }, "optionsIntervalSec"],
    ];
    for (const [bad, field] of cases) {
      const res = await h.call("POST", "/api/v1/trunks", bad);
      expect(res.status).toBe(400);
      expect(res.json.error).toMatchObject({ code: "invalid_body", field });
    }
    const patch = await h.call("PATCH", "/api/v1/trunks/none", { port: "5060" });
    expect(patch.json.error).toMatchObject({ code: "invalid_body", field: "port" });
  });

  test("SRTP settings: stored and shown; SDES keys without TLS only when the trunk allows them", async () => {
    const tls = { ...body, id: "srtp", transport: "tls", mediaEncryption: "required" };
    const created = await h.call("POST", "/api/v1/trunks", tls);
    expect(created.status, created.text).toBe(201);
    expect(created.json).toMatchObject({ mediaEncryption: "required", allowSdesWithoutTls: false });
    expect(h.app.ctx.store.trunks.get("srtp")).toMatchObject({ mediaEncryption: "required", allowSdesWithoutTls: false });

    const toUdp = await h.call("PATCH", "/api/v1/trunks/srtp", { transport: "udp" });
    expect(toUdp.status).toBe(400);
    expect(toUdp.json.error).toMatchObject({ code: "invalid_body", field: "mediaEncryption", message: expect.stringContaining('needs transport "tls"') });
    const allowed = await h.call("PATCH", "/api/v1/trunks/srtp", { transport: "udp", allowSdesWithoutTls: true, mediaEncryption: "optional" });
    expect(allowed.json).toMatchObject({ transport: "udp", allowSdesWithoutTls: true, mediaEncryption: "optional" });

    const plainUdp = await h.call("POST", "/api/v1/trunks", { ...body, id: "srtp-udp", transport: "udp", mediaEncryption: "optional" });
    expect(plainUdp.status).toBe(400);
    expect(plainUdp.json.error.field).toBe("mediaEncryption");
    expect((await h.call("POST", "/api/v1/trunks", { ...body, id: "srtp-x", mediaEncryption: "sdes" })).json.error.field).toBe("mediaEncryption");
  });

  test("prack: supported by default, stored and shown when set, anything else named in a 400", async () => {
    const created = await h.call("POST", "/api/v1/trunks", { ...body, id: "prack" });
    expect(created.status, created.text).toBe(201);
    expect(created.json.prack).toBe("supported");
    const required = await h.call("PATCH", "/api/v1/trunks/prack", { prack: "required" });
    expect(required.json.prack).toBe("required");
    expect(h.app.ctx.store.trunks.get("prack")?.prack).toBe("required");
    const bad = await h.call("PATCH", "/api/v1/trunks/prack", { prack: "sometimes" });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatchObject({ code: "invalid_body", field: "prack" });
    expect(h.app.ctx.store.trunks.get("prack")?.prack).toBe("required");
  });

  test("referPolicy: decline by default, accept stored and shown when set, anything else (reject too) named in a 400", async () => {
    const created = await h.call("POST", "/api/v1/trunks", { ...body, id: "refer" });
    expect(created.status, created.text).toBe(201);
    expect(created.json.referPolicy).toBe("decline");
    const accept = await h.call("PATCH", "/api/v1/trunks/refer", { referPolicy: "accept" });
    expect(accept.json.referPolicy).toBe("accept");
    expect(h.app.ctx.store.trunks.get("refer")?.referPolicy).toBe("accept");
    const bad = await h.call("PATCH", "/api/v1/trunks/refer", { referPolicy: "reject" });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatchObject({ code: "invalid_body", field: "referPolicy" });
    expect(h.app.ctx.store.trunks.get("refer")?.referPolicy).toBe("accept");
  });

  test("unknown id is 404, duplicate id is 409, id cannot be patched", async () => {
    expect((await h.call("PATCH", "/api/v1/trunks/ghost", { port: 5060 })).status).toBe(404);
    expect((await h.call("DELETE", "/api/v1/trunks/ghost")).status).toBe(404);
    await h.call("POST", "/api/v1/trunks", { ...body, id: "dup" });
    const again = await h.call("POST", "/api/v1/trunks", { ...body, id: "dup" });
    expect(again.status).toBe(409);
    expect(again.json.error).toMatchObject({ code: "already_exists", field: "id" });
    expect((await h.call("PATCH", "/api/v1/trunks/dup", { id: "other" })).json.error.field).toBe("id");
  });

  test("a malformed path parameter is a 400 naming it", async () => {
    const res = await h.call("GET", "/api/v1/trunks/bad%20id");
    expect(res.status).toBe(400);
    expect(res.json.error).toMatchObject({ code: "invalid_body", field: "id" });
  });
});

describe("applications, inbound routes and caller ID", () => {
  test("application CRUD never returns the shared secret", async () => {
    const created = await h.call("POST", "/api/v1/applications", { id: "acme", name: "Acme", sharedSecret: APP_SECRET });
    expect(created.status).toBe(201);
    expectView(applicationView, created.json);
    expect((await h.call("PATCH", "/api/v1/applications/acme", { name: "Acme Inc" })).json.name).toBe("Acme Inc");
    expect((await h.call("POST", "/api/v1/applications", { id: "weak", name: "W", sharedSecret: "short" })).json.error.field).toBe("sharedSecret");
    expect((await h.call("GET", "/api/v1/applications/nope")).status).toBe(404);
  });

  test("inbound routes: add, list, get, replace, delete; a sipUsername belongs to one application", async () => {
    await h.call("POST", "/api/v1/applications", { id: "routes", name: "R", sharedSecret: APP_SECRET });
    await h.call("POST", "/api/v1/applications", { id: "other", name: "O", sharedSecret: APP_SECRET });
    const base = "/api/v1/applications/routes/inbound-routes";
    const created = await h.call("POST", base, { sipUsername: "+15550100", channelId: "lobby" });
    expect(created.status).toBe(201);
    expectView(inboundRouteView, created.json);
    expect((await h.call("GET", base)).json).toEqual([created.json]);
    expect((await h.call("GET", `${base}/${encodeURIComponent("+15550100")}`)).json.channelId).toBe("lobby");
    expect((await h.call("POST", base, { sipUsername: "+15550100", channelId: "x" })).status).toBe(409);

    const replaced = await h.call("PUT", `${base}/${encodeURIComponent("+15550100")}`, { channelId: "hall" });
    expect(replaced.status).toBe(200);
    expect(replaced.json.channelId).toBe("hall");
    expect((await h.call("PUT", `${base}/200`, { channelId: "room" })).status).toBe(201);

    const taken = await h.call("POST", "/api/v1/applications/other/inbound-routes", { sipUsername: "200", channelId: "x" });
    expect(taken.status).toBe(409);
    expect(taken.json.error).toMatchObject({ code: "route_taken", field: "sipUsername" });
    expect((await h.call("GET", "/api/v1/applications/other/inbound-routes/200")).status).toBe(404);

    expect((await h.call("POST", base, { sipUsername: "has space", channelId: "x" })).json.error.field).toBe("sipUsername");
    expect((await h.call("DELETE", `${base}/200`)).status).toBe(204);
    expect((await h.call("DELETE", `${base}/200`)).status).toBe(404);
    expect((await h.call("GET", "/api/v1/applications/ghost/inbound-routes")).status).toBe(404);
  });

  test("caller ID: put, get, delete; an unknown template variable is a 400 at save time", async () => {
    await h.call("POST", "/api/v1/applications", { id: "cid", name: "C", sharedSecret: APP_SECRET });
    const path = "/api/v1/applications/cid/channels/lobby/caller-id";
    expect((await h.call("GET", path)).status).toBe(404);
    const saved = await h.call("PUT", path, { displayName: "{userAlias}", username: "{userId}" });
    expect(saved.status).toBe(200);
    expectView(callerIdView, saved.json);
    expect((await h.call("GET", path)).json).toMatchObject({ displayName: "{userAlias}", username: "{userId}", channelId: "lobby" });
    const listed = await h.call("GET", "/api/v1/applications/cid/caller-ids");
    expect(listed.json).toEqual([saved.json]);
    expectView(s.array(callerIdView), listed.json);

    const bad = await h.call("PUT", path, { displayName: "{nickname}" });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatchObject({ field: "displayName", message: expect.stringContaining("unknown variable {nickname}") });

    const headers = await h.call("PUT", path, { username: "{userId}", assertedIdentity: "tel:+1555{userId}", privacy: "header;id" });
    expect(headers.status, headers.text).toBe(200);
    expect((await h.call("GET", path)).json).toMatchObject({ assertedIdentity: "tel:+1555{userId}", privacy: "header;id" });
    const notUri = await h.call("PUT", path, { assertedIdentity: "{userId}" });
    expect(notUri.json.error).toMatchObject({ field: "assertedIdentity" });
    const badPrivacy = await h.call("PUT", path, { privacy: "id\r\nX-Evil: 1" });
    expect(badPrivacy.json.error).toMatchObject({ field: "privacy" });

    expect((await h.call("DELETE", path)).status).toBe(204);
    expect((await h.call("DELETE", path)).status).toBe(404);
    expect((await h.call("PUT", "/api/v1/applications/ghost/channels/lobby/caller-id", {})).status).toBe(404);
  });

  test("deleting an application removes its routes", async () => {
    await h.call("POST", "/api/v1/applications", { id: "gone", name: "G", sharedSecret: APP_SECRET });
    await h.call("POST", "/api/v1/applications/gone/inbound-routes", { sipUsername: "300", channelId: "x" });
    expect((await h.call("DELETE", "/api/v1/applications/gone")).status).toBe(204);
    expect(h.app.ctx.store.inboundRoutes.find("300")).toBeUndefined();
  });
});

describe("webhook settings", () => {
  test("get defaults, put, secret write-only and kept when omitted, cleared with an empty string", async () => {
    const initial = await h.call("GET", "/api/v1/settings/webhooks");
    expect(initial.json).toEqual({ timeoutMs: 5000, secretSet: false, source: "api" });

    const put = await h.call("PUT", "/api/v1/settings/webhooks", { inboundUrl: "https://hooks.example.com/in", secret: WEBHOOK_SECRET });
    expect(put.status).toBe(200);
    expectView(webhooksView, put.json);
    expect(put.json).toMatchObject({ inboundUrl: "https://hooks.example.com/in", timeoutMs: 5000, secretSet: true });

    const kept = await h.call("PUT", "/api/v1/settings/webhooks", { outboundUrl: "https://hooks.example.com/out", timeoutMs: 1500 });
    expect(kept.json).toMatchObject({ outboundUrl: "https://hooks.example.com/out", secretSet: true });
    expect(kept.json.inboundUrl).toBeUndefined();
    expect(h.app.ctx.store.settings.webhooks()?.secret).toBe(WEBHOOK_SECRET);

    expect((await h.call("PUT", "/api/v1/settings/webhooks", { secret: "" })).json.secretSet).toBe(false);
    expect((await h.call("PUT", "/api/v1/settings/webhooks", { inboundUrl: "ftp://x" })).json.error.field).toBe("inboundUrl");
    expect((await h.call("PUT", "/api/v1/settings/webhooks", { timeoutMs: 10 })).json.error.field).toBe("timeoutMs");
  });

  test("send test event: one signed webhook.test event to eventsUrl through the delivery path, outcome returned", async () => {
    await h.call("PUT", "/api/v1/settings/webhooks", {});
    const none = await h.call("POST", "/api/v1/settings/webhooks/test");
    expect(none.status).toBe(409);
    expect(none.json.error).toMatchObject({ code: "no_events_url", field: "eventsUrl" });

    const receiver = startWebhookServer();
    try {
      receiver.handle("/bad", () => new Response("nope", { status: 503 }));
      await h.call("PUT", "/api/v1/settings/webhooks", { eventsUrl: receiver.url("/events"), secret: WEBHOOK_SECRET });
      const sent = await h.call("POST", "/api/v1/settings/webhooks/test");
      expect(sent.status).toBe(200);
      const eventId: string = sent.json.eventId;
      expect(eventId).toMatch(/^evt_test_/);
      expect(sent.json).toMatchObject({ delivered: true, status: 200, url: receiver.url("/events") });
      const got = receiver.received.find((r) => r.path === "/events")!;
      expect(got.json).toMatchObject({ id: eventId, type: "webhook.test", time: expect.any(String) });
      expect(got.headers.get("x-trunkline-event-type")).toBe("webhook.test");
      expect(got.headers.get("x-trunkline-event-id")).toBe(eventId);
      const signed = verifyWebhookSignature({ secret: WEBHOOK_SECRET, body: got.body, timestamp: got.headers.get("x-trunkline-timestamp"), signature: got.headers.get("x-trunkline-signature") });
      expect(signed).toBe(true);

      await h.call("PUT", "/api/v1/settings/webhooks", { eventsUrl: receiver.url("/bad") });
      const refused = await h.call("POST", "/api/v1/settings/webhooks/test");
      expect(refused.json).toMatchObject({ delivered: false, status: 503, error: "HTTP 503" });
    } finally {
      await receiver.stop();
      await h.call("PUT", "/api/v1/settings/webhooks", {});
    }
  });
});

describe("errors", () => {
  test("malformed JSON is 400, a non-JSON content type 415, an oversized body 413, an unknown route 404 — all JSON", async () => {
    const malformed = await h.call("POST", "/api/v1/trunks", "{not json");
    expect(malformed.json.error.code).toBe("invalid_json");
    expect((await h.call("POST", "/api/v1/trunks", "id=x", { "content-type": "application/x-www-form-urlencoded" })).status).toBe(415);
    const huge = await h.call("POST", "/api/v1/trunks", JSON.stringify({ id: "x", domain: "y", username: "u".repeat(1_100_000) }));
    expect(huge.status).toBe(413);
    const missing = await h.call("GET", "/api/v1/nothing-here");
    expect(missing.status).toBe(404);
    expect(missing.json.error.code).toBe("not_found");
  });
});

describe("documentation and observability", () => {
  test("the OpenAPI document lists every admin route with the request schemas that validate it", async () => {
    const doc = (await h.call("GET", "/api/v1/openapi.json")).json;
    expect(doc.openapi).toBe("3.1.0");
    const expected: [string, string][] = [
      ["/api/v1/trunks", "post"],
      ["/api/v1/trunks/{id}", "patch"],
      ["/api/v1/applications/{appId}", "delete"],
      ["/api/v1/applications/{appId}/inbound-routes/{sipUsername}", "put"],
      ["/api/v1/applications/{appId}/channels/{channelId}/caller-id", "put"],
      ["/api/v1/settings/webhooks", "get"],
    ];
    for (const [path, method] of expected) expect(doc.paths[path]?.[method]).toBeDefined();
    const trunkBody = doc.paths["/api/v1/trunks"].post.requestBody.content["application/json"].schema;
    expect(trunkBody.properties.password.writeOnly).toBe(true);
    expect(trunkBody.additionalProperties).toBe(false);
    expect(doc.paths["/api/v1/trunks"].post.security).toEqual([{ adminToken: [] }]);
    expect(doc.paths["/api/v1/applications/{appId}/inbound-routes/{sipUsername}"].put.parameters.map((p: { name: string }) => p.name)).toEqual([
      "appId",
      "sipUsername",
    ]);
    expect(doc.paths["/api/v1/trunks/{id}"].get.parameters[0].schema.pattern).toBeString();
    const trunkResponse = doc.paths["/api/v1/trunks/{id}"].get.responses["200"].content["application/json"].schema;
    expect(trunkResponse.properties.password).toBeUndefined();
  });

  test("GET /metrics is Prometheus text with process and HTTP counters", async () => {
    const res = await h.call("GET", "/metrics");
    expect(res.headers.get("content-type")).toStartWith("text/plain; version=0.0.4");
    expect(res.text).toContain("# TYPE process_resident_memory_bytes gauge");
    expect(res.text).toMatch(/trunkline_http_requests_total\{method="GET",route="\/api\/v1\/trunks",status="200"\} \d+/);
  });

  test("one JSON log line per API request, and no secret anywhere in responses or logs", async () => {
    const before = logLines.length;
    await h.call("GET", "/api/v1/trunks");
    const lines = logLines.slice(before).map((l) => JSON.parse(l));
    expect(lines.filter((l) => l.msg === "request")).toEqual([
      expect.objectContaining({ component: "http", method: "GET", path: "/api/v1/trunks", status: 200 }),
    ]);
    const everything = [
      logLines.join("\n"),
      (await h.call("GET", "/api/v1/trunks")).text,
      (await h.call("GET", "/api/v1/applications")).text,
      (await h.call("GET", "/api/v1/settings/webhooks")).text,
    ].join("\n");
    for (const secret of [TRUNK_PASSWORD, APP_SECRET, WEBHOOK_SECRET, "test-admin-token-0123456789"]) {
      expect(everything).not.toContain(secret);
    }
  });
});
