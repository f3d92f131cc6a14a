// RFC 3262 on outbound calls, with SIPp as the trunk. A gateway that sends its offer in a reliable
// 183 (Require: 100rel, RSeq) to our delayed-offer INVITE gets our PRACK (RAck naming its RSeq and
// the INVITE's CSeq, our answer in the body), the early media it then sends reaches a phone in the
// channel while the call still rings, the 200 completes the call and our BYE follows the PRACK's
// CSeq. With an early offer, the reliable 183's answer plays the same way and its PRACK carries no
// SDP. A trunk with `prack: off` offers no 100rel, one with `required` requires it.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { callUntil, phoneCaller, startCallsApp, testApplicationYaml, type CallsApp } from "../helpers/callsApp.ts";
import { carriesTone } from "../helpers/hearing.ts";
import { startRtpPeer, type RtpPeer } from "../helpers/rtpPeer.ts";
import { freePort, startSipp } from "../helpers/sipp.ts";
import { until } from "../helpers/until.ts";
import { startWebhookServer, type WebhookServer } from "../helpers/webhookServer.ts";

const fixture = (name: string) => join(import.meta.dir, "../fixtures/sipp", name);

/** How long the gateway sends early media between its PRACK's 200 and the INVITE's 200. */
const EARLY_MEDIA_MS = 2000;

let app: CallsApp;
let hooks: WebhookServer;
let prackPort: number;
let answerPort: number;
let offPort: number;
let requiredPort: number;

beforeAll(async () => {
  hooks = startWebhookServer();
  const ports: number[] = [];
  while (ports.length < 4) {
    const port = await freePort();
    if (!ports.includes(port)) ports.push(port);
  }
  [prackPort, answerPort, offPort, requiredPort] = ports as [number, number, number, number];
  app = await startCallsApp(`
rtp: { portMin: 54600, portMax: 54799, mediaTimeoutSec: 0 }
calls: { ringTimeoutSec: 10 }
trunks:
  - { id: t-prack, domain: 127.0.0.1, port: ${prackPort}, username: prack, optionsIntervalSec: 0 }
  - { id: t-answer, domain: 127.0.0.1, port: ${answerPort}, username: answer, earlyOffer: true, optionsIntervalSec: 0 }
  - { id: t-off, domain: 127.0.0.1, port: ${offPort}, username: off, prack: "off", optionsIntervalSec: 0 }
  - { id: t-required, domain: 127.0.0.1, port: ${requiredPort}, username: required, prack: required, optionsIntervalSec: 0 }
${testApplicationYaml({ "1000": "room" })}
`);
});

afterAll(async () => {
  await app?.close();
  await hooks?.stop();
});

async function dialOver(trunkId: string, to: string): Promise<string> {
  hooks.handle(`/${trunkId}`, () => Response.json({ sipTrunkId: trunkId }));
  const set = await app.harness.call("PUT", "/api/v1/settings/webhooks", { timeoutMs: 10_000, outboundUrl: hooks.url(`/${trunkId}`) });
  expect(set.status, set.text).toBe(200);
  const res = await app.harness.call("POST", "/api/v1/applications/app1/channels/room/calls", { to, client: { id: "c1", userId: "u1" } });
  expect(res.status, res.text).toBe(201);
  return res.json.id;
}

const logged = (logs: string, name: string) => new RegExp(`${name} (.*)$`, "m").exec(logs)?.[1]?.trim();

/**
 * The phone in the channel hears the gateway's 1 kHz while the call rings: the state is read after
 * the tone was heard, so the tone came before the 200.
 */
async function phoneHearsEarlyMedia(phone: RtpPeer, id: string): Promise<void> {
  let state = "";
  await until(
    async () => {
      const all = phone.received();
      const heard = carriesTone(all.subarray(Math.max(0, all.length - 2400)), 8000, 1000);
      state = (await app.harness.call("GET", `/api/v1/calls/${id}`)).json.state;
      if (state === "answered" || state === "ended") throw new Error(`the call was ${state} before the phone heard early media`);
      return heard && state === "ringing";
    },
    { pollMs: 20, what: () => ({ state, packetsReceived: phone.packetsReceived }) },
  );
}

/** The INVITE as SIPp received it (its message trace). */
const receivedInvite = (messages: string) => /INVITE sip:[\s\S]*?\r?\n\r?\n/.exec(messages)?.[0] ?? "";

