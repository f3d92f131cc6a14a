// Inbound calls from a real SIP peer (SIPp) into channels: static map and webhook routing, RTP
// both ways (two callers in one channel hear each other's tones), CANCEL with the cancel webhook,
// and fast SIP errors when the routing webhook is down or slow.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, verifyWebhookSignature } from "../../src/routing/webhooks.ts";
import { callUntil, findCall, startCallsApp, testApplicationYaml, type CallsApp } from "../helpers/callsApp.ts";
import { peerHears } from "../helpers/hearing.ts";
import { metricSample } from "../helpers/metricSample.ts";
import { startRtpPeer, toneShareOf } from "../helpers/rtpPeer.ts";
import { runSipp } from "../helpers/sipp.ts";
import { until } from "../helpers/until.ts";
import { startWebhookServer, type WebhookServer } from "../helpers/webhookServer.ts";

const fixture = (name: string) => join(import.meta.dir, "../fixtures/sipp", name);
const UAC = fixture("calls-uac-early-offer.xml");
const CANCEL = fixture("calls-uac-cancel.xml");
const REJECTED = fixture("calls-uac-rejected.xml");
const SECRET = "webhook-secret-for-tests";

let app: CallsApp;
let hooks: WebhookServer;

beforeAll(async () => {
  hooks = startWebhookServer();
  app = await startCallsApp(`
rtp: { portMin: 47000, portMax: 47999, mediaTimeoutSec: 0 }
calls: { sendRinging: true }
trunks:
  - { id: sipp, domain: 127.0.0.1, optionsIntervalSec: 0 }
${testApplicationYaml({ "1000": "lobby", "1001": "tcp-room" })}
`);
});

afterAll(async () => {
  await app?.close();
  await hooks?.stop();
});

async function setWebhooks(settings: Record<string, unknown>): Promise<void> {
  const res = await app.harness.call("PUT", "/api/v1/settings/webhooks", { timeoutMs: 10_000, secret: SECRET, ...settings });
  expect(res.status, res.text).toBe(200);
}

const sippCall = (scenario: string, service: string, rtpport: number, holdMs: number, testcase = service) =>
  runSipp({
    scenario,
    remote: `127.0.0.1:${app.sipPort}`,
    service,
    keys: { rtpport, testcase },
    extraArgs: ["-d", String(holdMs)],
    timeoutSec: 15,
  });

