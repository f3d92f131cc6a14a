// baresip (Debian's baresip-core 1.0, libre 1.1) calls into a channel over SIP/TLS
// (sip:…;transport=tls to our TLS listener, which serves nothing but TLS); a SIPp phone caller in
// the same channel and baresip hear each other's tones. baresip is told to trust the test
// certificate (sip_cafile), but baresip 1.0 never verifies a SIP/TLS server certificate
// (verification, `sip_verify_server`, arrived in baresip 1.1), so this proves the TLS
// handshake, framing and the call over it, not baresip's certificate check.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { startBaresip } from "../helpers/baresip.ts";
import { findCall, phoneCaller, startCallsApp, testApplicationYaml, type CallsApp } from "../helpers/callsApp.ts";
import { toneShareOf } from "../helpers/rtpPeer.ts";

let app: CallsApp;

beforeAll(async () => {
  app = await startCallsApp(
    `
rtp: { portMin: 53200, portMax: 53299, mediaTimeoutSec: 0 }
trunks:
  - { id: baresip-tls, domain: 127.0.0.1, transport: tls, username: trunkline, optionsIntervalSec: 0 }
${testApplicationYaml({ "1000": "lobby" })}
`,
    { tls: true },
  );
});

afterAll(async () => {
  await app?.close();
});

test("baresip calls into the channel over TLS: it and a phone caller hear each other; its BYE ends the call", async () => {
  const phone = await phoneCaller(app, { service: "1000", toneHz: 1000, holdMs: 5000 });
  try {
    await Bun.sleep(300);
    const target = `sip:1000@127.0.0.1:${app.sipTlsPort};transport=tls`;
    const bs = await startBaresip({ toneHz: 440, seconds: 4, dial: target, caFile: join(import.meta.dir, "../fixtures/tls/cert.pem") });
    const result = await bs.done;
    expect(result.output).toContain(`Call established: ${target}`);
    expect(toneShareOf(result.received.subarray(result.sampleRate), result.sampleRate, 1000)).toBeGreaterThan(0.5);
    expect((await phone.run).exitCode).toBe(0);
    expect(toneShareOf(phone.peer.received(), 8000, 440)).toBeGreaterThan(0.3);
  } finally {
    phone.peer.close();
  }
  const call = await findCall(app, (c) => c.from.startsWith("sip:baresip@") && c.state === "ended");
  expect(call).toMatchObject({
    direction: "inbound", trunkId: "baresip-tls", channelId: "lobby", endReason: "remote_bye", codec: "PCMU",
    to: `sip:1000@127.0.0.1:${app.sipTlsPort};transport=tls`,
  });
}, 30_000);
