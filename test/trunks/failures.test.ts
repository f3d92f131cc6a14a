// Bad trunks over real sockets: an untrusted TLS certificate, a refused TCP connection and an
// unresolvable domain each show their precise reason in the trunk status, and nothing else breaks.
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { TrunkInput } from "../../src/config/entities.ts";
import { ResolveError, createResolver, type Resolver } from "../../src/sip/resolver.ts";
import { SipStack } from "../../src/sip/stack.ts";
import { TrunkManager } from "../../src/trunks/manager.ts";
import { stackPort } from "../../src/trunks/sipPort.ts";
import { until } from "../helpers/until.ts";
import { loopbackIsTrunk } from "../helpers/loopbackTrunks.ts";

const CERT = new URL("../fixtures/tls/cert.pem", import.meta.url).pathname;
const KEY = new URL("../fixtures/tls/key.pem", import.meta.url).pathname;

let provider: SipStack;
/** A second provider: the transport shares one connection per remote address whatever its verify setting. */
let lenientProvider: SipStack;
let ours: SipStack;
let manager: TrunkManager;
let refused: { port: number; release: () => void };

/**
 * A TCP port that refuses connections for as long as the test runs: the local port of a connection
 * we hold open. Nothing listens there and nothing can start to (the port is taken), unlike a port
 * that merely was free a moment ago and that a test running beside this one may grab.
 */
async function refusingPort(): Promise<{ port: number; release: () => void }> {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const held = await Bun.connect({ hostname: "127.0.0.1", port: listener.port, socket: { data() {} } });
  return {
    port: held.localPort,
    release: () => {
      held.end();
      listener.stop(true);
    },
  };
}

/** Real resolution for IP literals; names under .invalid fail like NXDOMAIN (no DNS here). */
const resolver: Resolver = {
  resolve(domain, transport, port) {
    if (domain.endsWith(".invalid")) return Promise.reject(new ResolveError(`${domain} has no A/AAAA records`, domain, "ENOTFOUND"));
    return createResolver().resolve(domain, transport, port);
  },
};

beforeAll(async () => {
  provider = new SipStack({ isKnownSource: loopbackIsTrunk, listen: [{ transport: "tls", host: "127.0.0.1", port: 0 }], tls: { certFile: CERT, keyFile: KEY } });
  await provider.start();
  lenientProvider = new SipStack({ isKnownSource: loopbackIsTrunk, listen: [{ transport: "tls", host: "127.0.0.1", port: 0 }], tls: { certFile: CERT, keyFile: KEY } });
  await lenientProvider.start();
  ours = new SipStack({
    isKnownSource: loopbackIsTrunk,
    listen: [{ transport: "udp", host: "127.0.0.1", port: 0 }, { transport: "tcp", host: "127.0.0.1", port: 0 }, { transport: "tls", host: "127.0.0.1", port: 0 }],
    tls: { certFile: CERT, keyFile: KEY },
  });
  await ours.start();
  manager = new TrunkManager({ port: stackPort(ours), resolver });
  refused = await refusingPort();
});

afterAll(async () => {
  await manager.stop();
  await ours.stop();
  await provider.stop();
  await lenientProvider.stop();
  refused.release();
});

function trunk(over: Partial<TrunkInput> & { id: string }): TrunkInput {
  return {
    domain: "127.0.0.1", transport: "udp", register: false, canTerminate: true, username: "alice", password: "pw",
    registerExpires: 600, allowedAddresses: [], earlyOffer: false, prack: "supported", optionsIntervalSec: 30, tlsVerify: true, enabled: true, mediaEncryption: "none", allowSdesWithoutTls: false, redirects: "sameTrunk", referPolicy: "decline",
    ...over,
  };
}

test("untrusted TLS certificate, refused connection and unknown domain each report their reason", async () => {
  const tlsPort = provider.boundEndpoints[0]!.port;
  const deadPort = refused.port;
  manager.apply([
    trunk({ id: "tls-strict", transport: "tls", port: tlsPort, register: true }),
    trunk({ id: "tls-lenient", transport: "tls", port: lenientProvider.boundEndpoints[0]!.port, tlsVerify: false }),
    trunk({ id: "refused", transport: "tcp", port: deadPort, register: true }),
    trunk({ id: "nxdomain", domain: "sip.nowhere.invalid", register: true }),
  ]);
  const s = (id: string) => manager.status(id)!;
  await until(() => ["tls-strict", "tls-lenient", "refused", "nxdomain"].every((id) => s(id).reachable !== null), { what: () => manager.statuses() });

  expect(s("tls-strict").reachable).toBe(false);
  expect(s("tls-strict").lastOptionsError).toMatch(/certificate|self[- ]signed|unable to verify/i);
  await until(() => s("tls-strict").registration.state === "failed", { what: () => s("tls-strict") });
  expect(s("tls-strict").registration.lastError).toMatch(/^tls:127\.0\.0\.1:\d+: .*(certificate|self[- ]signed|verify)/i);

  // A provider with the same certificate, verification off (per-trunk tlsVerify: false) answers the keep-alive.
  expect(s("tls-lenient").reachable, JSON.stringify(s("tls-lenient"))).toBe(true);
  expect(s("tls-lenient").available).toBe(true);

  expect(s("refused").reachable).toBe(false);
  expect(s("refused").lastOptionsError).toMatch(/ECONNREFUSED/);
  await until(() => s("refused").registration.state === "failed", { what: () => s("refused") });
  expect(s("refused").registration.lastError).toMatch(new RegExp(`^tcp:127\\.0\\.0\\.1:${deadPort}: .*ECONNREFUSED`));

  expect(s("nxdomain").lastOptionsError).toBe("DNS: sip.nowhere.invalid has no A/AAAA records");
  await until(() => s("nxdomain").registration.state === "failed", { what: () => s("nxdomain") });
  expect(s("nxdomain").registration.lastError).toBe("DNS: sip.nowhere.invalid has no A/AAAA records");
  expect(s("nxdomain").available).toBe(false);
}, 15_000);
