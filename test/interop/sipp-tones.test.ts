// Call-progress tones for a WebRTC client that dials (werift client, SIPp as the far end): while
// the UAS rings with a 180 without SDP, the client hears 440 + 480 Hz (both, Goertzel); after the
// 200 the ringback is gone and the client hears the UAS's audio; a 486 gives the busy tone
// (480 + 620 Hz). A second client in the channel hears none of it. Early media (a 183 with SDP and
// RTP) is heard instead of the ringback while the call still rings.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { webrtcApi } from "../../src/api/routes/services.ts";
import { subscribeEvents, type AnyEvent } from "../../src/events.ts";
import { goertzelPower, meanSquare } from "../../src/media/goertzel.ts";
import { progressTones } from "../../src/services.ts";
import { WebRtcService } from "../../src/webrtc/service.ts";
import { signClientToken } from "../../src/webrtc/tokens.ts";
import { startHarness, type Harness } from "../api/harness.ts";
import { composeCalls } from "../helpers/callsApp.ts";
import { clientHearsUntil, soundShare } from "../helpers/hearing.ts";
import { startRtpPeer } from "../helpers/rtpPeer.ts";
import { freePort, startSipp } from "../helpers/sipp.ts";
import { until } from "../helpers/until.ts";
import { createTestClient, type TestClient } from "../helpers/weriftClient.ts";

const SECRET = "tones-shared-secret-0123456789";
const PHONE_HZ = 1000;
const DIALLER_HZ = 2000;
const BYSTANDER_HZ = 3000;
const RINGING_UAS = join(import.meta.dir, "../fixtures/sipp/tones-uas-ring-then-answer.xml");
const BUSY_UAS = join(import.meta.dir, "../fixtures/sipp/calls-uas-busy.xml");
const EARLY_MEDIA_UAS = join(import.meta.dir, "../fixtures/sipp/calls-uas-early-media.xml");

let harness: Harness;
let uasPort: number;
const events: AnyEvent[] = [];
const unsubscribe = subscribeEvents((e) => events.push(e));

beforeAll(async () => {
  uasPort = await freePort();
  const calls = composeCalls();
  harness = await startHarness(
    `
rtp: { portMin: 48000, portMax: 48999, mediaTimeoutSec: 0 }
calls:
  # Configured cadence: a long first burst, so the ringback is heard well within the UAS's 6 s ring.
  ringback: { frequencies: [440, 480], onMs: 6000, offMs: 500 }
trunks:
  # Early offer, so a 183 with SDP can bring early media (RFC 3960).
  - { id: callee, domain: 127.0.0.1, port: ${uasPort}, username: trunk, earlyOffer: true, optionsIntervalSec: 0 }
applications:
  - { id: app1, name: Tones app, sharedSecret: ${SECRET} }
`,
    async (ctx) => {
      const services = await calls.compose(ctx);
      const webrtc = new WebRtcService(ctx, calls.registry);
      return [...services, webrtc, progressTones(ctx, calls.calls(), webrtc), webrtcApi(webrtc, ctx, () => calls.calls().manager.clientControl())];
    },
  );
});

afterAll(async () => {
  unsubscribe();
  await harness?.close();
});

const token = (clientId: string) =>
  signClientToken({ applicationId: "app1", channelId: "lobby", clientId, userId: `user-${clientId}`, roles: ["dial"], exp: Math.floor(Date.now() / 1000) + 600 }, SECRET);

