import { describe, expect, test } from "bun:test";
import { codecByName, codecByStaticPayloadType, codecs, rtpTimestampsPerFrame, samplesPerFrame } from "../../src/media/codec.ts";
import { decodeAlaw, decodeUlaw, encodeAlaw, encodeUlaw } from "../../src/media/g711.ts";
import { goertzelPower } from "../../src/media/goertzel.ts";
import { sine, sineFit, streamTone } from "../helpers/audio.ts";

function codec(name: string) {
  const c = codecByName(name);
  if (!c) throw new Error(`codec ${name} missing`);
  return c;
}

/** Encode+decode a continuous tone, 1 s in 20 ms frames. */
function roundTrip(name: string, freq: number, amplitude = 8000): Int16Array {
  const c = codec(name);
  const enc = c.createEncoder();
  const dec = c.createDecoder();
  return streamTone((f) => dec.decode(enc.encode(f)), c.sampleRate, freq, 50, amplitude);
}

describe("codec registry", () => {
  test("looks codecs up case-insensitively and by static payload type", () => {
    expect(codecByName("pcmu")?.staticPayloadType).toBe(0);
    expect(codecByName("PCMA")?.staticPayloadType).toBe(8);
    expect(codecByName("g722")?.staticPayloadType).toBe(9);
    expect(codecByName("OPUS")?.staticPayloadType).toBeUndefined();
    expect(codecByName("GSM")).toBeUndefined();
    expect(codecByStaticPayloadType(9)?.name).toBe("G722");
    expect(codecs.map((c) => c.name)).toEqual(["PCMU", "PCMA", "G722", "opus"]);
  });

  test("G.722 keeps the RFC 3551 8000 Hz RTP clock while sampling at 16 kHz", () => {
    const g722 = codec("G722");
    expect(samplesPerFrame(g722, 20)).toBe(320);
    expect(rtpTimestampsPerFrame(g722, 20)).toBe(160);
    expect(g722.createEncoder().encode(new Int16Array(320)).length).toBe(160);
    expect(rtpTimestampsPerFrame(codec("opus"), 20)).toBe(960);
    expect(codec("opus").sdpChannels).toBe(2);
  });
});

describe("G.711", () => {
  test.each([["PCMU"], ["PCMA"]])("%s round trip keeps a 1013 Hz tone at > 35 dB SNR", (name) => {
    const out = roundTrip(name, 1013);
    const fit = sineFit(out, 8000, 1013);
    expect(fit.snrDb).toBeGreaterThan(35);
    expect(Math.abs(fit.amplitude - 8000)).toBeLessThan(80);
  });

  test("companding stays within G.711's 38 dB across levels from −40 dBFS to full scale", () => {
    for (const amplitude of [330, 3300, 16000, 32000]) {
      for (const name of ["PCMU", "PCMA"]) {
        expect(sineFit(roundTrip(name, 1013, amplitude), 8000, 1013).snrDb).toBeGreaterThan(33);
      }
    }
  });

  test("known code points: µ-law 0xFF and A-law 0xD5 are zero; extremes map to the end codes", () => {
    expect(Array.from(encodeUlaw(Int16Array.of(0, 32767, -32768)))).toEqual([0xff, 0x80, 0x00]);
    expect(Array.from(encodeAlaw(Int16Array.of(0, 32767, -32768)))).toEqual([0xd5, 0xaa, 0x2a]);
    expect(Array.from(decodeUlaw(Uint8Array.of(0xff, 0x80, 0x00)))).toEqual([0, 32124, -32124]);
    expect(Array.from(decodeAlaw(Uint8Array.of(0xd5, 0xaa, 0x2a)))).toEqual([8, 32256, -32256]);
  });

  test("every code decodes to a value that re-encodes to the same code", () => {
    for (let b = 0; b < 256; b++) {
      // µ-law has two codes for zero (0x7F and 0xFF); both decode to 0 which encodes as 0xFF.
      if (b !== 0x7f) expect(encodeUlaw(decodeUlaw(Uint8Array.of(b)))[0]).toBe(b);
      expect(encodeAlaw(decodeAlaw(Uint8Array.of(b)))[0]).toBe(b);
    }
  });

  test("a lost frame repeats the last audio, fading to silence over consecutive losses", () => {
    const c = codec("PCMU");
    const enc = c.createEncoder();
    const dec = c.createDecoder();
    const good = dec.decode(enc.encode(sine(8000, 500, 160, 8000)));
    const first = dec.conceal(160);
    expect(goertzelPower(first, 8000, 500)).toBeGreaterThan(0.3 * goertzelPower(good, 8000, 500));
    let last = first;
    for (let i = 0; i < 5; i++) last = dec.conceal(160);
    expect(last.every((v) => v === 0)).toBe(true);
  });
});

describe("Opus", () => {
  test("round trip keeps a 1013 Hz tone's level and frequency", () => {
    const out = roundTrip("opus", 1013);
    const fit = sineFit(out, 48000, 1013, 4800);
    expect(fit.snrDb).toBeGreaterThan(12);
    expect(fit.amplitude).toBeGreaterThan(7000);
    expect(fit.amplitude).toBeLessThan(9000);
  });

  test("decoded frames are fresh copies, not views of the library's reused buffer", () => {
    const c = codec("opus");
    const enc = c.createEncoder();
    const dec = c.createDecoder();
    const a = dec.decode(enc.encode(sine(48000, 440, 960)));
    const snapshot = Array.from(a);
    const p1 = enc.encode(sine(48000, 1000, 960, 2000));
    const p1Copy = Array.from(p1);
    dec.decode(p1);
    enc.encode(sine(48000, 300, 960, 12000));
    expect(Array.from(a)).toEqual(snapshot);
    expect(Array.from(p1)).toEqual(p1Copy);
  });

  test("packet loss concealment continues the tone for a lost frame", () => {
    const c = codec("opus");
    const enc = c.createEncoder();
    const dec = c.createDecoder();
    for (let k = 0; k < 20; k++) dec.decode(enc.encode(sine(48000, 600, 960, 8000, k * 960)));
    const concealed = dec.conceal(960);
    expect(concealed.length).toBe(960);
    expect(goertzelPower(concealed, 48000, 600)).toBeGreaterThan(0.1 * 3.2e7);
  });

  test("a corrupt payload is concealed instead of throwing", () => {
    const dec = codec("opus").createDecoder();
    expect(dec.decode(Uint8Array.of(0xff, 0xff, 0xff)).length).toBe(960);
  });
});
