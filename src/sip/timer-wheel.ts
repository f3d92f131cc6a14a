// Long transaction timers on one shared grid: the guard of minutes every request arms and clears,
// Timer L of an INVITE until its ACK (RFC 6026 §8.7), a client's Timers D and M, a non-2xx's Timer H.
// At 1,000 calls/s, one setTimeout each would wake the event loop thousands of times a second for
// nothing. Timers of COARSE_FROM_MS or more are instead kept here, by deadline, in slots of GRID_MS,
// and one setTimeout, armed for the earliest slot, fires each slot's timers together, in deadline
// order: never before their deadline, at most GRID_MS after it (0.3 % of a 32 s timer, which only
// bounds how long state lingers). Shorter timers (retransmissions: A, E, G, the 2xx's) stay exact.
// A server transaction in its last state (Timers I, J, L after the ACK) needs no timer at all: it
// waits on a linger queue (linger-queue.ts).
//
// The clock is the monotonic one (performance.now(): a wall-clock step must not hold timers back),
// read at call time with setTimeout, so a test's fake clock (jest.useFakeTimers) drives this too.

/** Timers at least this long go on the grid. */
export const COARSE_FROM_MS = 10_000;
/** The grid: how late at most a coarse timer fires. */
export const GRID_MS = 100;

/** A timer on the wheel; cancel() is idempotent. */
export class WheelTimer {
  cancelled = false;

  constructor(
    private readonly wheel: TimerWheel,
    readonly slot: number,
    readonly deadline: number,
    readonly seq: number,
    readonly fire: () => void,
  ) {}

  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.wheel.remove(this);
  }
}

export class TimerWheel {
  private readonly slots = new Map<number, Set<WheelTimer>>();
  private armedSlot: number | undefined;
  private handle: ReturnType<typeof setTimeout> | undefined;
  private seq = 0;

  constructor(private readonly onError: (error: unknown) => void) {}

  /** Timers waiting. */
  get size(): number {
    let n = 0;
    for (const slot of this.slots.values()) n += slot.size;
    return n;
  }

  schedule(ms: number, fire: () => void): WheelTimer {
    const deadline = performance.now() + ms;
    const timer = new WheelTimer(this, Math.ceil(deadline / GRID_MS), deadline, this.seq++, fire);
    let entries = this.slots.get(timer.slot);
    if (!entries) this.slots.set(timer.slot, (entries = new Set()));
    entries.add(timer);
    // Re-armed for an earlier slot, or when the armed one is overdue (a fake clock that was put
    // away took its timer with it).
    if (this.armedSlot === undefined || timer.slot < this.armedSlot) this.arm(timer.slot);
    else if ((this.armedSlot + 1) * GRID_MS < performance.now()) this.arm(this.armedSlot);
    return timer;
  }

  /** @internal WheelTimer.cancel */
  remove(timer: WheelTimer): void {
    const entries = this.slots.get(timer.slot);
    if (!entries?.delete(timer) || entries.size > 0) return;
    this.slots.delete(timer.slot);
    // Nothing left: no timer of ours keeps the process alive.
    if (this.slots.size === 0) this.disarm();
  }

  private arm(slot: number): void {
    clearTimeout(this.handle);
    this.armedSlot = slot;
    this.handle = setTimeout(() => this.fireDue(), Math.max(0, slot * GRID_MS - performance.now()));
  }

  private disarm(): void {
    clearTimeout(this.handle);
    this.handle = this.armedSlot = undefined;
  }

  private fireDue(): void {
    this.handle = this.armedSlot = undefined;
    const now = performance.now();
    const due: WheelTimer[] = [];
    let next: number | undefined;
    for (const [slot, entries] of this.slots) {
      if (slot * GRID_MS <= now) {
        for (const timer of entries) due.push(timer);
        this.slots.delete(slot);
      } else if (next === undefined || slot < next) next = slot;
    }
    if (next !== undefined) this.arm(next);
    due.sort((a, b) => a.deadline - b.deadline || a.seq - b.seq);
    for (const timer of due) {
      // One that fired before it may have cancelled it (a transaction ending stops all its timers).
      if (timer.cancelled) continue;
      timer.cancelled = true;
      try {
        timer.fire();
      } catch (error) {
        this.onError(error);
      }
    }
  }
}
