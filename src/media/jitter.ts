// Adaptive jitter buffer for one incoming RTP stream.
//
//   const jb = new JitterBuffer({ clockRate: 8000 });
//   jb.push(seq, timestamp, payload, arrivalMs);   // from the socket handler, any order (payload is copied)
//   jb.pop();   // at playout time, once per frame: frame | "lost" (conceal one frame) | undefined (idle)
//               // a frame's payload is valid until the next pop(): its buffer is then reused
//
// Playout follows sequence numbers, so timestamp jumps (silence suppression, sender restarts) do not
// stall it. The target depth adapts between minDelayMs and maxDelayMs from the RFC 3550 A.8 jitter
// estimate plus a boost after each underrun; a buffer persistently deeper than the target drops one
// frame (a sender clock faster than ours), an empty one stalls a frame (a slower sender clock). After
// a few empty frames the buffer goes idle and re-fills to the target before playing again, so a stream
// on hold or in a silence gap costs nothing.

import { metrics } from "../metrics.ts";

/** Late packets of every buffer in the process, for the metrics (a packet costs an increment). */
let latePackets = 0;
metrics.counter("trunkline_rtp_late_packets_total", "RTP packets that arrived after their playout time (too late to be heard).", [], () => latePackets);

export interface JitterFrame { seq: number; timestamp: number; payload: Uint8Array }
export type JitterPop = JitterFrame | "lost" | undefined;

export interface JitterStats {
  received: number;
  played: number;
  lost: number;        // frames concealed: gaps and underruns while playing
  late: number;        // arrived after their playout time
  duplicates: number;
  dropped: number;     // discarded to shrink the buffer (or overflow)
  underruns: number;
  resets: number;      // sequence jumps that restarted the buffer
  targetDelayMs: number;
  bufferedMs: number;
  jitterMs: number;
}

export interface JitterOptions { clockRate: number; minDelayMs?: number; maxDelayMs?: number }

const SLOTS = 256;                  // power of two; 2.5 s of 10 ms packets
const MASK = SLOTS - 1;
const IDLE_AFTER_EMPTY_POPS = 3;    // consecutive underruns before going idle
const SHRINK_AFTER_POPS = 50;       // ~1 s persistently too deep before dropping a frame
const BOOST_DECAY = 0.995;          // per pop: an underrun's extra delay halves in ~140 frames
const SPARE_BUFFERS = 16;           // payload copies kept for reuse (a stream's packets keep one size)

export class JitterBuffer {
  private readonly clockRate: number;
  private readonly minDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly slotExt = new Float64Array(SLOTS).fill(-1);
  private readonly slotTs = new Uint32Array(SLOTS);
  private readonly slotPayload: (Uint8Array | null)[] = new Array(SLOTS).fill(null);
  /** Payload buffers free for the next push: copying into them spares an allocation per packet. */
  private readonly spare: Uint8Array[] = [];
  /** The payload the last pop() handed out, reused once the caller is done with it (the next pop). */
  private handedOut: Uint8Array | undefined;
  private highestExt = -1;          // extended sequence number of the newest packet stored
  private lowestWaiting = -1;       // smallest ext stored while idle (where playout starts)
  private nextExt = -1;             // next ext to play (or the floor for late packets while idle)
  private playing = false;
  private frameTs: number;          // timestamp units per packet, learned from consecutive packets
  private jitterTs = 0;
  private lastTransit: number | undefined;
  private boostMs = 0;
  private emptyPops = 0;
  private overPops = 0;
  private readonly counters = { received: 0, played: 0, lost: 0, late: 0, duplicates: 0, dropped: 0, underruns: 0, resets: 0 };

  constructor(o: JitterOptions) {
    this.clockRate = o.clockRate;
    this.minDelayMs = o.minDelayMs ?? 20;
    this.maxDelayMs = o.maxDelayMs ?? 200;
    this.frameTs = (o.clockRate * 20) / 1000;
  }

  /** Duration of one packet in timestamp units (what one "lost" stands for). */
  get frameTimestampUnits(): number { return this.frameTs; }

  private get frameMs(): number { return (this.frameTs * 1000) / this.clockRate; }

  get targetDelayMs(): number {
    const wanted = 4 * ((this.jitterTs * 1000) / this.clockRate) + this.boostMs;
    return Math.min(this.maxDelayMs, Math.max(this.minDelayMs, wanted));
  }

  private extend(seq: number): number {
    if (this.highestExt < 0) return seq + 0x10000; // start one cycle up so reordering below stays positive
    const delta = ((seq - this.highestExt) << 16) >> 16; // signed 16-bit distance
    return this.highestExt + delta;
  }

