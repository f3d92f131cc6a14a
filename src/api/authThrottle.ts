// Brute-force brake for bearer secrets (admin token, client tokens): a token bucket of failed
// authentications per source address. An address may fail `burst` times back to back, then
// `perMinute` times a minute; beyond that it gets 429 until its bucket refills, without its token
// being looked at. A success (of the admin token) forgets the address. IPv6 addresses count per /64 (one subscriber's
// prefix), IPv4-mapped IPv6 as IPv4.
//
// The state is bounded: at most `maxAddresses` entries, kept in order of their last failure. An
// entry quiet for a full refill is equivalent to no entry and is dropped when the next failure
// arrives; at the cap, the entry quiet the longest is dropped.
import { isIPv4, isIPv6 } from "node:net";

export interface AuthThrottleOptions {
  burst: number;
  perMinute: number;
  maxAddresses: number;
  now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class AuthThrottle {
  private readonly buckets = new Map<string, Bucket>();
  private readonly now: () => number;
  private readonly perMs: number;
  /** The time an empty bucket takes to fill up: after it, an entry means nothing. */
  private readonly refillMs: number;

  constructor(private readonly options: AuthThrottleOptions) {
    this.now = options.now ?? Date.now;
    this.perMs = options.perMinute / 60_000;
    this.refillMs = Math.ceil(options.burst / this.perMs);
  }

  /** Seconds until `key` (from throttleKey) may try again; 0 when it may now. */
  retryAfterSec(key: string): number {
    const bucket = this.buckets.get(key);
    if (!bucket) return 0;
    const tokens = this.tokens(bucket, this.now());
    return tokens >= 1 ? 0 : Math.ceil((1 - tokens) / this.perMs / 1000);
  }

  failed(key: string): void {
    const now = this.now();
    const bucket = this.buckets.get(key);
    const tokens = bucket ? this.tokens(bucket, now) : this.options.burst;
    this.buckets.delete(key);
    this.forgetQuiet(now);
    if (this.buckets.size >= this.options.maxAddresses) this.buckets.delete(this.buckets.keys().next().value!);
    this.buckets.set(key, { tokens: Math.max(0, tokens - 1), at: now });
  }

  forget(key: string): void {
    this.buckets.delete(key);
  }

  /** Addresses tracked right now. */
  get size(): number {
    return this.buckets.size;
  }

  private tokens(bucket: Bucket, now: number): number {
    return Math.min(this.options.burst, bucket.tokens + (now - bucket.at) * this.perMs);
  }

  /** Entries are in order of their last failure, so the quiet ones are at the front. */
  private forgetQuiet(now: number): void {
    for (const [key, bucket] of this.buckets) {
      if (now - bucket.at < this.refillMs) return;
      this.buckets.delete(key);
    }
  }
}

/** The unit an address is throttled as: IPv4 itself, IPv6 by its /64, IPv4-mapped IPv6 as IPv4. */
export function throttleKey(address: string): string {
  const bare = address.replace(/%.*$/, "");
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
  if (mapped) return mapped[1]!;
  if (isIPv4(bare) || !isIPv6(bare)) return bare;
  const [head = "", tail] = bare.toLowerCase().split("::");
  const headGroups = head ? head.split(":") : [];
  const tailGroups = tail ? tail.split(":") : [];
  const groups = [...headGroups, ...Array<string>(Math.max(0, 8 - headGroups.length - tailGroups.length)).fill("0"), ...tailGroups];
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, "")).join(":")}::/64`;
}
