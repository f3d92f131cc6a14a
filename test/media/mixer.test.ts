import { describe, expect, test } from "bun:test";
import { type Codec, codecByName } from "../../src/media/codec.ts";
import { goertzelPower, meanSquare } from "../../src/media/goertzel.ts";
import { type MixedFrame, Mixer, type MixerParticipant, sharedMixId } from "../../src/media/mixer.ts";
import { createResampler, rateConvertersCreated, resampleDelayMs } from "../../src/media/resample.ts";
import { DriftCorrectedTicker, ManualTicker } from "../../src/media/ticker.ts";
import { until } from "../helpers/until.ts";

const rate = 48000;
const frameSamples = 960;
/** Every input reaches the mix through a resampler (a pure delay at the same rate). */
const delay = (resampleDelayMs * rate) / 1000;

/** Frame k of a continuous sine at `freq` (starting at sample 0, or `delay` samples later). */
function sineFrame(freq: number, k: number, amplitude = 8000, delayed = 0): Int16Array {
  const out = new Int16Array(frameSamples);
  for (let i = 0; i < frameSamples; i++) {
    const t = k * frameSamples + i - delayed;
    out[i] = t < 0 ? 0 : Math.round(amplitude * Math.sin((2 * Math.PI * freq * t) / rate));
  }
  return out;
}

function setup(ids: string[]) {
  const ticker = new ManualTicker();
  const mixer = new Mixer({ ticker });
  const heard = new Map<string, MixedFrame[]>();
  const parts = ids.map((id) => {
    heard.set(id, []);
    // The mixer reuses its buffers every tick: keep copies.
    return mixer.join(id, (f) => heard.get(id)?.push({ ...f, pcm: f.pcm.slice() }));
  });
  return { ticker, mixer, heard, parts };
}

/** Share of the frame's power at `freq` (1 = pure tone). */
function toneShare(pcm: Int16Array, freq: number): number {
  const total = meanSquare(pcm);
  return total === 0 ? 0 : goertzelPower(pcm, rate, freq) / total;
}

