// Real peer: Kamailio 5.6 (tls module) as a digest-authenticating registrar over TLS on loopback,
// presenting the project's self-signed test certificate. Trunks are made through the admin API of
// the real app, composed as in production (src/services.ts) from a YAML config:
// - with `sip.tls.caFile` naming the test certificate, a TLS trunk registers and Kamailio holds a
//   binding whose Contact says transport=tls;
// - with the system trust store only, the certificate is refused and the status says why;
// - the same trunk with `tlsVerify: false` registers anyway.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { composeServices } from "../../src/services.ts";
import { startHarness, type Harness } from "../api/harness.ts";
import { startKamailio, type KamailioRun } from "../helpers/kamailio.ts";
import { trunkStatusUntil } from "../helpers/trunkStatus.ts";

const CERT = join(import.meta.dir, "../fixtures/tls/cert.pem");
const KEY = join(import.meta.dir, "../fixtures/tls/key.pem");

let kamailio: KamailioRun;
let trusting: Harness | undefined;
let systemStore: Harness | undefined;

/** The production services on 127.0.0.1 (UDP + TLS on free ports); `caFile` only when given. */
function appYaml(caFile?: string): string {
  return `sip:
  listen:
    - { transport: udp, host: 127.0.0.1, port: 0 }
    - { transport: tls, host: 127.0.0.1, port: 0 }
  tls: { certFile: ${CERT}, keyFile: ${KEY}${caFile ? `, caFile: ${caFile}` : ""} }
rtp: { portMin: 53000, portMax: 53099 }
`;
}

beforeAll(async () => {
  kamailio = await startKamailio({ config: "test/fixtures/kamailio/registrar-tls.cfg", tls: true });
  trusting = await startHarness(appYaml(CERT), composeServices);
  systemStore = await startHarness(appYaml(), composeServices);
});

afterAll(async () => {
  await trusting?.close();
  await systemStore?.close();
  await kamailio?.stop();
});

function tlsTrunk(id: string, username: string, over: Record<string, unknown> = {}) {
  return {
    id, domain: "127.0.0.1", port: kamailio.tlsPort, transport: "tls", register: true, username, password: "trunk-secret",
    registerExpires: 60, optionsIntervalSec: 0, ...over,
  };
}

test("with the test CA trusted (sip.tls.caFile), a TLS trunk registers with digest; Kamailio holds a TLS binding", async () => {
  const h = trusting!;
  const created = await h.call("POST", "/api/v1/trunks", tlsTrunk("kam-tls", "tina"));
  expect(created.status, created.text).toBe(201);
  const registered = await trunkStatusUntil(h, "kam-tls", (s) => s.registration.state === "registered");
  expect(registered.registration).toMatchObject({ lastStatusCode: 200, lastError: null });
  const saved = await kamailio.waitFor(/TRUNKLINE saved bindings=1 aor=sip:tina@127\.0\.0\.1 .* proto=tls/);
  expect(saved).toMatch(/contact=<sip:tina@127\.0\.0\.1:\d+;transport=tls>/);
  expect(kamailio.lines.some((l) => l.includes("TRUNKLINE challenge to=tina ") && l.includes("proto=tls"))).toBe(true);

  expect((await h.call("DELETE", "/api/v1/trunks/kam-tls")).status).toBe(204);
  await kamailio.waitFor(/TRUNKLINE saved bindings=0 aor=sip:tina@127\.0\.0\.1 .* expires=0 .*proto=tls/);
}, 15_000);

test("with the system trust store the self-signed certificate is refused and the status names the error; tlsVerify: false registers", async () => {
  const h = systemStore!;
  const created = await h.call("POST", "/api/v1/trunks", tlsTrunk("kam-untrusted", "ursula"));
  expect(created.status, created.text).toBe(201);
  const refused = await trunkStatusUntil(h, "kam-untrusted", (s) => s.registration.lastError !== null);
  expect(refused.registration.state).not.toBe("registered");
  expect(refused.registration.lastError).toContain(`tls connect to 127.0.0.1:${kamailio.tlsPort} failed: certificate rejected: `);
  expect(refused.registration.lastError).toMatch(/self[- ]signed certificate/i);
  expect(refused.available).toBe(false);
  expect(kamailio.lines.some((l) => l.includes("TRUNKLINE") && l.includes("ursula"))).toBe(false);

  expect((await h.call("PATCH", "/api/v1/trunks/kam-untrusted", { tlsVerify: false })).status).toBe(200);
  await trunkStatusUntil(h, "kam-untrusted", (s) => s.registration.state === "registered");
  await kamailio.waitFor(/TRUNKLINE saved bindings=1 aor=sip:ursula@127\.0\.0\.1 .* proto=tls/);
}, 15_000);
