// A SIPp caller (inbound through the static map) and a werift WebRTC client in one channel, on the
// app composed as in production: each hears the other's tone and neither hears itself. PCMU and
// Opus client variants; the participant list shows the phone and the browser. A client with the
// dial role calls a phone (SIPp as the trunk) into the channel, sees the call's states on its events
// WebSocket, sends DTMF, both hear each other, and it hangs up. The phones stay in their calls
// until hung up, once what the test judges has been heard.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { WebRtcService } from "../../src/webrtc/service.ts";
import { signClientToken } from "../../src/webrtc/tokens.ts";
import { composeCalls, findCall } from "../helpers/callsApp.ts";
import { startRtpPeer, toneShareOf } from "../helpers/rtpPeer.ts";
import { ANSWERER_UNTIL_BYE, CALLER_UNTIL_BYE, freePort, runSipp, startSipp } from "../helpers/sipp.ts";
import { clientHears, peerHears } from "../helpers/hearing.ts";
import { until } from "../helpers/until.ts";
import { createTestClient, type TestCodec } from "../helpers/weriftClient.ts";
import { startHarness, type Harness } from "../api/harness.ts";
import { webrtcApi } from "../../src/api/routes/services.ts";

const SECRET = "webrtc-sipp-secret-0123456789";
const PHONE_HZ = 440;
const BROWSER_HZ = 1000;

let harness: Harness;
let sipPort: number;
let uasPort: number;

beforeAll(async () => {
  uasPort = await freePort();
  const calls = composeCalls();
  harness = await startHarness(
    `
rtp: { portMin: 46000, portMax: 46999, mediaTimeoutSec: 0 }
trunks:
  - { id: callee, domain: 127.0.0.1, port: ${uasPort}, username: trunk, optionsIntervalSec: 0 }
  - { id: sipp, domain: 127.0.0.1, canTerminate: false, optionsIntervalSec: 0 }
applications:
  - id: app1
    name: WebRTC test app
    sharedSecret: ${SECRET}
    inboundRoutes:
      - { sipUsername: "1000", channelId: lobby }
`,
    async (ctx) => {
      const services = await calls.compose(ctx);
      const webrtc = new WebRtcService(ctx, calls.registry);
      return [...services, webrtc, webrtcApi(webrtc, ctx, () => calls.calls().manager.clientControl())];
    },
  );
  sipPort = calls.sipPort();
});

afterAll(async () => {
  await harness?.close();
});

const token = (clientId: string, roles: string[] = []) =>
  signClientToken({ applicationId: "app1", channelId: "lobby", clientId, userId: `user-${clientId}`, roles, exp: Math.floor(Date.now() / 1000) + 600 }, SECRET);

async function joinClient(codec: TestCodec, clientId: string, roles: string[] = []) {
  const client = createTestClient(codec);
  const res = await fetch(`${harness.app.url}/api/v1/client/join`, {
    method: "POST",
    headers: { authorization: `Bearer ${token(clientId, roles)}`, "content-type": "application/json" },
    body: JSON.stringify({ sdp: await client.offer() }),
  });
  expect(res.status).toBe(200);
  await client.accept(((await res.json()) as { sdp: string }).sdp);
  await client.connected();
  return client;
}

async function leave(clientId: string): Promise<void> {
  await fetch(`${harness.app.url}/api/v1/client/connections/${clientId}`, { method: "DELETE", headers: { authorization: `Bearer ${token(clientId)}` } });
}

