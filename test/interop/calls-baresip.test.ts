// baresip — a second, independent SIP implementation — calls into a channel and is called from
// it. A SIPp caller in the same channel and baresip hear each other's tones both ways.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startBaresip } from "../helpers/baresip.ts";
import { callUntil, findCall, phoneCaller, startCallsApp, testApplicationYaml, type CallsApp } from "../helpers/callsApp.ts";
import { toneShareOf } from "../helpers/rtpPeer.ts";
import { freePort } from "../helpers/sipp.ts";


let app: CallsApp;
let baresipPort: number;

beforeAll(async () => {
  baresipPort = await freePort();
  app = await startCallsApp(`
rtp: { portMin: 50000, portMax: 50999, mediaTimeoutSec: 0 }
trunks:
  - { id: baresip, domain: 127.0.0.1, port: ${baresipPort}, username: trunkline, optionsIntervalSec: 0 }
${testApplicationYaml({ "1000": "lobby" })}
`);
});

afterAll(async () => {
  await app?.close();
});

describe("baresip", () => {
  test("baresip calls into the channel: it and a phone caller hear each other", async () => {
    const phone = await phoneCaller(app, { service: "1000", toneHz: 1000, holdMs: 5000 });
    try {
      await Bun.sleep(300);
      // baresip's own port is the trunk's: its source address (127.0.0.1) is what the trunk check sees.
      const bs = await startBaresip({ toneHz: 440, seconds: 4, dial: `sip:1000@127.0.0.1:${app.sipPort}` });
      const result = await bs.done;
      expect(result.output).toContain("Call established");
      expect(toneShareOf(result.received.subarray(result.sampleRate), result.sampleRate, 1000)).toBeGreaterThan(0.5);
      expect((await phone.run).exitCode).toBe(0);
      expect(toneShareOf(phone.peer.received(), 8000, 440)).toBeGreaterThan(0.3);
    } finally {
      phone.peer.close();
    }
    const call = await findCall(app, (c) => c.from.startsWith("sip:baresip@") && c.state === "ended");
    expect(call).toMatchObject({ direction: "inbound", channelId: "lobby", endReason: "remote_bye", codec: "PCMU" });
  }, 30_000);

  test("the channel dials baresip: answered, audio both ways, baresip's BYE ends the call", async () => {
    const bs = await startBaresip({ toneHz: 440, seconds: 4, port: baresipPort });
    const phone = await phoneCaller(app, { service: "1000", toneHz: 1000, holdMs: 5000 });
    try {
      await Bun.sleep(300);
      const res = await app.harness.call("POST", "/api/v1/applications/app1/channels/lobby/calls", { to: "sip:baresip@127.0.0.1", client: { id: "web-1" } });
      expect(res.status, res.text).toBe(201);
      const answered = await callUntil(app, res.json.id, (c) => c.state === "answered");
      expect(answered.trunkId).toBe("baresip");
      const result = await bs.done;
      expect(result.output).toContain("Call established");
      expect(toneShareOf(result.received.subarray(result.sampleRate), result.sampleRate, 1000)).toBeGreaterThan(0.5);
      expect((await phone.run).exitCode).toBe(0);
      expect(toneShareOf(phone.peer.received(), 8000, 440)).toBeGreaterThan(0.3);
      const ended = await callUntil(app, res.json.id, (c) => c.state === "ended");
      expect(ended).toMatchObject({ endReason: "remote_bye", from: "sip:trunkline@127.0.0.1" });
    } finally {
      phone.peer.close();
    }
  }, 30_000);
});
