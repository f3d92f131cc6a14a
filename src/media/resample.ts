// Streaming sample-rate conversion between 8, 16 and 48 kHz.
//
// Each stage is a polyphase interpolator (×L) or decimator (÷M) whose low-pass FIR is a
// Kaiser-windowed sinc designed from a passband edge, a stopband edge and a 70 dB stopband. Only
// the outputs that survive decimation are computed, and filter history carries over between
// calls, so consecutive frames join seamlessly. 8↔48 kHz runs as two stages through 16 kHz: the
// sharp 4 kHz edge is cut at 16 kHz where it is cheap, the 16↔48 stage only has to reject images
// far above the 3.5 kHz telephone band.
//
// Every resampler, the same-rate one included, delays its stream by exactly `resampleDelayMs`
// (the slowest conversion's filter delay, the others padded with a delay line). A stream can then
// switch between conversions mid-flight (a mixer changing rate) without jumping in time: the new
// resampler, given the old one's recent input, carries on at the very sample the old one reached.

const attenuationDb = 70;
/** Kaiser window shape for that attenuation (Kaiser's formula for more than 50 dB). */
const kaiserBeta = 0.1102 * (attenuationDb - 8.7);

interface StageDesign {
  inRate: number;
  up: number;
  down: number;
  passHz: number;
  stopHz: number;
}

/** Zeroth-order modified Bessel function of the first kind (series expansion). */
function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  for (let k = 1; k < 40; k++) {
    term *= (x / (2 * k)) ** 2;
    sum += term;
    if (term < sum * 1e-12) break;
  }
  return sum;
}

/**
 * Polyphase form of the filter without its zero taps (half-band ×2/÷2 and third-band ×3/÷3
 * designs have every 2nd/3rd tap exactly zero): phase p applies coefs[j] to the input delays[j]
 * samples back, for j in [starts[p], starts[p+1]).
 */
interface Polyphase {
  starts: Int32Array;
  coefs: Float64Array;
  delays: Int32Array;
  /** Input history a phase can reach back. */
  span: number;
  /** Group delay of the linear-phase filter, in samples at the upsampled rate. */
  delay: number;
}

function prototypeFilter(d: StageDesign): Float64Array {
  const fsUp = d.inRate * d.up;
  const transition = (2 * Math.PI * (d.stopHz - d.passHz)) / fsUp;
  const minLength = Math.ceil((attenuationDb - 7.95) / (2.285 * transition)) + 1;
  // Odd length, so the centre tap falls on a sample and band-filter zeros land exactly on taps;
  // for a decimator also a delay of whole output samples ((n − 1)/2 a multiple of `down`).
  let n = minLength % 2 === 1 ? minLength : minLength + 1;
  while (((n - 1) / 2) % d.down !== 0) n += 2;
  const cutoff = (d.passHz + d.stopHz) / 2 / fsUp; // cycles per upsampled sample
  const center = (n - 1) / 2;
  const h = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const t = i - center;
    const x = 2 * cutoff * t;
    // sin(πx) is exactly zero at integer x; compute it so rounding does not leave tiny taps.
    const sinc = t === 0 ? 2 * cutoff : Number.isInteger(x) ? 0 : Math.sin(Math.PI * x) / (Math.PI * t);
    const r = (2 * i) / (n - 1) - 1;
    h[i] = (sinc * besselI0(kaiserBeta * Math.sqrt(Math.max(0, 1 - r * r)))) / besselI0(kaiserBeta);
    sum += h[i] as number;
  }
  // Unity passband gain after zero-stuffing by `up`.
  for (let i = 0; i < n; i++) h[i] = ((h[i] as number) * d.up) / sum;
  return h;
}

function designPolyphase(d: StageDesign): Polyphase {
  const h = prototypeFilter(d);
  const peak = h.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  const starts = new Int32Array(d.up + 1);
  const coefs: number[] = [];
  const delays: number[] = [];
  for (let p = 0; p < d.up; p++) {
    starts[p] = coefs.length;
    for (let k = 0; p + k * d.up < h.length; k++) {
      const c = h[p + k * d.up] as number;
      if (Math.abs(c) <= peak * 1e-12) continue;
      coefs.push(c);
      delays.push(k);
    }
  }
  starts[d.up] = coefs.length;
  return { starts, coefs: Float64Array.from(coefs), delays: Int32Array.from(delays), span: Math.ceil(h.length / d.up), delay: (h.length - 1) / 2 };
}

/**
 * One interpolation (×up) or decimation (÷down) stage; the other factor is 1. Loops run tap by
 * tap over the whole block (out[n] += c · x[n − delay]), long simple loops the JIT handles well.
 */
