import { expect, test } from "bun:test";
import { goertzelPower } from "../../src/media/goertzel.ts";
import { createOpusEncoder, opus, setDefaultOpusApplication } from "../../src/media/opus.ts";

/** Power of `freq` in a 48 kHz block, in dB relative to a full-scale sine. */
function level(pcm: Int16Array, freq: number): number {
  return 10 * Math.log10(goertzelPower(pcm, 48000, freq) / (32767 * 32767 * 0.5) + 1e-12);
}

test("Opus calls of two threads at once never hand one thread the other's result", async () => {
  const stop = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(new URL("../helpers/opusBusyWorker.ts", import.meta.url).href);
  const messages: string[] = [];
  const next = () => new Promise<string>((resolve) => (worker.onmessage = (e: MessageEvent<string>) => resolve(e.data)));
  try {
    const running = next();
    worker.postMessage({ stop });
    messages.push(await running);
    // While the worker codes a 1000 Hz tone without pause, this thread codes 600 Hz: every packet
    // and every decoded frame it gets back must be its own (the 1000 Hz no louder than coding noise, far below the −12 dBFS it is coded at).
    const encoder = opus.createEncoder();
    const decoder = opus.createDecoder();
    let phase = 0;
    const worst = { level: -Infinity, frame: -1 };
    for (let f = 0; f < 1000; f++) {
      const pcm = new Int16Array(960);
      for (let i = 0; i < pcm.length; i++, phase += (2 * Math.PI * 600) / 48000) pcm[i] = Math.round(8000 * Math.sin(phase));
      const decoded = decoder.decode(encoder.encode(pcm));
      const leaked = level(decoded, 1000);
      if (f >= 5 && leaked > worst.level) Object.assign(worst, { level: leaked, frame: f });
    }
    const stopped = next();
    Atomics.store(stop, 0, 1);
    messages.push(await stopped);
    expect(messages).toEqual(["running", "stopped"]);
    expect(worst.level).toBeLessThan(-45);
  } finally {
    worker.terminate();
  }
});

test("a payload longer than any Opus packet (a 60 KB datagram) is refused before it is copied, concealed as lost; another decoder of the thread decodes on", () => {
  const encoder = opus.createEncoder();
  const tone = new Int16Array(960).map((_, i) => Math.round(8000 * Math.sin((2 * Math.PI * 1000 * i) / 48000)));
  const bystander = opus.createDecoder();
  const packets = Array.from({ length: 10 }, () => encoder.encode(tone));
  for (const packet of packets.slice(0, 5)) bystander.decode(packet);
  const attacked = opus.createDecoder();
  const concealed = attacked.decode(new Uint8Array(60_000).fill(0xfc));
  expect(concealed.length).toBe(960);
  // The bystander still decodes its stream: the 1 kHz tone comes through at its level.
  const heard = bystander.decode(packets[5]!);
  expect(goertzelPower(heard, 48000, 1000)).toBeGreaterThan(0.5 * (8000 * 8000) / 2);
});

/** 20 ms of a voiced sound: a gliding 120 Hz pitch with its harmonics, which Opus's voip mode codes as speech. */
function voicedFrame(frame: number): Int16Array {
  const pcm = new Int16Array(960);
  for (let i = 0; i < pcm.length; i++) {
    const t = (frame * 960 + i) / 48000;
    const pitch = 120 + 40 * Math.sin(3 * t);
    let sum = 0;
    for (let h = 1; h < 8; h++) sum += Math.sin(2 * Math.PI * pitch * h * t) / h;
    pcm[i] = Math.round(6000 * sum);
  }
  return pcm;
}

/** The TOC configurations (RFC 6716 §3.1: 0–11 SILK, 12–15 hybrid, 16–31 CELT) of an encoder's packets for 1 s of voice. */
function tocConfigs(encode: (pcm: Int16Array) => Uint8Array): Set<number> {
  const configs = new Set<number>();
  for (let frame = 0; frame < 50; frame++) configs.add((encode(voicedFrame(frame))[0] as number) >> 3);
  return configs;
}

test("encoders send CELT only with 2.5 ms lookahead by default (lowdelay), SILK or hybrid with 6.5 ms in voip; media.opusApplication sets the default", () => {
  const lowdelay = createOpusEncoder();
  expect([...tocConfigs((pcm) => lowdelay.encode(pcm))].every((config) => config >= 16)).toBe(true);
  expect(lowdelay.lookahead).toBe(120);
  const voip = createOpusEncoder({ application: "voip" });
  expect([...tocConfigs((pcm) => voip.encode(pcm))].every((config) => config < 16)).toBe(true);
  expect(voip.lookahead).toBe(312);
  setDefaultOpusApplication("voip");
  try {
    const configured = opus.createEncoder();
    expect([...tocConfigs((pcm) => configured.encode(pcm))].every((config) => config < 16)).toBe(true);
  } finally {
    setDefaultOpusApplication("lowdelay");
  }
});