async function joinClient(clientId: string): Promise<TestClient> {
  const client = createTestClient("opus");
  const res = await fetch(`${harness.app.url}/api/v1/client/join`, {
    method: "POST",
    headers: { authorization: `Bearer ${token(clientId)}`, "content-type": "application/json" },
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

async function dial(clientId: string): Promise<string> {
  const res = await fetch(`${harness.app.url}/api/v1/client/calls`, {
    method: "POST",
    headers: { authorization: `Bearer ${token(clientId)}`, "content-type": "application/json" },
    body: JSON.stringify({ to: "+15551234567" }),
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

/**
 * Share of the window's power at `hz`, over 100 ms blocks: their Goertzel bins are 10 Hz apart, so
 * 440 and 480 Hz are told apart (20 ms blocks could not), and silent gaps of a cadence weigh nothing.
 */
function share(pcm: Int16Array, rate: number, hz: number): number {
  const size = rate / 10;
  let tone = 0;
  let total = 0;
  for (let at = 0; at + size <= pcm.length; at += size) {
    const block = pcm.subarray(at, at + size);
    tone += goertzelPower(block, rate, hz);
    total += meanSquare(block);
  }
  return total === 0 ? 0 : tone / total;
}
const shares = (pcm: Int16Array, rate: number, hzs: number[]) => Object.fromEntries(hzs.map((hz) => [hz, Number(share(pcm, rate, hz).toFixed(3))]));
const sawEvent = (type: string, callId: string) => events.some((e) => e.type === type && "callId" in e.data && e.data.callId === callId);

describe("call-progress tones for a dialling WebRTC client", () => {
  test("ringback (440 + 480 Hz) while the UAS rings with a 180 without SDP, gone after the 200: the UAS's audio instead", async () => {
    const dialler = await joinClient("dialler");
    const bystander = await joinClient("bystander");
    const phone = await startRtpPeer(PHONE_HZ, { replyToSender: true });
    let stopUas = () => {};
    // Clients that send nothing are dropped after 5 s (ClientPeer's media timeout); the bystander's
    // faint tone is well under the ringback the dialler must hear.
    dialler.startSending(DIALLER_HZ);
    bystander.startSending(BYSTANDER_HZ, 300);
    try {
      const uas = await startSipp({ scenario: RINGING_UAS, localPort: uasPort, keys: { rtpport: phone.port }, timeoutSec: 20 });
      stopUas = () => uas.kill();
      await uas.ready();
      const callId = await dial("dialler");
      await until(() => sawEvent("call.ringing", callId), { what: () => events.map((e) => e.type) });
      const ringing = await clientHearsUntil(dialler, (w, rate) => soundShare(w, rate) > 0.9 && share(w, rate, 440) > 0.3 && share(w, rate, 480) > 0.3, {
        what: (w, rate) => shares(w, rate, [440, 480]),
      });
      // Heard before the answer: the 200 had not come yet when the window was complete.
      expect(sawEvent("call.answered", callId)).toBe(false);
      expect(share(ringing, 48000, 620)).toBeLessThan(0.05);
      // The other client in the channel hears the dialler, and no ringback, over the same time.
      const heardByBystander = bystander.takeReceived();
      expect(share(heardByBystander, 48000, DIALLER_HZ)).toBeGreaterThan(0.5);
      expect(share(heardByBystander, 48000, 440) + share(heardByBystander, 48000, 480)).toBeLessThan(0.05);

      await until(() => sawEvent("call.answered", callId), { what: () => events.map((e) => e.type) });
      // After the answer: the UAS's 1 kHz, and none of the ringback in the same stretch (a ringback
      // that went on would never let this hold).
      const answered = await clientHearsUntil(dialler, (w, rate) => share(w, rate, PHONE_HZ) > 0.5 && share(w, rate, 440) < 0.02 && share(w, rate, 480) < 0.02, {
        what: (w, rate) => shares(w, rate, [PHONE_HZ, 440, 480]),
      });
      expect(soundShare(answered, 48000)).toBeGreaterThan(0.9);

      const hangUp = await fetch(`${harness.app.url}/api/v1/client/calls/${callId}`, { method: "DELETE", headers: { authorization: `Bearer ${token("dialler")}` } });
      expect(hangUp.status).toBe(204);
      const result = await uas.done;
      expect(result.exitCode, result.summary).toBe(0);
    } finally {
      stopUas();
      phone.close();
      await Promise.all([dialler.close(), bystander.close()]);
      await Promise.all([leave("dialler"), leave("bystander")]);
    }
  }, 30_000);

  test("a 486 gives the busy tone (480 + 620 Hz), and no ringback", async () => {
    const dialler = await joinClient("busy-dialler");
    dialler.startSending(DIALLER_HZ);
    try {
      const uas = await startSipp({ scenario: BUSY_UAS, localPort: uasPort, timeoutSec: 10 });
      await uas.ready();
      const callId = await dial("busy-dialler");
      const busy = await clientHearsUntil(dialler, (w, rate) => share(w, rate, 480) > 0.3 && share(w, rate, 620) > 0.3, {
        ms: 1000,
        what: (w, rate) => ({ ...shares(w, rate, [440, 480, 620]), events: events.filter((e) => "callId" in e.data && e.data.callId === callId) }),
      });
      expect(share(busy, 48000, 440)).toBeLessThan(0.02);
      expect(events.find((e) => e.type === "call.ended" && e.data.callId === callId)?.data).toMatchObject({ reason: "rejected", sipStatus: 486 });
      const result = await uas.done;
      expect(result.exitCode, result.summary).toBe(0);
    } finally {
      await dialler.close();
      await leave("busy-dialler");
    }
  }, 30_000);

  test("early media: the far end's audio from a 183 with SDP is heard while ringing, without ringback", async () => {
    const dialler = await joinClient("early-dialler");
    dialler.startSending(DIALLER_HZ);
    const phone = await startRtpPeer(PHONE_HZ, { replyToSender: true });
    const uas = await startSipp({ scenario: EARLY_MEDIA_UAS, localPort: uasPort, keys: { rtpport: phone.port }, extraArgs: ["-d", "6000"], timeoutSec: 20 });
    try {
      await uas.ready();
      const callId = await dial("early-dialler");
      // A ringback that went on under the early media would never let this hold.
      await clientHearsUntil(dialler, (w, rate) => share(w, rate, PHONE_HZ) > 0.5 && share(w, rate, 440) < 0.02 && share(w, rate, 480) < 0.02, {
        what: (w, rate) => shares(w, rate, [PHONE_HZ, 440, 480]),
      });
      // Heard before the answer: the 200 had not come yet when the window was complete.
      expect(sawEvent("call.ringing", callId)).toBe(true);
      expect(sawEvent("call.answered", callId)).toBe(false);
      await until(() => sawEvent("call.answered", callId), { what: () => events.map((e) => e.type) });
      const hangUp = await fetch(`${harness.app.url}/api/v1/client/calls/${callId}`, { method: "DELETE", headers: { authorization: `Bearer ${token("early-dialler")}` } });
      expect(hangUp.status).toBe(204);
      const result = await uas.done;
      expect(result.exitCode, result.summary).toBe(0);
    } finally {
      uas.kill();
      phone.close();
      await dialler.close();
      await leave("early-dialler");
    }
  }, 30_000);
});
