// Transfer and move against real peers. A blind transfer (RFC 3515) of an outbound call to a SIPp
// carrier: the REFER's Refer-To, the 202, the NOTIFY sipfrag "100 Trying" then the final status;
// a 2xx ends our leg with BYE and call.transferred, a 503 gives call.transfer_failed and the call
// stays up. A REFER from the trunk is declined 603. Moving a phone leg to another channel: SIPp
// phones with their own RTP ends hear it there (Goertzel) and no longer in the old channel.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { events, type AnyEvent } from "../../src/events.ts";
import { callUntil, findCall, startCallsApp, testApplicationYaml, type CallsApp } from "../helpers/callsApp.ts";
import { peerHears, soundShare } from "../helpers/hearing.ts";
import { startRtpPeer, toneShareOf, type RtpPeer } from "../helpers/rtpPeer.ts";
import { CALLER_UNTIL_BYE, freePort, runSipp, startSipp } from "../helpers/sipp.ts";
import { until } from "../helpers/until.ts";

const fixture = (name: string) => join(import.meta.dir, "../fixtures/sipp", name);

let app: CallsApp;
let carrierPort: number;
const seen: AnyEvent[] = [];
let unsubscribe: () => void = () => undefined;
const rtpPeers: RtpPeer[] = [];

beforeAll(async () => {
  carrierPort = await freePort();
  app = await startCallsApp(`
rtp: { portMin: 44000, portMax: 44999, mediaTimeoutSec: 0 }
trunks:
  - { id: carrier, domain: 127.0.0.1, port: ${carrierPort}, username: carrier, optionsIntervalSec: 0 }
${testApplicationYaml({ "1000": "lobby", "2000": "annex" })}
`);
  unsubscribe = events.subscribe((e) => void seen.push(e));
});

afterAll(async () => {
  unsubscribe();
  for (const peer of rtpPeers) peer.close();
  await app?.close();
});

async function rtpPeer(toneHz: number): Promise<RtpPeer> {
  const peer = await startRtpPeer(toneHz, { replyToSender: true });
  rtpPeers.push(peer);
  return peer;
}

async function dial(): Promise<string> {
  const res = await app.harness.call("POST", "/api/v1/applications/app1/channels/lobby/calls", { to: "+15551234567", client: { id: "c1" } });
  expect(res.status, res.text).toBe(201);
  return res.json.id;
}

function eventsOf(callId: string, type: string): AnyEvent[] {
  return seen.filter((e) => e.type === type && (e.data as { callId?: string }).callId === callId);
}