describe("Mixer", () => {
  test("three talkers on 300/500/700 Hz: each hears exactly the other two tones, not its own", () => {
    const freqs = [300, 500, 700];
    const { ticker, heard, parts } = setup(["a", "b", "c"]);
    for (let k = 0; k < 10; k++) {
      parts.forEach((p, i) => p.write(sineFrame(freqs[i] ?? 0, k)));
      ticker.tick();
    }
    parts.forEach((p, i) => {
      const last = heard.get(p.id)?.at(-1);
      expect(last).toBeDefined();
      const pcm = (last as MixedFrame).pcm;
      const own = freqs[i] ?? 0;
      const others = freqs.filter((f) => f !== own);
      // Each other tone at full level (amplitude 8000 → power 3.2e7), own tone absent.
      for (const f of others) expect(goertzelPower(pcm, rate, f)).toBeGreaterThan(0.9 * 3.2e7);
      expect(goertzelPower(pcm, rate, own)).toBeLessThan(1e-6 * 3.2e7);
      // The two tones are all there is.
      const explained = others.reduce((s, f) => s + goertzelPower(pcm, rate, f), 0);
      expect(explained / meanSquare(pcm)).toBeGreaterThan(0.999);
    });
  });

  test("a silent listener hears the shared full mix; talkers get their own N−1 mix", () => {
    const { ticker, heard, parts } = setup(["a", "b", "quiet"]);
    for (let k = 0; k < 3; k++) {
      parts[0]?.write(sineFrame(300, k));
      parts[1]?.write(sineFrame(500, k));
      parts[2]?.write(new Int16Array(frameSamples));
      ticker.tick();
    }
    const a = heard.get("a")?.at(-1) as MixedFrame;
    const b = heard.get("b")?.at(-1) as MixedFrame;
    const quiet = heard.get("quiet")?.at(-1) as MixedFrame;
    expect(quiet.mixId).toBe(sharedMixId);
    expect(a.mixId).not.toBe(sharedMixId);
    expect(b.mixId).not.toBe(a.mixId);
    expect(toneShare(quiet.pcm, 300) + toneShare(quiet.pcm, 500)).toBeGreaterThan(0.999);
  });

  test("a tap gets every tick's full mix (what the quiet listener hears) until removed, and hears the mixer close", () => {
    const { ticker, mixer, heard, parts } = setup(["a", "b", "quiet"]);
    const tapped: MixedFrame[] = [];
    let closed = 0;
    const untap = mixer.addTap({ onMix: (f) => tapped.push({ ...f, pcm: f.pcm.slice() }), onClose: () => closed++ });
    for (let k = 0; k < 3; k++) {
      parts[0]?.write(sineFrame(300, k));
      parts[1]?.write(sineFrame(500, k));
      ticker.tick();
    }
    expect(tapped.map((f) => f.tick)).toEqual([0, 1, 2]);
    expect(tapped.map((f) => f.pcm)).toEqual(heard.get("quiet")!.map((f) => f.pcm));
    expect(tapped.every((f) => f.mixId === sharedMixId)).toBe(true);
    untap();
    ticker.tick();
    expect(tapped).toHaveLength(3);
    // Only a tap still attached hears the close.
    mixer.addTap({ onMix: () => {}, onClose: () => closed++ });
    mixer.close();
    expect(closed).toBe(1);
  });

  test("no volume drop as people join: a talker's level is the same with 2 or 10 listeners", () => {
    const level = (listeners: number) => {
      const ids = ["talker", ...Array.from({ length: listeners }, (_, i) => `l${i}`)];
      const { ticker, heard, parts } = setup(ids);
      for (let k = 0; k < 3; k++) {
        parts[0]?.write(sineFrame(440, k));
        ticker.tick();
      }
      return goertzelPower((heard.get("l0")?.at(-1) as MixedFrame).pcm, rate, 440);
    };
    expect(level(10)).toBeCloseTo(level(1), -2);
    expect(level(10)).toBeGreaterThan(0.99 * 3.2e7);
  });

  test("loud overlapping talkers are soft-limited, never clipped", () => {
    const { ticker, heard, parts } = setup(["a", "b", "c", "listener"]);
    for (let k = 0; k < 3; k++) {
      parts[0]?.write(sineFrame(300, k, 30000));
      parts[1]?.write(sineFrame(300, k, 30000));
      parts[2]?.write(sineFrame(300, k, 30000));
      ticker.tick();
    }
    const pcm = (heard.get("listener")?.at(-1) as MixedFrame).pcm;
    let peak = 0;
    let atRail = 0;
    for (const v of pcm) {
      peak = Math.max(peak, Math.abs(v));
      if (Math.abs(v) >= 32767) atRail++;
    }
    expect(peak).toBeGreaterThan(30000);
    // A hard clipper would sit on the rail for a third of the cycle; the soft curve barely touches it.
    expect(atRail).toBeLessThan(pcm.length / 20);
    // Below the knee the sum passes untouched: wherever b + c stays under it, a hears it exactly.
    const a = (heard.get("a")?.at(-1) as MixedFrame).pcm;
    const bPlusC = Array.from(sineFrame(300, 2, 30000, delay), (v) => v * 2);
    for (let i = 0; i < a.length; i++) if (Math.abs(bPlusC[i] ?? 0) <= 24576) expect(a[i]).toBe(bPlusC[i] ?? 0);
  });

  test("absent input contributes nothing and costs no slot; silence yields silent frames", () => {
    const { ticker, heard, parts, mixer } = setup(["a", "b"]);
    parts[0]?.write(sineFrame(300, 0));
    ticker.tick();
    ticker.tick(); // a wrote nothing for this tick
    const second = heard.get("b")?.at(-1) as MixedFrame;
    expect(second.silent).toBe(true);
    expect(meanSquare(second.pcm)).toBe(0);
    expect(mixer.stats().speakers).toBe(0);
  });

  test("background hiss below the speech threshold is not mixed; speech tails are held, then faded", () => {
    const { ticker, heard, parts } = setup(["hiss", "talker", "listener"]);
    const hiss = () => Int16Array.from({ length: frameSamples }, (_, i) => (i % 2 === 0 ? 30 : -30));
    const quietTail = sineFrame(300, 0, 60); // RMS ≈ 42, below the default threshold of 100
    const heardByListener: MixedFrame[] = [];
    for (let k = 0; k < 30; k++) {
      parts[0]?.write(hiss());
      parts[1]?.write(k < 5 ? sineFrame(300, k) : quietTail);
      ticker.tick();
      heardByListener.push(heard.get("listener")?.at(-1) as MixedFrame);
    }
    // The hissing participant never reaches anyone and listens to the shared mix.
    expect(heard.get("hiss")?.at(3)?.mixId).toBe(sharedMixId);
    expect(goertzelPower(heardByListener[3]?.pcm ?? new Int16Array(), rate, 24000)).toBe(0);
    // The talker's quiet tail is still heard during the 300 ms hangover (15 ticks after tick 5, the
    // last one with speech in it once delayed)...
    expect(meanSquare(heardByListener[12]?.pcm ?? new Int16Array())).toBeGreaterThan(1000);
    // ...then faded out over one frame and dropped.
    const fade = heardByListener[21]?.pcm ?? new Int16Array();
    expect(Math.abs(fade[frameSamples - 1] ?? 0)).toBeLessThan(2);
    expect(heardByListener[22]?.silent).toBe(true);
  });

  test("joining and leaving do not disturb the others' streams", () => {
    const { ticker, mixer, heard, parts } = setup(["a", "b"]);
    const outputs: Int16Array[] = [];
    let late: ReturnType<typeof mixer.join> | undefined;
    for (let k = 0; k < 12; k++) {
      if (k === 4) late = mixer.join("late", () => {});
      if (k === 8) late?.leave();
      parts[0]?.write(sineFrame(300, k));
      parts[1]?.write(new Int16Array(frameSamples));
      ticker.tick();
      outputs.push((heard.get("b")?.at(-1) as MixedFrame).pcm);
    }
    // b hears one continuous 300 Hz sine: every sample equals the (delayed) input stream after the fade-in frame.
    for (let k = 1; k < 12; k++) expect(Array.from(outputs[k] ?? [])).toEqual(Array.from(sineFrame(300, k, 8000, delay)));
    expect(mixer.size).toBe(2);
  });

  test("pull-mode participants are read once per tick", () => {
    const ticker = new ManualTicker();
    const mixer = new Mixer({ ticker });
    let pulls = 0;
    let lastHeard: MixedFrame | undefined;
    mixer.join("src", () => {}, { pull: () => sineFrame(700, pulls++) });
    mixer.join("dst", (f) => (lastHeard = f));
    ticker.tick(3);
    expect(pulls).toBe(3);
    expect(toneShare((lastHeard as MixedFrame).pcm, 700)).toBeGreaterThan(0.999);
  });

  test("listeners of the same mix share one encode per codec per tick", () => {
    const pcmu = codecByName("PCMU") as Codec;
    let encodes = 0;
    const counting: Codec = {
      ...pcmu,
      createEncoder() {
        const inner = pcmu.createEncoder();
        return { encode: (pcm) => (encodes++, inner.encode(pcm)) };
      },
    };
    const ticker = new ManualTicker();
    const mixer = new Mixer({ ticker });
    const payloads = new Map<string, Uint8Array>();
    const join = (id: string) => {
      const p: MixerParticipant = mixer.join(id, (f) => payloads.set(id, p.encode(f, counting)));
      return p;
    };
    const talker = join("talker");
    for (let i = 0; i < 5; i++) join(`l${i}`);
    for (let k = 0; k < 4; k++) {
      talker.write(sineFrame(300, k));
      ticker.tick();
    }
    // Per tick: one encode of the shared mix for five listeners, one of the talker's own (silent) mix.
    expect(encodes).toBe(8);
    const shared = payloads.get("l0");
    for (let i = 1; i < 5; i++) expect(payloads.get(`l${i}`)).toBe(shared as Uint8Array);
    expect(payloads.get("talker")).not.toBe(shared as Uint8Array);
  });

  test("G.722: a listener who starts talking keeps one continuous encoder stream", () => {
    const g722 = codecByName("G722") as Codec;
    const ticker = new ManualTicker();
    const mixer = new Mixer({ ticker });
    const heardByB: Int16Array[] = [];
    const payloadsB: Uint8Array[] = [];
    const a = mixer.join("a", () => {});
    // c joins before b, so c encodes the shared mix first in each tick (b's switch must not see
    // the shared encoder already advanced).
    const c: MixerParticipant = mixer.join("c", (f) => c.encode(f, g722));
    const b: MixerParticipant = mixer.join("b", (f) => {
      heardByB.push(f.pcm.slice());
      payloadsB.push(b.encode(f, g722));
    });
    for (let k = 0; k < 12; k++) {
      a.write(sineFrame(300, k));
      if (k >= 5) b.write(sineFrame(500, k));
      ticker.tick();
    }
    // A single encoder fed exactly what b heard must produce exactly b's packets.
    const resampler = createResampler(48000, 16000);
    const reference = g722.createEncoder();
    heardByB.forEach((pcm, k) => {
      expect(Array.from(payloadsB[k] ?? [])).toEqual(Array.from(reference.encode(resampler.process(pcm))));
    });
  });
});

