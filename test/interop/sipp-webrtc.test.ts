// A SIPp caller (inbound through the static map) and a werift WebRTC client in one channel, on the
// app composed as in production: each hears the other's tone and neither hears itself. PCMU and
// Opus client variants; the participant list shows the phone and the browser.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { WebRtcService } from "../../src/webrtc/service.ts";
import { signClientToken } from "../../src/webrtc/tokens.ts";
import { composeCalls } from "../helpers/callsApp.ts";
import { startRtpPeer, toneShareOf } from "../helpers/rtpPeer.ts";
import { runSipp } from "../helpers/sipp.ts";
import { createTestClient, type TestCodec } from "../helpers/weriftClient.ts";
import { startHarness, type Harness } from "../api/harness.ts";

const SECRET = "webrtc-sipp-secret-0123456789";
const UAC = join(import.meta.dir, "../fixtures/sipp/calls-uac-early-offer.xml");
const PHONE_HZ = 440;
const BROWSER_HZ = 1000;

let harness: Harness;
let sipPort: number;

beforeAll(async () => {
  const calls = composeCalls();
  harness = await startHarness(
    `
rtp: { portMin: 46000, portMax: 46999, mediaTimeoutSec: 0 }
trunks:
  - { id: sipp, domain: 127.0.0.1, optionsIntervalSec: 0 }
applications:
  - id: app1
    name: WebRTC test app
    sharedSecret: ${SECRET}
    inboundRoutes:
      - { sipUsername: "1000", channelId: lobby }
`,
    async (ctx) => {
      const services = await calls.compose(ctx);
      return [...services, new WebRtcService(ctx, calls.registry, () => calls.calls().manager.clientControl())];
    },
  );
  sipPort = calls.sipPort();
});

afterAll(async () => {
  await harness?.close();
});

const token = (clientId: string) =>
  signClientToken({ applicationId: "app1", channelId: "lobby", clientId, userId: `user-${clientId}`, roles: [], exp: Math.floor(Date.now() / 1000) + 600 }, SECRET);

describe("a phone caller and a WebRTC client in one channel", () => {
  for (const codec of ["PCMU", "opus"] as TestCodec[]) {
    test(`${codec} client: each hears the other's tone and not its own`, async () => {
      const client = createTestClient(codec);
      const phone = await startRtpPeer(PHONE_HZ, { replyToSender: true });
      try {
        const res = await fetch(`${harness.app.url}/api/v1/client/join`, {
          method: "POST",
          headers: { authorization: `Bearer ${token(`web-${codec}`)}`, "content-type": "application/json" },
          body: JSON.stringify({ sdp: await client.offer() }),
        });
        expect(res.status).toBe(200);
        await client.accept(((await res.json()) as { sdp: string }).sdp);
        await client.connected();
        client.startSending(BROWSER_HZ);

        const call = runSipp({ scenario: UAC, remote: `127.0.0.1:${sipPort}`, service: "1000", keys: { rtpport: phone.port, testcase: codec }, extraArgs: ["-d", "2500"], timeoutSec: 15 });
        // While the call is up, the channel lists the phone and the browser.
        let kinds: string[] = [];
        for (let i = 0; i < 40 && !kinds.includes("sip"); i++) {
          await Bun.sleep(50);
          kinds = await participantKinds(codec);
        }
        expect(kinds).toEqual(["sip", "webrtc"]);
        await Bun.sleep(1000);
        client.takeReceived();
        await Bun.sleep(1000);
        const heard = client.takeReceived();
        const result = await call;
        expect(result.exitCode, result.summary).toBe(0);

        const rate = client.codec.sampleRate;
        expect(toneShareOf(heard, rate, PHONE_HZ)).toBeGreaterThan(0.5);
        expect(toneShareOf(heard, rate, BROWSER_HZ)).toBeLessThan(0.1);
        expect(phone.toneShare(BROWSER_HZ, 1000)).toBeGreaterThan(0.5);
        expect(phone.toneShare(PHONE_HZ, 1000)).toBeLessThan(0.1);
      } finally {
        phone.close();
        await client.close();
        await fetch(`${harness.app.url}/api/v1/client/connections/web-${codec}`, { method: "DELETE", headers: { authorization: `Bearer ${token(`web-${codec}`)}` } });
      }
    });
  }
});

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
