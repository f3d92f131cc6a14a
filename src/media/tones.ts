// Call-progress tones (ringback, busy, congestion) as 20 ms frames of PCM at whatever rate the
// mixer runs: the sum of one or two sines, switched on and off by a cadence, phase-continuous
// across frames (and across a change of rate, since the phase is kept in cycles, not samples).
//
//   const tone = new ToneGenerator(BUSY_TONE, { durationMs: 3000 });
//   tone.frame(48000)   // 960 samples, or undefined once the 3 s are over
import type { Codec } from "./codec.ts";
import { SwitchingResampler } from "./rate-switch.ts";

export interface ToneCadence {
  /** Hz summed into the tone (one or two). */
  frequencies: readonly number[];
  /** Tone on, then off, per cycle. */
  onMs: number;
  offMs: number;
}

/** North American ringback (ANSI T1.401): 440 + 480 Hz, 2 s on, 4 s off. */
export const RINGBACK_TONE: ToneCadence = { frequencies: [440, 480], onMs: 2000, offMs: 4000 };
/** North American busy: 480 + 620 Hz, 0.5 s on, 0.5 s off. */
export const BUSY_TONE: ToneCadence = { frequencies: [480, 620], onMs: 500, offMs: 500 };
/** North American reorder (congestion): 480 + 620 Hz, 0.25 s on, 0.25 s off. */
export const CONGESTION_TONE: ToneCadence = { frequencies: [480, 620], onMs: 250, offMs: 250 };

/**
 * A tone for one listener, as the main thread asks for it: the cadence and how long cross to the
 * listener's media host as data; the stop condition stays here, and the asker sends a stop once it holds.
 */
export interface ToneRequest {
  cadence: ToneCadence;
  durationMs?: number;
  stopWhen?: () => boolean;
}

const FRAME_MS = 20;
/** Peak of each sine: two of them stay below −10 dBFS together, about the level of speech. */
const AMPLITUDE = 3500;

export class ToneGenerator {
  private elapsedMs = 0;
  /** Phase of each frequency, in cycles (0..1). */
  private readonly phases: number[];
  private buffer = new Int16Array(0);

  constructor(
    readonly cadence: ToneCadence,
    private readonly o: { durationMs?: number } = {},
  ) {
    this.phases = cadence.frequencies.map(() => 0);
  }

  /** Whether the tone has run for its duration. */
  get finished(): boolean {
    return this.o.durationMs !== undefined && this.elapsedMs >= this.o.durationMs;
  }

  /** The next 20 ms at `sampleRate` (reused: valid until the next call), or undefined once finished. */
  frame(sampleRate: number): Int16Array | undefined {
    if (this.finished) return undefined;
    const n = (sampleRate * FRAME_MS) / 1000;
    if (this.buffer.length !== n) this.buffer = new Int16Array(n);
    const out = this.buffer;
    const { frequencies, onMs, offMs } = this.cadence;
    const cycleMs = onMs + offMs;
    for (let i = 0; i < n; i++) {
      const atMs = this.elapsedMs + (i * 1000) / sampleRate;
      const on = atMs % cycleMs < onMs;
      let v = 0;
      for (let f = 0; f < frequencies.length; f++) {
        const phase = this.phases[f] as number;
        if (on) v += Math.sin(2 * Math.PI * phase);
        this.phases[f] = (phase + (frequencies[f] as number) / sampleRate) % 1;
      }
      out[i] = Math.round(v * AMPLITUDE);
    }
    this.elapsedMs += FRAME_MS;
    return out;
  }
}

/**
 * One listener's mix with a tone added, encoded by an encoder of its own: the shared encoders of
 * the mix (mix-encoder.ts) must not see a frame only this listener hears. Moving between the
 * shared stream and this one is like the mixer's own stream switches: exact for G.711, a restart
 * an Opus decoder absorbs.
 */
export class ToneOverlay {
  private readonly resampler = new SwitchingResampler();
  private readonly encoder;
  private mixed = new Int16Array(0);

  constructor(
    readonly tone: ToneGenerator,
    private readonly codec: Codec,
  ) {
    this.encoder = codec.createEncoder();
  }

  /** The payload of `pcm` (the listener's mix at `sampleRate`) with the tone's next frame; undefined once the tone is over. */
  encode(pcm: Int16Array, sampleRate: number): Uint8Array | undefined {
    const tone = this.tone.frame(sampleRate);
    if (!tone) return undefined;
    if (this.mixed.length !== pcm.length) this.mixed = new Int16Array(pcm.length);
    for (let i = 0; i < pcm.length; i++) this.mixed[i] = Math.max(-32768, Math.min(32767, (pcm[i] as number) + (tone[i] as number)));
    return this.encoder.encode(this.resampler.process(this.mixed, sampleRate, this.codec.sampleRate));
  }
}