describe("Mixer speaker cap", () => {
  /** A capped mixer whose participants talk on their own tone at their own level (0: silent). */
  function talkers(spec: Record<string, { freq: number; amplitude: number }>, maxSpeakers?: number) {
    const ticker = new ManualTicker();
    const mixer = new Mixer({ ticker, ...(maxSpeakers === undefined ? {} : { maxSpeakers }) });
    const heard = new Map<string, MixedFrame>();
    const levels = new Map(Object.entries(spec));
    const parts = [...levels.keys()].map((id) => mixer.join(id, (f) => heard.set(id, { ...f, pcm: f.pcm.slice() })));
    let k = 0;
    const run = (ticks: number, onTick?: (k: number) => void) => {
      for (let t = 0; t < ticks; t++, k++) {
        onTick?.(k);
        for (const p of parts) {
          const { freq, amplitude } = levels.get(p.id) as { freq: number; amplitude: number };
          p.write(amplitude === 0 ? new Int16Array(frameSamples) : sineFrame(freq, k, amplitude));
        }
        ticker.tick();
      }
    };
    /** The talkers whose tone `id` heard last tick at (nearly) full level. */
    const hears = (id: string) => {
      const f = heard.get(id) as MixedFrame;
      return [...levels.entries()]
        .filter(([, t]) => t.amplitude > 0 && goertzelPower(f.pcm, rate, t.freq) > 0.9 * (t.amplitude * t.amplitude) / 2)
        .map(([other]) => other);
    };
    /** Share of the power of what `id` heard last tick at talker `other`'s tone. */
    const shareOf = (id: string, other: string) => toneShare((heard.get(id) as MixedFrame).pcm, levels.get(other)?.freq ?? 0);
    return { mixer, heard, levels, run, hears, shareOf };
  }

  const five = {
    a: { freq: 300, amplitude: 12000 },
    b: { freq: 500, amplitude: 10000 },
    c: { freq: 700, amplitude: 8000 },
    d: { freq: 900, amplitude: 4000 },
    e: { freq: 1100, amplitude: 2000 },
    listener: { freq: 0, amplitude: 0 },
  };

  test("by default the three loudest of five talkers are mixed: each of them hears the other two, everyone else the three", () => {
    const { mixer, heard, run, hears, shareOf } = talkers(five);
    run(10);
    expect(hears("a")).toEqual(["b", "c"]);
    expect(hears("b")).toEqual(["a", "c"]);
    expect(hears("c")).toEqual(["a", "b"]);
    for (const id of ["d", "e", "listener"]) {
      expect(hears(id)).toEqual(["a", "b", "c"]);
      expect(heard.get(id)?.mixId).toBe(sharedMixId);
    }
    // Nothing of the talkers outside the set reaches anyone, not even each other.
    for (const id of ["a", "d", "e", "listener"]) {
      expect(shareOf(id, "d")).toBeLessThan(1e-6);
      expect(shareOf(id, "e")).toBeLessThan(1e-6);
    }
    expect(mixer.stats()).toMatchObject({ speakers: 3, talking: 5 });
  });

  test("maxSpeakers 0 mixes every talker (each hears the other four)", () => {
    // Quieter than `five`, so that all five together stay below the limiter's knee.
    const quieter = Object.fromEntries(Object.entries(five).map(([id, t]) => [id, { ...t, amplitude: t.amplitude / 2 }]));
    const { mixer, run, hears } = talkers(quieter, 0);
    run(10);
    expect(hears("e")).toEqual(["a", "b", "c", "d"]);
    expect(hears("listener")).toEqual(["a", "b", "c", "d", "e"]);
    expect(mixer.stats().speakers).toBe(5);
  });

  test("a talker only slightly louder does not displace a member; one 6 dB louder takes the quietest member's place once, faded", () => {
    // Below the limiter's knee all along, so every tone passes linearly.
    const { mixer, heard, levels, run, hears } = talkers({
      a: { freq: 300, amplitude: 7000 },
      b: { freq: 500, amplitude: 6000 },
      c: { freq: 700, amplitude: 4000 },
      d: { freq: 900, amplitude: 0 },
      listener: { freq: 0, amplitude: 0 },
    });
    run(20);
    expect(hears("listener")).toEqual(["a", "b", "c"]);
    // d starts at +4.4 dB over c (energy ratio 2.76): below the 6 dB switch margin, the set holds.
    levels.set("d", { freq: 900, amplitude: 6650 });
    run(30);
    expect(hears("listener")).toEqual(["a", "b", "c"]);
    expect(heard.get("d")?.mixId).toBe(sharedMixId);
    // d gets 7 dB louder than c: it replaces c (the quietest member), exactly once.
    levels.set("d", { freq: 900, amplitude: 9000 });
    const sets: string[] = [];
    const frames: Int16Array[] = [];
    run(30, () => {
      const set = hears("listener").join(",");
      if (sets.at(-1) !== set) {
        sets.push(set);
        frames.push((heard.get("listener") as MixedFrame).pcm);
      }
    });
    // One tick in between has c fading out while d fades in (neither at full level), then d is in.
    expect(sets).toEqual(["a,b,c", "a,b", "a,b,d"]);
    const swap = frames[1] as Int16Array;
    expect(toneShare(swap, 700)).toBeGreaterThan(0.02);
    expect(toneShare(swap, 900)).toBeGreaterThan(0.1);
    expect(toneShare(frames[2] as Int16Array, 700)).toBeLessThan(1e-6);
    expect(toneShare(frames[2] as Int16Array, 900)).toBeGreaterThan(0.3);
    expect(hears("c")).toEqual(["a", "b", "d"]);
    expect(heard.get("c")?.mixId).toBe(sharedMixId);
    expect(mixer.stats()).toMatchObject({ speakers: 3, talking: 4 });
  });

  test("a member that stops talking leaves its place to the loudest waiting talker", () => {
    const { levels, run, hears } = talkers(five);
    run(10);
    expect(hears("listener")).toEqual(["a", "b", "c"]);
    levels.set("b", { freq: 500, amplitude: 0 });
    // b's hangover (300 ms) runs out, it fades out, and d (louder than e) is faded in.
    run(20);
    expect(hears("listener")).toEqual(["a", "c", "d"]);
    expect(hears("e")).toEqual(["a", "c", "d"]);
  });

  test("everyone talking in a 10-party Opus channel: four encodes per tick (the shared mix and the three members' own), not ten", () => {
    const opusCodec = codecByName("opus") as Codec;
    let encodes = 0;
    const counting: Codec = {
      ...opusCodec,
      createEncoder() {
        const inner = opusCodec.createEncoder();
        return { encode: (pcm) => (encodes++, inner.encode(pcm)) };
      },
    };
    const ticker = new ManualTicker();
    const mixer = new Mixer({ ticker });
    const decoded = new Map<string, Int16Array>();
    const decoders = new Map<string, ReturnType<Codec["createDecoder"]>>();
    const parts = Array.from({ length: 10 }, (_, i) => {
      const id = `p${i}`;
      decoders.set(id, opusCodec.createDecoder());
      const p: MixerParticipant = mixer.join(id, (f) => decoded.set(id, decoders.get(id)?.decode(p.encode(f, counting)) as Int16Array));
      return p;
    });
    const freqOf = (i: number) => 400 + 200 * i;
    const ticks = 25;
    for (let k = 0; k < ticks; k++) {
      parts.forEach((p, i) => p.write(sineFrame(freqOf(i), k, 9000 - 500 * i)));
      ticker.tick();
    }
    expect(encodes).toBe(4 * ticks);
    // Through Opus: the quietest talker (p9) hears the three loudest and not itself; p0 hears p1 and p2.
    const nine = decoded.get("p9") as Int16Array;
    for (const i of [0, 1, 2]) expect(toneShare(nine, freqOf(i))).toBeGreaterThan(0.2);
    expect(toneShare(nine, freqOf(9))).toBeLessThan(0.01);
    const zero = decoded.get("p0") as Int16Array;
    for (const i of [1, 2]) expect(toneShare(zero, freqOf(i))).toBeGreaterThan(0.3);
    for (const i of [0, 3, 9]) expect(toneShare(zero, freqOf(i))).toBeLessThan(0.01);
  });
});

