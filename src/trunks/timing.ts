// When a trunk registers again: refreshes before the binding lapses, retries after failures.
// Pure functions of their inputs (the random source is injectable) so the schedule is testable.

/** One UDP non-INVITE transaction can take Timer F = 64·T1 = 32 s (RFC 3261 §17.1.2.2). */
const transactionTimeoutSec = 32;

/**
 * Seconds after a successful REGISTER to refresh it (RFC 3261 §10.2.4: before expiry). Half the
 * granted expiry when that leaves a full transaction timeout of margin; for shorter expiries 40%
 * of it, so a refresh that needs a retransmission or a fresh challenge still lands in time.
 */
export function refreshDelaySec(grantedSec: number): number {
  if (grantedSec / 2 >= transactionTimeoutSec) return grantedSec / 2;
  return Math.max(0.5, grantedSec * 0.4);
}

export interface BackoffPolicy {
  baseMs: number;
  capMs: number;
}

export const defaultBackoff: BackoffPolicy = { baseMs: 2_000, capMs: 300_000 };

/**
 * Exponential backoff with jitter for the `attempt`-th consecutive failure (1-based): the
 * exponential step capped, then drawn uniformly from its upper half so that many trunks failing
 * together (an upstream outage) do not retry in lock-step.
 */
export function backoffDelayMs(attempt: number, policy: BackoffPolicy = defaultBackoff, random: () => number = Math.random): number {
  const step = Math.min(policy.capMs, policy.baseMs * 2 ** Math.max(0, Math.min(attempt - 1, 30)));
  return Math.round(step / 2 + random() * (step / 2));
}

/** Retry-After (RFC 3261 §20.33) in seconds, from a header value like `120 (maintenance);duration=60`. */
export function parseRetryAfter(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const match = /^\s*(\d+)/.exec(value);
  return match ? Number(match[1]) : undefined;
}
