// Things that wait a fixed time after they are done, many at once. Server transactions in their
// last state — RFC 3261 §17.2.2 Completed (Timer J), §17.2.1 Confirmed (Timer I), RFC 6026 Accepted
// once the ACK came (Timer L) — do nothing but answer or absorb retransmissions until their timer
// ends them. Over UDP that is 64*T1 (32 s) for two transactions of every call: at 1,000 calls/s,
// 64,000 of them. Each item entering a queue stays the queue's one duration, so a queue is in
// deadline order by construction: appending and expiring are O(1), and it holds one timer, for its
// head, instead of a timer object, its closures and a wheel entry per item.
//
// Lateness is the timer wheel's (timer-wheel.ts): never before the deadline; for durations of
// COARSE_FROM_MS or more, up to GRID_MS after it, so one wake-up ends a batch.
import { COARSE_FROM_MS, GRID_MS } from "./timer-wheel.ts";

/** Below this many ended items at its front, a queue does not move its live ones down. */
const COMPACT_FROM = 1024;

export class LingerQueue<T> {
  private items: (T | undefined)[] = [];
  private deadlines: number[] = [];
  private head = 0;
  private handle: ReturnType<typeof setTimeout> | undefined;
  private readonly slack: number;

  constructor(
    readonly ms: number,
    /** What ends an item, `ms` after it came. */
    private readonly end: (item: T) => void,
    private readonly onError: (error: unknown) => void,
  ) {
    this.slack = ms >= COARSE_FROM_MS ? GRID_MS : 0;
  }

  /** Items not yet ended by the queue (one ended otherwise stays counted until its deadline). */
  get size(): number {
    return this.items.length - this.head;
  }

  /** `item` ends `ms` from now. */
  add(item: T): void {
    const now = performance.now();
    this.items.push(item);
    this.deadlines.push(now + this.ms);
    if (this.handle === undefined) this.arm(now);
  }

  /** Forgets every item without ending it (the owner's shutdown ends them itself). */
  clear(): void {
    clearTimeout(this.handle);
    this.handle = undefined;
    this.items = [];
    this.deadlines = [];
    this.head = 0;
  }

  private arm(now: number): void {
    this.handle = setTimeout(() => this.expire(), Math.max(this.deadlines[this.head]! - now, this.slack));
  }

  private expire(): void {
    this.handle = undefined;
    const now = performance.now();
    while (this.head < this.items.length && this.deadlines[this.head]! <= now) {
      const item = this.items[this.head]!;
      this.items[this.head++] = undefined;
      try {
        this.end(item);
      } catch (error) {
        this.onError(error);
      }
    }
    this.compact();
    if (this.head < this.items.length) this.arm(now);
  }

  private compact(): void {
    if (this.head === this.items.length) {
      this.items.length = this.deadlines.length = this.head = 0;
    } else if (this.head >= COMPACT_FROM && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.deadlines = this.deadlines.slice(this.head);
      this.head = 0;
    }
  }
}