  push(seq: number, timestamp: number, payload: Uint8Array, arrivalMs: number): void {
    this.counters.received++;
    let ext = this.extend(seq & 0xffff);
    if (this.highestExt >= 0 && Math.abs(ext - this.highestExt) >= SLOTS) {
      // RFC 3550 A.1 calls a jump this large a restart; begin again from this packet.
      this.reset();
      this.counters.resets++;
      ext = this.extend(seq & 0xffff);
    }
    const slot = ext & MASK;
    if (this.nextExt >= 0 && ext < this.nextExt) {
      if (this.slotExt[slot] === ext) this.counters.duplicates++;
      else {
        this.counters.late++;
        latePackets++;
      }
      return;
    }
    if (this.slotExt[slot] === ext) {
      this.counters.duplicates++;
      return;
    }
    this.slotExt[slot] = ext;
    this.slotTs[slot] = timestamp >>> 0;
    this.slotPayload[slot] = this.copyOf(payload);
    if (this.highestExt < 0 || ext > this.highestExt) {
      if (ext === this.highestExt + 1) this.learnFrameDuration(timestamp);
      this.highestExt = ext;
    }
    if (!this.playing && (this.lowestWaiting < 0 || ext < this.lowestWaiting)) this.lowestWaiting = ext;
    this.updateJitter(timestamp, arrivalMs);
  }

  private learnFrameDuration(timestamp: number): void {
    const prev = this.slotTs[(this.highestExt) & MASK]!;
    const delta = (timestamp - prev) >>> 0;
    // 2.5–120 ms per packet are real packetisations; anything else is a timestamp jump.
    if (delta >= this.clockRate / 400 && delta <= (this.clockRate * 120) / 1000) this.frameTs = delta;
  }

  private updateJitter(timestamp: number, arrivalMs: number): void {
    // RFC 3550 A.8, in timestamp units; a jump of more than a second is a resync, not jitter.
    const transit = (arrivalMs * this.clockRate) / 1000 - timestamp;
    if (this.lastTransit !== undefined) {
      const d = Math.abs(transit - this.lastTransit);
      if (d <= this.clockRate) this.jitterTs += (d - this.jitterTs) / 16;
    }
    this.lastTransit = transit;
  }

  private bufferedFrames(): number {
    const from = this.playing ? this.nextExt : this.lowestWaiting;
    return from < 0 || this.highestExt < from ? 0 : this.highestExt - from + 1;
  }

  private copyOf(payload: Uint8Array): Uint8Array {
    let copy = this.spare.pop();
    if (copy === undefined || copy.length !== payload.length) copy = new Uint8Array(payload.length);
    copy.set(payload);
    return copy;
  }

  private recycle(buffer: Uint8Array | null | undefined): void {
    if (buffer && this.spare.length < SPARE_BUFFERS) this.spare.push(buffer);
  }

  pop(): JitterPop {
    this.recycle(this.handedOut);
    this.handedOut = undefined;
    this.boostMs *= BOOST_DECAY;
    if (!this.playing) {
      // Idle: start once the buffer holds the target depth plus the frame about to be played.
      if (this.lowestWaiting < 0) return undefined;
      if (this.bufferedFrames() * this.frameMs < this.targetDelayMs + this.frameMs) return undefined;
      this.playing = true;
      this.nextExt = this.lowestWaiting;
      this.lowestWaiting = -1;
      this.emptyPops = 0;
      this.overPops = 0;
    }
    this.shrinkIfTooDeep();
    const slot = this.nextExt & MASK;
    if (this.slotExt[slot] === this.nextExt && this.slotPayload[slot] !== null) {
      const frame: JitterFrame = { seq: this.nextExt & 0xffff, timestamp: this.slotTs[slot]!, payload: this.slotPayload[slot]! };
      this.handedOut = frame.payload;
      this.slotPayload[slot] = null; // keep slotExt: a later copy of this packet is a duplicate
      this.nextExt++;
      this.emptyPops = 0;
      this.counters.played++;
      return frame;
    }
    if (this.highestExt >= this.nextExt) {
      // A gap with later packets waiting: the missing one is lost.
      this.nextExt++;
      this.counters.lost++;
      return "lost";
    }
    // Empty: stall one frame (the packet may just be late) and ask for more depth next time.
    this.counters.underruns++;
    this.boostMs = Math.min(this.maxDelayMs, this.boostMs + this.frameMs);
    if (++this.emptyPops >= IDLE_AFTER_EMPTY_POPS) {
      this.playing = false;
      this.lowestWaiting = -1;
      return undefined;
    }
    this.counters.lost++;
    return "lost";
  }

  private shrinkIfTooDeep(): void {
    const depthMs = this.bufferedFrames() * this.frameMs;
    if (depthMs > this.targetDelayMs + 2 * this.frameMs) {
      if (++this.overPops >= SHRINK_AFTER_POPS) {
        const slot = this.nextExt & MASK;
        if (this.slotExt[slot] === this.nextExt) {
          this.recycle(this.slotPayload[slot]);
          this.slotPayload[slot] = null;
        }
        this.nextExt++;
        this.counters.dropped++;
        this.overPops = 0;
      }
    } else {
      this.overPops = 0;
    }
  }

  /** Forget everything buffered (new peer SSRC, re-INVITE); statistics are kept. */
  reset(): void {
    this.slotExt.fill(-1);
    this.slotPayload.fill(null);
    this.highestExt = -1;
    this.nextExt = -1;
    this.playing = false;
    this.lowestWaiting = -1;
    this.lastTransit = undefined;
    this.emptyPops = 0;
    this.overPops = 0;
  }

  stats(): JitterStats {
    return {
      ...this.counters,
      targetDelayMs: Math.round(this.targetDelayMs),
      bufferedMs: Math.round(this.bufferedFrames() * this.frameMs),
      jitterMs: (this.jitterTs * 1000) / this.clockRate,
    };
  }
}
