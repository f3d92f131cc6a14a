// IPv6 with real peers, on ::1 only: the real app (src/services.ts) listening on [::1] takes two
// SIPp phone calls into one channel with RTP over IPv6 (each phone hears the other's tone), and
// registers trunks over UDP, TCP and TLS (test CA trusted through sip.tls.caFile; the certificate
// names ::1) with Kamailio listening on [::1] (digest; binding read back).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { composeServices } from "../../src/services.ts";
import { startHarness, type Harness } from "../api/harness.ts";
import { findCall, testApplicationYaml } from "../helpers/callsApp.ts";
import { startKamailio, type KamailioRun } from "../helpers/kamailio.ts";
import { startRtpPeer, type RtpPeer } from "../helpers/rtpPeer.ts";
import { freePort, runSipp } from "../helpers/sipp.ts";
import { trunkStatusUntil } from "../helpers/trunkStatus.ts";
import { peerHears } from "../helpers/hearing.ts";
import { until } from "../helpers/until.ts";

const UAC = join(import.meta.dir, "../fixtures/sipp/calls-uac-early-offer.xml");
const CERT = join(import.meta.dir, "../fixtures/tls/cert.pem");
const KEY = join(import.meta.dir, "../fixtures/tls/key.pem");

let kamailio: KamailioRun;
let app: Harness;
let sipPort: number;
let tlsPort: number;
const peers: RtpPeer[] = [];

beforeAll(async () => {
  kamailio = await startKamailio({ config: "test/fixtures/kamailio/registrar-tls.cfg", tls: true, host: "::1" });
  sipPort = await freePort();
  tlsPort = await freePort();
  app = await startHarness(
    `sip:
  listen:
    - { transport: udp, host: "::1", port: ${sipPort} }
    - { transport: tcp, host: "::1", port: ${sipPort} }
    - { transport: tls, host: "::1", port: ${tlsPort} }
  tls: { certFile: ${CERT}, keyFile: ${KEY}, caFile: ${CERT} }
rtp: { portMin: 53400, portMax: 53499, mediaTimeoutSec: 0 }
trunks:
  - { id: phones, domain: "::1", username: trunkline, optionsIntervalSec: 0 }
${testApplicationYaml({ "1000": "lobby" })}
`,
    composeServices,
  );
});

afterAll(async () => {
  for (const peer of peers) peer.close();
  await app?.close();
  await kamailio?.stop();
});

/** A SIPp phone on [::1] calling the channel, its RTP (a PCMU tone) from an IPv6 socket. */
async function ipv6Phone(toneHz: number, testcase: string, holdMs: number) {
  const peer = await startRtpPeer(toneHz, { host: "::1", replyToSender: true });
  peers.push(peer);
  const run = runSipp({
    scenario: UAC, remote: `[::1]:${sipPort}`, localIp: "::1", service: "1000",
    keys: { rtpport: peer.port, testcase }, extraArgs: ["-d", String(holdMs)], timeoutSec: 10,
  });
  return { peer, run };
}

test("two SIPp phones call in over IPv6: SDP and RTP on ::1, each hears the other", async () => {
  // B (2.5 s) calls once A (3.5 s) is in the channel (its audio reaches A): both are in the
  // channel together for most of B's call, far more than the half second judged of each.
  const a = await ipv6Phone(1000, "v6-a", 3500);
  await until(() => a.peer.packetsReceived > 0, { what: () => "phone A never got the channel's RTP" });
  const b = await ipv6Phone(440, "v6-b", 2500);
  await Promise.all([peerHears(a.peer, 440), peerHears(b.peer, 1000)]);
  const [ra, rb] = await Promise.all([a.run, b.run]);
  expect(ra.exitCode, ra.summary).toBe(0);
  expect(rb.exitCode, rb.summary).toBe(0);
  // Trunkline's answer (in the 200) offers its media on ::1.
  expect(ra.messages).toMatch(/o=trunkline \d+ \d+ IN IP6 ::1\r?\n(.*\r?\n)*?c=IN IP6 ::1\r?\n/);
  const call = await findCall({ harness: app }, (c) => c.from.includes("[::1]") && c.state === "ended");
  expect(call).toMatchObject({ direction: "inbound", trunkId: "phones", channelId: "lobby", endReason: "remote_bye", codec: "PCMU" });
}, 20_000);

for (const transport of ["udp", "tcp", "tls"] as const) {
  test(`a trunk registers with Kamailio on [::1] over ${transport}; Kamailio holds the binding`, async () => {
    const id = `kam6-${transport}`;
    const user = `v6-${transport}`;
    const created = await app.call("POST", "/api/v1/trunks", {
      id, domain: "::1", port: transport === "tls" ? kamailio.tlsPort : kamailio.port, transport, register: true, username: user, password: "trunk-secret",
      registerExpires: 60, optionsIntervalSec: 0,
    });
    expect(created.status, created.text).toBe(201);
    await trunkStatusUntil(app, id, (s) => s.registration.state === "registered");
    const saved = await kamailio.waitFor(new RegExp(`TRUNKLINE saved bindings=1 aor=sip:${user}@\\[::1\\] .*proto=${transport}`));
    expect(saved).toContain(`contact=<sip:${user}@[::1]:${transport === "tls" ? `${tlsPort};transport=tls` : sipPort}`);
    expect((await app.call("DELETE", `/api/v1/trunks/${id}`)).status).toBe(204);
    await kamailio.waitFor(new RegExp(`TRUNKLINE saved bindings=0 aor=sip:${user}@\\[::1\\] .* expires=0 `));
  }, 15_000);
}
