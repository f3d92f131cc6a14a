// Transfer and move against real peers. A blind transfer (RFC 3515) of an outbound call to a SIPp
// carrier, and of an inbound call from a SIPp caller: the REFER's Refer-To, the 202, the NOTIFY sipfrag "100 Trying" then the final status;
// a 2xx ends our leg with BYE and call.transferred, a 503 gives call.transfer_failed and the call
// stays up. A REFER from the trunk is declined 603 by default; with referPolicy: accept we are the
// transferee: 202, NOTIFY 100 then the new call's final status, a new INVITE to a second SIPp,
// the first leg ended with BYE once it answers; a target off the trunk is 403, Replaces 501. Moving a phone leg to another channel: SIPp
// phones with their own RTP ends hear it there (Goertzel) and no longer in the old channel; the two
// channels are mixed on different media workers, so the leg is re-homed with its stream carried on.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { events, type AnyEvent } from "../../src/events.ts";
import type { MediaPlane } from "../../src/media/media-plane.ts";
import { callUntil, findCall, startCallsApp, testApplicationYaml, type CallsApp } from "../helpers/callsApp.ts";
import { peerHears, soundShare } from "../helpers/hearing.ts";
import { startRtpPeer, toneShareOf, type RtpPeer } from "../helpers/rtpPeer.ts";
import { ANSWERER_UNTIL_BYE, CALLER_UNTIL_BYE, freePort, runSipp, startSipp, type SippResult } from "../helpers/sipp.ts";
import { until } from "../helpers/until.ts";

const fixture = (name: string) => join(import.meta.dir, "../fixtures/sipp", name);

let app: CallsApp;
let carrierPort: number;
const seen: AnyEvent[] = [];
let unsubscribe: () => void = () => undefined;
const rtpPeers: RtpPeer[] = [];

