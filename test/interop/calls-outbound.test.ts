// Outbound calls from a channel to a real SIP peer (SIPp as the trunk): delayed offer answered in
// the ACK, caller ID from the channel's templates in the From, RTP both ways with a phone caller
// in the same channel, a 407 challenge, the outbound webhook's body and choice, failures keeping
// their SIP status, and hanging up through the API; the anonymous From when nothing names the
// caller, and a trunk whose responses mangle our From URI.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { callUntil, phoneCaller, startCallsApp, testApplicationYaml, type CallsApp } from "../helpers/callsApp.ts";
import { carriesTone, peerHears } from "../helpers/hearing.ts";
import { startRtpPeer, type RtpPeer } from "../helpers/rtpPeer.ts";
import { freePort, startSipp } from "../helpers/sipp.ts";
import { until } from "../helpers/until.ts";
import { startWebhookServer, type WebhookServer } from "../helpers/webhookServer.ts";

const fixture = (name: string) => join(import.meta.dir, "../fixtures/sipp", name);

/** RFC 2617 §3.2.2 without qop, computed independently of src/sip/digest.ts. */
function digestValid(header: string, method: string, username: string, password: string): boolean {
  const field = (name: string) => new RegExp(`${name}="?([^",]*)"?`).exec(header)?.[1] ?? "";
  const md5 = (s: string) => new Bun.CryptoHasher("md5").update(s).digest("hex");
  if (field("username") !== username) return false;
  const ha1 = md5(`${username}:${field("realm")}:${password}`);
  const ha2 = md5(`${method}:${field("uri")}`);
  return field("response") === md5(`${ha1}:${field("nonce")}:${ha2}`);
}

/** Long enough that the early-media trunk's 200 (EARLY_MEDIA_MS after its 183) is never raced by it. */
const RING_TIMEOUT_SEC = 3;
/** How long the early-media trunk rings (with early media) before its 200. */
const EARLY_MEDIA_MS = 1500;

let app: CallsApp;
let hooks: WebhookServer;
let uasPort: number;
let authPort: number;
let busyPort: number;
let ringPort: number;
let earlyPort: number;
let tcpPort: number;
let anonymousPort: number;
let oddFromPort: number;

beforeAll(async () => {
  hooks = startWebhookServer();
  const ports: number[] = [];
  while (ports.length < 8) {
    const port = await freePort();
    if (!ports.includes(port)) ports.push(port);
  }
  [uasPort, authPort, busyPort, ringPort, earlyPort, tcpPort, anonymousPort, oddFromPort] = ports as [number, number, number, number, number, number, number, number];
  app = await startCallsApp(`
rtp: { portMin: 48000, portMax: 48999, mediaTimeoutSec: 0 }
calls: { ringTimeoutSec: ${RING_TIMEOUT_SEC} }
trunks:
  - { id: t1-uas, domain: 127.0.0.1, port: ${uasPort}, username: trunk-one, optionsIntervalSec: 0 }
  - { id: t2-auth, domain: 127.0.0.1, port: ${authPort}, username: trunkuser, password: trunkpass, earlyOffer: true, optionsIntervalSec: 0 }
  - { id: t3-busy, domain: 127.0.0.1, port: ${busyPort}, username: busy, optionsIntervalSec: 0 }
  - { id: t4-ring, domain: 127.0.0.1, port: ${ringPort}, username: ring, optionsIntervalSec: 0 }
  - { id: t5-early, domain: 127.0.0.1, port: ${earlyPort}, username: early, earlyOffer: true, optionsIntervalSec: 0 }
  - { id: t6-tcp, domain: 127.0.0.1, port: ${tcpPort}, transport: tcp, username: tcp, earlyOffer: true, optionsIntervalSec: 0 }
  - { id: t7-nouser, domain: 127.0.0.1, port: ${anonymousPort}, optionsIntervalSec: 0 }
  - { id: t8-oddfrom, domain: 127.0.0.1, port: ${oddFromPort}, username: odd, optionsIntervalSec: 0 }
${testApplicationYaml({ "1000": "room" }, '    channels:\n      room: { callerId: { displayName: "{userAlias}", username: "{userId}-{id}" } }')}
`);
});

