import { afterAll, describe, expect, test } from "bun:test";
import { EventBus } from "../../src/events.ts";
import { metrics } from "../../src/metrics.ts";
import { EventDelivery } from "../../src/routing/eventDelivery.ts";
import { SIGNATURE_HEADER, verifyWebhookSignature, TIMESTAMP_HEADER } from "../../src/routing/webhooks.ts";
import { until } from "../helpers/until.ts";
import { startWebhookServer } from "../helpers/webhookServer.ts";

const server = startWebhookServer();
afterAll(() => server.stop());

const call = (callId: string) => ({ callId, direction: "inbound" as const, applicationId: "app", channelId: "room" });

describe("events webhook delivery", () => {
  test("events of one call arrive in order despite failures, retried with backoff", async () => {
    let failuresLeft = 2;
    server.handle("/ordered", () => (failuresLeft-- > 0 ? new Response("", { status: 503 }) : Response.json({})));
    const bus = new EventBus();
    const delivery = new EventDelivery({ settings: () => ({ eventsUrl: server.url("/ordered"), timeoutMs: 10_000, secret: "k" }), retryDelaysMs: [20, 20, 20] });
    delivery.attach(bus);
    bus.emit("call.ringing", { ...call("c1"), sipStatus: 180 });
    bus.emit("call.answered", call("c1"));
    bus.emit("call.ended", { ...call("c1"), reason: "remote_bye" });
    await delivery.idle();
    const delivered = server.received.filter((r) => r.path === "/ordered" && r.json !== undefined);
    // Two failed attempts of the first event, then the three in order.
    const types = delivered.map((r) => (r.json as { type: string }).type);
    expect(types).toEqual(["call.ringing", "call.ringing", "call.ringing", "call.answered", "call.ended"]);
    const last = delivered.at(-1)!;
    expect(last.json).toMatchObject({ type: "call.ended", data: { callId: "c1", reason: "remote_bye" } });
    expect(verifyWebhookSignature({ secret: "k", body: last.body, timestamp: last.headers.get(TIMESTAMP_HEADER), signature: last.headers.get(SIGNATURE_HEADER) })).toBe(true);
  });

  test("emitting does not wait for a slow receiver", async () => {
    // A receiver that answers nothing until released: an emit that waited for it would never return.
    const release = server.hold("/slow");
    const slow = () => server.received.filter((r) => r.path === "/slow");
    const bus = new EventBus();
    const delivery = new EventDelivery({ settings: () => ({ eventsUrl: server.url("/slow"), timeoutMs: 30_000 }) });
    delivery.attach(bus);
    for (let i = 0; i < 20; i++) bus.emit("dtmf.received", { ...call(`c${i}`), digit: "1", method: "rfc4733" });
    // All 20 emitted, and all 20 calls' deliveries in flight at once while none has been answered.
    await until(() => slow().length === 20, { what: () => slow().length });
    release();
    await delivery.idle();
    expect(slow()).toHaveLength(20);
  });

  test("a permanently failing receiver is given up on after the retries", async () => {
    server.handle("/dead", () => new Response("", { status: 500 }));
    const bus = new EventBus();
    const delivery = new EventDelivery({ settings: () => ({ eventsUrl: server.url("/dead"), timeoutMs: 10_000 }), retryDelaysMs: [5, 5] });
    delivery.attach(bus);
    bus.emit("trunk.unreachable", { trunkId: "t1" });
    await delivery.idle();
    expect(server.received.filter((r) => r.path === "/dead")).toHaveLength(3);
  });

  test("a 4xx rejection is not retried", async () => {
    server.handle("/reject", () => new Response("", { status: 400 }));
    const bus = new EventBus();
    const delivery = new EventDelivery({ settings: () => ({ eventsUrl: server.url("/reject"), timeoutMs: 10_000 }), retryDelaysMs: [5, 5] });
    delivery.attach(bus);
    bus.emit("trunk.reachable", { trunkId: "t1" });
    await delivery.idle();
    expect(server.received.filter((r) => r.path === "/reject")).toHaveLength(1);
  });

  test("at most maxQueued events wait, whatever their keys: the rest are dropped and counted", async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    server.handle("/stuck", () => released.then(() => Response.json({})));
    const bus = new EventBus();
    const delivery = new EventDelivery({ settings: () => ({ eventsUrl: server.url("/stuck"), timeoutMs: 5000 }), maxQueued: 3 });
    delivery.attach(bus);
    const droppedTotal = () => metrics.counter("trunkline_events_webhook_dropped_total", "").get();
    const before = droppedTotal();
    for (let i = 0; i < 5; i++) bus.emit("call.answered", call(`bounded-${i}`));
    expect(droppedTotal() - before).toBe(2);
    release();
    await delivery.idle();
    const delivered = server.received.filter((r) => r.path === "/stuck").map((r) => (r.json as { data: { callId: string } }).data.callId);
    expect(delivered.sort()).toEqual(["bounded-0", "bounded-1", "bounded-2"]);
  });

  test("without an eventsUrl nothing is queued", async () => {
    // The receiver holds the first event of trunk t1, so any later event of t1 would queue behind it
    // and be delivered, in order, with the settings of its own attempt.
    const release = server.hold("/unqueued");
    let eventsUrl: string | undefined = server.url("/unqueued");
    const bus = new EventBus();
    const delivery = new EventDelivery({ settings: () => ({ eventsUrl, timeoutMs: 30_000 }) });
    delivery.attach(bus);
    const types = () => server.received.filter((r) => r.path === "/unqueued").map((r) => (r.json as { type: string }).type);
    bus.emit("trunk.registered", { trunkId: "t1" });
    await until(() => types().length === 1, { what: types });
    eventsUrl = undefined;
    bus.emit("trunk.unreachable", { trunkId: "t1" }); // no eventsUrl: dropped, not queued
    eventsUrl = server.url("/unqueued");
    bus.emit("trunk.reachable", { trunkId: "t1" });
    release();
    await delivery.idle();
    // The later event arrived right after the held one; the one emitted without a URL never did.
    expect(types()).toEqual(["trunk.registered", "trunk.reachable"]);
  });
});

describe("event bus", () => {
  test("a throwing subscriber does not stop the others", () => {
    const bus = new EventBus();
    const seen: string[] = [];
    bus.subscribe(() => {
      throw new Error("boom");
    });
    bus.subscribe((e) => seen.push(e.type));
    const event = bus.emit("trunk.registered", { trunkId: "t" });
    expect(seen).toEqual(["trunk.registered"]);
    expect(event.id).toMatch(/^evt_/);
  });
});
