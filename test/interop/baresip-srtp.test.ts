// SRTP with SDES keys (RFC 4568 / RFC 3711) against baresip (Debian's baresip-core 1.0 with its srtp
// module, libre's SRTP) over SIP/TLS, with a SIPp phone caller in the same channel.
// - In: baresip with mediaenc=srtp-mand offers RTP/SAVP with a=crypto to an "optional" trunk; we
//   answer with our own key. The phone (plain RTP over UDP signalling) shares the trunk's address:
//   its call stays plain, since SDES keys never travel over UDP unless the trunk allows it.
// - Out: the channel dials baresip (srtp-mand) through a "required" TLS trunk: our RTP/SAVP offer;
//   and baresip with mediaenc=srtp through an "optional" one: our RTP/AVP offer with a=crypto.
// - Refused: a "required" trunk answers a plain offer over TLS (baresip without SRTP) and any
//   INVITE over UDP (SIPp) with 488 and a Warning saying why.
// Both baresip and we drop every packet that fails SRTP authentication, so each side hearing the
// other's tone (Goertzel) shows both directions were SRTP, keyed as negotiated.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { baresipAndPhoneHearEachOther, channelDialsBaresip, startBaresip } from "../helpers/baresip.ts";
import { findCall, startCallsApp, testApplicationYaml, type CallsApp } from "../helpers/callsApp.ts";
import { runSipp } from "../helpers/sipp.ts";

const CERT = join(import.meta.dir, "../fixtures/tls/cert.pem");
const KEY = join(import.meta.dir, "../fixtures/tls/key.pem");

let app: CallsApp;

beforeAll(async () => {
  app = await startCallsApp(
    `
rtp: { portMin: 53500, portMax: 53599, mediaTimeoutSec: 0 }
${testApplicationYaml({ "1000": "lobby" })}
`,
    { tls: true },
  );
  // Made through the API, so the refusal test can switch it to "required".
  const trunk = await app.harness.call("POST", "/api/v1/trunks", {
    id: "srtp-in", domain: "127.0.0.1", transport: "tls", canTerminate: false, username: "trunkline", optionsIntervalSec: 0, mediaEncryption: "optional",
  });
  expect(trunk.status, trunk.text).toBe(201);
});

afterAll(async () => {
  await app?.close();
});

/**
 * Only authenticated packets count as received. libre sends an RTCP APP "PINGPONG" in the clear
 * before its SRTP starts; those (one or two) are the authentication failures a call may show.
 */
function expectSrtpStats(stats: Record<string, number>): void {
  expect(stats).toMatchObject({ srtp: 1, srtpReplays: 0 });
  expect(stats.packetsReceived).toBeGreaterThan(50);
  expect(stats.srtpAuthFailures).toBeLessThanOrEqual(2);
}

test("baresip (srtp-mand) calls in over TLS: SRTP both ways, it and a plain phone caller hear each other", async () => {
  const target = `sip:1000@127.0.0.1:${app.sipTlsPort};transport=tls`;
  const result = await baresipAndPhoneHearEachOther(app, async () => (await startBaresip({ toneHz: 440, seconds: 4, dial: target, caFile: CERT, mediaenc: "srtp-mand" })).done);
  expect(result.output).toContain("srtp: audio: SRTP is Enabled (cryptosuite=AES_CM_128_HMAC_SHA1_80)");
  const call = await findCall(app, (c) => c.from.startsWith("sip:baresip@") && c.state === "ended");
  expect(call).toMatchObject({ direction: "inbound", trunkId: "srtp-in", endReason: "remote_bye", codec: "PCMU" });
  expectSrtpStats(call.mediaStats);
  const phone = await findCall(app, (c) => c.from.includes("+1555") && c.state === "ended");
  expect(phone.mediaStats.srtp).toBeUndefined();
}, 30_000);

test("the channel dials baresip (srtp-mand) through a required-SRTP TLS trunk: SRTP both ways, tones heard", async () => {
  const bs = await startBaresip({ toneHz: 440, seconds: 4, certificate: { certFile: CERT, keyFile: KEY }, mediaenc: "srtp-mand" });
  const trunk = await app.harness.call("POST", "/api/v1/trunks", {
    id: "srtp-out", domain: "127.0.0.1", port: bs.port + 1, transport: "tls", tlsVerify: true, username: "trunkline", optionsIntervalSec: 0, mediaEncryption: "required",
  });
  expect(trunk.status, trunk.text).toBe(201);
  // The channel dials through the first available trunk: this one goes when the test is done.
  const ended = await channelDialsBaresip(app, bs, "srtp-out").finally(() => app.harness.call("DELETE", "/api/v1/trunks/srtp-out"));
  expect(ended).toMatchObject({ endReason: "remote_bye", codec: "PCMU" });
  expectSrtpStats(ended.mediaStats);
}, 30_000);

test("an optional-SRTP trunk's best-effort offer (RTP/AVP with a=crypto) is taken up by baresip's mediaenc=srtp", async () => {
  const bs = await startBaresip({ toneHz: 440, seconds: 4, certificate: { certFile: CERT, keyFile: KEY }, mediaenc: "srtp" });
  const trunk = await app.harness.call("POST", "/api/v1/trunks", {
    id: "srtp-best-effort", domain: "127.0.0.1", port: bs.port + 1, transport: "tls", tlsVerify: true, username: "trunkline", optionsIntervalSec: 0, mediaEncryption: "optional",
  });
  expect(trunk.status, trunk.text).toBe(201);
  const ended = await channelDialsBaresip(app, bs, "srtp-best-effort").finally(() => app.harness.call("DELETE", "/api/v1/trunks/srtp-best-effort"));
  expectSrtpStats(ended.mediaStats);
}, 30_000);

test("a required-SRTP trunk refuses a plain offer over TLS (baresip) and any INVITE over UDP (SIPp) with 488", async () => {
  const patched = await app.harness.call("PATCH", "/api/v1/trunks/srtp-in", { mediaEncryption: "required" });
  expect(patched.status, patched.text).toBe(200);

  const target = `sip:1000@127.0.0.1:${app.sipTlsPort};transport=tls`;
  const plain = await (await startBaresip({ toneHz: 440, seconds: 3, dial: target, caFile: CERT })).done;
  expect(plain.output).toContain("session closed: 488 Not Acceptable Here");
  expect(plain.output).not.toContain("Call established");
  const refused = await findCall(app, (c) => c.from.startsWith("sip:baresip@") && c.to.includes("transport=tls") && c.sipStatus === 488);
  expect(refused).toMatchObject({ state: "ended", endReason: "rejected", trunkId: "srtp-in" });

  const udp = await runSipp({
    scenario: join(import.meta.dir, "../fixtures/sipp/calls-uac-rejected.xml"),
    remote: `127.0.0.1:${app.sipPort}`,
    service: "1000",
    keys: { rtpport: 4000 },
  });
  expect(udp.exitCode, udp.summary).toBe(0);
  expect(udp.logs).toContain("FINAL 488 Not Acceptable Here");
  expect(udp.messages).toMatch(/Warning: 399 \S+ "SRTP is required and its SDES keys need SIP over TLS; this call's signalling is UDP"/);
}, 30_000);
