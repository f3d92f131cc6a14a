// Signal helpers for audio tests: tone generation and sine-fit SNR.

/** `length` samples of a sine, starting at sample index `offset` of a continuous tone. */
export function sine(rate: number, freq: number, length: number, amplitude = 8000, offset = 0): Int16Array {
  const out = new Int16Array(length);
  for (let i = 0; i < length; i++) out[i] = Math.round(amplitude * Math.sin((2 * Math.PI * freq * (i + offset)) / rate));
  return out;
}

export function concat(parts: Int16Array[]): Int16Array {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Fits a sine of `freq` (any amplitude and phase) to `pcm` from `skip` on by least squares and
 * returns the fitted amplitude and the SNR of fit vs. residual. Independent of codec/filter delay.
 */
export function sineFit(pcm: Int16Array, rate: number, freq: number, skip = 0): { amplitude: number; snrDb: number } {
  const w = (2 * Math.PI * freq) / rate;
  let ss = 0;
  let cc = 0;
  let sc = 0;
  let xs = 0;
  let xc = 0;
  for (let i = skip; i < pcm.length; i++) {
    const s = Math.sin(w * i);
    const c = Math.cos(w * i);
    const x = pcm[i] ?? 0;
    ss += s * s;
    cc += c * c;
    sc += s * c;
    xs += x * s;
    xc += x * c;
  }
  const det = ss * cc - sc * sc;
  const a = (xs * cc - xc * sc) / det;
  const b = (xc * ss - xs * sc) / det;
  let signal = 0;
  let noise = 0;
  for (let i = skip; i < pcm.length; i++) {
    const model = a * Math.sin(w * i) + b * Math.cos(w * i);
    signal += model * model;
    noise += ((pcm[i] ?? 0) - model) ** 2;
  }
  return { amplitude: Math.hypot(a, b), snrDb: 10 * Math.log10(signal / Math.max(noise, 1e-9)) };
}

/** Streams a continuous tone through `process` frame by frame and returns the joined output. */
export function streamTone(
  process: (frame: Int16Array) => Int16Array,
  rate: number,
  freq: number,
  frames: number,
  amplitude = 8000,
  frameMs = 20,
): Int16Array {
  const n = (rate * frameMs) / 1000;
  // Copies: a resampler's output is only valid until its next call.
  return concat(Array.from({ length: frames }, (_, k) => process(sine(rate, freq, n, amplitude, k * n)).slice()));
}