afterAll(async () => {
  await app?.close();
  await hooks?.stop();
});

async function setWebhooks(settings: Record<string, unknown>): Promise<void> {
  const res = await app.harness.call("PUT", "/api/v1/settings/webhooks", { timeoutMs: 10_000, ...settings });
  expect(res.status, res.text).toBe(200);
}

async function dial(to: string, client: Record<string, unknown> = { id: "c1", userId: "u1", userAlias: "Alice" }): Promise<string> {
  const res = await app.harness.call("POST", "/api/v1/applications/app1/channels/room/calls", { to, client });
  expect(res.status, res.text).toBe(201);
  expect(res.json).toMatchObject({ direction: "outbound", state: "trying", channelId: "room", clientId: client.id });
  return res.json.id;
}

/** Waits until something accepts TCP connections on the port (SIPp takes a moment to start). */
async function listening(port: number): Promise<void> {
  const accepts = () => Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } }).then((s) => { s.end(); return true; }, () => false);
  await until(accepts, { pollMs: 20, what: () => `nothing listens on TCP port ${port}` });
}

/** The phone caller is in the channel once the channel's audio reaches it. */
const inChannel = (peer: RtpPeer) => until(() => peer.packetsReceived > 0, { what: () => "the phone caller never got the channel's RTP" });

