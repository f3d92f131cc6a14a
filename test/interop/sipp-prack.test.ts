// RFC 3262 with a real peer: SIPp calls in requiring reliable provisional responses
// (Require: 100rel). Trunkline's 180 carries Require: 100rel and an RSeq, SIPp PRACKs it with the
// right RAck and gets 200, then the INVITE's 200; the caller and a phone in the same channel hear
// each other. And a caller that never PRACKs (a second stack) gets the 180 again and again, then 500.
// Timers are scaled down (T1 = 50 ms) so that 64·T1 passes in seconds.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { parseUri, type SipResponse } from "../../src/sip/message.ts";
import { SipStack } from "../../src/sip/stack.ts";
import { findCall, phoneCaller, sippLobbyYaml, startCallsApp, type CallsApp } from "../helpers/callsApp.ts";
import { loopbackIsTrunk } from "../helpers/loopbackTrunks.ts";
import { peerHears } from "../helpers/hearing.ts";
import { startRtpPeer, toneShareOf } from "../helpers/rtpPeer.ts";
import { runSipp } from "../helpers/sipp.ts";
import { until } from "../helpers/until.ts";

const PRACK_CALLER = join(import.meta.dir, "../fixtures/sipp/calls-uac-100rel.xml");

let app: CallsApp;

beforeAll(async () => {
  app = await startCallsApp(
    `
rtp: { portMin: 43000, portMax: 43999, mediaTimeoutSec: 0 }
calls: { sendRinging: true }
${sippLobbyYaml}
`,
    { timers: { T1: 50, T2: 400 } },
  );
});

let silentCaller: SipStack | undefined;
afterAll(async () => {
  await silentCaller?.stop();
  await app?.close();
});

describe("100rel / PRACK (RFC 3262)", () => {
  test("an INVITE with Require: 100rel gets a reliable 180, PRACKed, then the 200; the caller and a phone hear each other", async () => {
    const { peer: phone, run: phoneRun } = await phoneCaller(app, { service: "1000", toneHz: 1000, holdMs: 4000, testcase: "phone" });
    const caller = await startRtpPeer(440, { replyToSender: true });
    try {
      await until(() => phone.packetsReceived > 0, { what: () => "the phone never got the channel's RTP" });
      const run = runSipp({
        scenario: PRACK_CALLER,
        remote: `127.0.0.1:${app.sipPort}`,
        service: "1000",
        keys: { rtpport: caller.port },
        extraArgs: ["-d", "2500"],
        timeoutSec: 15,
      });
      const [heardByCaller, heardByPhone] = await Promise.all([peerHears(caller, 1000), peerHears(phone, 440)]);
      expect(toneShareOf(heardByCaller, 8000, 440)).toBeLessThan(0.1);
      expect(toneShareOf(heardByPhone, 8000, 1000)).toBeLessThan(0.1);
      const r = await run;
      expect(r.exitCode, r.summary).toBe(0);
      expect(r.logs).toMatch(/FIRST_RSEQ \d+/);
      expect((await phoneRun).exitCode).toBe(0);
    } finally {
      caller.close();
      phone.close();
    }
    const call = await findCall(app, (c) => c.direction === "inbound" && c.state === "ended" && String(c.from).includes("15550002222"));
    expect(call).toMatchObject({ channelId: "lobby", endReason: "remote_bye", codec: "PCMU" });
    expect(call.ringingAt).toBeDefined();
  }, 30_000);

  test("a caller that supports 100rel but never PRACKs gets the same 180 again and again, then 500; the call ends as timeout", async () => {
    // RFC timers for the caller: its INVITE transaction outlasts Trunkline's 64·T1 (T1 = 50 ms).
    silentCaller = new SipStack({ isKnownSource: loopbackIsTrunk, listen: [{ transport: "udp", host: "127.0.0.1", port: 0 }] });
    await silentCaller.start();
    const uri = parseUri(`sip:1000@127.0.0.1:${app.sipPort}`)!;
    const invite = silentCaller.createOutOfDialogRequest({
      method: "INVITE", uri, transport: "udp",
      from: { uri: parseUri("sip:+15550003333@127.0.0.1")!, params: new Map() },
      to: { uri, params: new Map() },
      headers: [["Supported", "100rel"]],
      body: "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
      contentType: "application/sdp",
    });
    const tx = silentCaller.sendRequest(invite, { transport: "udp", address: "127.0.0.1", port: app.sipPort });
    const ringing: SipResponse[] = [];
    tx.on("provisional", (res) => {
      if (res.status === 180) ringing.push(res);
    });
    const outcome = await tx.outcome;
    expect(outcome.kind === "final" && outcome.response.status).toBe(500);
    expect(ringing.length).toBeGreaterThan(1);
    expect(new Set(ringing.map((r) => r.getHeader("RSeq"))).size).toBe(1);
    const call = await findCall(app, (c) => c.state === "ended" && String(c.from).includes("15550003333"));
    expect(call).toMatchObject({ endReason: "timeout", sipStatus: 500 });
  }, 30_000);
});
