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
//
// Memory follows what the stream needs, not the worst case: the ring of slots starts small and
// doubles (up to 256) only when the span of packets held asks for it, and the buffer never holds
// more than twice maxDelayMs — beyond that (a consumer that stalled, a sender that jumped ahead)
// the oldest frames are dropped, which also bounds the delay they would add. A PCMU leg keeps
// about a kilobyte here instead of the 256 slots' 5 KB and up to 40 KB of queued copies.

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

const MAX_SLOTS = 256;              // power of two; a sequence jump this large is a restart (RFC 3550 A.1)
const INITIAL_SLOTS = 32;           // power of two; also how far back duplicates are told from late packets
const IDLE_AFTER_EMPTY_POPS = 3;    // consecutive underruns before going idle
const SHRINK_AFTER_POPS = 50;       // ~1 s persistently too deep before dropping a frame
const BOOST_DECAY = 0.995;          // per pop: an underrun's extra delay halves in ~140 frames
const SPARE_BUFFERS = 4;            // payload copies kept for reuse (a stream's packets keep one size)
const MAX_DEPTH_DELAYS = 2;         // the most the buffer holds, in maxDelayMs

export class JitterBuffer {
  private readonly clockRate: number;
  private readonly minDelayMs: number;
  private readonly maxDelayMs: number;
  /** Ring of slots indexed by extended sequence number & mask; grown when the packets held span more. */
  private mask = INITIAL_SLOTS - 1;
  private slotExt = new Float64Array(INITIAL_SLOTS).fill(-1);
  private slotTs = new Uint32Array(INITIAL_SLOTS);
  private slotPayload: (Uint8Array | null)[] = new Array<Uint8Array | null>(INITIAL_SLOTS).fill(null);
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
    this.pushFrom(seq, timestamp, payload, 0, payload.length, arrivalMs);
  }

  /** push() of the `length` bytes at `offset` in `bytes` (a datagram's payload, copied without a view of it). */
  pushFrom(seq: number, timestamp: number, bytes: Uint8Array, offset: number, length: number, arrivalMs: number): void {
    this.counters.received++;
    let ext = this.extend(seq & 0xffff);
    if (this.highestExt >= 0 && Math.abs(ext - this.highestExt) >= MAX_SLOTS) {
      // RFC 3550 A.1 calls a jump this large a restart; begin again from this packet.
      this.reset();
      this.counters.resets++;
      ext = this.extend(seq & 0xffff);
    }
    if (this.nextExt >= 0 && ext < this.nextExt) {
      if (this.slotExt[ext & this.mask] === ext) this.counters.duplicates++;
      else {
        this.counters.late++;
        latePackets++;
      }
      return;
    }
    if (this.slotExt[ext & this.mask] === ext) {
      this.counters.duplicates++;
      return;
    }
    if (ext > this.highestExt) this.limitDepth(ext);
    this.fitSpan(ext);
    const slot = ext & this.mask;
    this.slotExt[slot] = ext;
    this.slotTs[slot] = timestamp >>> 0;
    this.slotPayload[slot] = this.copyOf(bytes, offset, length);
    if (this.highestExt < 0 || ext > this.highestExt) {
      if (ext === this.highestExt + 1) this.learnFrameDuration(timestamp);
      this.highestExt = ext;
    }
    if (!this.playing && (this.lowestWaiting < 0 || ext < this.lowestWaiting)) this.lowestWaiting = ext;
    this.updateJitter(timestamp, arrivalMs);
  }

  /**
   * Before `newest` is stored: drops the oldest frames the buffer would hold beyond its limit, so a
   * stalled consumer or a sender that jumped ahead neither grows memory nor adds delay.
   */
  private limitDepth(newest: number): void {
    const oldest = this.playing ? this.nextExt : this.lowestWaiting;
    if (oldest < 0) return;
    const maxFrames = Math.max(2, Math.floor((MAX_DEPTH_DELAYS * this.maxDelayMs) / this.frameMs));
    const keepFrom = newest - maxFrames + 1;
    if (keepFrom <= oldest) return;
    let firstKept = -1;
    for (let ext = oldest; ext <= this.highestExt; ext++) {
      const slot = ext & this.mask;
      if (this.slotExt[slot] !== ext || this.slotPayload[slot] === null) continue;
      if (ext >= keepFrom) {
        firstKept = ext;
        break;
      }
      this.recycle(this.slotPayload[slot]);
      this.slotPayload[slot] = null;
      this.counters.dropped++;
    }
    // What is older than the kept window now counts as late.
    this.nextExt = keepFrom;
    if (!this.playing) this.lowestWaiting = firstKept;
  }

  /** Grows the ring (doubling) until it holds every packet from the oldest waiting one up to `ext`. */
  private fitSpan(ext: number): void {
    const from = this.playing ? this.nextExt : this.lowestWaiting >= 0 ? Math.min(this.lowestWaiting, ext) : ext;
    const span = Math.max(ext, this.highestExt) - from + 1;
    let size = this.mask + 1;
    if (span <= size || size >= MAX_SLOTS) return;
    while (size < span && size < MAX_SLOTS) size *= 2;
    const ext0 = this.slotExt;
    const ts0 = this.slotTs;
    const payload0 = this.slotPayload;
    this.mask = size - 1;
    this.slotExt = new Float64Array(size).fill(-1);
    this.slotTs = new Uint32Array(size);
    this.slotPayload = new Array<Uint8Array | null>(size).fill(null);
    // Slots differ in their extended numbers modulo the old size, so also modulo the new one.
    for (let i = 0; i < ext0.length; i++) {
      const e = ext0[i]!;
      if (e < 0) continue;
      const slot = e & this.mask;
      this.slotExt[slot] = e;
      this.slotTs[slot] = ts0[i]!;
      this.slotPayload[slot] = payload0[i]!;
    }
  }

  private learnFrameDuration(timestamp: number): void {
    const prev = this.slotTs[this.highestExt & this.mask]!;
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

  private copyOf(bytes: Uint8Array, offset: number, length: number): Uint8Array {
    let copy = this.spare.pop();
    if (copy === undefined || copy.length !== length) copy = new Uint8Array(length);
    // A whole array is copied natively; a part of one without making a view of it (see ParsedRtp).
    if (offset === 0 && length === bytes.length) copy.set(bytes);
    else for (let i = 0; i < length; i++) copy[i] = bytes[offset + i]!;
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
    const slot = this.nextExt & this.mask;
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
        const slot = this.nextExt & this.mask;
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

  /** Frames concealed (lost) so far: stats().lost without building stats(). */
  get lostFrames(): number {
    return this.counters.lost;
  }

  /** Packets that came after their playout: stats().late without building stats(). */
  get latePackets(): number {
    return this.counters.late;
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