describe("a phone caller and a WebRTC client in one channel", () => {
  for (const codec of ["PCMU", "opus"] as TestCodec[]) {
    test(`${codec} client: each hears the other's tone and not its own`, async () => {
      const client = await joinClient(codec, `web-${codec}`);
      const phone = await startRtpPeer(PHONE_HZ, { replyToSender: true });
      try {
        client.startSending(BROWSER_HZ);

        // The phone stays until hung up below, once what is judged has been heard.
        const call = runSipp({ scenario: CALLER_UNTIL_BYE, remote: `127.0.0.1:${sipPort}`, service: "1000", keys: { rtpport: phone.port, testcase: codec }, timeoutSec: 20 });
        // While the call is up, the channel lists the phone and the browser.
        let kinds: string[] = [];
        await until(async () => (kinds = await participantKinds(codec)).includes("sip"), { pollMs: 50, what: () => kinds });
        expect(kinds).toEqual(["sip", "webrtc"]);
        // Each hears the other's tone, and not its own in the same stretch.
        const [heard, heardByPhone] = await Promise.all([clientHears(client, PHONE_HZ), peerHears(phone, BROWSER_HZ)]);
        expect(toneShareOf(heard, client.codec.sampleRate, BROWSER_HZ)).toBeLessThan(0.1);
        expect(toneShareOf(heardByPhone, 8000, PHONE_HZ)).toBeLessThan(0.1);
        const live = await findCall({ harness }, (c) => c.state === "answered" && c.channelId === "lobby");
        expect((await harness.call("DELETE", `/api/v1/calls/${live.id}`)).status).toBe(204);
        const result = await call;
        expect(result.exitCode, result.summary).toBe(0);
      } finally {
        phone.close();
        await client.close();
        await leave(`web-${codec}`);
      }
    });
  }

  test("a client with the dial role calls a phone into the channel, follows its states, sends DTMF", async () => {
    const client = await joinClient("opus", "dialler", ["dial"]);
    const callee = await startRtpPeer(PHONE_HZ, { replyToSender: true });
    const events = await eventTypes("dialler");
    try {
      client.startSending(BROWSER_HZ);
      // The phone answers and stays until the client hangs up below, once both have been heard.
      const uas = await startSipp({ scenario: ANSWERER_UNTIL_BYE, localPort: uasPort, keys: { rtpport: callee.port }, timeoutSec: 20 });
      await uas.ready();
      const post = (path: string, body: object) =>
        fetch(`${harness.app.url}/api/v1/client${path}`, {
          method: "POST",
          headers: { authorization: `Bearer ${token("dialler", ["dial"])}`, "content-type": "application/json" },
          body: JSON.stringify(body),
        });
      const dialled = await post("/calls", { to: "+15551234567" });
      expect(dialled.status).toBe(201);
      const { id } = (await dialled.json()) as { id: string };
      await until(() => events.seen.includes("call.answered"), { what: () => events.seen });
      expect((await post(`/calls/${id}/dtmf`, { digits: "5#" })).status).toBe(204);
      await Promise.all([clientHears(client, PHONE_HZ), peerHears(callee, BROWSER_HZ)]);
      const hangUp = await fetch(`${harness.app.url}/api/v1/client/calls/${id}`, { method: "DELETE", headers: { authorization: `Bearer ${token("dialler", ["dial"])}` } });
      expect(hangUp.status).toBe(204);
      const result = await uas.done;
      expect(result.exitCode, result.summary).toBe(0);
      await until(() => events.seen.includes("call.ended"), { what: () => events.seen });
      expect(events.seen.filter((t) => t.startsWith("call."))).toEqual(["call.ringing", "call.answered", "call.ended"]);
    } finally {
      events.close();
      callee.close();
      await client.close();
      await leave("dialler");
    }
  }, 20_000);
});

/** Collects the event types the channel's events WebSocket streams. */
async function eventTypes(clientId: string): Promise<{ seen: string[]; close(): void }> {
  const seen: string[] = [];
  const ws = new WebSocket(`${harness.app.url.replace("http", "ws")}/api/v1/client/events`);
  ws.onmessage = (m) => {
    const message = JSON.parse(String(m.data)) as { type: string; event?: { type: string } };
    if (message.event) seen.push(message.event.type);
  };
  await new Promise((r) => (ws.onopen = r));
  ws.send(JSON.stringify({ type: "auth", token: token(clientId) }));
  return { seen, close: () => ws.close() };
}

/** The participant kinds the client's events WebSocket reports, sorted. */
async function participantKinds(codec: string): Promise<string[]> {
  const ws = new WebSocket(`${harness.app.url.replace("http", "ws")}/api/v1/client/events`);
  try {
    const first = new Promise<{ participants: { kind: string }[] }>((resolve) => (ws.onmessage = (m) => resolve(JSON.parse(String(m.data)))));
    await new Promise((r) => (ws.onopen = r));
    ws.send(JSON.stringify({ type: "auth", token: token(`watcher-${codec}`) }));
    return (await first).participants.map((p) => p.kind).sort();
  } finally {
    ws.close();
  }
}
