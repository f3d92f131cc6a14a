// Overload control for new calls. A node that accepts every INVITE when it is behind makes every
// call late: callers retransmit (RFC 3261 §17.1.1.2), the retransmissions cost work too, and past
// the knee almost nothing completes. Instead, while the node is behind, a new out-of-dialog INVITE
// gets a stateless `503 Service Unavailable` with `Retry-After` (§21.5.4) before any transaction,
// dialog or call exists; a front or carrier then tries another node (RFC 3263 §4.3) or retries later.
// Existing calls, retransmissions and in-dialog requests are never refused here.
//
// "Behind" is judged by two numbers, both read per INVITE for the price of a comparison:
// - INVITEs the layer above has not answered yet (at most our 100 Trying sent): the node's own
//   backlog of new calls (routing, channel admission, media ports). Below the knee it stays near
//   rate × processing time (about 20 at 1,000 calls/s and 20 ms); past it, it grows without bound.
//   A ringing call has answered with its 18x and does not count: waiting for a far end is not work.
// - Event-loop lag: how late a 25 ms timer fires, four times in a row (one GC pause or one stall
//   of a crowded box is not a backlog). Past capacity the backlog builds mostly in the kernel's socket
//   queue, which the first number never sees; the loop then turns slowly, each turn reading a long
//   run of queued datagrams. It also counts time the process was not scheduled on a crowded box,
//   which from the caller's side is overload too.
import { createLogger } from "../log.ts";

const log = createLogger("sip.overload");

export interface OverloadLimits {
  /** Unanswered INVITEs (at most the 100 Trying sent) at which new INVITEs get 503; 0 = no limit. */
  maxUnansweredInvites: number;
  /** Event-loop lag (ms) above which new INVITEs get 503; 0 = not measured. */
  maxEventLoopLagMs: number;
  /** The 503's Retry-After, in seconds (§20.33). */
  retryAfterSec: number;
}

export const DEFAULT_OVERLOAD_LIMITS: OverloadLimits = { maxUnansweredInvites: 200, maxEventLoopLagMs: 50, retryAfterSec: 1 };

export type OverloadReason = "unanswered_invites" | "event_loop_lag";

/** Whether a new INVITE is refused, and why; undefined admits it. */
export function overloadReason(unansweredInvites: number, eventLoopLagMs: number, limits: OverloadLimits): OverloadReason | undefined {
  if (limits.maxUnansweredInvites > 0 && unansweredInvites >= limits.maxUnansweredInvites) return "unanswered_invites";
  if (limits.maxEventLoopLagMs > 0 && eventLoopLagMs > limits.maxEventLoopLagMs) return "event_loop_lag";
  return undefined;
}

const LAG_PROBE_MS = 25;
/** The lag must hold this many probes in a row (at least 100 ms). */
const LAG_SAMPLES = 4;
/** Shedding is logged when it starts and then at most once per this interval, with the count. */
const LOG_INTERVAL_MS = 10_000;

export class OverloadGuard {
  /** New INVITEs refused, by reason, since start. */
  readonly counters: Record<OverloadReason, number> = { unanswered_invites: 0, event_loop_lag: 0 };
  readonly retryAfter: string;
  private lagMs = 0;
  private probe: ReturnType<typeof setInterval> | undefined;
  private shedSinceLog = 0;
  private lastLogAt = -Infinity;

  constructor(
    private readonly limits: OverloadLimits,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.retryAfter = String(limits.retryAfterSec);
  }

  /** Starts the event-loop lag probe if a lag limit is set. */
  start(): void {
    if (this.limits.maxEventLoopLagMs <= 0 || this.probe) return;
    let expected = this.now() + LAG_PROBE_MS;
    const samples: number[] = new Array<number>(LAG_SAMPLES).fill(0);
    let next = 0;
    this.probe = setInterval(() => {
      const at = this.now();
      samples[next] = Math.max(0, at - expected);
      next = (next + 1) % LAG_SAMPLES;
      // Late every turn of the window: one long pause (a GC, a stall of the box) is not a backlog.
      this.lagMs = Math.min(...samples);
      expected = at + LAG_PROBE_MS;
    }, LAG_PROBE_MS);
    this.probe.unref();
  }

  stop(): void {
    if (this.probe) clearInterval(this.probe);
    this.probe = undefined;
  }

  /** The last lag measured (0 when the probe is off). */
  get eventLoopLagMs(): number {
    return this.lagMs;
  }

  /** Whether a new INVITE must be refused now; counts and (rate-limited) logs a refusal. */
  shouldShed(unansweredInvites: number): boolean {
    const reason = overloadReason(unansweredInvites, this.lagMs, this.limits);
    if (!reason) return false;
    this.counters[reason]++;
    this.shedSinceLog++;
    const at = this.now();
    if (at - this.lastLogAt >= LOG_INTERVAL_MS) {
      log.warn("overloaded: new INVITEs answered 503", {
        reason,
        refusedSinceLastLog: this.shedSinceLog,
        unansweredInvites,
        eventLoopLagMs: Math.round(this.lagMs),
      });
      this.lastLogAt = at;
      this.shedSinceLog = 0;
    }
    return true;
  }
}
