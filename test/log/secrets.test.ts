// No secret reaches the logs, at debug level, while the app does what carries secrets: a trunk
// registers with digest at a real registrar (Kamailio), webhooks signed with a secret route a call
// and receive its events, the caller sends DTMF by SIP INFO and RFC 4733 and we send DTMF through
// the API, the INVITE carries Proxy-Authorization and an SDES key. The webhooks still get what they
// document (the digits, the INVITE's headers); the log lines show the redaction marker instead.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { events, type AnyEvent } from "../../src/events.ts";
import { REDACTED, setLogSink } from "../../src/log.ts";
import { SIGNATURE_HEADER } from "../../src/routing/webhooks.ts";
import { Dialog } from "../../src/sip/dialog.ts";
import { parseUri } from "../../src/sip/message.ts";
import { SipStack } from "../../src/sip/stack.ts";
import { ADMIN_TOKEN } from "../api/harness.ts";
import { callUntil, findCall, startCallsApp, testApplicationYaml, type CallsApp } from "../helpers/callsApp.ts";
import { startKamailio, type KamailioRun } from "../helpers/kamailio.ts";
import { startRtpPeer, type RtpPeer } from "../helpers/rtpPeer.ts";
import { trunkStatusUntil } from "../helpers/trunkStatus.ts";
import { loopbackIsTrunk } from "../helpers/loopbackTrunks.ts";
import { until } from "../helpers/until.ts";
import { startWebhookServer, type WebhookServer } from "../helpers/webhookServer.ts";

const TRUNK_PASSWORD = "trunk-secret"; // what test/fixtures/kamailio/registrar.cfg accepts
const WEBHOOK_SECRET = "webhook-signing-secret-5f2a91";
const APP_SECRET = "test-shared-secret-0123456789";
const PROXY_AUTH_RESPONSE = "6629fae49393a05397450978507c4ef1";
const SDES_KEY = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

const lines: string[] = [];
let kamailio: KamailioRun;
let webhooks: WebhookServer;
let app: CallsApp;
let caller: SipStack;
let rtp: RtpPeer;

