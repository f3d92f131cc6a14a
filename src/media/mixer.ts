// Conference mixer: one per channel, a fixed tick (20 ms at 48 kHz mono by default).
//
// Every tick each participant hears the sum of everyone else (N−1):
// - Only "contributors" are summed: participants with a fresh frame this tick whose voice activity
//   (frame energy above `speechThreshold`, held for `hangoverMs`) says they are talking. Absent or
//   silent inputs cost one energy pass at most and are never added, so background hiss does not
//   build up as people join.
// - No division by N: levels do not drop as people join. Sums beyond the knee (−2.5 dBFS) go through
//   a stateless soft limiter (see softLimit), so loud overlaps are compressed instead of clipped,
//   identically for every stream, with no gain state that would pump or differ between streams.
// - Everyone who is not a contributor hears the same full mix (mixId `sharedMixId`); each
//   contributor hears its own N−1 mix (mixId unique to that participant). Use
//   `participant.encode(frame, codec)` to get the RTP payload: each distinct mix is encoded once
//   per codec per tick (see mix-encoder.ts for how stateful encoders stay consistent).
// - Joining and leaving never touch the others' streams; a contributor starting or stopping
//   (voice activity edges) is faded in/out over one frame so gating never clicks.
import { createLogger } from "../log.ts";
import type { Codec } from "./codec.ts";
import { MixEncoderCache } from "./mix-encoder.ts";
import { DriftCorrectedTicker, sharedTicker, type TickSource } from "./ticker.ts";

const log = createLogger("media.mixer");

export const sharedMixId = 0;

export interface MixedFrame {
  /** What this participant hears (N−1), 48 kHz mono. Shared with other listeners of the same mix: read only. */
  pcm: Int16Array;
  /** Identity of the mix stream; equal for all participants hearing the same mix. Stable across ticks. */
  mixId: number;
  /** Tick counter of this mixer; frames of one tick share it. */
  tick: number;
  /** Nobody else is talking: the frame is all zeros. */
  silent: boolean;
}

export interface MixerParticipant {
  readonly id: string;
  /** Queue one frame of 48 kHz mono PCM (frame length samples, copied). Wrong lengths are dropped. */
  write(pcm48k: Int16Array): void;
  /** RTP payload of `frame` in `codec`, encoded once per distinct mix and shared. */
  encode(frame: MixedFrame, codec: Codec): Uint8Array;
  /** Voice activity of this participant as of the last tick. */
  readonly speaking: boolean;
  leave(): void;
}

export interface JoinOptions {
  /**
   * Pull-mode input: called once per tick for this participant's next frame (e.g. popping a jitter
   * buffer exactly on the mixer clock). When given, write() is not needed.
   */
  pull?: () => Int16Array | undefined;
}

export interface MixerOptions {
  frameMs?: number;
  sampleRate?: number;
  /** Defaults to the process-wide drift-corrected 20 ms ticker. Pass a ManualTicker in tests. */
  ticker?: TickSource;
  /** RMS level (16-bit scale) above which a frame counts as speech; default 100 (≈ −50 dBFS). */
  speechThreshold?: number;
  /** How long a participant keeps contributing after its last speech frame; default 300 ms. */
  hangoverMs?: number;
}

export interface MixerStats {
  ticks: number;
  participants: number;
  /** Contributors in the last tick. */
  speakers: number;
  droppedFrames: number;
}

/** Input frames buffered per participant before the oldest is dropped (bounds added latency). */
const queueDepth = 3;
const limiterKnee = 24576;
const limiterRange = 32767 - limiterKnee;

/**
 * Soft limiter: identity below the knee, then a rational curve knee + R·d/(d + R) (d = excess over
 * the knee, R = headroom) that joins with slope 1 and only approaches full scale asymptotically,
 * so even several full-scale talkers keep their waveform shape instead of flat-topping.
 */
function softLimit(acc: Int32Array, out: Int16Array): void {
  for (let i = 0; i < out.length; i++) {
    const v = acc[i] as number;
    if (v <= limiterKnee && v >= -limiterKnee) out[i] = v;
    else if (v > 0) {
      const d = v - limiterKnee;
      out[i] = Math.round(limiterKnee + (limiterRange * d) / (d + limiterRange));
    } else {
      const d = -v - limiterKnee;
      out[i] = -Math.round(limiterKnee + (limiterRange * d) / (d + limiterRange));
    }
  }
}