describe("outbound 100rel / PRACK (RFC 3262)", () => {
  test("a reliable 183 with the offer is PRACKed with our answer; its early media reaches the channel before the 200; the call completes", async () => {
    const callee = await startRtpPeer(1000, { replyToSender: true });
    const { peer: phone, run: inbound } = await phoneCaller(app, { service: "1000", toneHz: 440, holdMs: EARLY_MEDIA_MS + 4000 });
    try {
      await until(() => phone.packetsReceived > 0, { what: () => "the phone never got the channel's RTP" });
      const uas = await startSipp({
        scenario: fixture("calls-uas-100rel-early-media.xml"),
        localPort: prackPort,
        keys: { rtpport: callee.port },
        extraArgs: ["-d", String(EARLY_MEDIA_MS)],
        timeoutSec: 15,
      });
      await uas.ready();
      const id = await dialOver("t-prack", "+15550004711");
      await phoneHearsEarlyMedia(phone, id);
      const answered = await callUntil(app, id, (x) => x.state === "answered" || x.state === "ended");
      expect(answered).toMatchObject({ state: "answered", codec: "PCMU" });
      expect((await app.harness.call("DELETE", `/api/v1/calls/${id}`)).status).toBe(204);
      const r = await uas.done;
      expect(r.exitCode, r.summary).toBe(0);
      // Delayed offer: the INVITE had no SDP; the PRACK acknowledged RSeq 4711 of the INVITE's CSeq.
      expect(logged(r.logs, "INVITE_SDP")).toBe("");
      const inviteCSeq = Number(logged(r.logs, "INVITE_CSEQ"));
      expect(logged(r.logs, "PRACK_RACK")).toBe(`4711 ${inviteCSeq} INVITE`);
      expect(Number(logged(r.logs, "PRACK_SDP_PORT"))).toBeGreaterThan(0);
      const prackCSeq = Number(logged(r.logs, "PRACK_CSEQ"));
      expect(prackCSeq).toBe(inviteCSeq + 1);
      expect(Number(logged(r.logs, "BYE_CSEQ"))).toBe(prackCSeq + 1);
      // One PRACK transaction (a retransmitted 183 gets none of its own; the PRACK itself may be
      // retransmitted, with the same CSeq).
      expect(new Set(r.messages.match(/^CSeq: *\d+ PRACK/gim))).toEqual(new Set([`CSeq: ${prackCSeq} PRACK`]));
      expect(await callUntil(app, id, (x) => x.state === "ended")).toMatchObject({ endReason: "local_hangup", trunkId: "t-prack", codec: "PCMU" });
      await inbound;
    } finally {
      callee.close();
      phone.close();
    }
  }, 30_000);

  test("early offer: a reliable 183 with the answer is PRACKed without SDP; its early media reaches the channel before the 200", async () => {
    const callee = await startRtpPeer(1000, { replyToSender: true });
    const { peer: phone, run: inbound } = await phoneCaller(app, { service: "1000", toneHz: 440, holdMs: EARLY_MEDIA_MS + 4000 });
    try {
      await until(() => phone.packetsReceived > 0, { what: () => "the phone never got the channel's RTP" });
      const uas = await startSipp({
        scenario: fixture("calls-uas-100rel-answer.xml"),
        localPort: answerPort,
        keys: { rtpport: callee.port },
        extraArgs: ["-d", String(EARLY_MEDIA_MS)],
        timeoutSec: 15,
      });
      await uas.ready();
      const id = await dialOver("t-answer", "+15550000815");
      await phoneHearsEarlyMedia(phone, id);
      expect(await callUntil(app, id, (x) => x.state === "answered" || x.state === "ended")).toMatchObject({ state: "answered", codec: "PCMU" });
      expect((await app.harness.call("DELETE", `/api/v1/calls/${id}`)).status).toBe(204);
      const r = await uas.done;
      expect(r.exitCode, r.summary).toBe(0);
      const inviteCSeq = Number(logged(r.logs, "INVITE_CSEQ"));
      expect(logged(r.logs, "PRACK_RACK")).toBe(`815 ${inviteCSeq} INVITE`);
      const prack = /^PRACK sip:[\s\S]*?\r?\n\r?\n/m.exec(r.messages)?.[0] ?? "";
      expect(prack).toMatch(/^Content-Length: *0\r?$/im);
      expect(Number(logged(r.logs, "BYE_CSEQ"))).toBe(Number(logged(r.logs, "PRACK_CSEQ")) + 1);
      expect(await callUntil(app, id, (x) => x.state === "ended")).toMatchObject({ endReason: "local_hangup", trunkId: "t-answer", codec: "PCMU" });
      await inbound;
    } finally {
      callee.close();
      phone.close();
    }
  }, 30_000);

  test("prack: off offers no 100rel; prack: required requires it", async () => {
    for (const [trunkId, port] of [["t-off", offPort], ["t-required", requiredPort]] as const) {
      const uas = await startSipp({ scenario: fixture("calls-uas-busy.xml"), localPort: port, timeoutSec: 10 });
      await uas.ready();
      const id = await dialOver(trunkId, "+15550004712");
      expect(await callUntil(app, id, (x) => x.state === "ended")).toMatchObject({ endReason: "rejected", sipStatus: 486, trunkId });
      const r = await uas.done;
      expect(r.exitCode, r.summary).toBe(0);
      const invite = receivedInvite(r.messages);
      expect(invite).toMatch(/^Supported: timer\r?$/m);
      if (trunkId === "t-off") expect(invite).not.toMatch(/100rel/);
      else expect(invite).toMatch(/^Require: 100rel\r?$/m);
    }
  }, 30_000);
});
