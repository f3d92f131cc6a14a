// The WebRTC service on the real app frame (config, store, admin API): the page, token minting for
// an API-made application, the client routes in the OpenAPI document, a full channel refusing
// joins, and clients leaving when their application is deleted.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { ChannelRegistry } from "../../src/channels/registry.ts";
import { WebRtcService } from "../../src/webrtc/service.ts";
import { startHarness, type Harness } from "../api/harness.ts";
import { createTestClient, type TestClient } from "../helpers/weriftClient.ts";
import { webrtcApi } from "../../src/api/routes/services.ts";

let h: Harness;
const registry = new ChannelRegistry();
const clients: TestClient[] = [];

beforeAll(async () => {
  h = await startHarness("limits: { maxParticipantsPerChannel: 2 }\n", (ctx) => {
    const webrtc = new WebRtcService(ctx, registry);
    return [webrtc, webrtcApi(webrtc, ctx)];
  });
  const created = await h.call("POST", "/api/v1/applications", { id: "made-by-api", name: "API app", sharedSecret: "api-app-secret-0123456789" });
  expect(created.status, created.text).toBe(201);
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await h?.close();
});

async function mint(clientId: string): Promise<string> {
  const res = await h.call("POST", "/api/v1/applications/made-by-api/tokens", { channelId: "hall", clientId, userId: clientId });
  expect(res.status, res.text).toBe(200);
  return res.json.token;
}

async function join(clientId: string): Promise<Response> {
  const client = createTestClient("opus");
  clients.push(client);
  const res = await fetch(`${h.app.url}/api/v1/client/join`, {
    method: "POST",
    headers: { authorization: `Bearer ${await mint(clientId)}`, "content-type": "application/json" },
    body: JSON.stringify({ sdp: await client.offer() }),
  });
  if (res.ok) await client.accept(((await res.clone().json()) as { sdp: string }).sdp);
  return res;
}

test("the page and its script are served", async () => {
  const page = await fetch(`${h.app.url}/ui/`);
  expect(page.status).toBe(200);
  expect(await page.text()).toContain("<title>Trunkline");
  const script = await fetch(`${h.app.url}/ui/app.js`);
  expect(script.headers.get("content-type")).toContain("javascript");
  expect((await fetch(`${h.app.url}/ui`, { redirect: "manual" })).headers.get("location")).toBe("/ui/");
});

test("the OpenAPI document describes the client routes and the token route", async () => {
  const doc = (await h.call("GET", "/api/v1/openapi.json")).json;
  expect(Object.keys(doc.paths)).toEqual(
    expect.arrayContaining([
      "/api/v1/client/join",
      "/api/v1/client/connections/{clientId}",
      "/api/v1/client/calls",
      "/api/v1/client/calls/{id}",
      "/api/v1/client/calls/{id}/dtmf",
      "/api/v1/client/events",
      "/api/v1/applications/{appId}/tokens",
    ]),
  );
  expect(doc.paths["/api/v1/client/join"].post.security).toEqual([{ clientToken: [] }]);
});

test("a full channel refuses another client with 409; deleting the application disconnects its clients", async () => {
  expect((await join("one")).status).toBe(200);
  expect((await join("two")).status).toBe(200);
  const third = await join("three");
  expect(third.status).toBe(409);
  expect(((await third.json()) as { error: { code: string } }).error.code).toBe("channel_full");
  expect(registry.participants("made-by-api", "hall")).toHaveLength(2);

  expect((await h.call("DELETE", "/api/v1/applications/made-by-api")).status).toBe(204);
  expect(registry.participants("made-by-api", "hall")).toEqual([]);
});