class Participant implements MixerParticipant {
  readonly queue: Int16Array[];
  queued = 0;
  queueHead = 0;
  /** Last tick at which this participant still counts as speaking. */
  speakingUntil = -1;
  /** Whether it was summed into the mix last tick (for fade edges). */
  wasMixed = false;
  speaking = false;
  left = false;
  /** This tick's contribution when faded (otherwise the input frame itself is used). */
  readonly faded: Int32Array;
  contribution: Int16Array | Int32Array | undefined;
  currentMix = sharedMixId;

  constructor(
    readonly id: string,
    readonly mixId: number,
    readonly onFrame: (frame: MixedFrame) => void,
    readonly pull: (() => Int16Array | undefined) | undefined,
    private readonly mixer: Mixer,
    frameSamples: number,
  ) {
    this.queue = Array.from({ length: queueDepth }, () => new Int16Array(frameSamples));
    this.faded = new Int32Array(frameSamples);
  }

  write(pcm48k: Int16Array): void {
    this.mixer.enqueue(this, pcm48k);
  }

  encode(frame: MixedFrame, codec: Codec): Uint8Array {
    return this.mixer.encodeFor(this.id, frame, codec);
  }

  leave(): void {
    this.mixer.remove(this);
  }
}

export class Mixer {
  readonly frameMs: number;
  readonly sampleRate: number;
  readonly frameSamples: number;
  private readonly participants = new Map<string, Participant>();
  private order: Participant[] = [];
  private readonly unsubscribe: () => void;
  private readonly encoderCache: MixEncoderCache;
  private readonly speechEnergy: number;
  private readonly hangoverTicks: number;
  private readonly acc: Int32Array;
  private readonly fadeIn: Float64Array;
  private nextMixId = sharedMixId + 1;
  private tickCount = 0;
  private lastSpeakers = 0;
  private droppedFrames = 0;
  private closed = false;

  constructor(o: MixerOptions = {}) {
    this.frameMs = o.frameMs ?? 20;
    this.sampleRate = o.sampleRate ?? 48000;
    this.frameSamples = (this.sampleRate * this.frameMs) / 1000;
    const threshold = o.speechThreshold ?? 100;
    this.speechEnergy = threshold * threshold;
    this.hangoverTicks = Math.ceil((o.hangoverMs ?? 300) / this.frameMs);
    this.acc = new Int32Array(this.frameSamples);
    this.fadeIn = Float64Array.from({ length: this.frameSamples }, (_, i) => (i + 1) / this.frameSamples);
    this.encoderCache = new MixEncoderCache(this.sampleRate);
    const ticker = o.ticker ?? (this.frameMs === 20 ? sharedTicker() : new DriftCorrectedTicker(this.frameMs));
    this.unsubscribe = ticker.subscribe(() => this.tick());
  }

  /** Adds a participant; `onFrame` receives what it hears every tick. Ids must be unique per mixer. */
  join(id: string, onFrame: (frame: MixedFrame) => void, o: JoinOptions = {}): MixerParticipant {
    if (this.closed) throw new Error("mixer is closed");
    if (this.participants.has(id)) throw new Error(`participant ${id} already in this mixer`);
    const p = new Participant(id, this.nextMixId++, onFrame, o.pull, this, this.frameSamples);
    this.participants.set(id, p);
    this.order = [...this.order, p];
    return p;
  }

  get size(): number {
    return this.participants.size;
  }