describe("inbound calls", () => {
  test("two callers routed by the static map hear each other's tones, and the records say so", async () => {
    await setWebhooks({});
    const alice = await startRtpPeer(440, { replyToSender: true });
    const bob = await startRtpPeer(1000, { replyToSender: true });
    try {
      // Bob calls once Alice is in the channel (its audio reaches her) and hangs up well before her:
      // both are in the channel together for about 2.5 s, far more than the half second judged of each.
      const first = sippCall(UAC, "1000", alice.port, 4000, "alice");
      await until(() => alice.packetsReceived > 0, { what: () => "Alice never got the channel's RTP" });
      // Alice's leg asked the media worker to bind a pair ahead: Bob's answer takes it (spare-ports.ts).
      await until(() => (metricSample("trunkline_rtp_spare_pairs") ?? 0) >= 1, { what: () => "no spare RTP pair was bound" });
      const second = sippCall(UAC, "1000", bob.port, 2500, "bob");
      // Alice hears Bob's 1 kHz and not her own 440 Hz; Bob hears Alice and not himself.
      const [heardByAlice, heardByBob] = await Promise.all([peerHears(alice, 1000), peerHears(bob, 440)]);
      expect(toneShareOf(heardByAlice, 8000, 440)).toBeLessThan(0.1);
      expect(toneShareOf(heardByBob, 8000, 1000)).toBeLessThan(0.1);
      const [a, b] = await Promise.all([first, second]);
      expect(a.exitCode, a.summary).toBe(0);
      expect(b.exitCode, b.summary).toBe(0);
      expect(alice.packetsReceived).toBeGreaterThan(50);
      expect(bob.packetsReceived).toBeGreaterThan(50);
    } finally {
      alice.close();
      bob.close();
    }
    const ended = await findCall(app, (c) => c.direction === "inbound" && c.state === "ended" && c.channelId === "lobby");
    expect(ended).toMatchObject({
      trunkId: "sipp",
      applicationId: "app1",
      channelId: "lobby",
      endReason: "remote_bye",
      codec: "PCMU",
    });
    expect(ended.userId).toStartWith("sip:+15550001111@");
    expect(ended.answeredAt).toBeDefined();
    expect(ended.mediaStats.packetsReceived).toBeGreaterThan(50);
    expect(ended.mediaStats.packetsSent).toBeGreaterThan(50);
  }, 20_000);

  test("the inbound webhook routes a call with its userId; requests are signed; events follow in order", async () => {
    hooks.handle("/inbound", () => Response.json({ applicationId: "app1", channelId: "room-7", userId: "alice" }));
    await setWebhooks({ inboundUrl: hooks.url("/inbound"), eventsUrl: hooks.url("/events") });
    const peer = await startRtpPeer(440, { replyToSender: true });
    try {
      const r = await sippCall(UAC, "2000", peer.port, 1000, "webhook");
      expect(r.exitCode, r.summary).toBe(0);
    } finally {
      peer.close();
    }
    const req = await hooks.waitFor("/inbound");
    const body = req.json as { headers: Record<string, string>; sdp: string };
    expect(body.headers["X-Test-Case"]).toBe("webhook");
    expect(body.headers["Call-ID"]).toBeDefined();
    expect(body.sdp).toContain("m=audio");
    expect(verifyWebhookSignature({ secret: SECRET, body: req.body, timestamp: req.headers.get(TIMESTAMP_HEADER), signature: req.headers.get(SIGNATURE_HEADER) })).toBe(true);

    const call = await findCall(app, (c) => c.channelId === "room-7" && c.state === "ended");
    expect(call).toMatchObject({ applicationId: "app1", userId: "alice", endReason: "remote_bye" });
    const types = () => hooks.received.filter((r) => r.path === "/events" && (r.json as any).data.callId === call.id).map((r) => (r.json as any).type);
    // call.ended is the call's last event: once it is in, every earlier one has been delivered (in order).
    await until(() => types().includes("call.ended"), { what: types });
    expect(types()).toEqual(["participant.joined", "call.ringing", "call.answered", "participant.left", "call.ended"]);
    const joined = hooks.received.find((r) => r.path === "/events" && (r.json as any).type === "participant.joined" && (r.json as any).data.callId === call.id);
    expect((joined!.json as any).data).toMatchObject({ userId: "alice", kind: "sip", channelId: "room-7" });
  }, 20_000);

  test("CANCEL during routing: 200 + 487, the webhook abandoned, the cancel webhook gets the INVITE's headers", async () => {
    // The routing webhook answers only after the cancel webhook has come: routing is always still
    // pending when the CANCEL arrives, however slowly either side runs.
    hooks.handle("/slow-inbound", () => hooks.waitFor("/cancel", 15_000).then(() => Response.json({ applicationId: "app1", channelId: "late" })));
    await setWebhooks({ inboundUrl: hooks.url("/slow-inbound"), inboundCancelUrl: hooks.url("/cancel") });
    const r = await sippCall(CANCEL, "3000", 9, 300, "cancel");
    expect(r.exitCode, r.summary).toBe(0);
    const cancel = await hooks.waitFor("/cancel");
    const body = cancel.json as { headers: Record<string, string> };
    expect(Object.keys(cancel.json as object)).toEqual(["headers"]);
    expect(body.headers["X-Test-Case"]).toBe("cancel");
    expect(body.headers.From).toContain("+15550002222");
    const call = await findCall(app, (c) => c.from.includes("+15550002222"));
    expect(call).toMatchObject({ state: "ended", endReason: "cancelled", sipStatus: 487 });
    expect(call.channelId).toBeUndefined();
  }, 20_000);

  test("a routing webhook that is down or slow turns the call away fast with a 503 saying why", async () => {
    const probe = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
    const deadUrl = `http://127.0.0.1:${probe.port}/inbound`;
    await probe.stop(true);
    // Down: turned away at once, not after the (long) webhook timeout.
    await setWebhooks({ inboundUrl: deadUrl, timeoutMs: 30_000 });
    const down = await sippCall(REJECTED, "4000", 9, 0);
    expect(down.exitCode, down.summary).toBe(0);
    expect(down.logs).toContain("FINAL 503 Routing Webhook Unreachable");
    const downCall = await findCall(app, (c) => c.to.includes("4000") && c.state === "ended");
    expect(downCall).toMatchObject({ endReason: "rejected", sipStatus: 503 });
    expect(Date.parse(downCall.endedAt) - Date.parse(downCall.createdAt)).toBeLessThan(30_000);

    // Slow (never answers): turned away when the 300 ms timeout expires, not before.
    hooks.hold("/stuck");
    await setWebhooks({ inboundUrl: hooks.url("/stuck"), timeoutMs: 300 });
    const slow = await sippCall(REJECTED, "4001", 9, 0);
    expect(slow.exitCode, slow.summary).toBe(0);
    expect(slow.logs).toContain("FINAL 503 Routing Webhook Timed Out");
    const slowCall = await findCall(app, (c) => c.to.includes("4001") && c.state === "ended");
    expect(slowCall).toMatchObject({ endReason: "rejected", sipStatus: 503 });
    expect(Date.parse(slowCall.endedAt) - Date.parse(slowCall.createdAt)).toBeGreaterThanOrEqual(300 - 1); // 1 ms: clock rounding
  }, 20_000);

  test("over TCP: the call, its media and the caller's BYE work on the connection", async () => {
    await setWebhooks({});
    const peer = await startRtpPeer(440, { replyToSender: true });
    try {
      const r = await runSipp({
        scenario: UAC,
        remote: `127.0.0.1:${app.sipTcpPort}`,
        transport: "tcp",
        service: "1001",
        keys: { rtpport: peer.port, testcase: "tcp" },
        extraArgs: ["-d", "1000"],
        timeoutSec: 15,
      });
      expect(r.exitCode, r.summary).toBe(0);
      expect(peer.packetsReceived).toBeGreaterThan(20);
    } finally {
      peer.close();
    }
    const call = await findCall(app, (c) => c.channelId === "tcp-room" && c.state === "ended");
    expect(call).toMatchObject({ endReason: "remote_bye" });
    expect(call.mediaStats.packetsReceived).toBeGreaterThan(20);
  }, 20_000);

  test("no static route and no webhook is 404", async () => {
    await setWebhooks({});
    const r = await sippCall(REJECTED, "9999", 9, 0);
    expect(r.exitCode, r.summary).toBe(0);
    expect(r.logs).toContain("FINAL 404");
    const call = await findCall(app, (c) => c.to.includes("9999"));
    expect(call).toMatchObject({ state: "ended", endReason: "rejected", sipStatus: 404 });
  }, 20_000);
});
