import { afterEach, describe, expect, test } from "bun:test";
import type { TrunkInput } from "../../src/config/entities.ts";
import { subscribeEvents, type AnyEvent } from "../../src/events.ts";
import { metrics } from "../../src/metrics.ts";
import { createResponse, type SipRequest } from "../../src/sip/message.ts";
import type { TrunkDirectory } from "../../src/calls/manager.ts";
import { TrunkManager } from "../../src/trunks/manager.ts";
import { until } from "../helpers/until.ts";
import { digestRegistrar, fakeProvider, type FakeProvider } from "./fakeRegistrar.ts";

function trunk(over: Partial<TrunkInput> & { id: string }): TrunkInput {
  return {
    domain: "example.com", transport: "udp", register: false, canTerminate: true, username: "alice", password: "right",
    registerExpires: 3600, allowedAddresses: [], earlyOffer: false, prack: "supported", optionsIntervalSec: 0, tlsVerify: true, enabled: true, mediaEncryption: "none", allowSdesWithoutTls: false, redirects: "sameTrunk", referPolicy: "decline",
    ...over,
  };
}

const managers: TrunkManager[] = [];
const unsubscribers: (() => void)[] = [];
afterEach(async () => {
  await Promise.all(managers.splice(0).map((m) => m.stop()));
  for (const u of unsubscribers.splice(0)) u();
});

function manage(provider: FakeProvider, o: { unregisterTimeoutMs?: number } = {}): { manager: TrunkManager; events: AnyEvent[] } {
  const manager = new TrunkManager({
    port: provider.port,
    resolver: provider.resolver,
    registrationTiming: { backoff: { baseMs: 20, capMs: 80 }, unregisterTimeoutMs: o.unregisterTimeoutMs ?? 300 },
  });
  managers.push(manager);
  const events: AnyEvent[] = [];
  unsubscribers.push(subscribeEvents((e) => { if (e.type.startsWith("trunk.")) events.push(e); }));
  return { manager, events };
}

