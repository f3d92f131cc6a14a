// Resampling for a stream whose rates change now and then: a mixer input or output when the mixer
// changes rate as participants come and go.
//
// On a change the new resampler is first fed the stream's last input block. Every resampler has the
// same delay (resample.ts), so it then carries on at exactly the sample the old one had reached: no
// gap, no jump in time, no filter start-up ramp. When the input rate itself changed, that last block
// is first converted to the new input rate, band-limited; the filter needs its recent past up to the
// very last sample, so the conversion also looks ahead into the current block (roughly
// interpolated: it only has to supply the few milliseconds a filter reaches forward).
import { createResampler, resampleDelayMs, type Resampler } from "./resample.ts";

export class SwitchingResampler {
  private resampler: Resampler | undefined;
  private last = new Int16Array(0);
  private lastLength = 0;
  private lastRate = 0;

  /** The next block of the stream at `fromRate`, converted to `toRate`; valid until the next call. */
  process(input: Int16Array, fromRate: number, toRate: number): Int16Array {
    let r = this.resampler;
    if (!r || r.fromRate !== fromRate || r.toRate !== toRate) r = this.switchTo(fromRate, toRate, input);
    const out = r.process(input);
    if (this.last.length < input.length) this.last = new Int16Array(input.length);
    this.last.set(input);
    this.lastLength = input.length;
    this.lastRate = fromRate;
    return out;
  }

  fork(): SwitchingResampler {
    const c = new SwitchingResampler();
    c.resampler = this.resampler?.fork();
    c.last = this.last.slice();
    c.lastLength = this.lastLength;
    c.lastRate = this.lastRate;
    return c;
  }

  private switchTo(fromRate: number, toRate: number, next: Int16Array): Resampler {
    const r = createResampler(fromRate, toRate);
    if (this.lastLength > 0) {
      const last = this.last.subarray(0, this.lastLength);
      r.process(this.lastRate === fromRate ? last : convertHistory(last, this.lastRate, next, fromRate));
    }
    this.resampler = r;
    return r;
  }
}

/** `last` (at `lastRate`) at `rate`, band-limited, using `next` (at `rate`, what follows it) as lookahead. */
function convertHistory(last: Int16Array, lastRate: number, next: Int16Array, rate: number): Int16Array {
  const lookahead = interpolate(next, rate, lastRate);
  const joined = new Int16Array(last.length + lookahead.length);
  joined.set(last);
  joined.set(lookahead, last.length);
  const converted = createResampler(lastRate, rate).process(joined);
  const delay = Math.round((resampleDelayMs * rate) / 1000);
  return converted.subarray(delay, delay + Math.round((last.length * rate) / lastRate));
}

/** Linear interpolation of a block to another rate (same duration). */
function interpolate(input: Int16Array, fromRate: number, toRate: number): Int16Array {
  const out = new Int16Array(Math.round((input.length * toRate) / fromRate));
  const step = fromRate / toRate;
  const lastIndex = input.length - 1;
  for (let k = 0; k < out.length; k++) {
    const t = k * step;
    const i = Math.min(Math.floor(t), lastIndex);
    const f = t - i;
    const a = input[i] as number;
    const b = input[Math.min(i + 1, lastIndex)] as number;
    out[k] = Math.round(a + (b - a) * f);
  }
  return out;
}
