// Following a 301/302 to an outbound INVITE (RFC 3261 §8.1.3.4): the response's Contacts are new
// targets, tried in q-order (§20.10: highest q first, the order given among equals). The trunk's
// policy says where a redirect may lead (`sameTrunk`: only the trunk's domain or its addresses;
// `any`; `off`: a 3xx fails the call), at most `maxHops` redirects are followed, and a target already
// tried is a loop. Each Contact looked at is kept in the chain the call record shows.
import { formatUri, type NameAddr, type SipResponse, type SipUri, type TransportName } from "../sip/message.ts";
import type { ResolvedTarget, Resolver } from "../sip/resolver.ts";
import type { RedirectHop } from "../store/calls.ts";
import type { EndReason } from "./call.ts";

export type RedirectPolicy = "sameTrunk" | "any" | "off";


export interface RedirectTarget {
  uri: SipUri;
  destinations: ResolvedTarget[];
}

export interface RedirectScope {
  policy: RedirectPolicy;
  maxHops: number;
  /** The trunk's transport, for a Contact that names none. */
  transport: TransportName;
  trunkDomain: string;
  /** Whether an address is the trunk's (its domain's resolved addresses or its allowedAddresses). */
  isTrunkAddress(address: string): boolean;
  resolver: Resolver;
}

/** What to do after a final response: try `next`, end the call with `end`, or finish as usual (undefined). */
export type RedirectStep = { next: RedirectTarget } | { end: EndReason; sipStatus: number } | undefined;

const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302]);

export class RedirectFollower {
  private readonly tried = new Set<string>();
  private readonly chain: RedirectHop[] = [];
  /** Targets from earlier 3xx not yet tried: the next one is tried should the current one fail. */
  private pending: RedirectTarget[] = [];
  private hops = 0;
  private current: SipUri;

  constructor(
    private readonly scope: RedirectScope,
    firstTarget: SipUri,
  ) {
    this.current = firstTarget;
    this.tried.add(targetKey(firstTarget));
  }

  /** The chain so far (for the call record). */
  get hopsSeen(): readonly RedirectHop[] {
    return this.chain;
  }

  /** Called with each final response of the current target (the caller stops on a 2xx and a cancelled call). */
  async afterFinal(response: SipResponse): Promise<RedirectStep> {
    if (response.status < 300) return undefined;
    if (!REDIRECT_STATUSES.has(response.status) || this.scope.policy === "off") return this.tryPending();
    const from = formatUri(this.current);
    const contacts = inQOrder(response.contacts);
    if (this.hops >= this.scope.maxHops) {
      for (const uri of contacts) this.chain.push({ from, status: response.status, to: formatUri(uri), outcome: "too_many_redirects" });
      return { end: "too_many_redirects", sipStatus: response.status };
    }
    this.hops++;
    const followed: RedirectTarget[] = [];
    let forbidden = false;
    let loop = false;
    for (const uri of contacts) {
      const key = targetKey(uri);
      const hop = (outcome: RedirectHop["outcome"]) => this.chain.push({ from, status: response.status, to: formatUri(uri), outcome });
      if (this.tried.has(key) || followed.some((t) => targetKey(t.uri) === key)) {
        loop = true;
        hop("loop");
        continue;
      }
      const destinations = await this.resolve(uri);
      if (destinations === undefined) {
        hop("unresolvable");
        continue;
      }
      if (!this.allowed(uri, destinations)) {
        forbidden = true;
        hop("forbidden");
        continue;
      }
      hop("followed");
      followed.push({ uri, destinations });
    }
    this.pending = [...followed, ...this.pending];
    if (this.pending.length > 0) return this.tryPending();
    if (forbidden) return { end: "redirect_forbidden", sipStatus: response.status };
    if (loop) return { end: "redirect_loop", sipStatus: response.status };
    return undefined;
  }

  private tryPending(): RedirectStep {
    const next = this.pending.shift();
    if (!next) return undefined;
    this.tried.add(targetKey(next.uri));
    this.current = next.uri;
    return { next };
  }

  private resolve(uri: SipUri): Promise<ResolvedTarget[] | undefined> {
    return resolveTarget(uri, this.scope);
  }

  private allowed(uri: SipUri, destinations: ResolvedTarget[]): boolean {
    return this.scope.policy === "any" || onTrunk(uri, destinations, this.scope);
  }
}

/** Where a sip:/sips: URI leads (RFC 3263), over its own transport or else the trunk's; undefined when it leads nowhere. */
export async function resolveTarget(uri: SipUri, scope: Pick<RedirectScope, "transport" | "resolver">): Promise<ResolvedTarget[] | undefined> {
  if (uri.scheme !== "sip" && uri.scheme !== "sips") return undefined;
  if (!uri.host) return undefined;
  const param = uri.params.get("transport")?.toLowerCase();
  const transport: TransportName = uri.scheme === "sips" ? "tls" : param === "udp" || param === "tcp" || param === "tls" ? param : scope.transport;
  try {
    return await scope.resolver.resolve(uri.host, transport, uri.port);
  } catch {
    return undefined;
  }
}

/** The `sameTrunk` rule: the URI names the trunk's domain, or every address it resolves to is the trunk's. */
export function onTrunk(uri: SipUri, destinations: readonly ResolvedTarget[], scope: Pick<RedirectScope, "trunkDomain" | "isTrunkAddress">): boolean {
  if (uri.host.toLowerCase() === scope.trunkDomain.toLowerCase()) return true;
  return destinations.length > 0 && destinations.every((d) => scope.isTrunkAddress(d.address));
}

/** §20.10: q from 0 to 1, default 1; higher first, the response's order among equals (sort is stable). */
export function inQOrder(contacts: readonly NameAddr[]): SipUri[] {
  const q = (c: NameAddr) => {
    const value = Number(c.params.get("q") ?? "1");
    return Number.isFinite(value) && value >= 0 && value <= 1 ? value : 0;
  };
  return [...contacts].sort((a, b) => q(b) - q(a)).map((c) => c.uri);
}

/** Two URIs reach the same target when scheme, user, host and port agree (§19.1.4, without the parameters). */
export function targetKey(uri: SipUri): string {
  return `${uri.scheme.toLowerCase()}:${uri.user ?? ""}@${uri.host.toLowerCase()}:${uri.port ?? ""}`;
}
