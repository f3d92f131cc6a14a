import { afterAll, describe, expect, test } from "bun:test";
import { chooseTrunk, type TrunkChoiceCandidate } from "../../src/routing/outbound.ts";
import { startWebhookServer } from "../helpers/webhookServer.ts";

const server = startWebhookServer();
afterAll(() => server.stop());

const trunks: TrunkChoiceCandidate[] = [
  { id: "down", domain: "a.example", username: "u0", available: false },
  { id: "t1", domain: "b.example", username: "u1", authId: "auth1", available: true },
  { id: "t2", domain: "c.example", username: "u2", available: true },
];
const origin = { applicationId: "app", channelId: "room", clientId: "c1", userId: "bob" };

describe("outbound trunk choice", () => {
  test("without a webhook the first available trunk wins", async () => {
    expect(await chooseTrunk(origin, trunks, { timeoutMs: 10_000 })).toEqual({ ok: true, trunkId: "t1", source: "first_available" });
  });

  test("no available trunk fails no_trunk", async () => {
    const result = await chooseTrunk(origin, [trunks[0]!], { timeoutMs: 10_000 });
    expect(result).toMatchObject({ ok: false, reason: "no_trunk" });
  });

  test("the webhook gets the origin and the available trunks, and its choice is used", async () => {
    server.handle("/out", () => Response.json({ sipTrunkId: "t2" }));
    const result = await chooseTrunk(origin, trunks, { outboundUrl: server.url("/out"), timeoutMs: 10_000 });
    expect(result).toEqual({ ok: true, trunkId: "t2", source: "webhook" });
    const req = await server.waitFor("/out");
    expect(req.json).toEqual({
      applicationId: "app",
      channelId: "room",
      clientId: "c1",
      userId: "bob",
      sipTrunks: [
        { id: "t1", authId: "auth1", username: "u1", domain: "b.example" },
        { id: "t2", authId: null, username: "u2", domain: "c.example" },
      ],
    });
  });

  test("an unknown or unusable trunk in the answer fails with that reason", async () => {
    server.handle("/out-unknown", () => Response.json({ sipTrunkId: "zzz" }));
    server.handle("/out-down", () => Response.json({ sipTrunkId: "down" }));
    expect(await chooseTrunk(origin, trunks, { outboundUrl: server.url("/out-unknown"), timeoutMs: 10_000 })).toMatchObject({ ok: false, reason: "unknown_trunk" });
    expect(await chooseTrunk(origin, trunks, { outboundUrl: server.url("/out-down"), timeoutMs: 10_000 })).toMatchObject({ ok: false, reason: "trunk_unavailable" });
  });

  test("webhook failures are typed", async () => {
    server.hold("/out-slow"); // never answers (until the server stops)
    server.handle("/out-bad", () => Response.json({ trunk: "t1" }));
    server.handle("/out-500", () => new Response("", { status: 500 }));
    expect(await chooseTrunk(origin, trunks, { outboundUrl: server.url("/out-slow"), timeoutMs: 100 })).toMatchObject({ ok: false, reason: "webhook_timeout" });
    expect(await chooseTrunk(origin, trunks, { outboundUrl: server.url("/out-bad"), timeoutMs: 10_000 })).toMatchObject({ ok: false, reason: "webhook_malformed" });
    expect(await chooseTrunk(origin, trunks, { outboundUrl: server.url("/out-500"), timeoutMs: 10_000 })).toMatchObject({ ok: false, reason: "webhook_error" });
  });
});
