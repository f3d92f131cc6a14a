// Every log line about a call carries its call id (`callId`) and SIP Call-ID (`sipCallId`), so one
// `jq 'select(.callId=="call_…")'` finds all of it. Real calls through the real stacks with SIPp as
// the peer, logs captured at debug level: an inbound call the media timeout ends, an inbound call no
// route takes (404), an inbound caller that never ACKs our 200 (the dialog gives up: SIP timers
// scaled down), an outbound call answered and hung up through the API, and one the callee refuses
// (486). The checker itself is shown to catch a line without the fields.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { setLogSink } from "../../src/log.ts";
import { callUntil, findCall, startCallsApp, testApplicationYaml, type CallsApp } from "../helpers/callsApp.ts";
import { startRtpPeer } from "../helpers/rtpPeer.ts";
import { ANSWERER_UNTIL_BYE, CALLER_UNTIL_BYE, freePort, runSipp, startSipp } from "../helpers/sipp.ts";
import { until } from "../helpers/until.ts";

type Line = Record<string, unknown>;

const fixture = (name: string) => join(import.meta.dir, "../fixtures/sipp", name);

/** Components whose lines are about calls (a call's own logger and what it hands down). */
const CALL_COMPONENTS = /^(calls(\..+)?|media\.leg|rtp|sip\.dialog|sip\.transaction|events|routing\..+)$/;

/**
 * The lines that break correlation for one call: a line that names the call (a field equal to its
 * id) without both fields, and a call-related line with its SIP Call-ID but not its call id.
 */
function uncorrelated(lines: Line[], call: { id: string; sipCallId: string }): Line[] {
  return lines.filter((line) => {
    const namesCall = Object.values(line).includes(call.id);
    const namesSipCall = line.sipCallId === call.sipCallId && CALL_COMPONENTS.test(String(line.component));
    if (!namesCall && !namesSipCall) return false;
    return line.callId !== call.id || line.sipCallId !== call.sipCallId;
  });
}

/** CALLER_UNTIL_BYE without the ACK: our 200 goes unacknowledged until the dialog gives up with BYE. */
const CALLER_WITHOUT_ACK = CALLER_UNTIL_BYE.replace(/<send><!\[CDATA\[\nACK[\s\S]*?\]\]><\/send>\n/, "");

const lines: Line[] = [];
let app: CallsApp;
let uasPort: number;

beforeAll(async () => {
  setLogSink((line) => lines.push(JSON.parse(line) as Line));
  uasPort = await freePort();
  app = await startCallsApp(
    `
rtp: { mediaTimeoutSec: 2 }
trunks:
  - { id: t-uas, domain: 127.0.0.1, port: ${uasPort}, username: uas, optionsIntervalSec: 0 }
${testApplicationYaml({ "1000": "room" })}`,
    // 64*T1 without ACK ends a dialog: 3.2 s.
    { logLevel: "debug", timers: { T1: 50, T2: 400 } },
  );
});

afterAll(async () => {
  await app?.close();
  setLogSink((line) => process.stdout.write(line + "\n"));
});

function linesOf(call: { id: string }): Line[] {
  return lines.filter((l) => l.callId === call.id);
}

test("the checker catches a call's line without its SIP Call-ID, or a dialog line without the call id", () => {
  const call = { id: "call_x", sipCallId: "abc@127.0.0.1" };
  const good: Line[] = [
    { component: "calls", msg: "call failed", callId: call.id, sipCallId: call.sipCallId },
    { component: "sip.stack", msg: "stray response", sipCallId: call.sipCallId },
    { component: "http", msg: "request", path: `/api/v1/calls/${call.id}` },
  ];
  expect(uncorrelated(good, call)).toEqual([]);
  const noSipCallId = { component: "media.leg", msg: "media timeout", callId: call.id };
  const noCallId = { component: "sip.dialog", msg: "no ACK for our 2xx", sipCallId: call.sipCallId };
  const byParticipant = { component: "events", msg: "participant.left", participantId: call.id };
  expect(uncorrelated([...good, noSipCallId, noCallId, byParticipant], call)).toEqual([noSipCallId, noCallId, byParticipant]);
});