describe("blind transfer (REFER)", () => {
  test("the carrier gets the REFER, answers 202 and NOTIFYs 100 then 200: call.transferred, and our leg ends with BYE", async () => {
    const media = await rtpPeer(1000);
    const carrier = await startSipp({ scenario: fixture("calls-uas-transfer.xml"), localPort: carrierPort, keys: { rtpport: media.port, fragstatus: "200 OK" }, timeoutSec: 20 });
    await carrier.ready();
    const id = await dial();
    await callUntil(app, id, (c) => c.state === "answered");
    const res = await app.harness.call("POST", `/api/v1/calls/${id}/transfer`, { to: "+15557654321" });
    expect(res.status, res.text).toBe(202);
    const result = await carrier.done;
    expect(result.exitCode, result.summary).toBe(0);
    expect(result.logs).toContain(`REFER_TO sip:+15557654321@127.0.0.1:${carrierPort}`);
    const call = await callUntil(app, id, (c) => c.state === "ended");
    expect(call.endReason).toBe("transferred");
    expect(eventsOf(id, "call.transferred").map((e) => e.data)).toEqual([expect.objectContaining({ referTo: `sip:+15557654321@127.0.0.1:${carrierPort}`, sipStatus: 200 })]);
    expect(eventsOf(id, "call.transfer_failed")).toEqual([]);
    // An ended call cannot be transferred again.
    const again = await app.harness.call("POST", `/api/v1/calls/${id}/transfer`, { to: "+15557654321" });
    expect(again.status).toBe(409);
    expect(again.json.error.code).toBe("call_ended");
  });

  test("a NOTIFY sipfrag 503 gives call.transfer_failed and the call stays up; a full sip: URI is sent as given", async () => {
    const media = await rtpPeer(1000);
    const carrier = await startSipp({ scenario: fixture("calls-uas-transfer.xml"), localPort: carrierPort, keys: { rtpport: media.port, fragstatus: "503 Service Unavailable" }, timeoutSec: 20 });
    await carrier.ready();
    const id = await dial();
    await callUntil(app, id, (c) => c.state === "answered");
    const res = await app.harness.call("POST", `/api/v1/calls/${id}/transfer`, { to: "sip:desk@192.0.2.10" });
    expect(res.status, res.text).toBe(202);
    await until(() => eventsOf(id, "call.transfer_failed").length > 0, { what: () => seen.filter((e) => (e.data as { callId?: string }).callId === id).map((e) => e.type) });
    expect(eventsOf(id, "call.transfer_failed")[0]!.data).toMatchObject({ referTo: "sip:desk@192.0.2.10", reason: "failed", sipStatus: 503 });
    expect((await app.harness.call("GET", `/api/v1/calls/${id}`)).json.state).toBe("answered");
    expect((await app.harness.call("DELETE", `/api/v1/calls/${id}`)).status).toBe(204);
    const result = await carrier.done;
    expect(result.exitCode, result.summary).toBe(0);
    expect(result.logs).toContain("REFER_TO sip:desk@192.0.2.10");
    expect((await callUntil(app, id, (c) => c.state === "ended")).endReason).toBe("local_hangup");
    expect(eventsOf(id, "call.transferred")).toEqual([]);
  });

  test("a REFER from the trunk is declined 603; the call goes on", async () => {
    const media = await rtpPeer(1000);
    const trunk = await startSipp({ scenario: fixture("calls-uas-refer.xml"), localPort: carrierPort, keys: { rtpport: media.port }, timeoutSec: 20 });
    await trunk.ready();
    const id = await dial();
    await callUntil(app, id, (c) => c.state === "answered");
    // The live call's SIP trace shows when the REFER has been answered.
    let summaries: string[] = [];
    await until(async () => {
      const trace = await app.harness.call("GET", `/api/v1/calls/${id}/sip`);
      summaries = trace.status === 200 ? (trace.json.messages as { direction: string; summary: string }[]).map((m) => `${m.direction} ${m.summary}`) : [];
      return summaries.some((m) => m.includes("603"));
    }, { what: () => summaries });
    expect((await app.harness.call("GET", `/api/v1/calls/${id}`)).json.state).toBe("answered");
    expect((await app.harness.call("DELETE", `/api/v1/calls/${id}`)).status).toBe(204);
    const result = await trunk.done;
    expect(result.exitCode, result.summary).toBe(0);
    expect(result.messages).toMatch(/SIP\/2\.0 603 Declined/);
    expect((await callUntil(app, id, (c) => c.state === "ended")).endReason).toBe("local_hangup");
  });

  test("bad requests: a malformed or missing target is a 400 naming `to`, an unknown call 404; a plain number goes to the trunk's domain", async () => {
    const bad = await app.harness.call("POST", "/api/v1/calls/call_nope/transfer", { to: "not a number" });
    expect(bad.status).toBe(404);
    const media = await rtpPeer(1000);
    const carrier = await startSipp({ scenario: fixture("calls-uas-transfer.xml"), localPort: carrierPort, keys: { rtpport: media.port, fragstatus: "200 OK" }, timeoutSec: 20 });
    await carrier.ready();
    const id = await dial();
    await callUntil(app, id, (c) => c.state === "answered");
    const malformed = await app.harness.call("POST", `/api/v1/calls/${id}/transfer`, { to: "two words" });
    expect(malformed.status).toBe(400);
    expect(malformed.json.error.field).toBe("to");
    const missing = await app.harness.call("POST", `/api/v1/calls/${id}/transfer`, {});
    expect(missing.status).toBe(400);
    expect(missing.json.error.field).toBe("to");
    expect((await app.harness.call("POST", `/api/v1/calls/${id}/transfer`, { to: "1234" })).status).toBe(202);
    const result = await carrier.done;
    expect(result.exitCode, result.summary).toBe(0);
    expect(result.logs).toContain(`REFER_TO sip:1234@127.0.0.1:${carrierPort}`);
  });
});
