// Tick sources for the mixer: a drift-corrected real-time timer shared by all channels, and a
// manual one for tests. Ticks are aligned across mixers that share a source.
import { createLogger } from "../log.ts";
import { metrics } from "../metrics.ts";
import { workerTotal } from "./worker-totals.ts";

const log = createLogger("media.ticker");

/** Every real-time ticker's counts together, for the metrics (a tick is one mixed frame per channel). */
const totals: TickerStats = { ticks: 0, lateTicks: 0, skippedTicks: 0 };
metrics.counter("trunkline_mixer_ticks_total", "Mixer ticks run (each mixes one frame in every channel).", [], () => totals.ticks + workerTotal("ticks"));
metrics.counter("trunkline_mixer_late_ticks_total", "Mixer ticks run late, back-to-back after the event loop stalled: frames mixed late.", [], () => totals.lateTicks + workerTotal("lateTicks"));
metrics.counter("trunkline_mixer_skipped_ticks_total", "Mixer ticks skipped because a stall exceeded the catch-up limit: frames never mixed.", [], () => totals.skippedTicks + workerTotal("skippedTicks"));

export interface TickSource {
  /** Calls `onTick` once per period until the returned function is called. */
  subscribe(onTick: () => void): () => void;
}

export interface TickerStats {
  ticks: number;
  /** Ticks that ran late, back-to-back to catch up after the event loop stalled. */
  lateTicks: number;
  /** Ticks dropped because the stall exceeded the catch-up limit. */
  skippedTicks: number;
}

class Subscribers {
  private list: (() => void)[] = [];

  add(fn: () => void): () => void {
    this.list = [...this.list, fn];
    return () => {
      this.list = this.list.filter((f) => f !== fn);
    };
  }

  get size(): number {
    return this.list.length;
  }

  run(): void {
    for (const fn of this.list) {
      try {
        fn();
      } catch (err) {
        log.error("tick subscriber failed", { err });
      }
    }
  }
}

/**
 * setTimeout-based ticker that schedules against absolute deadlines (start + k·period), so timer
 * lateness does not accumulate. After a stall it runs missed ticks back-to-back, up to
 * `maxCatchUp`; beyond that it drops them and re-anchors.
 */
export class DriftCorrectedTicker implements TickSource {
  private readonly subscribers = new Subscribers();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private nextDeadline = 0;
  private readonly counters: TickerStats = { ticks: 0, lateTicks: 0, skippedTicks: 0 };

  constructor(
    readonly periodMs = 20,
    private readonly maxCatchUp = 5,
    private readonly now: () => number = () => performance.now(),
  ) {}

  subscribe(onTick: () => void): () => void {
    const unsubscribe = this.subscribers.add(onTick);
    if (this.timer === undefined) {
      this.nextDeadline = this.now() + this.periodMs;
      this.schedule();
    }
    return () => {
      unsubscribe();
      if (this.subscribers.size === 0 && this.timer !== undefined) {
        clearTimeout(this.timer);
        this.timer = undefined;
      }
    };
  }

  stats(): TickerStats {
    return { ...this.counters };
  }

  private schedule(): void {
    this.timer = setTimeout(() => this.fire(), Math.max(0, this.nextDeadline - this.now()));
  }

  private fire(): void {
    const now = this.now();
    let due = now < this.nextDeadline ? 0 : Math.floor((now - this.nextDeadline) / this.periodMs) + 1;
    if (due > this.maxCatchUp) {
      this.counters.skippedTicks += due - 1;
      totals.skippedTicks += due - 1;
      this.nextDeadline = now;
      due = 1;
    } else if (due > 1) {
      this.counters.lateTicks += due - 1;
      totals.lateTicks += due - 1;
    }
    // due = 0: the timer fired early; just wait for the deadline.
    for (let i = 0; i < due; i++) {
      this.counters.ticks++;
      totals.ticks++;
      this.subscribers.run();
      this.nextDeadline += this.periodMs;
    }
    if (this.subscribers.size > 0) this.schedule();
    else this.timer = undefined;
  }
}

/** Ticks only when told to; for tests and offline processing. */
export class ManualTicker implements TickSource {
  private readonly subscribers = new Subscribers();

  subscribe(onTick: () => void): () => void {
    return this.subscribers.add(onTick);
  }

  tick(count = 1): void {
    for (let i = 0; i < count; i++) this.subscribers.run();
  }
}

/** This thread's real-time tickers together (a media worker copies them into shared memory). */
export function tickerTotals(): Readonly<TickerStats> {
  return totals;
}

let shared: DriftCorrectedTicker | undefined;

/** The process-wide 20 ms ticker all mixers use unless given another source. */
export function sharedTicker(): DriftCorrectedTicker {
  shared ??= new DriftCorrectedTicker(20);
  return shared;
}
