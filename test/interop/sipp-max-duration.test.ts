// calls.maxDurationSec against SIPp: the call ends with a BYE whose Reason (RFC 3326) SIPp checks,
// `max_duration` in the record and the call.ended event. The limit counts from the answer: the UAS
// rings longer than the limit and is still answered; the trunk's 1 s beats the global 30 s; an
// inbound call ends by its application's limit. The API and YAML validate the fields.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { subscribeEvents, type AnyEvent } from "../../src/events.ts";
import { callUntil, startCallsApp, type CallsApp } from "../helpers/callsApp.ts";
import { freePort, startSipp, runSipp } from "../helpers/sipp.ts";
import { until } from "../helpers/until.ts";

const UAS = join(import.meta.dir, "../fixtures/sipp/limits-uas-ring-then-answer.xml");
const UAC = join(import.meta.dir, "../fixtures/sipp/limits-uac-until-max-duration.xml");
/** How long the UAS rings (its fixture pauses 2.5 s). */
const RING_MS = 2500;

let app: CallsApp;
let uasPort: number;
const ended: AnyEvent[] = [];
const unsubscribe = subscribeEvents((e) => e.type === "call.ended" && ended.push(e));

beforeAll(async () => {
  uasPort = await freePort();
  app = await startCallsApp(`
rtp: { portMin: 47000, portMax: 47999, mediaTimeoutSec: 0 }
calls: { maxDurationSec: 30 }
trunks:
  - { id: limited, domain: 127.0.0.1, port: ${uasPort}, username: trunk, optionsIntervalSec: 0, maxDurationSec: 1 }
  - { id: callers, domain: 127.0.0.1, canTerminate: false, optionsIntervalSec: 0 }
applications:
  - { id: app1, name: Unlimited app, sharedSecret: limits-shared-secret-0123456789 }
  - id: app2
    name: Limited app
    sharedSecret: limits-shared-secret-0123456789
    maxDurationSec: 1
    inboundRoutes:
      - { sipUsername: "2000", channelId: short }
`);
});

afterAll(async () => {
  unsubscribe();
  await app?.close();
});

const endedEvent = (callId: string) => ended.find((e) => e.type === "call.ended" && e.data.callId === callId);

describe("maximum call duration", () => {
  test("outbound: the trunk's 1 s (not the global 30 s) ends the call 1 s after its answer, which came after 2.5 s of ringing", async () => {
    const uas = await startSipp({ scenario: UAS, localPort: uasPort, keys: { rtpport: await freePort() }, timeoutSec: 20 });
    await uas.ready();
    const res = await app.harness.call("POST", "/api/v1/applications/app1/channels/room/calls", { to: "+15551234567", client: { id: "c1" } });
    expect(res.status, res.text).toBe(201);
    const result = await uas.done;
    // SIPp checked the BYE's Reason header (check_it): a missing or different one fails the run.
    expect(result.exitCode, result.summary).toBe(0);
    expect(result.logs).toContain('BYE Reason: SIP;cause=200;text="max duration"');
    const call = await callUntil(app, res.json.id, (c) => c.state === "ended");
    expect(call).toMatchObject({ endReason: "max_duration", trunkId: "limited" });
    // Answered only after the ring, so a timer from the call's start (1 s) would have ended it ringing.
    expect(Date.parse(call.answeredAt) - Date.parse(call.createdAt)).toBeGreaterThanOrEqual(RING_MS);
    expect(Date.parse(call.endedAt) - Date.parse(call.answeredAt)).toBeGreaterThanOrEqual(1000);
    await until(() => endedEvent(call.id) !== undefined);
    expect(endedEvent(call.id)?.data).toMatchObject({ reason: "max_duration" });
  }, 30_000);

  test("inbound: the application's 1 s ends a SIPp caller's call with the Reason", async () => {
    const result = await runSipp({ scenario: UAC, remote: `127.0.0.1:${app.sipPort}`, service: "2000", keys: { rtpport: await freePort() }, timeoutSec: 15 });
    expect(result.exitCode, result.summary).toBe(0);
    expect(result.logs).toContain('BYE Reason: SIP;cause=200;text="max duration"');
    const list = await app.harness.call("GET", "/api/v1/calls?limit=500");
    const call = (list.json.calls as any[]).find((c) => c.direction === "inbound" && c.channelId === "short");
    expect(call).toMatchObject({ state: "ended", endReason: "max_duration", applicationId: "app2" });
    expect(Date.parse(call.endedAt) - Date.parse(call.answeredAt)).toBeGreaterThanOrEqual(1000);
  }, 30_000);

  test("the API takes maxDurationSec on trunks and applications, and refuses bad values naming the field", async () => {
    const trunk = await app.harness.call("POST", "/api/v1/trunks", { id: "api-trunk", domain: "127.0.0.1", canTerminate: false, optionsIntervalSec: 0, maxDurationSec: 3600 });
    expect(trunk.status, trunk.text).toBe(201);
    expect(trunk.json.maxDurationSec).toBe(3600);
    const patched = await app.harness.call("PATCH", "/api/v1/trunks/api-trunk", { maxDurationSec: 60 });
    expect(patched.json.maxDurationSec).toBe(60);
    const bad = await app.harness.call("PATCH", "/api/v1/trunks/api-trunk", { maxDurationSec: -1 });
    expect(bad.status).toBe(400);
    expect(bad.text).toContain("maxDurationSec");
    const application = await app.harness.call("POST", "/api/v1/applications", { id: "api-app", name: "API app", sharedSecret: "api-shared-secret-0123456789", maxDurationSec: 120 });
    expect(application.status, application.text).toBe(201);
    expect((await app.harness.call("GET", "/api/v1/applications/api-app")).json.maxDurationSec).toBe(120);
    const badApp = await app.harness.call("POST", "/api/v1/applications", { id: "api-app2", name: "API app", sharedSecret: "api-shared-secret-0123456789", maxDurationSec: 1.5 });
    expect(badApp.status).toBe(400);
    expect(badApp.text).toContain("maxDurationSec");
  });
});
