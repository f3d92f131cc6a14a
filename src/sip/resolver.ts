// Locating SIP servers (RFC 3263 §4) for a domain and a transport that is already known (the trunk
// says which), so the NAPTR step of §4.1 is not needed: SRV (RFC 2782 ordering) then A/AAAA, with
// an explicit port or an IP literal skipping SRV (§4.2). Answers are cached for their TTL. The DNS
// backend is injectable; tests pass a stub, production uses node:dns/promises.
//
// Usage:
//   const resolver = createResolver();
//   const targets = await resolver.resolve("sip.example.com", "udp");   // throws ResolveError
//   const done = await withFailover(targets, (t) => send(t), (outcome) => timeout or isFailoverStatus(status));
import { Resolver as NodeDnsResolver } from "node:dns/promises";
import type { TransportName } from "./message.ts";
import { defaultPort, stripBrackets, type Endpoint } from "./transport.ts";

export interface SrvRecord { name: string; port: number; priority: number; weight: number; ttl?: number }
export interface AddressRecord { address: string; ttl: number }

/** The DNS questions the resolver asks. Rejections carry node's `code` (ENOTFOUND, ENODATA, ...). */
export interface DnsBackend {
  resolveSrv(name: string): Promise<SrvRecord[]>;
  resolve4(name: string): Promise<AddressRecord[]>;
  resolve6(name: string): Promise<AddressRecord[]>;
}

/** A target to try, in order. `domain` is the name a TLS certificate must match (RFC 5922 §4). */
export interface ResolvedTarget extends Endpoint {
  domain: string;
}

export interface Resolver {
  /** RFC 3263 ordered targets; throws ResolveError when there are none. */
  resolve(domain: string, transport: TransportName, port?: number): Promise<ResolvedTarget[]>;
}

export class ResolveError extends Error {
  constructor(message: string, readonly domain: string, readonly code: string) {
    super(message);
    this.name = "ResolveError";
  }
}

/** RFC 3263 §4.3: a timeout, a transport error or a 503 sends the request to the next target. */
export function isFailoverStatus(status: number): boolean {
  return status === 503;
}

/**
 * Tries `targets` in order (RFC 3263 §4.3) until an attempt's outcome does not call for failover;
 * returns that outcome, or the last one when every target failed over. Undefined for no targets.
 */
export async function withFailover<T>(targets: readonly ResolvedTarget[], attempt: (target: ResolvedTarget) => Promise<T>,
  failsOver: (outcome: T) => boolean): Promise<{ outcome: T; target: ResolvedTarget } | undefined> {
  let last: { outcome: T; target: ResolvedTarget } | undefined;
  for (const target of targets) {
    last = { outcome: await attempt(target), target };
    if (!failsOver(last.outcome)) return last;
  }
  return last;
}

/** node:dns/promises gives no TTL for SRV answers; they are kept this long. */
const srvDefaultTtlSeconds = 300;
/** Negative answers (no such name / no records) are kept briefly so a typo is not hammered. */
const negativeTtlSeconds = 30;
/** Upper bound so a huge TTL cannot pin a stale answer for days. */
const maxTtlSeconds = 86_400;

export function nodeDnsBackend(servers?: string[]): DnsBackend {
  const dns = new NodeDnsResolver({ timeout: 2_000, tries: 2 });
  if (servers) dns.setServers(servers);
  return {
    resolveSrv: (name) => dns.resolveSrv(name),
    resolve4: (name) => dns.resolve4(name, { ttl: true }),
    resolve6: (name) => dns.resolve6(name, { ttl: true }),
  };
}

export function isIpLiteral(host: string): boolean {
  const h = stripBrackets(host);
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(h) || (h.includes(":") && /^[0-9a-fA-F:.]+$/.test(h));
}

/** RFC 3263 §4.1 / RFC 3261 §26.2: sips (TLS) uses _sips._tcp, others _sip._<transport>. */
export function srvName(domain: string, transport: TransportName): string {
  return transport === "tls" ? `_sips._tcp.${domain}` : `_sip._${transport}.${domain}`;
}

/**
 * RFC 2782 ordering: ascending priority; within a priority, a weighted random draw repeated
 * until every record is placed (zero-weight records first so they keep a small chance).
 */
export function orderSrv(records: SrvRecord[], random: () => number = Math.random): SrvRecord[] {
  const byPriority = new Map<number, SrvRecord[]>();
  for (const r of records) {
    const group = byPriority.get(r.priority) ?? [];
    group.push(r);
    byPriority.set(r.priority, group);
  }
  const ordered: SrvRecord[] = [];
  for (const priority of [...byPriority.keys()].sort((a, b) => a - b)) {
    const pool = byPriority.get(priority)!.slice().sort((a, b) => (a.weight === 0 ? 0 : 1) - (b.weight === 0 ? 0 : 1));
    while (pool.length > 0) {
      const total = pool.reduce((sum, r) => sum + r.weight, 0);
      const draw = random() * total;
      let running = 0;
      let chosen = pool.length - 1;
      for (let i = 0; i < pool.length; i++) {
        running += pool[i]!.weight;
        if (running >= draw) { chosen = i; break; }
      }
      ordered.push(pool.splice(chosen, 1)[0]!);
    }
  }
  return ordered;
}