describe("Mixer with senders' levels (inputLevel)", () => {
  /**
   * Pull-mode participants on their own tone; those made `leveled` tell each frame's energy before
   * it is decoded (as a WebRTC client's RFC 6464 level does). `decoded` counts each one's pulls.
   */
  function leveledTalkers(spec: Record<string, { freq: number; amplitude: number; leveled: boolean }>, maxSpeakers = 3) {
    const ticker = new ManualTicker();
    const mixer = new Mixer({ ticker, maxSpeakers });
    const heard = new Map<string, Int16Array>();
    const talkers = new Map(Object.entries(spec));
    const decoded = new Map<string, number>();
    let k = 0;
    for (const [id, talker] of talkers) {
      decoded.set(id, 0);
      const pull = () => {
        decoded.set(id, (decoded.get(id) as number) + 1);
        const { freq, amplitude } = talkers.get(id) as typeof talker;
        return amplitude === 0 ? new Int16Array(frameSamples) : sineFrame(freq, k, amplitude);
      };
      // A sine's mean square is amplitude²/2 (what a browser's level says, rounded to 1 dB here).
      const inputLevel = () => {
        const { amplitude } = talkers.get(id) as typeof talker;
        return amplitude === 0 ? 0 : 10 ** (Math.round(10 * Math.log10((amplitude * amplitude) / 2)) / 10);
      };
      mixer.join(id, (f) => heard.set(id, f.pcm.slice()), { pull, ...(talker.leveled ? { inputLevel } : {}) });
    }
    const run = (ticks: number) => {
      for (let t = 0; t < ticks; t++, k++) ticker.tick();
    };
    /** The talkers whose tone `id` heard last tick at (nearly) full level. */
    const hears = (id: string) =>
      [...talkers.entries()]
        .filter(([, t]) => t.amplitude > 0 && goertzelPower(heard.get(id) as Int16Array, rate, t.freq) > 0.9 * (t.amplitude * t.amplitude) / 2)
        .map(([other]) => other);
    return { mixer, talkers, decoded, run, hears };
  }

  test("of ten talkers with levels only the three mixed are decoded; the others cost no decode", () => {
    const spec = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`p${i}`, { freq: 400 + 200 * i, amplitude: 9000 - 500 * i, leveled: true }]));
    const { decoded, run, hears } = leveledTalkers({ ...spec, listener: { freq: 0, amplitude: 0, leveled: true } });
    run(25);
    expect(hears("listener")).toEqual(["p0", "p1", "p2"]);
    expect(hears("p0")).toEqual(["p1", "p2"]);
    for (const id of ["p0", "p1", "p2"]) expect(decoded.get(id)).toBe(25);
    for (const id of ["p3", "p4", "p9", "listener"]) expect(decoded.get(id)).toBe(0);
  });

  test("a talker below the three loudest is not decoded, yet is heard (faded in) once it becomes loud", () => {
    const { talkers, decoded, run, hears } = leveledTalkers({
      a: { freq: 300, amplitude: 9000, leveled: true },
      b: { freq: 500, amplitude: 8000, leveled: true },
      c: { freq: 700, amplitude: 7000, leveled: true },
      d: { freq: 900, amplitude: 1000, leveled: true },
      listener: { freq: 0, amplitude: 0, leveled: true },
    });
    run(30);
    expect(decoded.get("d")).toBe(0);
    expect(hears("listener")).toEqual(["a", "b", "c"]);
    // d gets 6 dB louder than the quietest member (c), held over 500 ms: it takes c's place.
    talkers.set("d", { freq: 900, amplitude: 20000, leveled: true });
    // Its smoothed level needs a few frames to pass c's by 6 dB; then one fading frame, then it is heard as is.
    run(20);
    expect(hears("listener")).toEqual(["a", "b", "d"]);
    expect(hears("c")).toEqual(["a", "b", "d"]);
    expect(decoded.get("d")).toBeGreaterThan(0);
    expect(decoded.get("d")).toBeLessThan(20);
    // c, out of the set, is decoded no more (its last pull faded it out).
    const cDecoded = decoded.get("c") as number;
    run(5);
    expect(decoded.get("c")).toBe(cDecoded);
  });

  test("a client without levels is decoded and mixed as before, beside clients with them", () => {
    const { decoded, run, hears } = leveledTalkers({
      a: { freq: 300, amplitude: 9000, leveled: true },
      plain: { freq: 500, amplitude: 8000, leveled: false },
      c: { freq: 700, amplitude: 7000, leveled: true },
      d: { freq: 900, amplitude: 1000, leveled: true },
      quiet: { freq: 0, amplitude: 0, leveled: false },
    });
    run(25);
    expect(hears("quiet")).toEqual(["a", "plain", "c"]);
    expect(hears("d")).toEqual(["a", "plain", "c"]);
    expect(hears("plain")).toEqual(["a", "c"]);
    // Without levels every frame is decoded to be measured, silent or not.
    expect(decoded.get("plain")).toBe(25);
    expect(decoded.get("quiet")).toBe(25);
    expect(decoded.get("d")).toBe(0);
  });

  test("a muted participant with levels is neither decoded nor mixed", () => {
    const { mixer, decoded, run, hears } = leveledTalkers({
      a: { freq: 300, amplitude: 9000, leveled: true },
      b: { freq: 500, amplitude: 8000, leveled: true },
      listener: { freq: 0, amplitude: 0, leveled: true },
    });
    mixer.setMuted("a", true);
    run(10);
    expect(hears("listener")).toEqual(["b"]);
    expect(decoded.get("a")).toBe(0);
  });
});

