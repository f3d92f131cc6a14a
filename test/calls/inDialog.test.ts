// Call behaviour at the SIP level, driven by a second SipStack as the trunk: source check, limits,
// delayed-offer INVITE, missing ACK, hold/resume by re-INVITE, UPDATE, DTMF by SIP INFO, session
// timers, media timeout and hanging up through the API.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { events, type AnyEvent } from "../../src/events.ts";
import { Dialog } from "../../src/sip/dialog.ts";
import { parseUri, type SipRequest, type SipResponse } from "../../src/sip/message.ts";
import { SipStack } from "../../src/sip/stack.ts";
import { callUntil, findCall, startCallsApp, testApplicationYaml, type CallsApp } from "../helpers/callsApp.ts";
import { startRtpPeer, type RtpPeer } from "../helpers/rtpPeer.ts";
import { until } from "../helpers/until.ts";
import { loopbackIsTrunk } from "../helpers/loopbackTrunks.ts";

let app: CallsApp;
const peers: SipStack[] = [];
const rtp: RtpPeer[] = [];

beforeAll(async () => {
  app = await startCallsApp(
    `
rtp: { portMin: 51000, portMax: 51999, mediaTimeoutSec: 1 }
calls: { sendRinging: false }
trunks:
  - { id: local, domain: 127.0.0.1, maxConcurrentCalls: 2, optionsIntervalSec: 0 }
  - { id: cidr, domain: 192.0.2.1, allowedAddresses: [127.0.0.3/32], optionsIntervalSec: 0 }
${testApplicationYaml({ "1000": "lobby" })}
`,
    { timers: { T1: 50, T2: 400 } },
  );
});

afterAll(async () => {
  for (const peer of peers) await peer.stop();
  for (const r of rtp) r.close();
  await app?.close();
});

async function peerStack(host = "127.0.0.1"): Promise<SipStack> {
  const stack = new SipStack({ isKnownSource: loopbackIsTrunk, listen: [{ transport: "udp", host, port: 0 }], allow: ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "UPDATE"], timers: { T1: 50, T2: 400 } });
  await stack.start();
  peers.push(stack);
  return stack;
}

function offer(port: number, direction = "sendrecv"): string {
  return `v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio ${port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=${direction}\r\n`;
}

interface PlacedCall {
  stack: SipStack;
  invite: SipRequest;
  response: SipResponse;
  dialog?: Dialog;
  /** Statuses of the provisional responses that came before the final one. */
  provisionals: number[];
}

/** INVITE from `stack` to Trunkline's user 1000; ACKs a 2xx (with `ackBody` for a delayed offer). */
async function placeCall(stack: SipStack, o: { body?: string; headers?: [string, string][]; ack?: boolean; ackBody?: (offerSdp: string) => string } = {}): Promise<PlacedCall> {
  const dest = { transport: "udp" as const, address: "127.0.0.1", port: app.sipPort };
  const uri = parseUri(`sip:1000@127.0.0.1:${app.sipPort}`)!;
  const invite = stack.createOutOfDialogRequest({
    method: "INVITE",
    uri,
    from: { uri: parseUri("sip:+15551110000@127.0.0.1")!, params: new Map() },
    to: { uri, params: new Map() },
    transport: "udp",
    contactUser: "peer",
    ...(o.headers ? { headers: o.headers } : {}),
    ...(o.body !== undefined ? { body: o.body, contentType: "application/sdp" } : {}),
  });
  const tx = stack.sendRequest(invite, dest);
  const provisionals: number[] = [];
  tx.on("provisional", (res) => provisionals.push(res.status));
  const outcome = await tx.outcome;
  if (outcome.kind !== "final") throw new Error(`no final response: ${outcome.kind}`);
  const response = outcome.response;
  if (response.status >= 300 || o.ack === false) return { stack, invite, response, provisionals };
  const ackBody = o.ackBody?.(response.bodyText);
  const dialog = Dialog.fromInvite2xx(stack, invite, response, tx, dest, ackBody ? { ack: { body: ackBody, contentType: "application/sdp" } } : {});
  return { stack, invite, response, dialog, provisionals };
}

/** An in-dialog request from the peer; a 2xx to a re-INVITE is ACKed (RFC 3261 §13.2.2.4). */
async function inDialog(call: PlacedCall, method: string, o: { body?: string; contentType?: string; headers?: [string, string][] } = {}): Promise<SipResponse> {
  const dialog = call.dialog!;
  const req = dialog.createRequest(method, o);
  const outcome = await dialog.sendRequest(req).outcome;
  if (outcome.kind !== "final") throw new Error(`${method}: ${outcome.kind}`);
  if (method === "INVITE" && outcome.response.status < 300) await call.stack.sendStateless(dialog.createRequest("ACK"), dialog.nextHop());
  return outcome.response;
}

