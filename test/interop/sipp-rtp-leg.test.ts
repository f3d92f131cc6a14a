// Real peer: SIPp calls a PhoneLeg answered through the SIP stack, then plays SIPp's own RFC 4733
// capture (dtmf_2833_1.pcap) with play_pcap_audio; the leg learns SIPp's media port and reports the
// digit — with the default source learning and with rtp.strictSource.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { Dialog } from "../../src/sip/dialog.ts";
import { SipStack } from "../../src/sip/stack.ts";
import { createPhoneLeg, type PhoneLeg } from "../../src/media/leg.ts";
import { Mixer } from "../../src/media/mixer.ts";
import { RtpPortAllocator } from "../../src/media/ports.ts";
import type { DtmfEvent } from "../../src/media/dtmf.ts";
import { freeMediaPort, runSipp } from "../helpers/sipp.ts";
import { loopbackIsTrunk } from "../helpers/loopbackTrunks.ts";

const UAC_SCENARIO = join(import.meta.dir, "..", "fixtures", "sipp", "media-uac-dtmf-pcap.xml");

let stack: SipStack;
const mixer = new Mixer();
const allocator = new RtpPortAllocator({ min: 46000, max: 46999 });
const legs: PhoneLeg[] = [];
const digits: DtmfEvent[] = [];
let strictSource = false;

beforeAll(async () => {
  stack = new SipStack({ isKnownSource: loopbackIsTrunk, listen: [{ transport: "udp", host: "127.0.0.1", port: 0 }] });
  stack.onRequest(async (req, tx, ctx) => {
    if (req.method !== "INVITE") {
      tx.respond(405);
      return;
    }
    const leg = await createPhoneLeg({ allocator, bindAddress: "127.0.0.1", advertisedAddress: "127.0.0.1", mixer, participantId: `sipp-${legs.length}`, codecPreferences: ["PCMU"], strictSource });
    if ("error" in leg) {
      tx.respond(503);
      return;
    }
    legs.push(leg);
    leg.onDtmf = (e) => digits.push(e);
    const answer = leg.answer(req.body);
    if (!answer.ok) {
      tx.respond(answer.status);
      return;
    }
    Dialog.answer(stack, req, tx, ctx, { contact: stack.contactFor("leg", "udp"), body: answer.sdp, contentType: "application/sdp" });
  });
  await stack.start();
});

afterAll(async () => {
  for (const leg of legs) leg.close();
  mixer.close();
  await stack.stop();
});

test.each([false, true])("SIPp play_pcap_audio of dtmf_2833_1.pcap into a PhoneLeg yields digit 1, leg latched to SIPp's media port (strictSource: %p)", async (strict) => {
  strictSource = strict;
  digits.length = 0;
  const port = stack.boundEndpoints[0]!.port;
  const mediaPort = await freeMediaPort();
  const result = await runSipp({
    scenario: UAC_SCENARIO, remote: `127.0.0.1:${port}`, transport: "udp", service: "leg", timeoutSec: 8,
    extraArgs: ["-mp", String(mediaPort), "-mi", "127.0.0.1"],
  });
  expect(result.exitCode, result.summary).toBe(0);
  expect(digits.map((d) => d.digit)).toEqual(["1"]);
  const stats = legs.at(-1)!.stats();
  expect(stats.rtp.latched).toBe(true);
  expect(stats.rtp.remote).toBe(`127.0.0.1:${mediaPort}`);
  expect(stats.rtp.packetsSent).toBeGreaterThan(20);
  expect(stats.rtp.strangerPackets).toBe(0);
}, 20_000);
