// Goertzel single-bin DFT: the power of one frequency in a block of PCM.

/**
 * Mean-square power of the `freq` component of `pcm`: a sine of amplitude A at exactly `freq`
 * yields about A²/2, the same scale as the block's mean square, so the two can be compared.
 */
export function goertzelPower(pcm: Int16Array, sampleRate: number, freq: number): number {
  const n = pcm.length;
  if (n === 0) return 0;
  const coeff = 2 * Math.cos((2 * Math.PI * freq) / sampleRate);
  let s1 = 0;
  let s2 = 0;
  for (let i = 0; i < n; i++) {
    const s0 = (pcm[i] ?? 0) + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const magnitudeSquared = s1 * s1 + s2 * s2 - coeff * s1 * s2;
  return (2 * magnitudeSquared) / (n * n);
}

/** Mean square of the block (total power), on the same scale as goertzelPower. */
export function meanSquare(pcm: Int16Array): number {
  let sum = 0;
  for (let i = 0; i < pcm.length; i++) {
    const v = pcm[i] ?? 0;
    sum += v * v;
  }
  return pcm.length === 0 ? 0 : sum / pcm.length;
}