describe("Mixer rate follows its participants", () => {
  const pcmu = codecByName("PCMU") as Codec;

  /** Frame k of a continuous sine at `freq`, 20 ms at `sampleRate`. */
  function toneAt(sampleRate: number, freq: number, k: number): Int16Array {
    const n = sampleRate / 50;
    return Int16Array.from({ length: n }, (_, i) => Math.round(8000 * Math.sin((2 * Math.PI * freq * (k * n + i)) / sampleRate)));
  }

  test("an all-PCMU channel mixes at 8 kHz and resamples nothing", () => {
    const convertersBefore = rateConvertersCreated();
    const ticker = new ManualTicker();
    const mixer = new Mixer({ ticker });
    const heard = new Map<string, MixedFrame>();
    const phones = ["a", "b", "c"].map((id) => {
      const p: MixerParticipant = mixer.join(id, (f) => (heard.set(id, f), p.encode(f, pcmu)), { sampleRate: pcmu.sampleRate });
      return p;
    });
    for (let k = 0; k < 10; k++) {
      phones.forEach((p, i) => p.write(toneAt(8000, [300, 500, 700][i] ?? 0, k)));
      ticker.tick();
    }
    expect(mixer.sampleRate).toBe(8000);
    const a = heard.get("a") as MixedFrame;
    expect(a.sampleRate).toBe(8000);
    expect(a.pcm.length).toBe(160);
    expect(goertzelPower(a.pcm, 8000, 500)).toBeGreaterThan(0.9 * 3.2e7);
    expect(goertzelPower(a.pcm, 8000, 700)).toBeGreaterThan(0.9 * 3.2e7);
    expect(rateConvertersCreated()).toBe(convertersBefore);
  });

  test("rate rises to 16 kHz for G.722 and 48 kHz for Opus, and falls back as they leave", () => {
    const ticker = new ManualTicker();
    const mixer = new Mixer({ ticker });
    const rates: number[] = [];
    mixer.join("pcmu", (f) => rates.push(f.sampleRate), { sampleRate: 8000 });
    const step = () => (ticker.tick(), rates.at(-1));
    expect(step()).toBe(8000);
    const g722 = mixer.join("g722", () => {}, { sampleRate: 16000 });
    expect(step()).toBe(16000);
    const opus = mixer.join("opus", () => {}, { sampleRate: 48000 });
    expect(step()).toBe(48000);
    g722.leave();
    expect(step()).toBe(48000);
    opus.leave();
    expect(step()).toBe(8000);
    const late = mixer.join("late-codec", () => {}, { sampleRate: 8000 });
    late.setSampleRate(16000); // re-negotiated to G.722
    expect(step()).toBe(16000);
  });

  test("an Opus participant joining two phones raises the rate, everyone hears everyone; leaving lowers it", () => {
    const opusCodec = codecByName("opus") as Codec;
    const ticker = new ManualTicker();
    const mixer = new Mixer({ ticker });
    const heard = new Map<string, MixedFrame>();
    const listen = (id: string, codec: Codec) => (f: MixedFrame) => {
      heard.set(id, f);
      participants.get(id)?.encode(f, codec);
    };
    const participants = new Map<string, MixerParticipant>();
    participants.set("a", mixer.join("a", listen("a", pcmu), { sampleRate: 8000 }));
    participants.set("b", mixer.join("b", listen("b", pcmu), { sampleRate: 8000 }));
    const tones: Record<string, number> = { a: 300, b: 500, web: 700 };
    const rateOf: Record<string, number> = { a: 8000, b: 8000, web: 48000 };
    const run = (from: number, to: number) => {
      for (let k = from; k < to; k++) {
        for (const [id, p] of participants) p.write(toneAt(rateOf[id] ?? 8000, tones[id] ?? 0, k));
        ticker.tick();
      }
    };
    /** Each participant hears exactly the others' tones at full level, and not its own. */
    const expectEveryoneHearsEveryone = () => {
      for (const id of participants.keys()) {
        const f = heard.get(id) as MixedFrame;
        for (const other of participants.keys()) {
          const power = goertzelPower(f.pcm, f.sampleRate, tones[other] ?? 0);
          if (other === id) expect(power).toBeLessThan(1e-3 * 3.2e7);
          else expect(power).toBeGreaterThan(0.9 * 3.2e7);
        }
      }
    };
    run(0, 10);
    expect(mixer.sampleRate).toBe(8000);
    expectEveryoneHearsEveryone();

    participants.set("web", mixer.join("web", listen("web", opusCodec), { sampleRate: 48000 }));
    run(10, 20);
    expect(mixer.sampleRate).toBe(48000);
    expect(heard.get("a")?.sampleRate).toBe(48000);
    expectEveryoneHearsEveryone();

    participants.get("web")?.leave();
    participants.delete("web");
    run(20, 30);
    expect(mixer.sampleRate).toBe(8000);
    expectEveryoneHearsEveryone();
  });

  // Near the band edge a rate drop is exact only to ≈ −23 dB for about 2 ms: the new 8 kHz filter
  // memory has to be derived from the 48 kHz mix with only a rough look at what follows.
  test.each([
    [440, 400],
    [1000, 400],
    [3000, 800],
  ])("rate changes are seamless: a listener's PCMU stream stays one continuous %d Hz tone (error < %d)", (freq, bound) => {
    const ticker = new ManualTicker();
    const mixer = new Mixer({ ticker });
    const talker = mixer.join("talker", () => {}, { sampleRate: 8000 });
    const payloads: Uint8Array[] = [];
    // Payloads are valid until the next tick's encode: keep copies.
    const listener: MixerParticipant = mixer.join("listener", (f) => payloads.push(listener.encode(f, pcmu).slice()), { sampleRate: 8000 });
    let other: MixerParticipant | undefined;
    for (let k = 0; k < 40; k++) {
      if (k === 10) other = mixer.join("opus", () => {}, { sampleRate: 48000 }); // 8 → 48 kHz
      if (k === 20) other?.leave(); // 48 → 8 kHz
      if (k === 25) other = mixer.join("g722", () => {}, { sampleRate: 16000 }); // 8 → 16 kHz
      if (k === 32) other?.setSampleRate(48000); // 16 → 48 kHz
      talker.write(toneAt(8000, freq, k));
      ticker.tick();
    }
    const decoder = pcmu.createDecoder();
    // Every frame from the second on (the first fades in) is the talker's tone, delayed by the input
    // and output resamplers, within G.711's own quantisation error: no gap, no repeated or skipped
    // samples, no filter start-up dip at any of the rate changes.
    const delay = (2 * resampleDelayMs * 8000) / 1000;
    payloads.forEach((p, k) => {
      if (k < 2) return;
      const pcm = decoder.decode(p);
      let worst = 0;
      for (let i = 0; i < 160; i++) {
        const ideal = 8000 * Math.sin((2 * Math.PI * freq * (k * 160 + i - delay)) / 8000);
        worst = Math.max(worst, Math.abs((pcm[i] ?? 0) - ideal));
      }
      expect(worst).toBeLessThan(bound);
    });
  });
});

