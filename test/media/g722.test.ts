import { describe, expect, test } from "bun:test";
import { codecByName } from "../../src/media/codec.ts";
import { G722Decoder, G722Encoder } from "../../src/media/g722.ts";
import { goertzelPower } from "../../src/media/goertzel.ts";
import { concat, sine, sineFit, streamTone } from "../helpers/audio.ts";

function roundTrip(freq: number, amplitude = 8000): Int16Array {
  const enc = new G722Encoder();
  const dec = new G722Decoder();
  return streamTone((f) => dec.decode(enc.encode(f)), 16000, freq, 50, amplitude);
}

describe("G.722 (64 kbit/s)", () => {
  test("1 kHz tone: decoded at the same frequency and level, > 40 dB SNR", () => {
    const out = roundTrip(1000);
    const fit = sineFit(out, 16000, 1000, 1600);
    expect(fit.snrDb).toBeGreaterThan(40);
    expect(Math.abs(fit.amplitude - 8000)).toBeLessThan(160);
    // Energy sits at 1 kHz, not at neighbouring frequencies.
    const tail = out.subarray(8000);
    expect(goertzelPower(tail, 16000, 1000)).toBeGreaterThan(1000 * goertzelPower(tail, 16000, 1200));
  });

  test.each([[300], [2500], [3400]])("low-band tone %d Hz round-trips at > 30 dB SNR", (freq) => {
    expect(sineFit(roundTrip(freq), 16000, freq, 1600).snrDb).toBeGreaterThan(30);
  });

  test("wideband: a 6 kHz tone (high sub-band, beyond narrowband codecs) survives", () => {
    const fit = sineFit(roundTrip(6000, 4000), 16000, 6000, 1600);
    expect(fit.snrDb).toBeGreaterThan(12);
    expect(fit.amplitude).toBeGreaterThan(3000);
  });

  test("silence stays (nearly) silent", () => {
    const out = roundTrip(1000, 0);
    expect(out.subarray(1600).every((v) => Math.abs(v) <= 4)).toBe(true);
  });

  test("one byte per pair of 16 kHz samples", () => {
    expect(new G722Encoder().encode(new Int16Array(320)).length).toBe(160);
    expect(new G722Decoder().decode(new Uint8Array(160)).length).toBe(320);
  });

  test("a forked encoder continues exactly like the original", () => {
    const a = new G722Encoder();
    for (let k = 0; k < 5; k++) a.encode(sine(16000, 700, 320, 6000, k * 320));
    const b = a.fork();
    for (let k = 5; k < 10; k++) {
      const frame = sine(16000, 700, 320, 6000, k * 320);
      expect(Array.from(b.encode(frame))).toEqual(Array.from(a.encode(frame)));
    }
  });

  test("loss concealment repeats then fades the last frame", () => {
    const c = codecByName("G722");
    if (!c) throw new Error("G722 missing");
    const enc = c.createEncoder();
    const dec = c.createDecoder();
    const good = concat([0, 1, 2].map((k) => dec.decode(enc.encode(sine(16000, 1000, 320, 8000, k * 320)))));
    const lost = dec.conceal(320);
    expect(goertzelPower(lost, 16000, 1000)).toBeGreaterThan(0.3 * goertzelPower(good.subarray(640), 16000, 1000));
  });

  // Golden values recorded from this implementation after it reproduced the ITU-T G.722 Appendix II
  // digital test sequences bit for bit (T1C2.XMT → T2R2.COD, T2R2.COD → T3L2.RC1 and T3H2.RC0; the
  // sequences are ITU copyright and not shipped here). Any change to tables or arithmetic shows up.
  test("bit-exact regression: full-scale alternation + chirp, through the QMF and per band", () => {
    const fnv = (values: ArrayLike<number>, mask: number) => {
      let h = 0x811c9dc5;
      for (let i = 0; i < values.length; i++) h = Math.imul(h ^ ((values[i] ?? 0) & mask), 0x01000193) >>> 0;
      return h.toString(16);
    };
    const input = new Int16Array(16000);
    for (let i = 0; i < input.length; i++) {
      const t = i / 16000;
      input[i] = i < 200 ? (i % 2 ? 32767 : -32768) : Math.round(20000 * Math.sin(2 * Math.PI * (50 * t + 3700 * t * t)));
    }
    const codes = new G722Encoder().encode(input);
    expect(fnv(codes, 0xff)).toBe("6697b676");
    expect(fnv(new Uint8Array(new G722Decoder().decode(codes).buffer), 0xff)).toBe("3b89d93a");

    // Band level, as the ITU test sequences exercise it: the same 15-bit sample into both bands.
    const enc = new G722Encoder();
    const dec = new G722Decoder();
    const bandCodes: number[] = [];
    const bandOut: number[] = [];
    for (const x of input) {
      const code = enc.encodeBands(x >> 1, x >> 1);
      bandCodes.push(code);
      bandOut.push(dec.decodeBands(code), dec.lastHigh);
    }
    expect(fnv(bandCodes, 0xff)).toBe("96cb4916");
    expect(fnv(bandOut, 0xffff)).toBe("aa8ee1c4");
  });
});
