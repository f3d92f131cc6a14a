// baresip — a second, independent SIP implementation — calls into a channel and is called from
// it. A SIPp caller in the same channel and baresip hear each other's tones both ways (relayed:
// two phones alone), and a digit sent to baresip mid-call reaches it as RFC 4733 events.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { baresipAndPhoneHearEachOther, channelDialsBaresip, startBaresip } from "../helpers/baresip.ts";
import { findCall, startCallsApp, testApplicationYaml, type CallsApp } from "../helpers/callsApp.ts";
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
  test("baresip calls into the channel: it and a phone caller hear each other, and a digit sent to baresip mid-call arrives as an RFC 4733 event", async () => {
    // baresip's own port is the trunk's: its source address (127.0.0.1) is what the trunk check sees.
    const result = await baresipAndPhoneHearEachOther(app, async () => {
      const run = await startBaresip({ toneHz: 440, seconds: 4, dial: `sip:1000@127.0.0.1:${app.sipPort}` });
      // Two phones alone in the channel are relayed: the digit's events take the relayed audio's place.
      const answered = await findCall(app, (c) => c.from.startsWith("sip:baresip@") && c.state === "answered");
      const sent = await app.harness.call("POST", `/api/v1/calls/${answered.id}/dtmf`, { digits: "5" });
      expect(sent.status, sent.text).toBe(204);
      return run.done;
    });
    expect(result.output).toContain("received event: '5' (end=1)");
    const call = await findCall(app, (c) => c.from.startsWith("sip:baresip@") && c.state === "ended");
    expect(call).toMatchObject({ direction: "inbound", channelId: "lobby", endReason: "remote_bye", codec: "PCMU", mediaStats: { dtmfSent: 1 } });
  }, 30_000);

  test("the channel dials baresip: answered, audio both ways, baresip's BYE ends the call", async () => {
    const bs = await startBaresip({ toneHz: 440, seconds: 4, port: baresipPort });
    const ended = await channelDialsBaresip(app, bs, "baresip");
    expect(ended).toMatchObject({ endReason: "remote_bye", from: "sip:trunkline@127.0.0.1" });
  }, 30_000);
});
