// Real peer: Kamailio 5.6 as a digest-authenticating registrar (test/fixtures/kamailio/registrar.cfg)
// on loopback. Trunks register over UDP and TCP through the real SipStack; Kamailio's own log
// (xlog after save() and a usrloc read-back) shows the bindings; a wrong password ends in `failed`.
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import type { TrunkInput } from "../../src/config/entities.ts";
import { SipStack } from "../../src/sip/stack.ts";
import { parseUri } from "../../src/sip/uri.ts";
import { createResolver } from "../../src/sip/resolver.ts";
import { TrunkManager } from "../../src/trunks/manager.ts";
import { stackPort } from "../../src/trunks/sipPort.ts";
import { startKamailio, type KamailioRun } from "../helpers/kamailio.ts";
import { freePort } from "../helpers/sipp.ts";
import { until } from "../helpers/until.ts";
import { loopbackIsTrunk } from "../helpers/loopbackTrunks.ts";

let kamailio: KamailioRun;
let stack: SipStack;
let manager: TrunkManager;

beforeAll(async () => {
  kamailio = await startKamailio({ config: "test/fixtures/kamailio/registrar.cfg" });
  stack = new SipStack({ isKnownSource: loopbackIsTrunk, listen: [{ transport: "udp", host: "127.0.0.1", port: 0 }, { transport: "tcp", host: "127.0.0.1", port: 0 }] });
  await stack.start();
});

afterEach(async () => {
  await manager?.stop();
});

afterAll(async () => {
  await stack.stop();
  await kamailio.stop();
});

function trunk(over: Partial<TrunkInput> & { id: string; username: string }): TrunkInput {
  return {
    domain: "127.0.0.1", port: kamailio.port, transport: "udp", register: true, canTerminate: true, password: "trunk-secret",
    registerExpires: 60, allowedAddresses: [], earlyOffer: false, prack: "supported", optionsIntervalSec: 0, tlsVerify: true, enabled: true, mediaEncryption: "none", allowSdesWithoutTls: false, redirects: "sameTrunk", referPolicy: "decline",
    ...over,
  };
}

/** Sends an OPTIONS from the stack's UDP socket; resolves once Kamailio has answered it and its log line is in. */
async function optionsProbe(user: string): Promise<void> {
  const uri = parseUri(`sip:${user}@127.0.0.1:${kamailio.port}`)!;
  const req = stack.createOutOfDialogRequest({ method: "OPTIONS", uri, transport: "udp", from: { uri, params: new Map() }, to: { uri, params: new Map() } });
  const outcome = await stack.sendRequest(req, { transport: "udp", address: "127.0.0.1", port: kamailio.port }).outcome;
  expect(outcome.kind === "final" ? outcome.response.status : outcome.kind).toBe(200);
  await kamailio.waitFor(new RegExp(`TRUNKLINE options from=sip:${user}@`));
}

function newManager(): TrunkManager {
  manager = new TrunkManager({ port: stackPort(stack), resolver: createResolver() });
  return manager;
}

for (const transport of ["udp", "tcp"] as const) {
  test(`registers over ${transport} with digest; Kamailio holds the binding; un-registers on stop`, async () => {
    const m = newManager();
    const user = `alice-${transport}`;
    m.apply([trunk({ id: `k-${transport}`, username: user, transport })]);
    await until(() => m.status(`k-${transport}`)!.registration.state === "registered", { timeoutMs: 5000, what: () => JSON.stringify(m.status(`k-${transport}`)) });
    const saved = await kamailio.waitFor(new RegExp(`TRUNKLINE saved bindings=1 aor=sip:${user}@127\\.0\\.0\\.1.* expires=60 .*proto=${transport}`));
    const ourPort = stack.boundEndpoints.find((e) => e.transport === transport)!.port;
    expect(saved).toContain(`contact=<sip:${user}@127.0.0.1:${ourPort}`);
    expect(kamailio.lines.some((l) => l.includes(`TRUNKLINE challenge`) && l.includes(`proto=${transport}`))).toBe(true);
    expect(m.status(`k-${transport}`)!.registration.expiresAt).not.toBeNull();
    await m.stop();
    await kamailio.waitFor(new RegExp(`TRUNKLINE saved bindings=0 aor=sip:${user}@127\\.0\\.0\\.1.* expires=0 `));
  }, 15_000);
}

test("authId is the digest username Kamailio sees; the AOR keeps the username", async () => {
  const m = newManager();
  m.apply([trunk({ id: "k-authid", username: "carol", authId: "carol-auth" })]);
  await until(() => m.status("k-authid")!.registration.state === "registered", { timeoutMs: 5000, what: () => JSON.stringify(m.status("k-authid")) });
  await kamailio.waitFor(/TRUNKLINE saved bindings=1 aor=sip:carol@127\.0\.0\.1 authuser=carol-auth /);
}, 15_000);

test("wrong password → failed with 401, after exactly one answered challenge", async () => {
  const m = newManager();
  m.apply([trunk({ id: "k-bad", username: "mallory", password: "not-it" })]);
  await until(() => m.status("k-bad")!.registration.state === "failed", { timeoutMs: 5000, what: () => JSON.stringify(m.status("k-bad")) });
  const status = m.status("k-bad")!;
  expect(status.registration.lastStatusCode).toBe(401);
  expect(status.registration.lastError).toContain("credentials rejected");
  expect(status.available).toBe(false);
  // One challenge to the bare REGISTER, one to our (wrong) answer (Kamailio's log can trail its
  // answers on a loaded machine: wait for both lines); then nothing more: an OPTIONS sent on the
  // same socket after the failure is answered and logged, and still there are two.
  const challenges = () => kamailio.lines.filter((l) => l.includes("TRUNKLINE challenge to=mallory ")).length;
  await until(() => challenges() >= 2, { what: () => kamailio.lines.slice(-10) });
  await optionsProbe("mallory-probe");
  expect(challenges()).toBe(2);
  expect(kamailio.lines.some((l) => l.includes("TRUNKLINE saved") && l.includes("mallory"))).toBe(false);
}, 15_000);

test("two trunks, one pointing at a dead port: the healthy one registers and stays registered", async () => {
  const deadPort = await freePort();
  const m = newManager();
  m.apply([
    trunk({ id: "dead-udp", username: "dave", port: deadPort }),
    trunk({ id: "dead-tcp", username: "dave", port: deadPort, transport: "tcp" }),
    trunk({ id: "healthy", username: "erin", registerExpires: 10 }),
  ]);
  await until(() => m.status("healthy")!.registration.state === "registered", { timeoutMs: 5000, what: () => JSON.stringify(m.statuses()) });
  await until(() => m.status("dead-tcp")!.registration.state === "failed", { timeoutMs: 5000, what: () => JSON.stringify(m.status("dead-tcp")) });
  expect(m.status("dead-tcp")!.registration.lastError).toMatch(/refused|ECONNREFUSED|connect/i);
  // Kamailio grants 10 s: a refresh must land and keep the healthy trunk registered.
  const firstExpiry = m.status("healthy")!.registration.expiresAt!;
  await until(() => m.status("healthy")!.registration.expiresAt !== firstExpiry, { timeoutMs: 8000, what: () => JSON.stringify(m.status("healthy")) });
  expect(m.status("healthy")!.registration.state).toBe("registered");
  expect(m.status("dead-udp")!.registration.state).not.toBe("registered");
}, 20_000);