/** Holds a provider's answers until the test opens it: "still unanswered" is then a fact, not a race. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

const registersTo = (p: FakeProvider, domain?: string) =>
  p.requests.map((r) => r.req).filter((r) => r.method === "REGISTER" && (domain === undefined || r.uri.host === domain));

describe("trunk manager", () => {
  test("a registering trunk becomes available once registered; events and status follow", async () => {
    const registrar = digestRegistrar({ password: "right" });
    const provider = fakeProvider((req) => registrar.handler(req));
    const { manager, events } = manage(provider);
    manager.apply([trunk({ id: "reg", register: true })]);
    expect(manager.isAvailable("reg")).toBe(false);
    await until(() => manager.isAvailable("reg"));
    const status = manager.status("reg")!;
    expect(status).toMatchObject({ id: "reg", registration: { state: "registered", lastError: null, lastStatusCode: 200 }, reachable: null, activeCalls: 0, available: true });
    expect(events.map((e) => e.type)).toEqual(["trunk.registered"]);
    expect(events[0]!.data).toMatchObject({ trunkId: "reg", expiresAt: status.registration.expiresAt! });
    expect(metrics.render()).toContain('trunkline_trunk_registration_state{trunk="reg",state="registered"} 1');
    expect(metrics.render()).toMatch(/trunkline_trunk_register_total\{trunk="reg",outcome="ok"\} \d+/);
  });

  test("wrong credentials → failed status with reason and a registration_failed event", async () => {
    const registrar = digestRegistrar({ password: "other" });
    const provider = fakeProvider((req) => registrar.handler(req));
    const { manager, events } = manage(provider);
    manager.apply([trunk({ id: "bad", register: true })]);
    await until(() => manager.status("bad")!.registration.state === "failed");
    expect(manager.status("bad")!.registration.lastStatusCode).toBe(401);
    expect(manager.isAvailable("bad")).toBe(false);
    expect(events.map((e) => e.type)).toEqual(["trunk.registration_failed"]);
    expect(events[0]!.data).toMatchObject({ trunkId: "bad", statusCode: 401 });
  });

  test("a trunk failing again for the same reason reports it once; a new reason is reported", async () => {
    let reply: number = 503;
    const provider = fakeProvider(() => reply);
    const { manager, events } = manage(provider);
    manager.apply([trunk({ id: "flaky", register: true })]);
    await until(() => registersTo(provider).length >= 3);
    expect(events.map((e) => e.type)).toEqual(["trunk.registration_failed"]);
    reply = 500;
    await until(() => events.length === 2);
    expect(events[1]!.data).toMatchObject({ trunkId: "flaky", reason: "500 Server Internal Error", statusCode: 500 });
  });

  test("OPTIONS: any response is reachable, a timeout unreachable until the next answer", async () => {
    let answer: "404" | "timeout" = "404";
    const provider = fakeProvider((req) => (answer === "timeout" ? { kind: "timeout" } : createResponse(req, 404)));
    const { manager, events } = manage(provider);
    manager.apply([trunk({ id: "p", optionsIntervalSec: 1 })]);
    await until(() => manager.status("p")!.reachable === true);
    expect(manager.status("p")!.lastOptionsAt).not.toBeNull();
    answer = "timeout";
    await until(() => manager.status("p")!.reachable === false, { what: () => manager.status("p") });
    expect(manager.isAvailable("p")).toBe(false);
    expect(manager.status("p")!.lastOptionsError).toContain("timeout");
    answer = "404";
    await until(() => manager.status("p")!.reachable === true, { what: () => manager.status("p") });
    expect(events.map((e) => e.type)).toEqual(["trunk.unreachable", "trunk.reachable"]);
    const options = provider.requests.map((r) => r.req).filter((r) => r.method === "OPTIONS");
    expect(options[0]!.uri.host).toBe("example.com");
    expect(new Set(options.map((o) => o.callId)).size).toBe(options.length);
  });

  test("concurrent-call limit, canTerminate and disabled decide availability; slots release once", () => {
    const provider = fakeProvider(() => 200);
    const { manager } = manage(provider);
    manager.apply([trunk({ id: "a", maxConcurrentCalls: 2 }), trunk({ id: "b", canTerminate: false }), trunk({ id: "c", enabled: false })]);
    expect(manager.candidates().map((c) => [c.id, c.available])).toEqual([["a", true], ["b", false], ["c", false]]);
    const first = manager.acquireCall("a", { outbound: true })!;
    const second = manager.acquireCall("a", { outbound: true })!;
    expect(manager.acquireCall("a")).toBeUndefined();
    expect(manager.isAvailable("a")).toBe(false);
    expect(manager.status("a")!.activeCalls).toBe(2);
    first.release();
    first.release();
    expect(manager.status("a")!.activeCalls).toBe(1);
    expect(manager.isAvailable("a")).toBe(true);
    second.release();
    // Inbound calls may arrive over a trunk that cannot terminate; outbound ones may not use it.
    expect(manager.acquireCall("b")).toBeDefined();
    expect(manager.acquireCall("b", { outbound: true })).toBeUndefined();
    expect(manager.acquireCall("c")).toBeUndefined();
    expect(manager.acquireCall("nope")).toBeUndefined();
    expect(manager.status("c")!.registration.state).toBe("disabled");
  });

  test("changed password re-registers at once on a new Call-ID without removing the binding", async () => {
    const registrar = digestRegistrar({ password: "right" });
    const provider = fakeProvider((req) => registrar.handler(req));
    const { manager } = manage(provider);
    manager.apply([trunk({ id: "t", register: true })]);
    await until(() => manager.isAvailable("t"));
    const firstCallId = registersTo(provider)[0]!.callId;
    manager.apply([trunk({ id: "t", register: true, password: "wrong" })]);
    await until(() => manager.status("t")!.registration.state === "failed");
    const all = registersTo(provider);
    expect(all.some((r) => r.getHeader("Expires") === "0")).toBe(false);
    expect(all.at(-1)!.callId).not.toBe(firstCallId);
  });

  test("changed domain un-registers the old binding first, then registers at the new one", async () => {
    const provider = fakeProvider((req) => createResponse(req, 200, "OK", { headers: [["Expires", String(req.expires ?? 0)]] }));
    const { manager } = manage(provider);
    manager.apply([trunk({ id: "t", register: true })]);
    await until(() => manager.isAvailable("t"));
    manager.apply([trunk({ id: "t", register: true, domain: "other.example.net" })]);
    expect(manager.status("t")!.registration.state).toBe("registering");
    await until(() => registersTo(provider, "other.example.net").length > 0 && manager.isAvailable("t"));
    const sequence = registersTo(provider).map((r) => `${r.uri.host}:${r.getHeader("Expires")}`);
    expect(sequence).toEqual(["example.com:3600", "example.com:0", "other.example.net:3600"]);
  });

  test("two quick domain changes: every old binding is removed before the last one registers", async () => {
    const log: string[] = [];
    const unregisterAnswers = gate();
    const provider = fakeProvider(async (req) => {
      const what = `${req.uri.host}:${req.getHeader("Expires")}`;
      log.push(`sent ${what}`);
      if (req.getHeader("Expires") === "0") {
        await unregisterAnswers.opened;
        log.push(`answered ${what}`);
      }
      return createResponse(req, 200, "OK", { headers: [["Expires", String(req.expires ?? 0)]] });
    });
    // Waiting on the held un-REGISTER must not give up while the test holds it.
    const { manager } = manage(provider, { unregisterTimeoutMs: 60_000 });
    manager.apply([trunk({ id: "t", register: true })]);
    await until(() => manager.isAvailable("t"));
    try {
      manager.apply([trunk({ id: "t", register: true, domain: "b.example.com" })]);
      await until(() => log.includes("sent example.com:0"), { what: () => log });
      // The second change comes while the first one's un-REGISTER is still unanswered.
      manager.apply([trunk({ id: "t", register: true, domain: "c.example.com" })]);
      expect(manager.status("t")!.registration.state).toBe("registering");
    } finally {
      unregisterAnswers.open();
    }
    await until(() => manager.isAvailable("t"), { what: () => log });
    // The intermediate domain never registered; the last one only once the old binding was removed.
    expect(log).toEqual(["sent example.com:3600", "sent example.com:0", "answered example.com:0", "sent c.example.com:3600"]);
  });

  test("disabling un-registers and shows disabled; deleting un-registers and forgets the trunk", async () => {
    const provider = fakeProvider((req: SipRequest) => createResponse(req, 200, "OK", { headers: [["Expires", String(req.expires ?? 0)]] }));
    const { manager } = manage(provider);
    manager.apply([trunk({ id: "x", register: true }), trunk({ id: "y", register: true, domain: "y.example.com" })]);
    await until(() => manager.isAvailable("x") && manager.isAvailable("y"));
    manager.apply([trunk({ id: "x", register: true, enabled: false }), trunk({ id: "y", register: true, domain: "y.example.com" })]);
    await until(() => manager.status("x")!.registration.state === "disabled");
    await until(() => registersTo(provider, "example.com").at(-1)!.getHeader("Expires") === "0");
    manager.apply([trunk({ id: "x", register: true, enabled: false })]);
    expect(manager.status("y")).toBeUndefined();
    await until(() => registersTo(provider, "y.example.com").at(-1)!.getHeader("Expires") === "0");
  });

  test("shutdown un-registers every registered trunk", async () => {
    const provider = fakeProvider((req: SipRequest) => createResponse(req, 200, "OK", { headers: [["Expires", String(req.expires ?? 0)]] }));
    const { manager } = manage(provider);
    manager.apply([trunk({ id: "x", register: true }), trunk({ id: "y", register: true, domain: "y.example.com" })]);
    await until(() => manager.isAvailable("x") && manager.isAvailable("y"));
    await manager.stop();
    expect(registersTo(provider).filter((r) => r.getHeader("Expires") === "0").map((r) => r.uri.host).sort()).toEqual(["example.com", "y.example.com"]);
  });

  test("a trunk whose provider hangs does not delay another", async () => {
    const slowAnswers = gate();
    const provider = fakeProvider(async (req) => {
      if (req.uri.host === "slow.example.com") {
        await slowAnswers.opened;
        return { kind: "timeout" };
      }
      return createResponse(req, 200, "OK", { headers: [["Expires", "600"]] });
    });
    const { manager } = manage(provider);
    manager.apply([trunk({ id: "slow", register: true, domain: "slow.example.com" }), trunk({ id: "fast", register: true })]);
    try {
      await until(() => manager.isAvailable("fast"), { what: () => manager.statuses() });
      // The slow provider has not answered at all (it cannot until the gate opens), and the fast
      // trunk is registered regardless.
      expect(registersTo(provider, "slow.example.com")).toHaveLength(1);
      expect(manager.status("slow")!.registration.state).toBe("registering");
    } finally {
      slowAnswers.open();
    }
  });

  test("serves the calls layer's trunk directory: list, resolved addresses, change notifications", async () => {
    const provider = fakeProvider(() => 200);
    const { manager } = manage(provider);
    const directory: TrunkDirectory = manager;
    let changes = 0;
    directory.onChange(() => changes++);
    manager.apply([trunk({ id: "a" }), trunk({ id: "b", domain: "b.example.com", enabled: false })]);
    expect(directory.list().map((t) => t.id)).toEqual(["a", "b"]);
    await until(() => directory.resolvedAddresses("a").length > 0);
    expect(directory.resolvedAddresses("a")).toEqual(["198.51.100.1"]);
    expect(directory.resolvedAddresses("unknown")).toEqual([]);
    expect(changes).toBeGreaterThanOrEqual(2);
    provider.resolver.resolve = async (domain, transport) => [{ transport, address: "203.0.113.77", port: 5060, domain }];
    manager.apply([trunk({ id: "a", domain: "moved.example.com" })]);
    await until(() => directory.resolvedAddresses("a")[0] === "203.0.113.77");
  });
});
