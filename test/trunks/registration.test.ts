// Registration client against an in-memory provider, on a fake clock (jest.useFakeTimers fakes
// setTimeout and Date.now): every delay is checked exactly ("no retry before 5 s" at 4 999 ms, the
// refresh at 500 ms to the millisecond), not after sleeps a loaded machine stretches, and a stalled
// machine cannot let a 1 s binding lapse before its refresh.
import { afterEach, beforeEach, describe, expect, jest, test } from "bun:test";
import { parseAuthParams } from "../../src/sip/digest.ts";
import { createResponse, SipRequest } from "../../src/sip/message.ts";
import { ResolveError } from "../../src/sip/resolver.ts";
import { grantedExpires, Registration, type RegistrationConfig, type RegistrationStatus } from "../../src/trunks/registration.ts";
import { digestRegistrar, fakeProvider, type FakeProvider } from "./fakeRegistrar.ts";

const config: RegistrationConfig = {
  trunkId: "t1",
  address: { domain: "example.com", transport: "udp", tlsVerify: true },
  credentials: { username: "alice", password: "right" },
  expires: 3600,
};

const fastTiming = { backoff: { baseMs: 20, capMs: 80 }, failedRetryMs: 5_000, unregisterTimeoutMs: 500 };

/** Lets every promise chain started so far run out (the provider answers in microtasks; setImmediate is not faked). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Moves the fake clock on by `ms`, one millisecond at a time, letting the work each timer starts run
 * before the next: a timer armed by that work is placed where a real clock would place it. A 0 ms
 * timer (the first attempt after start()) is due after 1 ms, as in Node.
 */
async function elapse(ms: number): Promise<void> {
  await settle();
  for (let i = 0; i < ms; i++) {
    jest.advanceTimersByTime(1);
    await settle();
  }
}

/** The fake-clock form of until(): moves the clock on until `check` holds, at most `maxMs`; returns the time taken. */
async function elapseUntil(check: () => boolean, maxMs: number, what?: () => unknown): Promise<number> {
  const began = Date.now();
  await elapse(0);
  while (!check()) {
    if (Date.now() - began >= maxMs) throw new Error(`not reached within ${maxMs} ms of the fake clock: ${JSON.stringify(what?.())}`);
    await elapse(1);
  }
  return Date.now() - began;
}

function start(provider: FakeProvider, cfg: RegistrationConfig = config) {
  const transitions: RegistrationStatus[] = [];
  const outcomes: string[] = [];
  const reg = new Registration(cfg, {
    port: provider.port, resolver: provider.resolver, timing: fastTiming,
    onStatus: (s) => transitions.push(s), onOutcome: (o) => outcomes.push(o),
  });
  reg.start();
  return { reg, transitions, outcomes };
}

const registers = (p: FakeProvider) => p.requests.map((r) => r.req).filter((r) => r.method === "REGISTER");
const authOf = (req: SipRequest) => {
  const v = req.getHeader("Authorization");
  if (!v) return undefined;
  const parsed = parseAuthParams(v);
  return "error" in parsed ? undefined : parsed.params;
};

