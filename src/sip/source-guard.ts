// The per-source screen in front of the parser: who may talk to us at all, and how fast.
//
// - Known sources are the ones the layer above names through `isKnown` (the call layer: addresses
//   of trunks). Out-of-dialog and in-dialog requests alike from anyone else are "strangers":
//   dropped unread (`strangers: "drop"`, the default) or answered 403 (`"reject"`).
// - Trusted fronts (`isFront`: the cluster's Kamailio) relay everybody's requests: they are always
//   admitted and spend no budget (the front limits its own sources); the original sender they name
//   in a request is then screened like a direct source (`admitRelayed`).
// - Every message that gets past that (requests from known sources, strangers' requests under
//   "reject", responses from anyone) takes a token from its source address's bucket (Kamailio's
//   pike): `messagesPerSecond` for strangers, `trunkMessagesPerSecond` for known sources, a burst of
//   one second's worth. Over budget, the message is dropped unread. A known source's TCP/TLS
//   messages are exempt: the handshake proved the address (no spoofing), and a message dropped
//   from a stream is never retransmitted, so a busy trunk would lose calls.
//
// An attacker spraying source addresses grows no unbounded state: under "drop" a stranger's request
// costs the `isKnown` lookup and creates nothing; buckets are capped at `trackedSources`, and a
// bucket idle for a second is full again, so it is forgotten (swept).

export type StrangerPolicy = "drop" | "reject";

export interface SourceLimits {
  /** Messages per second per source address that belongs to no trunk (0: unlimited). */
  messagesPerSecond: number;
  /** Messages per second per trunk source address (0: unlimited). */
  trunkMessagesPerSecond: number;
  /** Source addresses with a bucket at one time. */
  trackedSources: number;
}

export const DEFAULT_SOURCE_LIMITS: SourceLimits = { messagesPerSecond: 20, trunkMessagesPerSecond: 5000, trackedSources: 10_000 };

/** What happens to one inbound message, decided before it is parsed. */
export type Admission = "accept" | "reject" | "drop";

export interface SourceGuardCounters {
  /** Requests from strangers dropped unread ("drop"). */
  strangersDropped: number;
  /** Requests from strangers let through to be refused ("reject": 403, nothing for an ACK). */
  strangersRejected: number;
  /** Messages over their source's budget. */
  rateLimited: number;
  /** Messages from a new stranger address while the bucket table was full. */
  tableFull: number;
}

interface Bucket {
  tokens: number;
  /** performance.now() of the last refill. */
  at: number;
}

/** A bucket idle this long has refilled completely (the burst is one second's worth). */
const REFILL_MS = 1000;

export class SourceGuard {
  readonly counters: SourceGuardCounters = { strangersDropped: 0, strangersRejected: 0, rateLimited: 0, tableFull: 0 };
  private readonly buckets = new Map<string, Bucket>();
  private isKnown: (address: string) => boolean;
  readonly isFront: (address: string) => boolean;
  private readonly now: () => number;
  private lastSweep = 0;
  private readonly sweeper: ReturnType<typeof setInterval>;

  constructor(
    readonly strangers: StrangerPolicy,
    private readonly limits: SourceLimits,
    o: { isKnown?: (address: string) => boolean; isFront?: (address: string) => boolean; now?: () => number } = {},
  ) {
    // No screen yet: everyone is a stranger, so a stack never answers the world by default.
    this.isKnown = o.isKnown ?? (() => false);
    this.isFront = o.isFront ?? (() => false);
    this.now = o.now ?? (() => performance.now());
    // Memory comes back after a spray of addresses even when no new source arrives to trigger a sweep.
    this.sweeper = setInterval(() => this.sweep(), 10_000);
    this.sweeper.unref();
  }

  /** Installs the screen naming known sources (the call layer: trunk addresses and CIDRs). */
  setKnownSources(isKnown: (address: string) => boolean): void {
    this.isKnown = isKnown;
  }

  knows(address: string): boolean {
    return this.isKnown(address);
  }

  /** Source addresses currently holding a bucket. */
  get trackedSources(): number {
    return this.buckets.size;
  }

  /** The verdict on one message from `address`; `isRequest` is read from its first bytes. */
  admit(address: string, isRequest: boolean, stream: boolean): Admission {
    if (this.isFront(address)) return "accept";
    const known = this.isKnown(address);
    if (isRequest && !known && this.strangers === "drop") {
      this.counters.strangersDropped++;
      return "drop";
    }
    if (!(known && stream) && !this.take(address, known)) return "drop";
    if (isRequest && !known) {
      this.counters.strangersRejected++;
      return "reject";
    }
    return "accept";
  }

  /**
   * The verdict on a request a trusted front relayed from `origin`: the stranger screen and the
   * strangers' budget as for a direct request; a known origin spends nothing (the front's own
   * connection or datagrams carry it).
   */
  admitRelayed(origin: string): Admission {
    if (this.isKnown(origin)) return "accept";
    if (this.strangers === "drop") {
      this.counters.strangersDropped++;
      return "drop";
    }
    if (!this.take(origin, false)) return "drop";
    this.counters.strangersRejected++;
    return "reject";
  }

  /** Whether a TCP/TLS connection from `address` is accepted at all (strangers under "drop" are not). */
  admitConnection(address: string): boolean {
    if (this.strangers === "reject" || this.isFront(address) || this.isKnown(address)) return true;
    this.counters.strangersDropped++;
    return false;
  }

  close(): void {
    clearInterval(this.sweeper);
  }

  private take(address: string, known: boolean): boolean {
    const rate = known ? this.limits.trunkMessagesPerSecond : this.limits.messagesPerSecond;
    if (rate === 0) return true;
    const now = this.now();
    let bucket = this.buckets.get(address);
    if (bucket) {
      // A clock read earlier than the last refill (a test's fake clock put back) refills nothing
      // rather than draining the bucket.
      const elapsed = now - bucket.at;
      if (elapsed > 0) {
        bucket.tokens = Math.min(rate, bucket.tokens + (elapsed * rate) / 1000);
        bucket.at = now;
      }
    } else {
      if (this.buckets.size >= this.limits.trackedSources && !this.makeRoom(now, known)) {
        this.counters.tableFull++;
        return false;
      }
      bucket = { tokens: rate, at: now };
      this.buckets.set(address, bucket);
    }
    if (bucket.tokens < 1) {
      this.counters.rateLimited++;
      return false;
    }
    bucket.tokens -= 1;
    return true;
  }

  /**
   * Frees a slot in a full table: forgets refilled buckets (at most one scan per second), and
   * when none is idle evicts the oldest bucket for a trunk's address; a new stranger waits.
   */
  private makeRoom(now: number, known: boolean): boolean {
    if (now - this.lastSweep >= REFILL_MS) {
      this.lastSweep = now;
      this.sweep(now);
      if (this.buckets.size < this.limits.trackedSources) return true;
    }
    if (!known) return false;
    const oldest = this.buckets.keys().next();
    if (!oldest.done) this.buckets.delete(oldest.value);
    return true;
  }

  /** Forgets buckets idle long enough to be full again: to the next message they are as good as new. */
  sweep(now = this.now()): void {
    for (const [address, bucket] of this.buckets) if (now - bucket.at >= REFILL_MS) this.buckets.delete(address);
  }
}
