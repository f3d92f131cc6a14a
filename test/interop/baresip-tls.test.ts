// baresip (Debian's baresip-core 1.0, libre 1.1) and Trunkline call each other over SIP/TLS, with a
// SIPp phone caller in the same channel; both sides hear each other's tones.
// - In: baresip dials sip:…;transport=tls to our TLS listener (which serves nothing but TLS). It is
//   told to trust the test certificate (sip_cafile), but baresip 1.0 never verifies a SIP/TLS
//   server certificate (`sip_verify_server` arrived in baresip 1.1): this proves the handshake,
//   framing and the call over TLS, not baresip's certificate check.
// - Out: the channel dials baresip through a TLS trunk; baresip presents the test certificate and
//   our stack trusts nothing else (its caFile), so the call proves our verification too.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { baresipAndPhoneHearEachOther, channelDialsBaresip, startBaresip } from "../helpers/baresip.ts";
import { findCall, startCallsApp, testApplicationYaml, type CallsApp } from "../helpers/callsApp.ts";

const CERT = join(import.meta.dir, "../fixtures/tls/cert.pem");
const KEY = join(import.meta.dir, "../fixtures/tls/key.pem");

let app: CallsApp;

beforeAll(async () => {
  app = await startCallsApp(
    `
rtp: { portMin: 53200, portMax: 53299, mediaTimeoutSec: 0 }
trunks:
  - { id: baresip-tls, domain: 127.0.0.1, transport: tls, canTerminate: false, username: trunkline, optionsIntervalSec: 0 }
${testApplicationYaml({ "1000": "lobby" })}
`,
    { tls: true },
  );
});

afterAll(async () => {
  await app?.close();
});

test("baresip calls into the channel over TLS: it and a phone caller hear each other; its BYE ends the call", async () => {
  const target = `sip:1000@127.0.0.1:${app.sipTlsPort};transport=tls`;
  const result = await baresipAndPhoneHearEachOther(app, async () => (await startBaresip({ toneHz: 440, seconds: 4, dial: target, caFile: CERT })).done);
  expect(result.output).toContain(`Call established: ${target}`);
  const call = await findCall(app, (c) => c.from.startsWith("sip:baresip@") && c.state === "ended");
  expect(call).toMatchObject({
    direction: "inbound", trunkId: "baresip-tls", channelId: "lobby", endReason: "remote_bye", codec: "PCMU",
    to: `sip:1000@127.0.0.1:${app.sipTlsPort};transport=tls`,
  });
}, 30_000);

test("the channel dials baresip through a verifying TLS trunk: answered, audio both ways, baresip's BYE ends the call", async () => {
  const bs = await startBaresip({ toneHz: 440, seconds: 4, certificate: { certFile: CERT, keyFile: KEY } });
  const trunk = await app.harness.call("POST", "/api/v1/trunks", {
    id: "baresip-out", domain: "127.0.0.1", port: bs.port + 1, transport: "tls", tlsVerify: true, username: "trunkline", optionsIntervalSec: 0,
  });
  expect(trunk.status, trunk.text).toBe(201);
  const ended = await channelDialsBaresip(app, bs, "baresip-out");
  expect(ended).toMatchObject({ endReason: "remote_bye", codec: "PCMU" });
}, 30_000);