describe("trunk registration", () => {
  beforeEach(() => {
    jest.useFakeTimers();
  });
  afterEach(() => {
    jest.useRealTimers();
  });

  test("answers the challenge, registers with the granted expiry, Contact and Expires as asked", async () => {
    const registrar = digestRegistrar({ password: "right", qop: "auth", grant: () => 1800 });
    const provider = fakeProvider((req) => registrar.handler(req));
    const { reg, transitions, outcomes } = start(provider);
    await elapse(1);
    expect(reg.status.state).toBe("registered");
    const [first, second] = registers(provider);
    expect(first!.uri.host).toBe("example.com");
    expect(first!.uri.user).toBeUndefined();
    expect(first!.to.uri.user).toBe("alice");
    expect(first!.getHeader("Expires")).toBe("3600");
    expect(first!.contacts[0]!.uri.host).toBe("192.0.2.50");
    expect(authOf(first!)).toBeUndefined();
    expect(second!.callId).toBe(first!.callId);
    expect(second!.cseq.seq).toBe(first!.cseq.seq + 1);
    expect(second!.from.params.get("tag")).toBe(first!.from.params.get("tag")!);
    // The clock stood still since the 200: the binding lapses exactly 1800 s from now.
    expect(Date.parse(reg.status.expiresAt!)).toBe(Date.now() + 1800_000);
    expect(reg.status).toMatchObject({ lastError: null, lastStatusCode: 200 });
    expect(transitions.map((t) => t.state)).toEqual(["registering", "registered"]);
    expect(outcomes).toEqual(["ok"]);
    await reg.stop({ unregister: false, finalState: "unregistered" });
  });

  test("authId is the digest username, the AOR keeps the username", async () => {
    const registrar = digestRegistrar({ password: "right" });
    const provider = fakeProvider((req) => registrar.handler(req));
    const { reg } = start(provider, { ...config, credentials: { username: "alice", password: "right", authId: "acct-991" } });
    await elapse(1);
    expect(reg.status.state).toBe("registered");
    expect(registrar.usernames).toEqual(["acct-991"]);
    expect(registers(provider)[1]!.from.uri.user).toBe("alice");
    await reg.stop({ unregister: false, finalState: "unregistered" });
  });

  test("refreshes before a short expiry lapses: same Call-ID, increasing CSeq, re-used credentials", async () => {
    const registrar = digestRegistrar({ password: "right", qop: "auth", grant: () => 1 });
    const provider = fakeProvider((req) => registrar.handler(req));
    const { reg } = start(provider);
    await elapse(1);
    expect(registers(provider)).toHaveLength(2);
    // A 1 s grant is refreshed after 500 ms (half, at least 0.5 s), each time, and never lapses.
    await elapse(499);
    expect(registers(provider)).toHaveLength(2);
    await elapse(1);
    expect(registers(provider)).toHaveLength(3);
    expect(reg.status.state).toBe("registered");
    await elapse(499);
    expect(registers(provider)).toHaveLength(3);
    await elapse(1);
    const all = registers(provider);
    expect(new Set(all.map((r) => r.callId)).size).toBe(1);
    const seqs = all.map((r) => r.cseq.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(seqs.length);
    // After the first handshake, refreshes carry credentials up front with nc counting up.
    const refresh = authOf(all[2]!)!;
    expect(refresh.get("nonce")).toBe(authOf(all[1]!)!.get("nonce")!);
    expect(refresh.get("nc")).toBe("00000002");
    expect(all.length).toBe(4);
    expect(reg.status.state).toBe("registered");
    await reg.stop({ unregister: false, finalState: "unregistered" });
  });

  test("a refresh challenged with a new nonce is answered and stays registered", async () => {
    const registrar = digestRegistrar({ password: "right", qop: "auth", grant: () => 1 });
    let forget = false;
    const provider = fakeProvider((req) => {
      // The registrar forgets its nonces after the first binding (e.g. it restarted): it challenges the refresh.
      if (forget && authOf(req)?.get("nc") === "00000002") return createResponse(req, 401, "Unauthorized", { headers: [["WWW-Authenticate", 'Digest realm="example.com", nonce="fresh", qop="auth"']] });
      return registrar.handler(req);
    });
    const { reg, transitions } = start(provider);
    await elapse(1);
    expect(reg.status.state).toBe("registered");
    forget = true;
    const before = registers(provider).length;
    await elapse(500); // the refresh
    // The refresh (nc 2) was challenged, answered, and in the end accepted, all within that
    // millisecond of the fake clock: the binding never lapsed or failed.
    expect(registers(provider).length).toBeGreaterThanOrEqual(before + 3);
    expect(authOf(registers(provider).at(-1)!)).toBeDefined();
    expect(reg.status.state).toBe("registered");
    // Every status change since the first binding (the refresh's new expiry) kept it registered.
    expect(transitions.map((t) => t.state)).toEqual(["registering", "registered", "registered"]);
    await reg.stop({ unregister: false, finalState: "unregistered" });
  });

  test("wrong password → failed with the reason, one answer per challenge, no tight loop", async () => {
    const registrar = digestRegistrar({ password: "other" });
    const provider = fakeProvider((req) => registrar.handler(req));
    const { reg, transitions, outcomes } = start(provider);
    await elapse(1);
    expect(reg.status.state).toBe("failed");
    expect(registers(provider)).toHaveLength(2);
    expect(reg.status.lastStatusCode).toBe(401);
    expect(reg.status.lastError).toContain("credentials rejected");
    expect(transitions.at(-1)!.state).toBe("failed");
    expect(outcomes).toEqual(["auth_failed"]);
    // No tight loop: the only retry is the slow one, failedRetryMs later and not a millisecond sooner.
    await elapse(fastTiming.failedRetryMs - 1);
    expect(registers(provider)).toHaveLength(2);
    await elapse(1);
    expect(registers(provider).length).toBeGreaterThan(2);
    await reg.stop({ unregister: false, finalState: "unregistered" });
  });

  test("403 is a refusal: failed, retried only after the slow retry delay", async () => {
    const provider = fakeProvider(() => 403);
    const { reg } = start(provider);
    await elapse(1);
    expect(reg.status.state).toBe("failed");
    expect(registers(provider)).toHaveLength(1);
    expect(reg.status).toMatchObject({ lastStatusCode: 403, lastError: "403 Forbidden" });
    await elapse(fastTiming.failedRetryMs - 1);
    expect(registers(provider)).toHaveLength(1);
    await elapse(1);
    expect(registers(provider)).toHaveLength(2);
    await reg.stop({ unregister: false, finalState: "unregistered" });
  });

  test("423 Interval Too Brief → retries with Min-Expires", async () => {
    const provider = fakeProvider((req) => {
      if ((req.expires ?? 0) < 7200) return createResponse(req, 423, "Interval Too Brief", { headers: [["Min-Expires", "7200"]] });
      return createResponse(req, 200, "OK", { headers: [["Expires", "7200"]] });
    });
    const { reg } = start(provider);
    await elapse(1);
    expect(reg.status.state).toBe("registered");
    expect(registers(provider).map((r) => r.getHeader("Expires"))).toEqual(["3600", "7200"]);
    await reg.stop({ unregister: false, finalState: "unregistered" });
  });

  test("timeouts and 5xx back off exponentially with jitter, then register", async () => {
    const times: number[] = [];
    let calls = 0;
    const provider = fakeProvider((req) => {
      times.push(Date.now());
      calls++;
      if (calls === 1) return { kind: "timeout" };
      if (calls === 2) return 500;
      if (calls === 3) return { kind: "transportError", error: new Error("connection refused") };
      return createResponse(req, 200, "OK", { headers: [["Expires", "600"]] });
    });
    const { reg, outcomes } = start(provider);
    await elapse(1);
    expect(reg.status.state).toBe("failed");
    expect(reg.status.lastError).toBe("no response from udp:198.51.100.1:5060 (timeout)");
    await elapseUntil(() => reg.status.state === "registered", 1000, () => reg.status);
    expect(outcomes).toEqual(["timeout", "server_error", "network", "ok"]);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    // Base 20 ms doubling, each delay drawn from the upper half of its step: 10-20, 20-40, 40-80 ms.
    expect(gaps).toHaveLength(3);
    gaps.forEach((gap, i) => {
      const step = 20 * 2 ** i;
      expect({ retry: i + 1, gap, atLeast: gap >= step / 2, atMost: gap <= step }).toEqual({ retry: i + 1, gap, atLeast: true, atMost: true });
    });
    expect(reg.status.lastError).toBeNull();
    await reg.stop({ unregister: false, finalState: "unregistered" });
  });

  test("503 with Retry-After waits that long", async () => {
    let calls = 0;
    const provider = fakeProvider((req) => (++calls === 1 ? createResponse(req, 503, "Service Unavailable", { headers: [["Retry-After", "1"]] }) : 200));
    const { reg } = start(provider);
    await elapse(1);
    expect(reg.status.state).toBe("failed");
    await elapse(999);
    expect(calls).toBe(1);
    await elapse(1);
    expect(calls).toBe(2);
    expect(reg.status.state).toBe("registered");
    await reg.stop({ unregister: false, finalState: "unregistered" });
  });

  test("a trunk without a username is refused before anything is sent", async () => {
    const provider = fakeProvider(() => 200);
    const { reg } = start(provider, { ...config, credentials: { username: "", password: "pw" } });
    await elapse(1);
    expect(reg.status.state).toBe("failed");
    expect(reg.status.lastError).toBe("the trunk has no username to register (address of record)");
    expect(provider.requests).toHaveLength(0);
    await reg.stop({ unregister: false, finalState: "unregistered" });
  });

  test("an unresolvable domain fails with the DNS reason", async () => {
    const provider = fakeProvider(() => 200);
    provider.resolver.resolve = async () => { throw new ResolveError("nope.invalid has no A/AAAA records", "nope.invalid", "ENOTFOUND"); };
    const { reg } = start(provider);
    await elapse(1);
    expect(reg.status.state).toBe("failed");
    expect(reg.status.lastError).toBe("DNS: nope.invalid has no A/AAAA records");
    expect(provider.requests).toHaveLength(0);
    await reg.stop({ unregister: false, finalState: "unregistered" });
  });

  test("stop un-registers with expires 0 on the same Call-ID, with credentials", async () => {
    const registrar = digestRegistrar({ password: "right", qop: "auth", grant: (req) => req.expires ?? 0 });
    const provider = fakeProvider((req) => registrar.handler(req));
    const { reg } = start(provider);
    await elapse(1);
    expect(reg.status.state).toBe("registered");
    await reg.stop({ unregister: true, finalState: "disabled" });
    const last = registers(provider).at(-1)!;
    expect(last.getHeader("Expires")).toBe("0");
    expect(last.callId).toBe(registers(provider)[0]!.callId);
    expect(authOf(last)).toBeDefined();
    expect(reg.status.state).toBe("disabled");
  });

  test("stop waits no longer than its deadline when the registrar never answers the un-REGISTER", async () => {
    let registered = false;
    const provider = fakeProvider(async (req) => {
      if (!registered) { registered = true; return createResponse(req, 200, "OK", { headers: [["Expires", "600"]] }); }
      await Bun.sleep(5_000);
      return { kind: "timeout" };
    });
    const { reg } = start(provider);
    await elapse(1);
    expect(reg.status.state).toBe("registered");
    let stopped = false;
    const stopping = reg.stop({ unregister: true, finalState: "unregistered", deadline: Date.now() + 100 }).then(() => {
      stopped = true;
    });
    await elapse(0);
    expect(registers(provider).at(-1)!.getHeader("Expires")).toBe("0"); // the un-REGISTER went out
    // It waits for the answer until the deadline (100 ms), not the un-register timeout (500 ms).
    await elapse(99);
    expect(stopped).toBe(false);
    await elapse(1);
    expect(stopped).toBe(true);
    await stopping;
    expect(reg.status.state).toBe("unregistered");
  });
});

describe("granted expiry", () => {
  const ours = { scheme: "sip", user: "alice", host: "192.0.2.50", port: 5099, params: new Map(), headers: new Map() };
  const req = () => createResponse(new SipRequest("REGISTER", ours), 200);
  test("our Contact's expires parameter wins over the Expires header", () => {
    const res = req();
    res.addHeader("Contact", "<sip:bob@10.0.0.9>;expires=99, <sip:alice@192.0.2.50:5099>;expires=120");
    res.addHeader("Expires", "300");
    expect(grantedExpires(res, ours, 3600)).toBe(120);
  });
  test("Expires header, then the requested value", () => {
    const res = req();
    res.addHeader("Expires", "300");
    expect(grantedExpires(res, ours, 3600)).toBe(300);
    expect(grantedExpires(req(), ours, 3600)).toBe(3600);
  });
  test("a single rewritten Contact (NAT) is taken as ours", () => {
    const res = req();
    res.addHeader("Contact", "<sip:alice@203.0.113.9:41000>;expires=60");
    expect(grantedExpires(res, ours, 3600)).toBe(60);
  });
});