interface CacheEntry<T> { expires: number; value: T | ResolveError }

function errorCode(err: unknown): string {
  return typeof err === "object" && err !== null && "code" in err && typeof err.code === "string" ? err.code : "EDNS";
}

/** Codes meaning "the name has no such records" (as opposed to the DNS not answering). */
function isNoData(code: string): boolean {
  return code === "ENOTFOUND" || code === "ENODATA" || code === "NXDOMAIN" || code === "ENONAME";
}

export function createResolver(o: { backend?: DnsBackend; now?: () => number; random?: () => number; families?: ("ipv4" | "ipv6")[] } = {}): Resolver {
  const backend = o.backend ?? nodeDnsBackend();
  const now = o.now ?? Date.now;
  const random = o.random ?? Math.random;
  const families = o.families ?? ["ipv4", "ipv6"];
  const cache = new Map<string, CacheEntry<unknown>>();

  async function cached<T>(key: string, query: () => Promise<T>, ttlOf: (v: T) => number): Promise<T> {
    const hit = cache.get(key) as CacheEntry<T> | undefined;
    if (hit && hit.expires > now()) {
      if (hit.value instanceof ResolveError) throw hit.value;
      return hit.value;
    }
    try {
      const value = await query();
      cache.set(key, { value, expires: now() + Math.min(ttlOf(value), maxTtlSeconds) * 1000 });
      return value;
    } catch (err) {
      const code = errorCode(err);
      const failure = new ResolveError(`${key}: ${err instanceof Error ? err.message : String(err)}`, key, code);
      // Only definite "no such record" answers are cached; a DNS timeout is retried next time.
      if (isNoData(code)) cache.set(key, { value: failure, expires: now() + negativeTtlSeconds * 1000 });
      throw failure;
    }
  }

  const minTtl = (records: { ttl?: number }[], fallback: number) =>
    records.length === 0 ? negativeTtlSeconds : Math.min(...records.map((r) => r.ttl ?? fallback));

  async function addresses(host: string): Promise<string[]> {
    const found: string[] = [];
    const errors: ResolveError[] = [];
    for (const family of families) {
      const query = family === "ipv4" ? () => backend.resolve4(host) : () => backend.resolve6(host);
      try {
        const records = await cached(`${family === "ipv4" ? "A" : "AAAA"} ${host}`, query, (r) => minTtl(r, negativeTtlSeconds));
        found.push(...records.map((r) => r.address));
      } catch (err) {
        if (err instanceof ResolveError) errors.push(err);
        else throw err;
      }
    }
    if (found.length > 0) return found;
    const hard = errors.find((e) => !isNoData(e.code));
    if (hard) throw new ResolveError(`DNS lookup of ${host} failed (${hard.code})`, host, hard.code);
    throw new ResolveError(`${host} has no A/AAAA records`, host, "ENOTFOUND");
  }

  async function srv(domain: string, transport: TransportName): Promise<SrvRecord[]> {
    try {
      return await cached(`SRV ${srvName(domain, transport)}`, () => backend.resolveSrv(srvName(domain, transport)),
        (r) => minTtl(r, srvDefaultTtlSeconds));
    } catch (err) {
      // RFC 3263 §4.2: no SRV records → A/AAAA of the domain itself at the default port.
      if (err instanceof ResolveError && isNoData(err.code)) return [];
      throw err;
    }
  }

  return {
    async resolve(rawDomain, transport, port) {
      const domain = stripBrackets(rawDomain.trim()).replace(/\.$/, "").toLowerCase();
      if (domain === "") throw new ResolveError("empty domain", rawDomain, "EBADNAME");
      if (isIpLiteral(domain)) return [{ transport, address: domain, port: port ?? defaultPort(transport), domain }];
      if (port !== undefined) {
        return (await addresses(domain)).map((address) => ({ transport, address, port, domain }));
      }
      const records = await srv(domain, transport);
      if (records.length === 0) {
        return (await addresses(domain)).map((address) => ({ transport, address, port: defaultPort(transport), domain }));
      }
      // RFC 2782: a single record with target "." means the service is decidedly not available.
      if (records.length === 1 && (records[0]!.name === "." || records[0]!.name === "")) {
        throw new ResolveError(`${srvName(domain, transport)} says the service is not available`, domain, "ENOSERVICE");
      }
      const targets: ResolvedTarget[] = [];
      let lastError: ResolveError | undefined;
      for (const record of orderSrv(records, random)) {
        try {
          const host = record.name.replace(/\.$/, "");
          for (const address of await addresses(host)) targets.push({ transport, address, port: record.port, domain });
        } catch (err) {
          if (err instanceof ResolveError) lastError = err;
          else throw err;
        }
      }
      if (targets.length === 0) throw lastError ?? new ResolveError(`no usable SRV target for ${domain}`, domain, "ENOTFOUND");
      return targets;
    },
  };
}
