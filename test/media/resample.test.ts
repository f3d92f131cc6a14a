import { describe, expect, test } from "bun:test";
import { goertzelPower, meanSquare } from "../../src/media/goertzel.ts";
import { createResampler, resampleDelayMs } from "../../src/media/resample.ts";
import { concat, sine, sineFit, streamTone } from "../helpers/audio.ts";

const pairs: [number, number][] = [
  [8000, 16000],
  [16000, 8000],
  [16000, 48000],
  [48000, 16000],
  [8000, 48000],
  [48000, 8000],
];

/** Stepped sine sweep over the band both rates carry (telephone band when 8 kHz is involved). */
function sweep(from: number, to: number): number[] {
  const top = Math.min(from, to) === 8000 ? 3400 : 7000;
  const freqs: number[] = [];
  for (let f = 100; f <= top; f += f < 1000 ? 150 : 350) freqs.push(f);
  return [...freqs, top];
}

describe("resampler", () => {
  test.each(pairs)("%d → %d Hz: stepped sine sweep through 20 ms frames at > 60 dB SNR, unity gain", (from, to) => {
    for (const freq of sweep(from, to)) {
      const r = createResampler(from, to);
      const out = streamTone((f) => r.process(f), from, freq, 15, 10000);
      expect(out.length).toBe((to * 15 * 20) / 1000);
      const fit = sineFit(out, to, freq, to / 20); // skip the filters' settling
      expect(fit.snrDb).toBeGreaterThan(60);
      expect(Math.abs(fit.amplitude - 10000)).toBeLessThan(100);
    }
  });

  test.each([
    [48000, 8000, 6000],
    [48000, 8000, 11000],
    [16000, 8000, 5000],
    [48000, 16000, 12000],
  ])("%d → %d Hz rejects a %d Hz tone above the new Nyquist (no aliasing) by > 55 dB", (from, to, freq) => {
    const r = createResampler(from, to);
    const out = streamTone((f) => r.process(f), from, freq, 10, 10000).subarray(to / 20);
    const inputPower = 10000 ** 2 / 2;
    expect(10 * Math.log10(inputPower / Math.max(meanSquare(out), 1e-3))).toBeGreaterThan(55);
  });

  test.each([
    [8000, 48000, 1000, 7000],
    [16000, 48000, 3000, 13000],
  ])("%d → %d Hz: no spectral images (%d Hz tone leaves %d Hz empty)", (from, to, freq, image) => {
    const r = createResampler(from, to);
    const out = streamTone((f) => r.process(f), from, freq, 10, 10000).subarray(to / 20);
    expect(goertzelPower(out, to, image)).toBeLessThan(1e-6 * goertzelPower(out, to, freq));
  });

  test("streaming in frames equals processing the whole signal at once", () => {
    const input = sine(8000, 777, 1600, 9000);
    const whole = createResampler(8000, 48000).process(input);
    const r = createResampler(8000, 48000);
    const framed = concat(Array.from({ length: 10 }, (_, k) => r.process(input.subarray(k * 160, (k + 1) * 160)).slice()));
    expect(Array.from(framed)).toEqual(Array.from(whole));
  });

  test.each(pairs)("%d → %d Hz: any block sizes (also not multiples of the ratio) give the same stream", (from, to) => {
    const input = sine(from, 555, from / 5, 9000); // 200 ms
    const whole = createResampler(from, to).process(input);
    const r = createResampler(from, to);
    const parts: Int16Array[] = [];
    const sizes = [7, 13, 160, 1, 29, 480, 5, 96];
    for (let at = 0, k = 0; at < input.length; k++) {
      const size = sizes[k % sizes.length] ?? 1;
      parts.push(r.process(input.subarray(at, at + size)).slice());
      at += size;
    }
    expect(Array.from(concat(parts))).toEqual(Array.from(whole));
  });

  test("a fork continues identically; same-rate is a pure delay", () => {
    const a = createResampler(48000, 16000);
    a.process(sine(48000, 500, 960));
    const b = a.fork();
    const next = sine(48000, 500, 960, 8000, 960);
    expect(Array.from(b.process(next))).toEqual(Array.from(a.process(next)));
    const same = createResampler(8000, 8000);
    const delay = (resampleDelayMs * 8000) / 1000;
    const input = sine(8000, 500, 160);
    const out = same.process(input);
    expect(Array.from(out)).toEqual([...new Array<number>(delay).fill(0), ...Array.from(input.subarray(0, 160 - delay))]);
  });

  test.each(pairs)("%d → %d Hz delays by exactly the common resampleDelayMs", (from, to) => {
    const impulseAt = from / 100; // 10 ms
    const input = new Int16Array(from / 10);
    input[impulseAt] = 30000;
    const out = createResampler(from, to).process(input);
    let peak = 0;
    out.forEach((v, i) => (Math.abs(v) > Math.abs(out[peak] ?? 0) ? (peak = i) : undefined));
    expect(peak).toBe(((10 + resampleDelayMs) * to) / 1000);
  });

  test("unsupported rates are refused", () => {
    expect(() => createResampler(44100, 48000)).toThrow(RangeError);
  });
});