class PolyphaseStage {
  /** Last `span` inputs followed by the current block. */
  private history: Float64Array;
  private output = new Float64Array(0);
  /** Decimation: index in the next block of the input the next output is aligned with. */
  private offset = 0;
  /** The history holds only zeros, so an all-zero block yields zeros without filtering. */
  private quiet = true;

  constructor(
    private readonly up: number,
    private readonly down: number,
    private readonly filter: Polyphase,
  ) {
    this.history = new Float64Array(filter.span + 960);
  }

  /** Filters `length` samples of `input`; the result is valid until the next call. */
  process(input: Float64Array, length: number): { out: Float64Array; length: number } {
    const keep = this.filter.span;
    if (this.history.length < keep + length) {
      const grown = new Float64Array(keep + length);
      grown.set(this.history.subarray(0, keep));
      this.history = grown;
    }
    const { up, down } = this;
    const { starts, coefs, delays } = this.filter;
    const count = up > 1 ? length * up : Math.max(0, Math.ceil((length - this.offset) / down));
    if (this.output.length < count) this.output = new Float64Array(count);
    const out = this.output;
    out.fill(0, 0, count);
    let silent = true;
    for (let i = 0; i < length && silent; i++) silent = input[i] === 0;
    const wasQuiet = this.quiet;
    this.quiet = silent && length >= keep;
    if (silent && wasQuiet && length >= keep) {
      this.offset = this.offset + count * down - length;
      return { out, length: count };
    }
    const buf = this.history;
    buf.set(input.subarray(0, length), keep);
    if (up > 1) {
      for (let phase = 0; phase < up; phase++) {
        for (let j = starts[phase] as number; j < (starts[phase + 1] as number); j++) {
          const c = coefs[j] as number;
          const from = keep - (delays[j] as number);
          for (let i = 0, o = phase; i < length; i++, o += up) out[o] = (out[o] as number) + c * (buf[from + i] as number);
        }
      }
    } else {
      for (let j = 0; j < coefs.length; j++) {
        const c = coefs[j] as number;
        const from = keep + this.offset - (delays[j] as number);
        for (let o = 0, i = from; o < count; o++, i += down) out[o] = (out[o] as number) + c * (buf[i] as number);
      }
      this.offset = this.offset + count * down - length;
    }
    buf.copyWithin(0, length, length + keep);
    return { out, length: count };
  }

  fork(): PolyphaseStage {
    const c = new PolyphaseStage(this.up, this.down, this.filter);
    c.history = this.history.slice();
    c.offset = this.offset;
    c.quiet = this.quiet;
    return c;
  }
}

export interface Resampler {
  readonly fromRate: number;
  readonly toRate: number;
  /** Converts the next block of a continuous stream; the result is valid until the next call (copy it to keep it). */
  process(input: Int16Array): Int16Array;
  /** An independent resampler in the same state (same filter history). */
  fork(): Resampler;
}

const stageDesigns = new Map<string, StageDesign[]>([
  ["8000>16000", [{ inRate: 8000, up: 2, down: 1, passHz: 3400, stopHz: 4600 }]],
  ["16000>8000", [{ inRate: 16000, up: 1, down: 2, passHz: 3400, stopHz: 4600 }]],
  ["16000>48000", [{ inRate: 16000, up: 3, down: 1, passHz: 7000, stopHz: 9000 }]],
  ["48000>16000", [{ inRate: 48000, up: 1, down: 3, passHz: 7000, stopHz: 9000 }]],
  ["8000>48000", [
    { inRate: 8000, up: 2, down: 1, passHz: 3400, stopHz: 4600 },
    { inRate: 16000, up: 3, down: 1, passHz: 3400, stopHz: 12600 },
  ]],
  ["48000>8000", [
    { inRate: 48000, up: 1, down: 3, passHz: 3400, stopHz: 12600 },
    { inRate: 16000, up: 1, down: 2, passHz: 3400, stopHz: 4600 },
  ]],
]);

const designCache = new Map<StageDesign, Polyphase>();

function designed(d: StageDesign): Polyphase {
  let p = designCache.get(d);
  if (!p) {
    p = designPolyphase(d);
    designCache.set(d, p);
  }
  return p;
}

/** Filter delay of a chain of stages, in seconds. */
function chainDelay(designs: StageDesign[]): number {
  return designs.reduce((sum, d) => sum + designed(d).delay / (d.inRate * d.up), 0);
}

/**
 * The one delay every resampler has: the slowest chain's, rounded up to whole 8 kHz samples so
 * it is a whole number of samples at every supported rate.
 */
