// A tap on a mixer's full mix (what every non-talker hears): the mixer hands each tick's frame to
// its taps, e.g. a channel recorder. A tap runs inside the tick, so it must only copy the frame
// somewhere and return; MixFrameQueue is that copy: a bounded queue of preallocated slots that
// drops (and counts) the newest frame when its reader has fallen behind, never blocking the tick.
import type { MixedFrame } from "./mixer.ts";

export interface MixTap {
  /** This tick's full mix; read only, valid only during the call (copy to keep). */
  onMix(frame: MixedFrame): void;
  /** The mixer closed (its channel emptied): no more frames will come. */
  onClose?(): void;
}

export interface QueuedFrame {
  /** A view into the queue's freed slot: use it before returning to the event loop (the next tick reuses it). */
  pcm: Int16Array;
  sampleRate: number;
  tick: number;
}

const maxFrameSamples = 48000 / 50;

export class MixFrameQueue implements MixTap {
  private readonly slots: Int16Array[];
  private readonly lengths: number[];
  private readonly rates: number[];
  private readonly ticks: number[];
  private head = 0;
  private count = 0;
  dropped = 0;
  /** Tick of the latest frame offered, queued or dropped (-1 before any). */
  latestTick = -1;

  /**
   * @param capacity frames held at most (each up to 20 ms at 48 kHz)
   * @param onFrames told after a frame was queued (schedule the reader; do not read inside it)
   * @param onDrop told of each frame dropped because the queue was full
   */
  constructor(
    readonly capacity: number,
    private readonly onFrames: () => void,
    private readonly onDrop: () => void = () => {},
  ) {
    this.slots = Array.from({ length: capacity }, () => new Int16Array(maxFrameSamples));
    this.lengths = new Array<number>(capacity).fill(0);
    this.rates = new Array<number>(capacity).fill(0);
    this.ticks = new Array<number>(capacity).fill(0);
  }

  get size(): number {
    return this.count;
  }

  onMix(frame: MixedFrame): void {
    this.latestTick = frame.tick;
    if (this.count === this.capacity || frame.pcm.length > maxFrameSamples) {
      this.dropped++;
      this.onDrop();
      return;
    }
    const at = (this.head + this.count) % this.capacity;
    (this.slots[at] as Int16Array).set(frame.pcm);
    this.lengths[at] = frame.pcm.length;
    this.rates[at] = frame.sampleRate;
    this.ticks[at] = frame.tick;
    this.count++;
    this.onFrames();
  }

  /** The oldest queued frame, removed from the queue; read its pcm at once (see QueuedFrame.pcm). */
  take(): QueuedFrame | undefined {
    if (this.count === 0) return undefined;
    const at = this.head;
    this.head = (this.head + 1) % this.capacity;
    this.count--;
    return { pcm: (this.slots[at] as Int16Array).subarray(0, this.lengths[at]), sampleRate: this.rates[at] as number, tick: this.ticks[at] as number };
  }
}