describe("outbound calls", () => {
  test("delayed offer: the ACK carries our answer, the From carries the caller ID, a phone caller and the callee hear each other", async () => {
    await setWebhooks({});
    const callee = await startRtpPeer(1000, { replyToSender: true });
    // The phone caller (3.5 s) outlasts the callee (2.5 s, dialled once the caller is in): both are
    // in the channel together for most of the callee's call, far more than the half second judged of each.
    const { peer: caller, run: inbound } = await phoneCaller(app, { service: "1000", toneHz: 440, holdMs: 3500 });
    try {
      await inChannel(caller);
      const uas = await startSipp({ scenario: fixture("calls-uas-delayed-offer.xml"), localPort: uasPort, keys: { rtpport: callee.port }, extraArgs: ["-d", "2500"], timeoutSec: 15 });
      await uas.ready();
      const id = await dial("+15551234567");
      await Promise.all([peerHears(callee, 440), peerHears(caller, 1000)]);
      const [r, c] = await Promise.all([uas.done, inbound]);
      expect(r.exitCode, r.summary).toBe(0);
      expect(c.exitCode, c.summary).toBe(0);
      expect(r.logs).toMatch(/FROM\s+"Alice" <sip:u1-c1@127\.0\.0\.1>;tag=/);
      expect(r.logs).toMatch(/INVITE_SDP\s*$/m);
      expect(r.logs).toMatch(/ACK_SDP_PORT \d+/);
      const call = await callUntil(app, id, (x) => x.state === "ended");
      expect(call).toMatchObject({
        trunkId: "t1-uas",
        from: "sip:u1-c1@127.0.0.1",
        to: `sip:+15551234567@127.0.0.1:${uasPort}`,
        endReason: "remote_bye",
        sipStatus: 200,
        codec: "PCMU",
        clientId: "c1",
        userId: "u1",
      });
      expect(call.ringingAt).toBeDefined();
      expect(call.answeredAt).toBeDefined();
      expect(call.mediaStats.packetsReceived).toBeGreaterThan(50);
    } finally {
      callee.close();
      caller.close();
    }
  }, 20_000);

  test("the outbound webhook picks the trunk; a 407 is answered with credentials on the same Call-ID; DELETE hangs up", async () => {
    hooks.handle("/outbound", () => Response.json({ sipTrunkId: "t2-auth" }));
    await setWebhooks({ outboundUrl: hooks.url("/outbound") });
    const callee = await startRtpPeer(1000, { replyToSender: true });
    try {
      const uas = await startSipp({ scenario: fixture("calls-uas-auth.xml"), localPort: authPort, keys: { rtpport: callee.port }, timeoutSec: 15 });
      await uas.ready();
      const id = await dial("sip:bob@example.net", { id: "c2", userId: "u2" });
      const answered = await callUntil(app, id, (x) => x.state === "answered");
      expect(answered.trunkId).toBe("t2-auth");
      await until(() => callee.packetsReceived > 5, { what: () => ({ packetsReceived: callee.packetsReceived }) });
      const hangup = await app.harness.call("DELETE", `/api/v1/calls/${id}`);
      expect(hangup.status).toBe(204);
      const r = await uas.done;
      expect(r.exitCode, r.summary).toBe(0);
      const first = /FIRST (\S+) (\d+) INVITE/.exec(r.logs);
      const second = /SECOND (\S+) (\d+) INVITE/.exec(r.logs);
      expect(second?.[1]).toBe(first?.[1]!);
      expect(Number(second?.[2])).toBe(Number(first?.[2]) + 1);
      const credentials = /CREDENTIALS (.*)/.exec(r.logs)?.[1] ?? "";
      expect(digestValid(credentials, "INVITE", "trunkuser", "trunkpass")).toBe(true);
      const ended = await callUntil(app, id, (x) => x.state === "ended");
      expect(ended).toMatchObject({ endReason: "local_hangup", to: "sip:bob@example.net" });
      expect(callee.packetsReceived).toBeGreaterThan(5);
    } finally {
      callee.close();
    }
    const req = await hooks.waitFor("/outbound");
    expect(req.json).toEqual({
      applicationId: "app1",
      channelId: "room",
      clientId: "c2",
      userId: "u2",
      sipTrunks: [
        { id: "t1-uas", authId: null, username: "trunk-one", domain: "127.0.0.1" },
        { id: "t2-auth", authId: null, username: "trunkuser", domain: "127.0.0.1" },
        { id: "t3-busy", authId: null, username: "busy", domain: "127.0.0.1" },
        { id: "t4-ring", authId: null, username: "ring", domain: "127.0.0.1" },
        { id: "t5-early", authId: null, username: "early", domain: "127.0.0.1" },
        { id: "t6-tcp", authId: null, username: "tcp", domain: "127.0.0.1" },
        { id: "t7-nouser", authId: null, username: "", domain: "127.0.0.1" },
        { id: "t8-oddfrom", authId: null, username: "odd", domain: "127.0.0.1" },
      ],
    });
  }, 20_000);

  test("a failure keeps its SIP status; an unknown trunk from the webhook fails the dial", async () => {
    hooks.handle("/busy", () => Response.json({ sipTrunkId: "t3-busy" }));
    await setWebhooks({ outboundUrl: hooks.url("/busy") });
    const uas = await startSipp({ scenario: fixture("calls-uas-busy.xml"), localPort: busyPort, timeoutSec: 10 });
    await uas.ready();
    const id = await dial("+15550000000");
    expect((await uas.done).exitCode).toBe(0);
    expect(await callUntil(app, id, (x) => x.state === "ended")).toMatchObject({ endReason: "rejected", sipStatus: 486, trunkId: "t3-busy" });

    hooks.handle("/nonsense", () => Response.json({ sipTrunkId: "nope" }));
    await setWebhooks({ outboundUrl: hooks.url("/nonsense") });
    const failed = await dial("+15550000001");
    expect(await callUntil(app, failed, (x) => x.state === "ended")).toMatchObject({ endReason: "unknown_trunk" });
  }, 20_000);

  test("the ring timeout cancels an unanswered call: 180, CANCEL, 487, recorded as no_answer", async () => {
    hooks.handle("/ring", () => Response.json({ sipTrunkId: "t4-ring" }));
    await setWebhooks({ outboundUrl: hooks.url("/ring") });
    const uas = await startSipp({ scenario: fixture("calls-uas-ringing.xml"), localPort: ringPort, timeoutSec: 10 });
    await uas.ready();
    const id = await dial("+15550000002");
    await callUntil(app, id, (x) => x.state === "ringing");
    const r = await uas.done;
    expect(r.exitCode, r.summary).toBe(0);
    const ended = await callUntil(app, id, (x) => x.state === "ended");
    expect(ended).toMatchObject({ endReason: "no_answer", sipStatus: 487 });
    // Not before the ring timeout (counted from the INVITE, after the record was created).
    expect(Date.parse(ended.endedAt) - Date.parse(ended.createdAt)).toBeGreaterThanOrEqual(RING_TIMEOUT_SEC * 1000 - 1); // 1 ms: clock rounding
  }, 20_000);

  test("early media: a 183 with an answer to our early offer plays into the channel before the 200", async () => {
    hooks.handle("/early", () => Response.json({ sipTrunkId: "t5-early" }));
    await setWebhooks({ outboundUrl: hooks.url("/early") });
    const callee = await startRtpPeer(1000, { replyToSender: true });
    const { peer: caller, run: inbound } = await phoneCaller(app, { service: "1000", toneHz: 440, holdMs: 4000 });
    try {
      await inChannel(caller);
      const uas = await startSipp({ scenario: fixture("calls-uas-early-media.xml"), localPort: earlyPort, keys: { rtpport: callee.port }, extraArgs: ["-d", String(EARLY_MEDIA_MS)], timeoutSec: 15 });
      await uas.ready();
      const id = await dial("+15550000003");
      // The caller hears the callee's tone while the call is still ringing: the state is read after
      // the tone was heard, so the tone came before the 200.
      let state = "";
      await until(
        async () => {
          const all = caller.received();
          const heard = carriesTone(all.subarray(Math.max(0, all.length - 2400)), 8000, 1000);
          state = (await app.harness.call("GET", `/api/v1/calls/${id}`)).json.state;
          if (state === "answered" || state === "ended") throw new Error(`the call was ${state} before the caller heard early media`);
          return heard && state === "ringing";
        },
        { pollMs: 20, what: () => ({ state, packetsReceived: caller.packetsReceived }) },
      );
      await callUntil(app, id, (x) => x.state === "answered");
      expect((await app.harness.call("DELETE", `/api/v1/calls/${id}`)).status).toBe(204);
      const r = await uas.done;
      expect(r.exitCode, r.summary).toBe(0);
      expect(await callUntil(app, id, (x) => x.state === "ended")).toMatchObject({ endReason: "local_hangup", codec: "PCMU" });
      await inbound;
    } finally {
      callee.close();
      caller.close();
    }
  }, 20_000);

  test("a TCP trunk: INVITE with our offer, 183/200 with the answer, ACK and our BYE over the connection", async () => {
    hooks.handle("/tcp", () => Response.json({ sipTrunkId: "t6-tcp" }));
    await setWebhooks({ outboundUrl: hooks.url("/tcp") });
    const callee = await startRtpPeer(1000, { replyToSender: true });
    try {
      const uas = await startSipp({ scenario: fixture("calls-uas-early-media.xml"), localPort: tcpPort, transport: "tcp", keys: { rtpport: callee.port }, extraArgs: ["-d", "200"], timeoutSec: 10 });
      await listening(tcpPort);
      const id = await dial("+15550000004");
      await callUntil(app, id, (x) => x.state === "answered");
      await until(() => callee.packetsReceived > 10, { what: () => ({ packetsReceived: callee.packetsReceived }) });
      expect((await app.harness.call("DELETE", `/api/v1/calls/${id}`)).status).toBe(204);
      const r = await uas.done;
      expect(r.exitCode, r.summary).toBe(0);
      expect(await callUntil(app, id, (x) => x.state === "ended")).toMatchObject({ endReason: "local_hangup", trunkId: "t6-tcp", sipStatus: 200 });
      expect(callee.packetsReceived).toBeGreaterThan(10);
    } finally {
      callee.close();
    }
  }, 20_000);

  test("no caller ID and a trunk without username: the From is anonymous (RFC 3261 §8.1.1.3) and the call is answered", async () => {
    hooks.handle("/nouser", () => Response.json({ sipTrunkId: "t7-nouser" }));
    await setWebhooks({ outboundUrl: hooks.url("/nouser") });
    const callee = await startRtpPeer(1000, { replyToSender: true });
    try {
      const uas = await startSipp({ scenario: fixture("calls-uas-delayed-offer.xml"), localPort: anonymousPort, keys: { rtpport: callee.port }, extraArgs: ["-d", "500"], timeoutSec: 15 });
      await uas.ready();
      // Channel "plain" has no caller-ID templates.
      const res = await app.harness.call("POST", "/api/v1/applications/app1/channels/plain/calls", { to: "+15557654321", client: { id: "c7" } });
      expect(res.status, res.text).toBe(201);
      await callUntil(app, res.json.id, (x) => x.state === "answered");
      const r = await uas.done;
      expect(r.exitCode, r.summary).toBe(0);
      expect(r.logs).toMatch(/FROM\s+"Anonymous" <sip:anonymous@anonymous\.invalid>;tag=/);
      expect(await callUntil(app, res.json.id, (x) => x.state === "ended")).toMatchObject({
        trunkId: "t7-nouser",
        from: "sip:anonymous@anonymous.invalid",
        endReason: "remote_bye",
        sipStatus: 200,
      });
    } finally {
      callee.close();
    }
  }, 20_000);

  test("a trunk whose responses carry a From URI we cannot read (<sip:@host>, tag kept): its 200 still answers the call", async () => {
    hooks.handle("/oddfrom", () => Response.json({ sipTrunkId: "t8-oddfrom" }));
    await setWebhooks({ outboundUrl: hooks.url("/oddfrom") });
    const callee = await startRtpPeer(1000, { replyToSender: true });
    try {
      const uas = await startSipp({ scenario: fixture("calls-uas-odd-from.xml"), localPort: oddFromPort, keys: { rtpport: callee.port }, extraArgs: ["-d", "500"], timeoutSec: 15 });
      await uas.ready();
      const id = await dial("+15550001111");
      await callUntil(app, id, (x) => x.state === "answered");
      const r = await uas.done;
      expect(r.exitCode, r.summary).toBe(0);
      expect(r.messages).toContain("From: <sip:@127.0.0.1>;tag=");
      expect(await callUntil(app, id, (x) => x.state === "ended")).toMatchObject({ trunkId: "t8-oddfrom", endReason: "remote_bye", sipStatus: 200 });
    } finally {
      callee.close();
    }
  }, 20_000);

  test("bad input names the field", async () => {
    const res = await app.harness.call("POST", "/api/v1/applications/app1/channels/room/calls", { to: "not a number", client: { id: "c" } });
    expect(res.status).toBe(400);
    expect(res.json.error.field).toBe("to");
    const missing = await app.harness.call("POST", "/api/v1/applications/app1/channels/room/calls", { to: "+1555" });
    expect(missing.status).toBe(400);
    expect(missing.json.error.field).toBe("client");
    const badCursor = await app.harness.call("GET", "/api/v1/calls?cursor=nonsense");
    expect(badCursor.status).toBe(400);
    expect(badCursor.json.error.field).toBe("cursor");
    const badState = await app.harness.call("GET", "/api/v1/calls?state=sleeping");
    expect(badState.status).toBe(400);
    const unknownCall = await app.harness.call("GET", "/api/v1/calls/call_nope");
    expect(unknownCall.status).toBe(404);
    const unknownApp = await app.harness.call("POST", "/api/v1/applications/nope/channels/room/calls", { to: "+1555", client: { id: "c" } });
    expect(unknownApp.status).toBe(404);
  }, 20_000);
});
