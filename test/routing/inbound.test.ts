import { afterAll, describe, expect, test } from "bun:test";
import { notifyInboundCancel, routeInbound, type InboundInvite, type InboundRouteSource } from "../../src/routing/inbound.ts";
import { startWebhookServer } from "../helpers/webhookServer.ts";

const server = startWebhookServer();
afterAll(() => server.stop());

const routes: InboundRouteSource = {
  findStaticRoute: (user) => (user === "1000" ? { applicationId: "app1", channelId: "lobby" } : undefined),
  applicationExists: (id) => id === "app1" || id === "app2",
};
const invite = (toUser: string): InboundInvite => ({
  toUser,
  fromUri: "sip:+15551234@trunk.example",
  headers: { From: "<sip:+15551234@trunk.example>;tag=a", To: `<sip:${toUser}@us>` },
  sdp: "v=0\r\n",
});

describe("inbound routing", () => {
  test("the static map wins before the webhook, with the From URI as userId", async () => {
    server.handle("/never", () => Response.json({ applicationId: "app2", channelId: "x" }));
    const result = await routeInbound(invite("1000"), routes, { inboundUrl: server.url("/never"), timeoutMs: 10_000 });
    expect(result).toEqual({ ok: true, route: { applicationId: "app1", channelId: "lobby", userId: "sip:+15551234@trunk.example", source: "static" } });
    expect(server.received.filter((r) => r.path === "/never")).toHaveLength(0);
  });

  test("no static route and no webhook is 404", async () => {
    const result = await routeInbound(invite("2000"), routes, { timeoutMs: 10_000 });
    expect(result).toMatchObject({ ok: false, status: 404 });
  });

  test("the webhook receives {headers, sdp} and its answer routes the call", async () => {
    server.handle("/in", () => Response.json({ applicationId: "app2", channelId: "room", userId: "alice" }));
    const result = await routeInbound(invite("2000"), routes, { inboundUrl: server.url("/in"), timeoutMs: 10_000, secret: "k" });
    expect(result).toEqual({ ok: true, route: { applicationId: "app2", channelId: "room", userId: "alice", source: "webhook" } });
    const req = await server.waitFor("/in");
    expect(req.json).toEqual({ headers: invite("2000").headers, sdp: "v=0\r\n" });
  });

  test("the webhook's userId defaults to the From URI", async () => {
    server.handle("/in-nouser", () => Response.json({ applicationId: "app2", channelId: "room" }));
    const result = await routeInbound(invite("2000"), routes, { inboundUrl: server.url("/in-nouser"), timeoutMs: 10_000 });
    expect(result.ok && result.route.userId).toBe("sip:+15551234@trunk.example");
  });

  test("webhook failures become 5xx responses that say why", async () => {
    server.hold("/in-slow"); // never answers (until the server stops)
    server.handle("/in-500", () => new Response("", { status: 500 }));
    server.handle("/in-bad", () => Response.json({ applicationId: "app2" }));
    const slow = await routeInbound(invite("2000"), routes, { inboundUrl: server.url("/in-slow"), timeoutMs: 100 });
    const http = await routeInbound(invite("2000"), routes, { inboundUrl: server.url("/in-500"), timeoutMs: 10_000 });
    const bad = await routeInbound(invite("2000"), routes, { inboundUrl: server.url("/in-bad"), timeoutMs: 10_000 });
    expect(slow).toMatchObject({ ok: false, status: 503, reason: "Routing Webhook Timed Out" });
    expect(http).toMatchObject({ ok: false, status: 503, reason: "Routing Webhook HTTP 500" });
    expect(bad).toMatchObject({ ok: false, status: 500, reason: "Routing Webhook Malformed Answer" });
  });

  test("an unknown application in the answer is 404", async () => {
    server.handle("/in-unknown", () => Response.json({ applicationId: "nope", channelId: "room" }));
    const result = await routeInbound(invite("2000"), routes, { inboundUrl: server.url("/in-unknown"), timeoutMs: 10_000 });
    expect(result).toMatchObject({ ok: false, status: 404, reason: "Unknown Application" });
  });

  test("an aborted routing (CANCEL) ends as 487 without waiting for the webhook", async () => {
    const controller = new AbortController();
    server.hold("/in-slow");
    const pending = routeInbound(invite("2000"), routes, { inboundUrl: server.url("/in-slow"), timeoutMs: 30_000 }, controller.signal);
    setTimeout(() => controller.abort(), 30);
    expect(await pending).toMatchObject({ ok: false, status: 487 });
  });

  test("the cancel webhook receives the original headers", async () => {
    await notifyInboundCancel(invite("3000").headers, { inboundCancelUrl: server.url("/cancel"), timeoutMs: 10_000 });
    const req = await server.waitFor("/cancel");
    expect(req.json).toEqual({ headers: invite("3000").headers });
  });
});