/** One sample of GET /metrics, e.g. 'trunkline_sip_dropped_total{reason="stranger"}'. */
async function metricValue(target: CallsApp, series: string): Promise<number> {
  const text = (await target.harness.call("GET", "/metrics")).text;
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

function collectEvents(): { list: AnyEvent[]; stop: () => void } {
  const list: AnyEvent[] = [];
  const stop = events.subscribe((e) => list.push(e));
  return { list, stop };
}

async function media(): Promise<RtpPeer> {
  const peer = await startRtpPeer(440, { replyToSender: true });
  rtp.push(peer);
  return peer;
}

describe("calls at the SIP level", () => {
  test("a source that belongs to no trunk gets no answer at all (strangers: drop), counted; a trunk's allowedAddresses CIDR is accepted", async () => {
    const dropped = () => metricValue(app, 'trunkline_sip_dropped_total{reason="stranger"}');
    const before = await dropped();
    const stranger = await peerStack("127.0.0.2");
    const uri = parseUri(`sip:1000@127.0.0.1:${app.sipPort}`)!;
    const invite = stranger.createOutOfDialogRequest({
      method: "INVITE", uri, transport: "udp", body: offer(9), contentType: "application/sdp",
      from: { uri: parseUri("sip:+15551110000@127.0.0.2")!, params: new Map() }, to: { uri, params: new Map() },
    });
    const tx = stranger.sendRequest(invite, { transport: "udp", address: "127.0.0.1", port: app.sipPort });
    const provisionals: number[] = [];
    tx.on("provisional", (res) => provisionals.push(res.status));
    // Timer B: the INVITE and its retransmissions for 64*T1, every one unanswered.
    expect((await tx.outcome).kind).toBe("timeout");
    expect(provisionals).toEqual([]);
    expect(await dropped()).toBeGreaterThanOrEqual(before + 2);
    const allowed = await peerStack("127.0.0.3");
    const call = await placeCall(allowed, { body: offer((await media()).port) });
    expect(call.response.status).toBe(200);
    const record = await findCall(app, (c) => c.sipCallId === call.invite.callId);
    expect(record.trunkId).toBe("cidr");
    await call.dialog!.bye();
  }, 15_000);

  test("the trunk's concurrent-call limit turns the next call away with 503", async () => {
    const stack = await peerStack();
    const first = await placeCall(stack, { body: offer((await media()).port) });
    const second = await placeCall(stack, { body: offer((await media()).port) });
    const third = await placeCall(stack, { body: offer(9) });
    expect([first.response.status, second.response.status, third.response.status]).toEqual([200, 200, 503]);
    await first.dialog!.bye();
    await second.dialog!.bye();
  }, 10_000);

  test("an INVITE without SDP gets our offer in the 200 and the answer from the ACK", async () => {
    const stack = await peerStack();
    const peer = await media();
    const call = await placeCall(stack, { ackBody: () => offer(peer.port) });
    expect(call.response.status).toBe(200);
    expect(call.response.bodyText).toContain("m=audio");
    const record = await findCall(app, (c) => c.sipCallId === call.invite.callId && c.state === "answered");
    expect(record.codec).toBe("PCMU");
    await call.dialog!.bye();
    await callUntil(app, record.id, (c) => c.state === "ended" && c.endReason === "remote_bye");
  }, 10_000);

  test("a 200 never ACKed is retransmitted, then the call ends with BYE", async () => {
    const stack = await peerStack();
    const call = await placeCall(stack, { body: offer((await media()).port), ack: false });
    expect(call.response.status).toBe(200);
    const record = await findCall(app, (c) => c.sipCallId === call.invite.callId);
    await callUntil(app, record.id, (c) => c.state === "ended" && c.endReason === "no_ack", 8000);
  }, 10_000);

  test("hold and resume by re-INVITE, an UPDATE, DTMF both ways (SIP INFO, RFC 4733), then DELETE sends BYE", async () => {
    const stack = await peerStack();
    const peer = await media();
    const seen = collectEvents();
    try {
      const call = await placeCall(stack, { body: offer(peer.port) });
      const dialog = call.dialog!;
      const record = await findCall(app, (c) => c.sipCallId === call.invite.callId);

      const hold = await inDialog(call, "INVITE", { body: offer(peer.port, "sendonly"), contentType: "application/sdp" });
      expect(hold.status).toBe(200);
      expect(hold.bodyText).toContain("a=recvonly");
      const resume = await inDialog(call, "INVITE", { body: offer(peer.port, "sendrecv"), contentType: "application/sdp" });
      expect(resume.bodyText).toContain("a=sendrecv");

      const update = await inDialog(call, "UPDATE");
      expect(update.status).toBe(200);

      const info = await inDialog(call, "INFO", { body: "Signal=5\r\nDuration=160\r\n", contentType: "application/dtmf-relay" });
      expect(info.status).toBe(200);
      const dtmf = seen.list.find((e) => e.type === "dtmf.received");
      expect(dtmf?.data).toMatchObject({ callId: record.id, digit: "5", durationMs: 160, method: "sip-info" });

      await until(() => peer.packetsReceived > 0, { timeoutMs: 5000 });
      await peer.sendDtmf(7);
      await until(() => seen.list.some((e) => e.type === "dtmf.received" && e.data.method === "rfc4733"), { timeoutMs: 5000 }).catch(() => {});
      const rtpDtmf = seen.list.find((e) => e.type === "dtmf.received" && e.data.method === "rfc4733");
      expect(rtpDtmf?.data).toMatchObject({ callId: record.id, digit: "7" });

      const bad = await inDialog(call, "INFO", { body: "hello", contentType: "text/plain" });
      expect(bad.status).toBe(415);

      const sent = await app.harness.call("POST", `/api/v1/calls/${record.id}/dtmf`, { digits: "19#" });
      expect(sent.status).toBe(204);
      await until(() => peer.dtmfEvents.length >= 3, { timeoutMs: 5000 }).catch(() => {});
      expect(peer.dtmfEvents).toEqual([1, 9, 11]);

      const byeSeen = new Promise<string>((resolve) => dialog.on("terminated", (reason) => resolve(reason)));
      const hangup = await app.harness.call("DELETE", `/api/v1/calls/${record.id}`);
      expect(hangup.status).toBe(204);
      expect(await byeSeen).toBe("bye");
      expect(await callUntil(app, record.id, (c) => c.state === "ended")).toMatchObject({ endReason: "local_hangup" });
      const again = await app.harness.call("DELETE", `/api/v1/calls/${record.id}`);
      expect(again.status).toBe(409);
    } finally {
      seen.stop();
    }
  }, 20_000);

  test("a re-INVITE that moves the media is learned afresh; the old source is a stranger from then on", async () => {
    const stack = await peerStack();
    const before = await media();
    const call = await placeCall(stack, { body: offer(before.port) });
    const record = await findCall(app, (c) => c.sipCallId === call.invite.callId);
    await until(() => before.packetsReceived >= 10);
    const after = await media();
    const moved = await inDialog(call, "INVITE", { body: offer(after.port), contentType: "application/sdp" });
    expect(moved.status).toBe(200);
    await until(() => after.packetsReceived >= 10);
    // The old phone keeps sending; it is heard no more and gets nothing while the new one does.
    const stale = before.packetsReceived;
    const heard = after.packetsReceived;
    await until(() => after.packetsReceived >= heard + 25);
    expect(before.packetsReceived).toBe(stale);
    const hangup = await app.harness.call("DELETE", `/api/v1/calls/${record.id}`);
    expect(hangup.status).toBe(204);
    const ended = await callUntil(app, record.id, (c) => c.state === "ended");
    expect(ended.mediaStats?.strangerPackets).toBeGreaterThan(20);
  }, 20_000);

  test("session timers: the peer's Session-Expires is honoured in the 200; too small an interval gets 422", async () => {
    const stack = await peerStack();
    const peer = await media();
    const small = await placeCall(stack, { body: offer(9), headers: [["Session-Expires", "30"], ["Supported", "timer"]] });
    expect(small.response.status).toBe(422);
    expect(small.response.getHeader("Min-SE")).toBe("90");
    const call = await placeCall(stack, { body: offer(peer.port), headers: [["Session-Expires", "120;refresher=uac"], ["Supported", "timer"]] });
    expect(call.response.status).toBe(200);
    expect(call.response.getHeader("Session-Expires")).toBe("120;refresher=uac");
    expect(call.response.getHeader("Require")).toBe("timer");
    await call.dialog!.bye();
  }, 10_000);

  test("no RTP from the peer for the media timeout ends the call with a BYE that says why", async () => {
    const stack = await peerStack();
    const call = await placeCall(stack, { body: offer(9) });
    const dialog = call.dialog!;
    const bye = new Promise<SipRequest>((resolve) => {
      const original = dialog.receiveRequest.bind(dialog);
      dialog.receiveRequest = (req, tx, ctx) => {
        if (req.method === "BYE") resolve(req);
        original(req, tx, ctx);
      };
    });
    const req = await bye;
    expect(req.getHeader("Reason")).toContain("RTP timeout");
    const record = await findCall(app, (c) => c.sipCallId === call.invite.callId && c.state === "ended");
    expect(record.endReason).toBe("media_timeout");
  }, 10_000);
});