export const resampleDelayMs = (Math.ceil(Math.max(...[...stageDesigns.values()].map(chainDelay)) * 8000 - 1e-9) / 8000) * 1000;

/**
 * Pads a stream with a fixed delay (the chain's own delay topped up to the common one): a ring of
 * the last `length` samples (straight copies when a block is longer than the delay). Plain loops,
 * no typed-array views: creating views is slow in JSC, and this runs twice per participant per tick
 * even in a channel that resamples nothing.
 */
class DelayLine {
  private held: Int16Array;
  private head = 0;
  /** Reused for every block of one length (a stream's blocks keep their size). */
  private out = new Int16Array(0);

  constructor(length: number) {
    this.held = new Int16Array(length);
  }

  /** Returns `length` samples, valid until the next call: the held ones first, then the input; keeps the rest. */
  process(input: Int16Array, length = input.length): Int16Array {
    if (this.out.length !== length) this.out = new Int16Array(length);
    const out = this.out;
    const held = this.held;
    const pad = held.length;
    if (pad === 0) {
      for (let i = 0; i < length; i++) out[i] = input[i] as number;
      return out;
    }
    let head = this.head;
    if (length >= pad) {
      // The usual block, longer than the delay: straight copies instead of stepping the ring.
      let k = 0;
      for (let j = head; j < pad; j++) out[k++] = held[j] as number;
      for (let j = 0; j < head; j++) out[k++] = held[j] as number;
      for (let i = 0; k < length; i++) out[k++] = input[i] as number;
      const rest = length - pad;
      for (let j = 0; j < pad; j++) held[j] = input[rest + j] as number;
      this.head = 0;
      return out;
    }
    for (let i = 0; i < length; i++) {
      out[i] = held[head] as number;
      held[head] = input[i] as number;
      head = head + 1 === pad ? 0 : head + 1;
    }
    this.head = head;
    return out;
  }

  fork(): DelayLine {
    const c = new DelayLine(0);
    c.held = this.held.slice();
    c.head = this.head;
    return c;
  }
}

class ChainResampler implements Resampler {
  constructor(
    readonly fromRate: number,
    readonly toRate: number,
    private readonly stages: PolyphaseStage[],
    private readonly padding: DelayLine,
  ) {}

  private input: Float64Array = new Float64Array(0);
  private rounded = new Int16Array(0);

  process(input: Int16Array): Int16Array {
    if (this.input.length < input.length) this.input = new Float64Array(input.length);
    this.input.set(input);
    let buf = this.input;
    let length = input.length;
    for (const stage of this.stages) ({ out: buf, length } = stage.process(buf, length));
    if (this.rounded.length < length) this.rounded = new Int16Array(length);
    const out = this.rounded;
    for (let i = 0; i < length; i++) {
      const v = Math.round(buf[i] as number);
      out[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
    }
    return this.padding.process(out, length);
  }

  fork(): Resampler {
    return new ChainResampler(this.fromRate, this.toRate, this.stages.map((s) => s.fork()), this.padding.fork());
  }
}

class DelayResampler implements Resampler {
  constructor(
    readonly fromRate: number,
    private readonly line: DelayLine,
  ) {}

  get toRate(): number {
    return this.fromRate;
  }

  process(input: Int16Array): Int16Array {
    return this.line.process(input);
  }

  fork(): Resampler {
    return new DelayResampler(this.fromRate, this.line.fork());
  }
}

let rateConverters = 0;

/** How many rate-converting (not same-rate) resamplers this process has created; for tests and benchmarks. */
export function rateConvertersCreated(): number {
  return rateConverters;
}

/**
 * Supported rates: 8000, 16000, 48000 in any direction. Every resampler delays by exactly
 * `resampleDelayMs`; same rate in and out is a pure delay line.
 */
export function createResampler(fromRate: number, toRate: number): Resampler {
  const delaySamples = Math.round((resampleDelayMs * toRate) / 1000);
  if (fromRate === toRate && stageDesigns.has(`${fromRate}>${fromRate === 8000 ? 16000 : 8000}`)) {
    return new DelayResampler(fromRate, new DelayLine(delaySamples));
  }
  const designs = stageDesigns.get(`${fromRate}>${toRate}`);
  if (!designs) throw new RangeError(`unsupported resampling ${fromRate} Hz → ${toRate} Hz`);
  rateConverters++;
  const own = chainDelay(designs) * toRate;
  const padding = new DelayLine(delaySamples - Math.round(own));
  return new ChainResampler(fromRate, toRate, designs.map((d) => new PolyphaseStage(d.up, d.down, designed(d))), padding);
}