beforeAll(async () => {
  carrierPort = await freePort();
  // Two media workers: lobby and annex are mixed on different ones, so a move re-homes the leg.
  app = await startCallsApp(`
media: { workers: 2 }
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

/** The call service's media plane (which worker holds how many legs). */
const plane = () => (app.calls as unknown as { plane: MediaPlane }).plane;

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

  test("an inbound call: the caller's side gets the REFER in the dialog it opened, and our leg ends after its NOTIFY 200", async () => {
    const media = await rtpPeer(1000);
    const known = new Set(((await app.harness.call("GET", "/api/v1/calls?limit=500")).json.calls as { id: string }[]).map((c) => c.id));
    const caller = startSipp({ scenario: fixture("calls-uac-transfer.xml"), remote: `127.0.0.1:${app.sipPort}`, service: "1000", keys: { rtpport: media.port, fragstatus: "200 OK" }, timeoutSec: 20 });
    const { id } = await findCall(app, (c) => !known.has(c.id) && c.direction === "inbound" && c.state === "answered");
    const res = await app.harness.call("POST", `/api/v1/calls/${id}/transfer`, { to: "+15557654321" });
    expect(res.status, res.text).toBe(202);
    const result = await (await caller).done;
    expect(result.exitCode, result.summary).toBe(0);
    expect(result.logs).toContain(`REFER_TO sip:+15557654321@127.0.0.1:${carrierPort}`);
    expect((await callUntil(app, id, (c) => c.state === "ended")).endReason).toBe("transferred");
    expect(eventsOf(id, "call.transferred").length).toBe(1);
  });

  test("a REFER from the trunk is declined 603; the call goes on", async () => {
    const media = await rtpPeer(1000);
    const trunk = await startSipp({ scenario: fixture("calls-uas-refer.xml"), localPort: carrierPort, keys: { rtpport: media.port, referto: "sip:+15559990000@127.0.0.1" }, timeoutSec: 20 });
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

describe("a REFER from a trunk whose referPolicy is accept (we are the transferee)", () => {
  let acceptApp: CallsApp;
  let acceptCarrierPort: number;

  beforeAll(async () => {
    acceptCarrierPort = await freePort();
    acceptApp = await startCallsApp(`
rtp: { portMin: 56000, portMax: 56999, mediaTimeoutSec: 0 }
trunks:
  - { id: accepting, domain: 127.0.0.1, port: ${acceptCarrierPort}, username: carrier, optionsIntervalSec: 0, referPolicy: accept }
${testApplicationYaml({ "1000": "lobby" })}
`);
  });

  afterAll(async () => {
    await acceptApp?.close();
  });

  async function dialAccepting(): Promise<string> {
    const res = await acceptApp.harness.call("POST", "/api/v1/applications/app1/channels/lobby/calls", { to: "+15551234567", client: { id: "c1", userId: "agent-7" } });
    expect(res.status, res.text).toBe(201);
    return res.json.id;
  }

  async function newCallsSince(known: Set<string>): Promise<any[]> {
    return ((await acceptApp.harness.call("GET", "/api/v1/calls?limit=500")).json.calls as { id: string }[]).filter((c) => !known.has(c.id));
  }

  test("202, NOTIFY 100 then 200; the second UAS gets our INVITE into the same channel as the same participant; the first leg gets BYE", async () => {
    const media = await rtpPeer(1000);
    const targetMedia = await rtpPeer(700);
    const targetPort = await freePort();
    const target = await startSipp({ scenario: ANSWERER_UNTIL_BYE, localPort: targetPort, keys: { rtpport: targetMedia.port }, timeoutSec: 20 });
    await target.ready();
    const carrier = await startSipp({ scenario: fixture("calls-uas-refer-accept.xml"), localPort: acceptCarrierPort, keys: { rtpport: media.port, referto: `sip:+15557654321@127.0.0.1:${targetPort}` }, timeoutSec: 20 });
    await carrier.ready();
    const id = await dialAccepting();
    const known = new Set([id]);
    const result = await carrier.done;
    expect(result.exitCode, result.summary).toBe(0);
    expect(result.messages).toMatch(/SIP\/2\.0 202 Accepted/);
    expect(result.logs).toContain("EVENT refer");
    expect(result.logs).toContain("NOTIFY SIP/2.0 100 Trying active");
    expect(result.logs).toContain("NOTIFY SIP/2.0 200 OK terminated");
    expect(result.logs.indexOf("100 Trying")).toBeLessThan(result.logs.indexOf("200 OK"));
    const original = await callUntil(acceptApp, id, (c) => c.state === "ended");
    expect(original.endReason).toBe("transferred");
    expect(eventsOf(id, "call.transferred").map((e) => e.data)).toEqual([expect.objectContaining({ referTo: `sip:+15557654321@127.0.0.1:${targetPort}`, sipStatus: 200 })]);
    const [transferred] = await newCallsSince(known);
    expect(transferred).toMatchObject({ direction: "outbound", state: "answered", trunkId: "accepting", channelId: "lobby", applicationId: "app1", userId: "agent-7", to: `sip:+15557654321@127.0.0.1:${targetPort}` });
    expect(acceptApp.registry.participants("app1", "lobby").map((p) => ({ callId: p.callId, userId: p.userId }))).toEqual([{ callId: transferred.id, userId: "agent-7" }]);
    expect((await acceptApp.harness.call("DELETE", `/api/v1/calls/${transferred.id}`)).status).toBe(204);
    const targetResult = await target.done;
    expect(targetResult.exitCode, targetResult.summary).toBe(0);
    expect(targetResult.messages).toContain(`INVITE sip:+15557654321@127.0.0.1:${targetPort}`);
  });

  test("an inbound call: the caller's REFER is accepted, and the new call takes its place in the channel as the same participant", async () => {
    const media = await rtpPeer(1000);
    const targetMedia = await rtpPeer(700);
    const targetPort = await freePort();
    const target = await startSipp({ scenario: ANSWERER_UNTIL_BYE, localPort: targetPort, keys: { rtpport: targetMedia.port }, timeoutSec: 20 });
    await target.ready();
    const known = new Set(((await acceptApp.harness.call("GET", "/api/v1/calls?limit=500")).json.calls as { id: string }[]).map((c) => c.id));
    const referto = `sip:+15557654321@127.0.0.1:${targetPort}`;
    const caller = await startSipp({ scenario: fixture("calls-uac-refer-accept.xml"), remote: `127.0.0.1:${acceptApp.sipPort}`, service: "1000", keys: { rtpport: media.port, referto }, timeoutSec: 20 });
    const result = await caller.done;
    expect(result.exitCode, result.summary).toBe(0);
    expect(result.logs).toContain("NOTIFY SIP/2.0 100 Trying active");
    expect(result.logs).toContain("NOTIFY SIP/2.0 200 OK terminated");
    const calls = await newCallsSince(known);
    const inbound = calls.find((c) => c.direction === "inbound");
    const outbound = calls.find((c) => c.direction === "outbound");
    expect((await callUntil(acceptApp, inbound.id, (c) => c.state === "ended")).endReason).toBe("transferred");
    const joined = seen.find((e) => e.type === "participant.joined" && (e.data as { callId?: string }).callId === inbound.id)!.data as { userId: string };
    expect(outbound).toMatchObject({ state: "answered", trunkId: "accepting", channelId: "lobby", userId: joined.userId, to: referto });
    expect(acceptApp.registry.participants("app1", "lobby").map((p) => ({ callId: p.callId, userId: p.userId }))).toEqual([{ callId: outbound.id, userId: joined.userId }]);
    expect(eventsOf(inbound.id, "call.transferred").length).toBe(1);
    expect((await acceptApp.harness.call("DELETE", `/api/v1/calls/${outbound.id}`)).status).toBe(204);
    const targetResult = await target.done;
    expect(targetResult.exitCode, targetResult.summary).toBe(0);
  });

  test("the new call failing (486) is NOTIFYed with its status, terminated; the original call stays up", async () => {
    const media = await rtpPeer(1000);
    const targetPort = await freePort();
    const target = await startSipp({ scenario: fixture("calls-uas-busy.xml"), localPort: targetPort, timeoutSec: 20 });
    await target.ready();
    const carrier = await startSipp({ scenario: fixture("calls-uas-refer-accept.xml"), localPort: acceptCarrierPort, keys: { rtpport: media.port, referto: `sip:busy@127.0.0.1:${targetPort}` }, timeoutSec: 20 });
    await carrier.ready();
    const id = await dialAccepting();
    await until(() => eventsOf(id, "call.transfer_failed").length > 0, { what: () => seen.filter((e) => (e.data as { callId?: string }).callId === id).map((e) => e.type) });
    expect(eventsOf(id, "call.transfer_failed")[0]!.data).toMatchObject({ reason: "failed", sipStatus: 486 });
    expect((await acceptApp.harness.call("GET", `/api/v1/calls/${id}`)).json.state).toBe("answered");
    expect((await target.done).exitCode).toBe(0);
    expect((await acceptApp.harness.call("DELETE", `/api/v1/calls/${id}`)).status).toBe(204);
    const result = await carrier.done;
    expect(result.exitCode, result.summary).toBe(0);
    expect(result.logs).toContain("NOTIFY SIP/2.0 100 Trying active");
    expect(result.logs).toContain("NOTIFY SIP/2.0 486 Busy Here terminated");
    expect((await callUntil(acceptApp, id, (c) => c.state === "ended")).endReason).toBe("local_hangup");
    expect(eventsOf(id, "call.transferred")).toEqual([]);
  });

  for (const [name, referto, status] of [
    ["a Refer-To off the trunk is 403", "sip:+15557654321@127.0.0.2", "403 Transfer Target Not On This Trunk"],
    ["a Refer-To with Replaces (attended transfer) is 501", "sip:+15557654321@127.0.0.1?Replaces=abc%40host%3Bto-tag%3D1%3Bfrom-tag%3D2", "501 Attended Transfer"],
  ] as const) {
    test(`${name}; no call is placed and the call goes on`, async () => {
      const media = await rtpPeer(1000);
      const trunk = await startSipp({ scenario: fixture("calls-uas-refer.xml"), localPort: acceptCarrierPort, keys: { rtpport: media.port, referto }, timeoutSec: 20 });
      await trunk.ready();
      const id = await dialAccepting();
      const known = new Set(((await acceptApp.harness.call("GET", "/api/v1/calls?limit=500")).json.calls as { id: string }[]).map((c) => c.id));
      let summaries: string[] = [];
      await until(async () => {
        const trace = await acceptApp.harness.call("GET", `/api/v1/calls/${id}/sip`);
        summaries = trace.status === 200 ? (trace.json.messages as { summary: string }[]).map((m) => m.summary) : [];
        return summaries.some((m) => m.includes(status.slice(0, 3)));
      }, { what: () => summaries });
      expect((await acceptApp.harness.call("GET", `/api/v1/calls/${id}`)).json.state).toBe("answered");
      expect(await newCallsSince(known)).toEqual([]);
      expect((await acceptApp.harness.call("DELETE", `/api/v1/calls/${id}`)).status).toBe(204);
      const result = await trunk.done;
      expect(result.exitCode, result.summary).toBe(0);
      expect(result.messages).toContain(`SIP/2.0 ${status}`);
    });
  }
});

describe("moving a phone leg to another channel", () => {
  /** A SIPp phone calling `service` with its own RTP end sending `toneHz`; stays until hung up. */
  async function phone(service: string, toneHz: number): Promise<{ media: RtpPeer; id: string; run: Promise<SippResult> }> {
    const media = await rtpPeer(toneHz);
    const known = new Set(((await app.harness.call("GET", "/api/v1/calls?limit=500")).json.calls as { id: string }[]).map((c) => c.id));
    const run = runSipp({ scenario: CALLER_UNTIL_BYE, remote: `127.0.0.1:${app.sipPort}`, service, keys: { rtpport: media.port, testcase: `move-${toneHz}` }, timeoutSec: 30 });
    const call = await findCall(app, (c) => !known.has(c.id) && c.state === "answered");
    await until(() => media.packetsReceived > 0, { what: () => `phone ${toneHz} Hz never got the channel's RTP` });
    return { media, id: call.id, run };
  }

  test("the moved leg is heard in the new channel and no longer in the old one; participant events and the record follow", async () => {
    const mover = await phone("1000", 440);
    const stayer = await phone("1000", 700);
    const host = await phone("2000", 1000);
    try {
      await peerHears(stayer.media, 440);
      // lobby (two legs) and annex (one) on different workers: the move re-homes the leg between them.
      expect(plane().workers.map((w) => w.legs).sort()).toEqual([1, 2]);
      const res = await app.harness.call("POST", `/api/v1/calls/${mover.id}/move`, { channelId: "annex" });
      expect(res.status, res.text).toBe(204);
      // Heard in the new channel, and hearing it.
      await Promise.all([peerHears(host.media, 440), peerHears(mover.media, 1000)]);
      // What the moved phone receives is one stream throughout: no new SSRC, marker or timestamp jump.
      expect(mover.media.streamRestarts).toBe(0);
      // The stayer's audio kept arriving after that: the half second it got since carries no 440 Hz (alone, it hears silence).
      const from = stayer.media.received().length;
      await until(() => stayer.media.received().length >= from + 4000, { what: () => ({ heardSince: stayer.media.received().length - from }) });
      const since = stayer.media.received().subarray(from, from + 4000);
      expect(toneShareOf(since, 8000, 440)).toBeLessThan(0.1);
      expect(soundShare(since, 8000)).toBe(0);
      expect((await app.harness.call("GET", `/api/v1/calls/${mover.id}`)).json.channelId).toBe("annex");
      const participantEvents = seen
        .filter((e) => (e.type === "participant.left" || e.type === "participant.joined") && (e.data as { callId?: string }).callId === mover.id)
        .map((e) => `${e.type} ${(e.data as { channelId: string }).channelId}${"reason" in e.data && e.data.reason ? ` ${e.data.reason}` : ""}`);
      expect(participantEvents).toEqual(["participant.joined lobby", "participant.left lobby moved", "participant.joined annex"]);
      expect(app.registry.participants("app1", "annex").map((p) => p.callId).sort()).toEqual([host.id, mover.id].sort());
      expect(app.registry.participants("app1", "lobby").map((p) => p.callId)).toEqual([stayer.id]);
      expect(plane().workers.map((w) => w.legs).sort()).toEqual([1, 2]);
    } finally {
      for (const p of [mover, stayer, host]) await app.harness.call("DELETE", `/api/v1/calls/${p.id}`);
    }
    for (const p of [mover, stayer, host]) {
      const result = await p.run;
      expect(result.exitCode, result.summary).toBe(0);
    }
  });

  test("bad moves: unknown call 404, ended call 409, same channel 409, a channel mixed on another node 409, a malformed channelId 400 naming it", async () => {
    expect((await app.harness.call("POST", "/api/v1/calls/call_nope/move", { channelId: "annex" })).status).toBe(404);
    const caller = await phone("1000", 440);
    const same = await app.harness.call("POST", `/api/v1/calls/${caller.id}/move`, { channelId: "lobby" });
    expect(same.status).toBe(409);
    expect(same.json.error.code).toBe("same_channel");
    const malformed = await app.harness.call("POST", `/api/v1/calls/${caller.id}/move`, { channelId: "has space" });
    expect(malformed.status).toBe(400);
    expect(malformed.json.error.field).toBe("channelId");
    // A channel another (live) node mixes cannot take the leg: its media stays on this node.
    const { store } = app.harness.app.ctx;
    await store.nodes.beat({ nodeId: "node-elsewhere", sipAddress: "127.0.0.9:5060", httpUrl: "http://127.0.0.9:8080", load: { activeCalls: 0, mediaLegs: 0, cpuPercent: 0 } }, { starting: false });
    expect(await store.homes.claim({ applicationId: "app1", channelId: "remote" }, "node-elsewhere", { leaseMs: 60_000, deadAfterMs: 60_000 })).toEqual({ won: true });
    const elsewhere = await app.harness.call("POST", `/api/v1/calls/${caller.id}/move`, { channelId: "remote" });
    expect(elsewhere.status).toBe(409);
    expect(elsewhere.json.error).toMatchObject({ code: "channel_elsewhere", field: "channelId" });
    expect(elsewhere.json.error.message).toContain("node-elsewhere");
    expect((await app.harness.call("GET", `/api/v1/calls/${caller.id}`)).json.channelId).toBe("lobby");
    expect((await app.harness.call("DELETE", `/api/v1/calls/${caller.id}`)).status).toBe(204);
    expect((await caller.run).exitCode).toBe(0);
    const ended = await app.harness.call("POST", `/api/v1/calls/${caller.id}/move`, { channelId: "annex" });
    expect(ended.status).toBe(409);
    expect(ended.json.error.code).toBe("call_ended");
  });
});

test("the OpenAPI document describes transfer and move with their bodies", async () => {
  const doc = (await app.harness.call("GET", "/api/v1/openapi.json")).json;
  const paths = Object.keys(doc.paths).filter((p) => /\/calls\/\{id\}\/(transfer|move)$/.test(p));
  expect(paths.length).toBe(2);
  const text = JSON.stringify(paths.map((p) => doc.paths[p]));
  expect(text).toContain("channelId");
  expect(text).toContain("sip: URI");
  expect(text).toContain("202");
});