  stats(): MixerStats {
    return {
      ticks: this.tickCount,
      participants: this.participants.size,
      speakers: this.lastSpeakers,
      droppedFrames: this.droppedFrames,
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    for (const p of this.order) p.left = true;
    this.participants.clear();
    this.order = [];
  }

  /** @internal participant.write */
  enqueue(p: Participant, pcm: Int16Array): void {
    if (p.left) return;
    if (pcm.length !== this.frameSamples) {
      this.droppedFrames++;
      return;
    }
    if (p.queued === queueDepth) {
      // Full: drop the oldest so latency stays bounded.
      p.queueHead = (p.queueHead + 1) % queueDepth;
      p.queued--;
      this.droppedFrames++;
    }
    const slot = p.queue[(p.queueHead + p.queued) % queueDepth] as Int16Array;
    slot.set(pcm);
    p.queued++;
  }

  /** @internal participant.encode */
  encodeFor(listenerId: string, frame: MixedFrame, codec: Codec): Uint8Array {
    return this.encoderCache.encode(listenerId, frame, codec);
  }

  /** @internal participant.leave */
  remove(p: Participant): void {
    if (p.left) return;
    p.left = true;
    this.participants.delete(p.id);
    this.order = this.order.filter((q) => q !== p);
    this.encoderCache.dropListener(p.id, p.mixId);
  }

  /** Takes this tick's input frame of a participant, if it has a fresh one. */
  private nextInput(p: Participant): Int16Array | undefined {
    if (p.pull) {
      let frame: Int16Array | undefined;
      try {
        frame = p.pull();
      } catch (err) {
        log.error("participant pull failed", { participant: p.id, err });
      }
      return frame && frame.length === this.frameSamples ? frame : undefined;
    }
    if (p.queued === 0) return undefined;
    const frame = p.queue[p.queueHead] as Int16Array;
    p.queueHead = (p.queueHead + 1) % queueDepth;
    p.queued--;
    return frame;
  }

  /** One mixer period: gather inputs, sum contributors, deliver N−1 mixes. Public for offline use. */
  tick(): void {
    if (this.closed) return;
    const tick = this.tickCount++;
    const n = this.frameSamples;
    const acc = this.acc;
    acc.fill(0);
    const participants = this.order;
    const contributors: Participant[] = [];
    let switches = false;

    for (const p of participants) {
      const frame = this.nextInput(p);
      p.contribution = undefined;
      if (!frame) {
        p.wasMixed = false;
        p.speaking = false;
      } else {
        let energy = 0;
        for (let i = 0; i < n; i++) {
          const v = frame[i] as number;
          energy += v * v;
        }
        if (energy / n >= this.speechEnergy) p.speakingUntil = tick + this.hangoverTicks;
        p.speaking = tick <= p.speakingUntil;
        if (p.speaking || p.wasMixed) {
          // Fade in on the first mixed frame, out on the first gated one; otherwise add as is.
          const fadingIn = p.speaking && !p.wasMixed;
          const fadingOut = !p.speaking;
          if (fadingIn || fadingOut) {
            const ramp = this.fadeIn;
            const faded = p.faded;
            for (let i = 0; i < n; i++) {
              const g = fadingIn ? (ramp[i] as number) : 1 - (ramp[i] as number);
              faded[i] = Math.round((frame[i] as number) * g);
            }
            p.contribution = faded;
          } else p.contribution = frame;
          const c = p.contribution;
          for (let i = 0; i < n; i++) acc[i] = (acc[i] as number) + (c[i] as number);
          contributors.push(p);
        }
        p.wasMixed = p.speaking;
      }
      const mix = p.contribution ? p.mixId : sharedMixId;
      if (mix !== p.currentMix) {
        switches = true;
        p.currentMix = mix;
      }
    }
    this.lastSpeakers = contributors.length;
    if (switches) this.encoderCache.noteSwitches(tick);

    const full = new Int16Array(n);
    if (contributors.length > 0) softLimit(acc, full);
    const shared: MixedFrame = { pcm: full, mixId: sharedMixId, tick, silent: contributors.length === 0 };
    const minusOne = new Int32Array(contributors.length > 0 ? n : 0);
    for (const p of participants) {
      if (p.left) continue;
      let frame = shared;
      const own = p.contribution;
      if (own) {
        for (let i = 0; i < n; i++) minusOne[i] = (acc[i] as number) - (own[i] as number);
        const pcm = new Int16Array(n);
        const alone = contributors.length === 1;
        if (!alone) softLimit(minusOne, pcm);
        frame = { pcm, mixId: p.mixId, tick, silent: alone };
      }
      try {
        p.onFrame(frame);
      } catch (err) {
        log.error("participant frame handler failed", { participant: p.id, err });
      }
    }
    if (tick % 50 === 0) this.encoderCache.sweep(tick);
  }
}