describe("DriftCorrectedTicker", () => {
  test("runs missed ticks back-to-back after a stall, and re-anchors after a long one", async () => {
    let now = 0;
    // The ticker reads the (injected) clock once when its timer fires and once to re-arm it.
    let clockReads = 0;
    const ticker = new DriftCorrectedTicker(20, 5, () => (clockReads++, now));
    let ticks = 0;
    const stop = ticker.subscribe(() => ticks++);
    /** Until the timer has fired and re-armed at least once more. */
    const timerFires = async () => {
      const from = clockReads;
      await until(() => clockReads >= from + 2, { what: () => ({ clockReads, ticks, stats: ticker.stats() }) });
    };
    try {
      await timerFires();
      expect(ticks).toBe(0); // the timer fired, but the clock has not reached the deadline
      now = 110; // the event loop "stalled": deadlines 20, 40, 60, 80, 100 have passed
      await timerFires();
      expect(ticker.stats()).toEqual({ ticks: 5, lateTicks: 4, skippedTicks: 0 });
      await timerFires();
      expect(ticks).toBe(5); // caught up: nothing more until the clock moves
      now = 1000; // far beyond the catch-up limit: one tick, the rest dropped
      await timerFires();
      await timerFires();
      expect(ticks).toBe(6);
      expect(ticker.stats()).toEqual({ ticks: 6, lateTicks: 4, skippedTicks: 44 });
    } finally {
      stop();
    }
  });

  test("drives a mixer in real time", async () => {
    const started = performance.now();
    const ticker = new DriftCorrectedTicker(20);
    const mixer = new Mixer({ ticker });
    let frames = 0;
    mixer.join("a", () => frames++);
    // Frames keep coming (waited for: a loaded machine runs late, and a fixed sleep may overshoot) …
    await until(() => frames >= 5, { timeoutMs: 5000 });
    const seen = frames;
    const elapsed = performance.now() - started;
    mixer.close();
    // … but never ahead of the clock: the k-th frame is due k × 20 ms after the mixer subscribed.
    expect(seen).toBeLessThanOrEqual(Math.floor(elapsed / 20));
  });
});

