import { describe, expect, test } from "bun:test";
import {
  createResolver, isFailoverStatus, orderSrv, withFailover, ResolveError, srvName, type AddressRecord, type DnsBackend, type SrvRecord,
} from "../../src/sip/resolver.ts";

function dnsError(code: string): Error {
  return Object.assign(new Error(`query failed ${code}`), { code });
}

/** A zone in memory; counts the questions asked so caching can be observed. */
function stubDns(zone: { srv?: Record<string, SrvRecord[]>; a?: Record<string, AddressRecord[]>; aaaa?: Record<string, AddressRecord[]>; fail?: Record<string, string> }) {
  const asked: string[] = [];
  const answer = <T>(kind: string, table: Record<string, T[]> | undefined, name: string): Promise<T[]> => {
    asked.push(`${kind} ${name}`);
    const failure = zone.fail?.[`${kind} ${name}`];
    if (failure) return Promise.reject(dnsError(failure));
    const records = table?.[name];
    return records ? Promise.resolve(records) : Promise.reject(dnsError("ENOTFOUND"));
  };
  const backend: DnsBackend = {
    resolveSrv: (n) => answer("SRV", zone.srv, n),
    resolve4: (n) => answer("A", zone.a, n),
    resolve6: (n) => answer("AAAA", zone.aaaa, n),
  };
  return { backend, asked };
}

describe("RFC 3263 resolution", () => {
  test("IP literals skip DNS and take the transport's default port", async () => {
    const { backend, asked } = stubDns({});
    const r = createResolver({ backend });
    expect(await r.resolve("127.0.0.1", "udp")).toEqual([{ transport: "udp", address: "127.0.0.1", port: 5060, domain: "127.0.0.1" }]);
    expect(await r.resolve("[::1]", "tls")).toEqual([{ transport: "tls", address: "::1", port: 5061, domain: "::1" }]);
    expect(await r.resolve("10.0.0.1", "tcp", 5080)).toMatchObject([{ port: 5080 }]);
    expect(asked).toEqual([]);
  });

  test("an explicit port skips SRV and uses A then AAAA", async () => {
    const { backend, asked } = stubDns({ a: { "pbx.example.com": [{ address: "192.0.2.1", ttl: 60 }] }, aaaa: { "pbx.example.com": [{ address: "2001:db8::1", ttl: 60 }] } });
    const targets = await createResolver({ backend }).resolve("PBX.example.com.", "tcp", 5070);
    expect(targets.map((t) => `${t.address}:${t.port}/${t.transport}`)).toEqual(["192.0.2.1:5070/tcp", "2001:db8::1:5070/tcp"]);
    expect(asked).toEqual(["A pbx.example.com", "AAAA pbx.example.com"]);
  });

  test("SRV names per transport", () => {
    expect(srvName("example.com", "udp")).toBe("_sip._udp.example.com");
    expect(srvName("example.com", "tcp")).toBe("_sip._tcp.example.com");
    expect(srvName("example.com", "tls")).toBe("_sips._tcp.example.com");
  });

  test("SRV targets in priority order, each expanded to its addresses and SRV port", async () => {
    const { backend } = stubDns({
      srv: { "_sips._tcp.example.com": [
        { name: "backup.example.com", port: 5071, priority: 20, weight: 0 },
        { name: "main.example.com.", port: 5061, priority: 10, weight: 5 },
      ] },
      a: { "main.example.com": [{ address: "192.0.2.10", ttl: 60 }, { address: "192.0.2.11", ttl: 60 }], "backup.example.com": [{ address: "192.0.2.20", ttl: 60 }] },
    });
    const targets = await createResolver({ backend }).resolve("example.com", "tls");
    expect(targets).toEqual([
      { transport: "tls", address: "192.0.2.10", port: 5061, domain: "example.com" },
      { transport: "tls", address: "192.0.2.11", port: 5061, domain: "example.com" },
      { transport: "tls", address: "192.0.2.20", port: 5071, domain: "example.com" },
    ]);
  });

  test("no SRV records → A/AAAA of the domain at the default port", async () => {
    const { backend } = stubDns({ a: { "example.net": [{ address: "198.51.100.7", ttl: 60 }] } });
    expect(await createResolver({ backend }).resolve("example.net", "udp")).toEqual([{ transport: "udp", address: "198.51.100.7", port: 5060, domain: "example.net" }]);
  });

  test("an SRV target whose address lookup fails is skipped, the rest still used", async () => {
    const { backend } = stubDns({
      srv: { "_sip._udp.example.org": [{ name: "gone.example.org", port: 5060, priority: 1, weight: 1 }, { name: "ok.example.org", port: 5062, priority: 2, weight: 1 }] },
      a: { "ok.example.org": [{ address: "203.0.113.5", ttl: 60 }] },
    });
    expect(await createResolver({ backend }).resolve("example.org", "udp")).toMatchObject([{ address: "203.0.113.5", port: 5062 }]);
  });

  test("unresolvable domains reject with a ResolveError naming the domain", async () => {
    const { backend } = stubDns({});
    const err = await createResolver({ backend }).resolve("nowhere.invalid", "udp").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ResolveError);
    expect((err as ResolveError).message).toContain("nowhere.invalid has no A/AAAA records");
    expect((err as ResolveError).code).toBe("ENOTFOUND");
  });

  test("a DNS server failure is reported as such, not as a missing name", async () => {
    const { backend } = stubDns({ fail: { "SRV _sip._udp.example.com": "ETIMEOUT" } });
    const err = await createResolver({ backend }).resolve("example.com", "udp").catch((e: unknown) => e);
    expect((err as ResolveError).code).toBe("ETIMEOUT");
  });

  test("SRV target '.' means the service is not offered (RFC 2782)", async () => {
    const { backend } = stubDns({ srv: { "_sip._tcp.example.com": [{ name: ".", port: 0, priority: 0, weight: 0 }] } });
    const err = await createResolver({ backend }).resolve("example.com", "tcp").catch((e: unknown) => e);
    expect((err as ResolveError).code).toBe("ENOSERVICE");
  });

  test("answers are cached for their TTL, negative answers briefly", async () => {
    let clock = 1_000_000;
    const { backend, asked } = stubDns({ a: { "pbx.example.com": [{ address: "192.0.2.1", ttl: 10 }] } });
    const r = createResolver({ backend, now: () => clock, families: ["ipv4"] });
    await r.resolve("pbx.example.com", "udp", 5060);
    await r.resolve("pbx.example.com", "udp", 5060);
    expect(asked).toEqual(["A pbx.example.com"]);
    clock += 10_001;
    await r.resolve("pbx.example.com", "udp", 5060);
    expect(asked).toEqual(["A pbx.example.com", "A pbx.example.com"]);

    await r.resolve("missing.example.com", "udp", 5060).catch(() => undefined);
    await r.resolve("missing.example.com", "udp", 5060).catch(() => undefined);
    expect(asked.filter((q) => q === "A missing.example.com")).toHaveLength(1);
    clock += 31_000;
    await r.resolve("missing.example.com", "udp", 5060).catch(() => undefined);
    expect(asked.filter((q) => q === "A missing.example.com")).toHaveLength(2);
  });

  test("DNS timeouts are not cached", async () => {
    const { backend, asked } = stubDns({ fail: { "A flaky.example.com": "ETIMEOUT" } });
    const r = createResolver({ backend, families: ["ipv4"] });
    await r.resolve("flaky.example.com", "udp", 5060).catch(() => undefined);
    await r.resolve("flaky.example.com", "udp", 5060).catch(() => undefined);
    expect(asked).toEqual(["A flaky.example.com", "A flaky.example.com"]);
  });
});

