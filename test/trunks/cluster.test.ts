// Registration once per cluster in the trunk manager: two managers (nodes "a" and "b") share one
// lease table (the store's, on SQLite: one database clock) and one in-memory registrar. Only the
// lease holder registers, with its Contact at the front; the other node shows the holder's state;
// a holder that finds its lease taken stops refreshing without un-registering; a stopping holder
// leaves the binding and frees the lease for the next claim; a trunk deleted is un-registered by
// its holder.
import { afterEach, expect, test } from "bun:test";
import type { TrunkInput } from "../../src/config/entities.ts";
import { openStore, type SqliteStore } from "../../src/store/index.ts";
import type { SipRequest } from "../../src/sip/message.ts";
import { TrunkManager } from "../../src/trunks/manager.ts";
import { until } from "../helpers/until.ts";
import { digestRegistrar, fakeProvider, type FakeProvider } from "./fakeRegistrar.ts";

const FRONT = { address: "203.0.113.10", port: 5070 };

function trunk(over: Partial<TrunkInput> = {}): TrunkInput {
  return {
    id: "reg", domain: "example.com", transport: "udp", register: true, canTerminate: true, username: "alice", password: "right",
    registerExpires: 3600, allowedAddresses: [], earlyOffer: false, prack: "supported", optionsIntervalSec: 0, tlsVerify: true, enabled: true, mediaEncryption: "none", allowSdesWithoutTls: false, redirects: "sameTrunk", referPolicy: "decline",
    ...over,
  };
}

const stores: SqliteStore[] = [];
const managers: TrunkManager[] = [];
afterEach(async () => {
  await Promise.all(managers.splice(0).map((m) => m.stop()));
  for (const store of stores.splice(0)) await store.close();
});

function cluster(leaseMs = 60_000): { store: SqliteStore; provider: FakeProvider; node: (nodeId: string) => TrunkManager } {
  const store = openStore(":memory:");
  stores.push(store);
  const registrar = digestRegistrar({ password: "right" });
  const provider = fakeProvider((req) => registrar.handler(req));
  const node = (nodeId: string) => {
    const manager = new TrunkManager({
      port: provider.port,
      resolver: provider.resolver,
      registrationTiming: { backoff: { baseMs: 20, capMs: 80 }, unregisterTimeoutMs: 300 },
      cluster: { nodeId, leases: store.registrations, leaseMs, front: FRONT },
    });
    managers.push(manager);
    return manager;
  };
  return { store, provider, node };
}

const registers = (p: FakeProvider) => p.requests.map((r) => r.req).filter((r): r is SipRequest => r.method === "REGISTER");
const unregisters = (p: FakeProvider) => registers(p).filter((r) => r.getHeader("Expires") === "0");

test("only the lease holder registers, its Contact at the front; the other node shows the holder's registration and may use the trunk", async () => {
  const { provider, node } = cluster();
  const a = node("a");
  const b = node("b");
  a.apply([trunk()]);
  await a.syncLeases();
  b.apply([trunk()]);
  await b.syncLeases();
  await until(() => a.status("reg")!.registration.state === "registered");
  expect(a.status("reg")!.registration.nodeId).toBe("a");
  const contact = registers(provider).at(-1)!.contacts[0]!.uri;
  expect(contact).toMatchObject({ user: "alice", host: FRONT.address, port: FRONT.port });
  // b reads what a wrote (after a's report of "registered") at its next sync.
  await until(async () => {
    await b.syncLeases();
    return b.status("reg")!.registration.state === "registered";
  });
  expect(b.status("reg")!.registration).toMatchObject({ nodeId: "a", lastStatusCode: 200 });
  expect(b.isAvailable("reg")).toBe(true);
  // Every REGISTER so far was a's: one Call-ID.
  expect(new Set(registers(provider).map((r) => r.callId)).size).toBe(1);
});

test("a holder whose lease lapsed and was taken stops refreshing without un-registering; the new holder registers the same binding", async () => {
  const { store, provider, node } = cluster(100);
  const a = node("a");
  const b = node("b");
  a.apply([trunk()]);
  await a.syncLeases();
  await until(() => a.status("reg")!.registration.state === "registered");
  b.apply([trunk()]);
  // a stops renewing (a stalled node): its lease lapses by the database's clock, b takes it.
  await until(async () => (await store.registrations.list())[0]!.remainingMs < 0);
  await b.syncLeases();
  await until(() => b.status("reg")!.registration.state === "registered" && b.status("reg")!.registration.nodeId === "b");
  const callIds = new Set(registers(provider).map((r) => r.callId));
  expect(callIds.size).toBe(2);
  await a.syncLeases();
  expect(a.status("reg")!.registration.nodeId).toBe("b");
  expect(unregisters(provider)).toEqual([]);
});

test("a stopping holder leaves the binding and frees the lease: the next node's claim wins at once", async () => {
  const { store, provider, node } = cluster();
  const a = node("a");
  const b = node("b");
  a.apply([trunk()]);
  await a.syncLeases();
  await until(() => a.status("reg")!.registration.state === "registered");
  b.apply([trunk()]);
  await b.syncLeases();
  await a.stop();
  expect(unregisters(provider)).toEqual([]);
  await until(async () => (await store.registrations.list()).length === 0);
  await b.syncLeases();
  await until(() => b.status("reg")!.registration.state === "registered");
  expect(b.status("reg")!.registration.nodeId).toBe("b");
});

test("a trunk deleted is un-registered by its holder, which frees the lease; a trunk that does not register takes no lease", async () => {
  const { store, provider, node } = cluster();
  const a = node("a");
  a.apply([trunk(), trunk({ id: "plain", register: false })]);
  await a.syncLeases();
  await until(() => a.status("reg")!.registration.state === "registered");
  expect((await store.registrations.list()).map((l) => l.trunkId)).toEqual(["reg"]);
  expect(a.status("plain")!.registration).toMatchObject({ state: "unregistered", nodeId: null });
  a.apply([trunk({ id: "plain", register: false })]);
  await until(() => unregisters(provider).length === 1);
  await until(async () => (await store.registrations.list()).length === 0);
});

test("keep-alives through the front: the front's 408 is the trunk's silence (unreachable); without a front a 408 is an answer as before", async () => {
  const { provider, node } = cluster();
  provider.handle((req) => (req.method === "OPTIONS" ? 408 : 200));
  const a = node("a");
  a.apply([trunk({ id: "probed", register: false, optionsIntervalSec: 30 })]);
  await until(() => a.status("probed")!.reachable !== null);
  expect(a.status("probed")).toMatchObject({ reachable: false, lastOptionsError: "the front relayed no answer (408 Request Timeout)", available: false });

  const single = new TrunkManager({ port: provider.port, resolver: provider.resolver });
  managers.push(single);
  single.apply([trunk({ id: "probed", register: false, optionsIntervalSec: 30 })]);
  await until(() => single.status("probed")!.reachable !== null);
  expect(single.status("probed")).toMatchObject({ reachable: true, available: true });
});
