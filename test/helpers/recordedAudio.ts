// Decodes a recording with tools nobody here wrote: Debian's opusdec (opus-tools) for Ogg Opus, sox
// for WAV; sox also turns opusdec's WAV into raw samples, so no parser of ours reads either file.
//
//   const { pcm, sampleRate } = decodeRecording("rec.ogg");   // 48 kHz mono
//   toneBlocks(pcm, sampleRate, 440)                         // share of 100 ms blocks that carry it
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { carriesTone } from "./hearing.ts";

function run(cmd: string[]): string {
  const result = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  if (result.exitCode !== 0) throw new Error(`${cmd.join(" ")} failed (${result.exitCode}): ${result.stderr.toString()}`);
  return result.stdout.toString() + result.stderr.toString();
}

/** Samples of a WAV file as mono 16-bit at its own rate, read by sox. */
function soxToRaw(wav: string, dir: string): { pcm: Int16Array; sampleRate: number } {
  const sampleRate = Number(run(["soxi", "-r", wav]).trim());
  const raw = join(dir, "out.raw");
  run(["sox", wav, "-t", "raw", "-e", "signed-integer", "-b", "16", "-c", "1", "-L", raw]);
  const bytes = readFileSync(raw);
  return { pcm: new Int16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + (bytes.length & ~1))), sampleRate };
}

/** The recording's audio, decoded by opusdec (`.ogg`, at 48 kHz) or read by sox (`.wav`). */
export function decodeRecording(file: string): { pcm: Int16Array; sampleRate: number; tool: string } {
  const dir = mkdtempSync(join(tmpdir(), "trunkline-decode-"));
  try {
    if (file.endsWith(".ogg")) {
      const wav = join(dir, "decoded.wav");
      const log = run(["opusdec", "--rate", "48000", file, wav]);
      return { ...soxToRaw(wav, dir), tool: `opusdec: ${log.trim().split("\n").slice(-2).join(" | ")}` };
    }
    return { ...soxToRaw(file, dir), tool: "sox" };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** opusinfo's report on an Ogg Opus file (it checks the pages, CRCs and headers). */
export function opusInfo(file: string): string {
  return run(["opusinfo", file]);
}

/** Share of the whole 100 ms blocks of `pcm` that carry `hz` (see carriesTone). */
export function toneBlocks(pcm: Int16Array, sampleRate: number, hz: number): number {
  const size = sampleRate / 10;
  let blocks = 0;
  let toned = 0;
  for (let at = 0; at + size <= pcm.length; at += size, blocks++) if (carriesTone(pcm.subarray(at, at + size), sampleRate, hz, 0.8)) toned++;
  return blocks === 0 ? 0 : toned / blocks;
}