describe("RFC 2782 weighted ordering", () => {
  const rec = (name: string, priority: number, weight: number): SrvRecord => ({ name, port: 5060, priority, weight });

  test("lower priority always first regardless of weight", () => {
    for (let i = 0; i < 50; i++) {
      const order = orderSrv([rec("b", 20, 1000), rec("a", 10, 0), rec("c", 30, 1)]).map((r) => r.name);
      expect(order).toEqual(["a", "b", "c"]);
    }
  });

  test("within a priority the first pick follows the weights", () => {
    let seed = 42;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const firsts = new Map<string, number>();
    const runs = 4000;
    for (let i = 0; i < runs; i++) {
      const first = orderSrv([rec("heavy", 1, 75), rec("light", 1, 25), rec("zero", 1, 0)], random)[0]!.name;
      firsts.set(first, (firsts.get(first) ?? 0) + 1);
    }
    expect((firsts.get("heavy") ?? 0) / runs).toBeCloseTo(0.75, 1);
    expect((firsts.get("light") ?? 0) / runs).toBeCloseTo(0.25, 1);
    expect(firsts.get("zero") ?? 0).toBeLessThan(runs * 0.01);
  });

  test("every record is placed exactly once, zero weights included", () => {
    const order = orderSrv([rec("a", 1, 0), rec("b", 1, 0), rec("c", 1, 5), rec("d", 2, 0)], () => 0.5).map((r) => r.name);
    expect(order.slice().sort()).toEqual(["a", "b", "c", "d"]);
    expect(order[3]).toBe("d");
  });
});

describe("failover across targets", () => {
  const targets = [5060, 5062, 5064].map((port) => ({ transport: "udp" as const, address: "127.0.0.1", port, domain: "x" }));
  const failsOver = (o: { status?: number; timeout?: boolean }) => o.timeout === true || isFailoverStatus(o.status ?? 0);

  test("a timeout or 503 moves to the next target; the first real answer stops", async () => {
    const tried: number[] = [];
    const outcomes = new Map([[5060, { timeout: true }], [5062, { status: 503 }], [5064, { status: 200 }]]);
    const done = await withFailover(targets, async (t) => { tried.push(t.port); return outcomes.get(t.port)!; }, failsOver);
    expect(tried).toEqual([5060, 5062, 5064]);
    expect(done).toEqual({ outcome: { status: 200 }, target: targets[2]! });
  });

  test("a final non-503 error (e.g. 404) does not fail over", async () => {
    const tried: number[] = [];
    const done = await withFailover(targets, async (t) => { tried.push(t.port); return { status: 404 }; }, failsOver);
    expect(tried).toEqual([5060]);
    expect(done?.outcome).toEqual({ status: 404 });
  });

  test("all targets failing returns the last outcome", async () => {
    const done = await withFailover(targets, async () => ({ status: 503 }), failsOver);
    expect(done?.target.port).toBe(5064);
    expect(await withFailover([], async () => ({}), failsOver)).toBeUndefined();
  });
});