describe("Mixer two-party relay", () => {
  /** A relay end that records what the mixer tells it; `format` can be changed to say it no longer fits. */
  function relayEnd(format: string | undefined = "PCMU") {
    const end = {
      format: format as string | undefined,
      peer: undefined as unknown,
      pairings: 0,
      pair(peer: unknown) {
        end.peer = peer;
        if (peer) end.pairings++;
      },
      deliver() {},
    };
    return end;
  }

  function join(mixer: Mixer, id: string, relay?: ReturnType<typeof relayEnd>) {
    const joined = { part: undefined as unknown as MixerParticipant, heard: [] as MixedFrame[], pulls: 0 };
    joined.part = mixer.join(id, (f) => joined.heard.push(f), {
      pull: () => {
        joined.pulls++;
        return sineFrame(440, 0).subarray(0, 160);
      },
      sampleRate: 8000,
      relay,
    });
    return joined;
  }

  /** A mixer on a manual clock with two alike participants joined, a first and b second. */
  function pairedMixer(onFirstJoined: (a: ReturnType<typeof relayEnd>) => void = () => {}) {
    const ticker = new ManualTicker();
    const mixer = new Mixer({ ticker });
    const a = relayEnd();
    const b = relayEnd();
    const pa = join(mixer, "a", a);
    onFirstJoined(a);
    const pb = join(mixer, "b", b);
    return { ticker, mixer, a, b, pa, pb };
  }

  test("two alike participants are paired to each other; the ticks go on, nobody is pulled, both hear silence", () => {
    const { ticker, mixer, a, b, pa, pb } = pairedMixer((first) => expect(first.peer).toBeUndefined());
    expect(a.peer).toBe(b);
    expect(b.peer).toBe(a);
    expect(mixer.stats().relayed).toBe(true);
    ticker.tick();
    expect(pa.heard.at(-1)?.silent).toBe(true);
    expect(pb.heard.at(-1)?.silent).toBe(true);
    expect(pa.pulls + pb.pulls).toBe(0);
    expect(mixer.stats().talking).toBe(0);
    mixer.close();
    expect(a.peer).toBeUndefined();
    expect(b.peer).toBeUndefined();
  });

  test("a third participant, a tap, a mute or a format that stops fitting unpairs them; each end is paired again once it is over", () => {
    const { mixer, a, b, pa } = pairedMixer();
    const unpairedWhile = (what: string, start: () => () => void) => {
      const end = start();
      expect({ what, paired: a.peer !== undefined || b.peer !== undefined }).toEqual({ what, paired: false });
      end();
      expect({ what, paired: a.peer === b && b.peer === a }).toEqual({ what, paired: true });
    };
    unpairedWhile("third", () => {
      const c = join(mixer, "c");
      return () => c.part.leave();
    });
    unpairedWhile("tap", () => mixer.addTap({ onMix() {} }));
    unpairedWhile("mute", () => {
      mixer.setMuted("b", true);
      return () => mixer.setMuted("b", false);
    });
    unpairedWhile("format", () => {
      a.format = undefined;
      pa.part.relayChanged();
      return () => {
        a.format = "PCMU";
        pa.part.relayChanged();
      };
    });
    expect(a.pairings).toBe(5);
    mixer.close();
  });

  test("relayChanged re-evaluates the pair: different formats, or one without a relay, are mixed", () => {
    const ticker = new ManualTicker();
    const mixer = new Mixer({ ticker });
    const a = relayEnd("PCMU");
    const b = relayEnd("PCMA");
    const pa = join(mixer, "a", a);
    join(mixer, "b", b);
    expect(mixer.stats().relayed).toBe(false);
    b.format = "PCMU";
    pa.part.relayChanged();
    expect(mixer.stats().relayed).toBe(true);
    mixer.close();

    const plain = new Mixer({ ticker });
    const c = relayEnd();
    join(plain, "c", c);
    join(plain, "webrtc");
    expect(c.peer).toBeUndefined();
    plain.close();
  });

  test("relayPairs: false always mixes", () => {
    const mixer = new Mixer({ ticker: new ManualTicker(), relayPairs: false });
    const a = relayEnd();
    join(mixer, "a", a);
    join(mixer, "b", relayEnd());
    expect(a.peer).toBeUndefined();
    expect(mixer.stats().relayed).toBe(false);
    mixer.close();
  });
});
