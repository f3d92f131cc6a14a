// A mono 16-bit PCM WAV file holding a sine tone, e.g. for Chromium's fake microphone
// (--use-file-for-fake-audio-capture), which loops it.
import { writeFileSync } from "node:fs";
import { sine } from "./audio.ts";

export function writeToneWav(path: string, o: { freq: number; seconds: number; sampleRate?: number; amplitude?: number }): void {
  const rate = o.sampleRate ?? 48000;
  const pcm = sine(rate, o.freq, Math.round(rate * o.seconds), o.amplitude ?? 8000);
  const samples = pcm.length;
  const buf = Buffer.alloc(44 + samples * 2);
  buf.write("RIFF", 0);
  buf.writeUInt32LE(36 + samples * 2, 4);
  buf.write("WAVEfmt ", 8);
  buf.writeUInt32LE(16, 16); // fmt chunk size
  buf.writeUInt16LE(1, 20); // PCM
  buf.writeUInt16LE(1, 22); // mono
  buf.writeUInt32LE(rate, 24);
  buf.writeUInt32LE(rate * 2, 28); // byte rate
  buf.writeUInt16LE(2, 32); // block align
  buf.writeUInt16LE(16, 34); // bits per sample
  buf.write("data", 36);
  buf.writeUInt32LE(samples * 2, 40);
  pcm.forEach((v, i) => buf.writeInt16LE(v, 44 + i * 2));
  writeFileSync(path, buf);
}