test("inbound and outbound calls, with their failures, log every line with callId and sipCallId", async () => {
  // Inbound, answered, then ended by the media timeout: the caller sends no RTP.
  const silentPort = await freePort();
  const timedOut = await runSipp({ scenario: CALLER_UNTIL_BYE, remote: `127.0.0.1:${app.sipPort}`, service: "1000", keys: { rtpport: silentPort, testcase: "timeout" }, timeoutSec: 15 });
  expect(timedOut.exitCode, timedOut.summary).toBe(0);
  const timeoutCall = await findCall(app, (c) => c.direction === "inbound" && c.endReason === "media_timeout");

  // Inbound, refused: no route for 9999.
  const refused = await runSipp({ scenario: fixture("calls-uac-rejected.xml"), remote: `127.0.0.1:${app.sipPort}`, service: "9999", keys: { rtpport: await freePort(), testcase: "unrouted" }, timeoutSec: 10 });
  expect(refused.exitCode, refused.summary).toBe(0);
  const refusedCall = await findCall(app, (c) => c.direction === "inbound" && c.sipStatus === 404 && c.state === "ended");

  // Inbound, answered, never ACKed: the dialog ends the call with BYE (its caller sends RTP meanwhile).
  expect(CALLER_WITHOUT_ACK).not.toContain("ACK sip:");
  const phone = await startRtpPeer(440, { replyToSender: true });
  let unacknowledgedCall: { id: string; sipCallId: string; endReason: string };
  try {
    const r = await runSipp({ scenario: CALLER_WITHOUT_ACK, remote: `127.0.0.1:${app.sipPort}`, service: "1000", keys: { rtpport: phone.port, testcase: "no-ack" }, timeoutSec: 15 });
    expect(r.exitCode, r.summary).toBe(0);
    unacknowledgedCall = await findCall(app, (c) => c.direction === "inbound" && c.endReason === "no_ack");
  } finally {
    phone.close();
  }

  // Outbound, answered, hung up through the API.
  const callee = await startRtpPeer(1000, { replyToSender: true });
  let answeredId: string;
  try {
    const uas = await startSipp({ scenario: ANSWERER_UNTIL_BYE, localPort: uasPort, keys: { rtpport: callee.port }, timeoutSec: 15 });
    await uas.ready();
    const dialled = await app.harness.call("POST", "/api/v1/applications/app1/channels/room/calls", { to: "+15551234567", client: { id: "c1", userId: "u1" } });
    expect(dialled.status, dialled.text).toBe(201);
    answeredId = dialled.json.id;
    await callUntil(app, answeredId, (c) => c.state === "answered");
    await until(() => callee.packetsReceived > 5, { what: () => ({ packetsReceived: callee.packetsReceived }) });
    expect((await app.harness.call("DELETE", `/api/v1/calls/${answeredId}`)).status).toBe(204);
    const r = await uas.done;
    expect(r.exitCode, r.summary).toBe(0);
  } finally {
    callee.close();
  }
  const answeredCall = await callUntil(app, answeredId, (c) => c.state === "ended");

  // Outbound, refused by the callee (486), on the same trunk.
  const busy = await startSipp({ scenario: fixture("calls-uas-busy.xml"), localPort: uasPort, timeoutSec: 10 });
  await busy.ready();
  const busyDial = await app.harness.call("POST", "/api/v1/applications/app1/channels/room/calls", { to: "+15559876543", client: { id: "c2", userId: "u2" } });
  expect(busyDial.status, busyDial.text).toBe(201);
  const busyCall = await callUntil(app, busyDial.json.id, (c) => c.state === "ended");
  expect(busyCall).toMatchObject({ trunkId: "t-uas", endReason: "rejected", sipStatus: 486 });
  expect((await busy.done).exitCode).toBe(0);

  const calls = [timeoutCall, refusedCall, unacknowledgedCall, answeredCall, busyCall] as { id: string; sipCallId: string; endReason: string }[];
  // Each call's end is logged (the call.ended event) after everything else about it.
  await until(() => calls.every((c) => linesOf(c).some((l) => l.msg === "call.ended")), { what: () => calls.map((c) => [c.id, linesOf(c).map((l) => l.msg)]) });
  for (const call of calls) {
    expect(call.sipCallId).toBeString();
    expect(uncorrelated(lines, call)).toEqual([]);
  }

  // The lines that matter are there, from the layers the call hands its logger to.
  const has = (call: { id: string }, component: string, msg: string | RegExp) =>
    linesOf(call).some((l) => l.component === component && (typeof msg === "string" ? l.msg === msg : msg.test(String(l.msg))));
  expect(has(timeoutCall, "media.leg", /^media timeout/)).toBe(true);
  expect(has(timeoutCall, "media.leg", "media negotiated")).toBe(true);
  expect(has(timeoutCall, "rtp", "learned the RTP source")).toBe(false); // the caller never sent any
  expect(has(timeoutCall, "events", "participant.joined")).toBe(true);
  expect(linesOf(timeoutCall).find((l) => l.msg === "call.ended")).toMatchObject({ reason: "media_timeout", sipCallId: timeoutCall.sipCallId });
  expect(has(refusedCall, "calls", "inbound call not routed")).toBe(true);
  expect(has(unacknowledgedCall, "sip.dialog", "no ACK for our 2xx; ending the dialog")).toBe(true);
  expect(has(answeredCall, "rtp", "learned the RTP source")).toBe(true);
  expect(has(answeredCall, "events", "call.answered")).toBe(true);
  expect(has(busyCall, "calls", "call failed")).toBe(true);
  // Every line of the calls component is about one call and says which.
  const callsLines = lines.filter((l) => l.component === "calls");
  expect(callsLines.length).toBeGreaterThan(0);
  for (const line of callsLines) expect(line).toMatchObject({ callId: expect.stringMatching(/^call_/), sipCallId: expect.any(String) });
}, 60_000);
