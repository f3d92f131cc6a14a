// Streaming sample-rate conversion between 8, 16 and 48 kHz.
//
// Each stage is a polyphase rational resampler (up by L, low-pass, down by M) whose FIR is a
// Kaiser-windowed sinc designed from a passband edge, a stopband edge and an attenuation. Only the
// outputs that survive decimation are computed, and filter history carries over between calls, so
// consecutive 20 ms frames join seamlessly. 8↔48 kHz runs as two stages through 16 kHz: the sharp
// 4 kHz edge is cut at 16 kHz where it is cheap, the 16↔48 stage only has to reject images far
// above the 3.5 kHz telephone band.

const attenuationDb = 70;

interface StageDesign {
  inRate: number;
  up: number;
  down: number;
  passHz: number;
  stopHz: number;
}

/** Kaiser window shape parameter for a given stopband attenuation (Kaiser's formula). */
function kaiserBeta(a: number): number {
  if (a > 50) return 0.1102 * (a - 8.7);
  if (a >= 21) return 0.5842 * (a - 21) ** 0.4 + 0.07886 * (a - 21);
  return 0;
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

/** Polyphase coefficient table: phase p, tap k at index p * taps + k. */
function designPhases(d: StageDesign): { phases: Float64Array; taps: number } {
  const fsUp = d.inRate * d.up;
  const transition = (2 * Math.PI * (d.stopHz - d.passHz)) / fsUp;
  const minLength = Math.ceil((attenuationDb - 7.95) / (2.285 * transition)) + 1;
  const taps = Math.ceil(minLength / d.up);
  const n = taps * d.up;
  const cutoff = (d.passHz + d.stopHz) / 2 / fsUp; // cycles per upsampled sample
  const beta = kaiserBeta(attenuationDb);
  const center = (n - 1) / 2;
  const h = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const t = i - center;
    const sinc = t === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * t) / (Math.PI * t);
    const r = (2 * i) / (n - 1) - 1;
    const w = besselI0(beta * Math.sqrt(Math.max(0, 1 - r * r))) / besselI0(beta);
    h[i] = sinc * w;
    sum += h[i] ?? 0;
  }
  // Unity passband gain after zero-stuffing by `up`.
  const phases = new Float64Array(n);
  for (let p = 0; p < d.up; p++) {
    for (let k = 0; k < taps; k++) phases[p * taps + k] = ((h[p + k * d.up] ?? 0) * d.up) / sum;
  }
  return { phases, taps };
}

class PolyphaseStage {
  private history: Float64Array; // last taps-1 inputs, then the current block
  private position = 0; // next output's index in the upsampled domain, relative to block start

  constructor(
    private readonly up: number,
    private readonly down: number,
    private readonly phases: Float64Array,
    private readonly taps: number,
  ) {
    this.history = new Float64Array(taps - 1 + 960);
  }

  process(input: Float64Array, length: number): { out: Float64Array; length: number } {
    const keep = this.taps - 1;
    if (this.history.length < keep + length) {
      const grown = new Float64Array(keep + length);
      grown.set(this.history.subarray(0, keep));
      this.history = grown;
    }
    const buf = this.history;
    buf.set(input.subarray(0, length), keep);
    const { up, down, phases, taps } = this;
    const end = length * up;
    const out = new Float64Array(Math.ceil((end - this.position) / down) + 1);
    let produced = 0;
    let u = this.position;
    for (; u < end; u += down) {
      const i = Math.floor(u / up);
      const base = (u - i * up) * taps;
      const newest = keep + i;
      let acc = 0;
      for (let k = 0; k < taps; k++) acc += (phases[base + k] as number) * (buf[newest - k] as number);
      out[produced++] = acc;
    }
    this.position = u - end;
    buf.copyWithin(0, length, length + keep);
    return { out, length: produced };
  }

  fork(): PolyphaseStage {
    const c = new PolyphaseStage(this.up, this.down, this.phases, this.taps);
    c.history = this.history.slice();
    c.position = this.position;
    return c;
  }
}

export interface Resampler {
  readonly fromRate: number;
  readonly toRate: number;
  /** Converts the next block of a continuous stream; returns a fresh array. */
  process(input: Int16Array): Int16Array;
  /** An independent resampler in the same state (same filter history). */
  fork(): Resampler;
}

const stageDesigns = new Map<string, StageDesign[]>([
  ["8000>16000", [{ inRate: 8000, up: 2, down: 1, passHz: 3500, stopHz: 4500 }]],
  ["16000>8000", [{ inRate: 16000, up: 1, down: 2, passHz: 3500, stopHz: 4500 }]],
  ["16000>48000", [{ inRate: 16000, up: 3, down: 1, passHz: 7000, stopHz: 9000 }]],
  ["48000>16000", [{ inRate: 48000, up: 1, down: 3, passHz: 7000, stopHz: 9000 }]],
  ["8000>48000", [
    { inRate: 8000, up: 2, down: 1, passHz: 3500, stopHz: 4500 },
    { inRate: 16000, up: 3, down: 1, passHz: 3500, stopHz: 12500 },
  ]],
  ["48000>8000", [
    { inRate: 48000, up: 1, down: 3, passHz: 3500, stopHz: 12500 },
    { inRate: 16000, up: 1, down: 2, passHz: 3500, stopHz: 4500 },
  ]],
]);

const designCache = new Map<StageDesign, { phases: Float64Array; taps: number }>();

function stageFor(d: StageDesign): PolyphaseStage {
  let designed = designCache.get(d);
  if (!designed) {
    designed = designPhases(d);
    designCache.set(d, designed);
  }
  return new PolyphaseStage(d.up, d.down, designed.phases, designed.taps);
}

class ChainResampler implements Resampler {
  constructor(
    readonly fromRate: number,
    readonly toRate: number,
    private readonly stages: PolyphaseStage[],
  ) {}

  process(input: Int16Array): Int16Array {
    let buf: Float64Array = Float64Array.from(input);
    let length = input.length;
    for (const stage of this.stages) ({ out: buf, length } = stage.process(buf, length));
    const out = new Int16Array(length);
    for (let i = 0; i < length; i++) {
      const v = Math.round(buf[i] as number);
      out[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
    }
    return out;
  }

  fork(): Resampler {
    return new ChainResampler(this.fromRate, this.toRate, this.stages.map((s) => s.fork()));
  }
}

/** Supported rates: 8000, 16000, 48000 in any direction (same rate returns a copying pass-through). */
export function createResampler(fromRate: number, toRate: number): Resampler {
  if (fromRate === toRate) {
    const identity: Resampler = { fromRate, toRate, process: (input) => input.slice(), fork: () => identity };
    return identity;
  }
  const designs = stageDesigns.get(`${fromRate}>${toRate}`);
  if (!designs) throw new RangeError(`unsupported resampling ${fromRate} Hz → ${toRate} Hz`);
  return new ChainResampler(fromRate, toRate, designs.map(stageFor));
}
