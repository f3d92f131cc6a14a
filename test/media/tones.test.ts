// The call-progress tone generator: both frequencies at the given cadence, 20 ms frames at any
// mixer rate, a duration or a stop condition that ends it; the overlay encodes the tone over a mix.
import { describe, expect, test } from "bun:test";
import { codecByName } from "../../src/media/codec.ts";
import { goertzelPower, meanSquare } from "../../src/media/goertzel.ts";
import { BUSY_TONE, RINGBACK_TONE, ToneGenerator, ToneOverlay } from "../../src/media/tones.ts";

function render(tone: ToneGenerator, sampleRate: number, ms: number): Int16Array {
  const frames: Int16Array[] = [];
  for (let at = 0; at < ms; at += 20) {
    const frame = tone.frame(sampleRate);
    if (!frame) break;
    frames.push(frame.slice());
  }
  const out = new Int16Array(frames.reduce((n, f) => n + f.length, 0));
  frames.reduce((at, f) => (out.set(f, at), at + f.length), 0);
  return out;
}

const share = (pcm: Int16Array, rate: number, hz: number) => goertzelPower(pcm, rate, hz) / meanSquare(pcm);
const loud = (pcm: Int16Array) => meanSquare(pcm) > 100 * 100;

describe("ToneGenerator", () => {
  for (const rate of [8000, 16000, 48000]) {
    test(`ringback at ${rate} Hz: 20 ms frames carrying 440 and 480 Hz for 2 s, then 4 s of silence`, () => {
      expect(new ToneGenerator(RINGBACK_TONE).frame(rate)?.length).toBe((rate * 20) / 1000);
      const pcm = render(new ToneGenerator(RINGBACK_TONE), rate, 6000);
      const on = pcm.subarray(0, (rate * 1980) / 1000);
      expect(share(on, rate, 440)).toBeGreaterThan(0.4);
      expect(share(on, rate, 480)).toBeGreaterThan(0.4);
      expect(share(on, rate, 620)).toBeLessThan(0.01);
      expect(loud(pcm.subarray((rate * 1980) / 1000, (rate * 2000) / 1000))).toBe(true);
      expect(loud(pcm.subarray((rate * 2000) / 1000))).toBe(false);
    });
  }

  test("busy: 480 + 620 Hz, 0.5 s on and 0.5 s off, over for good after its duration", () => {
    const tone = new ToneGenerator(BUSY_TONE, { durationMs: 2000 });
    const pcm = render(tone, 8000, 10_000);
    expect(pcm.length).toBe(2 * 8000);
    const second = (from: number, to: number) => pcm.subarray(from * 8, to * 8);
    for (const [from, on] of [[0, true], [500, false], [1000, true], [1500, false]] as const) expect(loud(second(from, from + 500))).toBe(on);
    expect(share(second(0, 500), 8000, 480)).toBeGreaterThan(0.4);
    expect(share(second(0, 500), 8000, 620)).toBeGreaterThan(0.4);
    expect(tone.finished).toBe(true);
    expect(tone.frame(8000)).toBeUndefined();
  });

  test("the phase carries on across frames and a change of rate: no discontinuity", () => {
    const tone = new ToneGenerator({ frequencies: [440], onMs: 1000, offMs: 0 });
    const a = tone.frame(8000)!.slice();
    const b = tone.frame(48000)!.slice();
    // The last sample at 8 kHz and the first at 48 kHz are 1/8000 s apart on one sine.
    expect(Math.abs(b[0]! - a[a.length - 1]!)).toBeLessThan(3500 * 2 * Math.PI * 440 / 8000 + 1);
  });
});

describe("ToneOverlay", () => {
  test("adds the tone to the mix, encodes it for the listener's codec, and ends with the tone", () => {
    const pcmu = codecByName("PCMU")!;
    const overlay = new ToneOverlay(new ToneGenerator(BUSY_TONE, { durationMs: 40 }), pcmu);
    const mix = new Int16Array(960);
    const decoder = pcmu.createDecoder();
    const first = overlay.encode(mix, 48000);
    expect(first?.length).toBe(160);
    expect(overlay.encode(mix, 48000)?.length).toBe(160);
    expect(meanSquare(decoder.decode(first!))).toBeGreaterThan(0);
    expect(overlay.encode(mix, 48000)).toBeUndefined();
  });
});
