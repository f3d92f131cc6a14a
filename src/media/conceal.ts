// Repeat-and-fade packet loss concealment for codecs without their own PLC (G.711, G.722):
// a lost frame replays the last good audio, each further loss quieter, then silence.

/** Gain applied to the replayed audio for the 1st, 2nd, ... consecutive lost frame. */
const fadeSteps = [0.8, 0.5, 0.25, 0.1];

export class RepeatFadeConcealer {
  private last: Int16Array = new Int16Array(0);
  private lostInARow = 0;

  /** Remember the latest decoded audio (call on every good frame). */
  remember(pcm: Int16Array): void {
    this.last = pcm;
    this.lostInARow = 0;
  }

  conceal(samples: number): Int16Array {
    const out = new Int16Array(samples);
    const startGain = this.lostInARow === 0 ? 1 : (fadeSteps[this.lostInARow - 1] ?? 0);
    const endGain = fadeSteps[this.lostInARow] ?? 0;
    this.lostInARow++;
    const src = this.last;
    if (src.length === 0 || startGain === 0) return out;
    // Ramp the gain across the frame so consecutive concealed frames join without a step.
    for (let i = 0; i < samples; i++) {
      const g = startGain + ((endGain - startGain) * i) / samples;
      out[i] = Math.round((src[i % src.length] ?? 0) * g);
    }
    return out;
  }
}
