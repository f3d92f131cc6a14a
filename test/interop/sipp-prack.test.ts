// RFC 3262 with a real peer: SIPp calls in requiring reliable provisional responses
// (Require: 100rel). Trunkline's 180 carries Require: 100rel and an RSeq, SIPp PRACKs it with the
// right RAck and gets 200, then the INVITE's 200; the caller and a phone in the same channel hear
// each other.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { findCall, phoneCaller, startCallsApp, testApplicationYaml, type CallsApp } from "../helpers/callsApp.ts";
import { peerHears } from "../helpers/hearing.ts";
import { startRtpPeer, toneShareOf } from "../helpers/rtpPeer.ts";
import { runSipp } from "../helpers/sipp.ts";
import { until } from "../helpers/until.ts";

const PRACK_CALLER = join(import.meta.dir, "../fixtures/sipp/calls-uac-100rel.xml");

let app: CallsApp;

beforeAll(async () => {
  app = await startCallsApp(`
rtp: { portMin: 43000, portMax: 43999, mediaTimeoutSec: 0 }
calls: { sendRinging: true }
trunks:
  - { id: sipp, domain: 127.0.0.1, optionsIntervalSec: 0 }
${testApplicationYaml({ "1000": "lobby" })}
`);
});

afterAll(async () => {
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
});
