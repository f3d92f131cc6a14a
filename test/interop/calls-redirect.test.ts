// Outbound redirects against real SIPp UASes (RFC 3261 §8.1.3.4): a 302 sends the call to the
// second UAS, which answers and hears the channel; a 302 to a target the trunk's policy forbids
// fails the call; two UASes redirecting to each other are a loop; the record keeps the chain.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { callUntil, startCallsApp, testApplicationYaml, type CallsApp } from "../helpers/callsApp.ts";
import { startRtpPeer } from "../helpers/rtpPeer.ts";
import { freePort, startSipp } from "../helpers/sipp.ts";
import { until } from "../helpers/until.ts";

const fixture = (name: string) => join(import.meta.dir, "../fixtures/sipp", name);

let app: CallsApp;
/** The trunk's port: the first UAS of every test listens there. */
let trunkPort: number;

beforeAll(async () => {
  trunkPort = await freePort();
  app = await startCallsApp(`
rtp: { portMin: 54000, portMax: 54999, mediaTimeoutSec: 0 }
calls: { ringTimeoutSec: 10, maxRedirects: 3 }
trunks:
  - { id: moving, domain: 127.0.0.1, port: ${trunkPort}, username: mover, optionsIntervalSec: 0 }
${testApplicationYaml({ "1000": "room" })}
`);
});

afterAll(async () => {
  await app?.close();
});

async function dial(to: string): Promise<string> {
  const res = await app.harness.call("POST", "/api/v1/applications/app1/channels/room/calls", { to, client: { id: "c1" } });
  expect(res.status, res.text).toBe(201);
  return res.json.id;
}

const redirector = (contacts: string, port: number) =>
  startSipp({ scenario: fixture("calls-uas-redirect.xml"), localPort: port, keys: { contacts }, timeoutSec: 15 });

describe("outbound redirects", () => {
  test("a 302 sends the call to the Contact on the same trunk: the second UAS answers on the same Call-ID, hears the channel, the record keeps the chain", async () => {
    const secondPort = await freePort();
    const callee = await startRtpPeer(1000, { replyToSender: true });
    try {
      // q-order (RFC 3261 §20.10): the higher-q Contact is looked at first; it is off the trunk, so it is skipped.
      const first = await redirector(`<sip:elsewhere@127.0.0.2:5060>;q=0.9, <sip:callee@127.0.0.1:${secondPort}>;q=0.5`, trunkPort);
      const second = await startSipp({ scenario: fixture("calls-uas-delayed-offer.xml"), localPort: secondPort, keys: { rtpport: callee.port }, extraArgs: ["-d", "3000"], timeoutSec: 15 });
      await Promise.all([first.ready(), second.ready()]);
      const id = await dial("+15551230000");
      const answered = await callUntil(app, id, (x) => x.state === "answered");
      await until(() => callee.packetsReceived > 10, { what: () => ({ packetsReceived: callee.packetsReceived }) });
      const [a, b] = await Promise.all([first.done, second.done]);
      expect(a.exitCode, a.summary).toBe(0);
      expect(b.exitCode, b.summary).toBe(0);
      const firstCallId = /RURI \S+ CALLID\s+(\S+)/.exec(a.logs)?.[1];
      expect(firstCallId).toBeDefined();
      expect(answered.sipCallId).toBe(firstCallId!);
      expect(b.messages).toContain(`INVITE sip:callee@127.0.0.1:${secondPort} SIP/2.0`);
      const ended = await callUntil(app, id, (x) => x.state === "ended");
      expect(ended).toMatchObject({ endReason: "remote_bye", sipStatus: 200, trunkId: "moving" });
      expect(ended.redirects).toEqual([
        { from: `sip:+15551230000@127.0.0.1:${trunkPort}`, status: 302, to: "sip:elsewhere@127.0.0.2:5060", outcome: "forbidden" },
        { from: `sip:+15551230000@127.0.0.1:${trunkPort}`, status: 302, to: `sip:callee@127.0.0.1:${secondPort}`, outcome: "followed" },
      ]);
    } finally {
      callee.close();
    }
  }, 30_000);

  test("a 302 only to a target off the trunk fails the call as redirect_forbidden", async () => {
    const uas = await redirector("<sip:elsewhere@127.0.0.2:5060>", trunkPort);
    await uas.ready();
    const id = await dial("+15551230001");
    const r = await uas.done;
    expect(r.exitCode, r.summary).toBe(0);
    const ended = await callUntil(app, id, (x) => x.state === "ended");
    expect(ended).toMatchObject({ endReason: "redirect_forbidden", sipStatus: 302 });
    expect(ended.redirects).toEqual([{ from: `sip:+15551230001@127.0.0.1:${trunkPort}`, status: 302, to: "sip:elsewhere@127.0.0.2:5060", outcome: "forbidden" }]);
  }, 30_000);

  test("two UASes redirecting to each other: the loop stops at the target already tried", async () => {
    const secondPort = await freePort();
    const target = `sip:+15551230002@127.0.0.1:${trunkPort}`;
    const first = await redirector(`<sip:back@127.0.0.1:${secondPort}>`, trunkPort);
    const second = await redirector(`<${target}>`, secondPort);
    await Promise.all([first.ready(), second.ready()]);
    const id = await dial("+15551230002");
    const [a, b] = await Promise.all([first.done, second.done]);
    expect(a.exitCode, a.summary).toBe(0);
    expect(b.exitCode, b.summary).toBe(0);
    const ended = await callUntil(app, id, (x) => x.state === "ended");
    expect(ended).toMatchObject({ endReason: "redirect_loop", sipStatus: 302 });
    expect(ended.redirects).toEqual([
      { from: target, status: 302, to: `sip:back@127.0.0.1:${secondPort}`, outcome: "followed" },
      { from: `sip:back@127.0.0.1:${secondPort}`, status: 302, to: target, outcome: "loop" },
    ]);
  }, 30_000);
});