beforeAll(async () => {
  setLogSink((line) => lines.push(line));
  kamailio = await startKamailio({ config: "test/fixtures/kamailio/registrar.cfg" });
  webhooks = startWebhookServer();
  webhooks.handle("/inbound", () => Response.json({ applicationId: "app1", channelId: "lobby", userId: "caller" }));
  app = await startCallsApp(
    `
calls: { sendRinging: false }
trunks:
  - { id: registrar, domain: 127.0.0.1, port: ${kamailio.port}, register: true, username: alice, password: ${TRUNK_PASSWORD}, registerExpires: 60, optionsIntervalSec: 0 }
${testApplicationYaml({})}`,
    { logLevel: "debug" },
  );
  caller = new SipStack({ isKnownSource: loopbackIsTrunk, listen: [{ transport: "udp", host: "127.0.0.1", port: 0 }], allow: ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO"] });
  await caller.start();
  rtp = await startRtpPeer(440, { replyToSender: true });
});

afterAll(async () => {
  await caller?.stop();
  rtp?.close();
  await app?.close();
  await webhooks?.stop();
  await kamailio?.stop();
  setLogSink((line) => process.stdout.write(line + "\n"));
});

function offer(port: number): string {
  return (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
    `m=audio ${port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n` +
    `a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:${SDES_KEY}\r\na=sendrecv\r\n`
  );
}

test("registration, signed webhooks and DTMF both ways leave no secret in the logs", async () => {
  // A digest registration at Kamailio.
  await trunkStatusUntil(app.harness, "registrar", (s) => s.registration.state === "registered", 10_000);
  await kamailio.waitFor(/TRUNKLINE saved bindings=1 aor=sip:alice@127\.0\.0\.1/);

  // Webhooks with a signing secret, set through the API.
  const put = await app.harness.call("PUT", "/api/v1/settings/webhooks", {
    inboundUrl: webhooks.url("/inbound"),
    eventsUrl: webhooks.url("/events"),
    timeoutMs: 2000,
    secret: WEBHOOK_SECRET,
  });
  expect(put.status).toBe(200);

  // An inbound call routed by the webhook, carrying Proxy-Authorization and an SDES key.
  const dest = { transport: "udp" as const, address: "127.0.0.1", port: app.sipPort };
  const uri = parseUri(`sip:5000@127.0.0.1:${app.sipPort}`)!;
  const invite = caller.createOutOfDialogRequest({
    method: "INVITE",
    uri,
    from: { uri: parseUri("sip:+15551110000@127.0.0.1")!, params: new Map() },
    to: { uri, params: new Map() },
    transport: "udp",
    contactUser: "caller",
    headers: [["Proxy-Authorization", `Digest username="alice", realm="x", nonce="n", uri="sip:5000@x", response="${PROXY_AUTH_RESPONSE}"`]],
    body: offer(rtp.port),
    contentType: "application/sdp",
  });
  const tx = caller.sendRequest(invite, dest);
  const outcome = await tx.outcome;
  if (outcome.kind !== "final") throw new Error(outcome.kind);
  expect(outcome.response.status).toBe(200);
  const dialog = Dialog.fromInvite2xx(caller, invite, outcome.response, tx, dest);
  const record = await findCall(app, (c) => c.sipCallId === invite.callId && c.state === "answered");
  const routed = await webhooks.waitFor("/inbound");
  expect(JSON.stringify(routed.json)).toContain(PROXY_AUTH_RESPONSE);
  expect(routed.headers.get(SIGNATURE_HEADER)).toStartWith("v1=");

  // DTMF: SIP INFO and RFC 4733 from the caller, and through the API towards the caller.
  const received: AnyEvent[] = [];
  const stop = events.subscribe((e) => {
    if (e.type === "dtmf.received") received.push(e);
  });
  try {
    const info = await dialog.sendRequest(dialog.createRequest("INFO", { body: "Signal=7\r\nDuration=160\r\n", contentType: "application/dtmf-relay" })).outcome;
    expect(info.kind === "final" && info.response.status).toBe(200);
    await until(() => rtp.packetsReceived > 0);
    await rtp.sendDtmf(3);
    await until(() => received.length === 2, { what: () => received });
  } finally {
    stop();
  }
  expect((await app.harness.call("POST", `/api/v1/calls/${record.id}/dtmf`, { digits: "19#" })).status).toBe(204);
  await until(() => rtp.dtmfEvents.length >= 3);
  await dialog.bye();
  await callUntil(app, record.id, (c) => c.state === "ended");

  // The events webhook documents the digits: it has them.
  await until(() => webhooks.received.filter((r) => r.path === "/events" && (r.json as AnyEvent).type === "dtmf.received").length === 2);
  const digits = webhooks.received.filter((r) => r.path === "/events" && (r.json as AnyEvent).type === "dtmf.received").map((r) => (r.json as { data: { digit: string } }).data.digit);
  expect(digits.sort()).toEqual(["3", "7"]);

  // The logs have neither the secrets nor the digits.
  const output = lines.join("\n");
  for (const secret of [TRUNK_PASSWORD, WEBHOOK_SECRET, APP_SECRET, ADMIN_TOKEN, PROXY_AUTH_RESPONSE, SDES_KEY, "Signal=7"]) {
    expect(output).not.toContain(secret);
  }
  expect(output).not.toMatch(/response="?[0-9a-f]{32}/i);
  const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  const dtmfLines = parsed.filter((l) => l.msg === "dtmf.received");
  expect(dtmfLines).toHaveLength(2);
  for (const line of dtmfLines) expect(line.digit).toBe(REDACTED);
  const digitValues = parsed.flatMap((l) => Object.entries(l).filter(([k]) => /^digits?$/i.test(k)).map(([, v]) => v));
  expect(digitValues.every((v) => v === REDACTED)).toBe(true);
  expect(parsed.some((l) => l.msg === "request" && l.path === `/api/v1/calls/${record.id}/dtmf`)).toBe(true);
}, 30_000);
