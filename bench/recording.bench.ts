// What recording a channel costs: CPU per channel-second of the channel's mixer ticks with its mix
// recorded (Ogg Opus; WAV at 16 kHz) against the same channel not recorded, measured side by side in
// alternating rounds. Each tick is followed by a turn of the event loop, where the recorder's drain
// (resample, encode, one asynchronous file write) runs as it does in the app; CPU is the whole
// process's, so the file system's writer threads count too. A channel of two PCMU phones (8 kHz mix,
// one talking) and one with a WebRTC participant (48 kHz mix).
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Codec, codecByName } from "../src/media/codec.ts";
import { Mixer, type MixerParticipant } from "../src/media/mixer.ts";
import { ManualTicker } from "../src/media/ticker.ts";
import { fileSink, opusFileEncoder, Recorder, wavFileEncoder } from "../src/recordings/recorder.ts";

type Variant = "not recorded" | "Ogg Opus" | "WAV 16 kHz";
const variants: Variant[] = ["not recorded", "Ogg Opus", "WAV 16 kHz"];
const secondsPerRun = 10;
const rounds = 7;
const ticksPerSecond = 50;

function sine(rate: number, freq: number, n: number, offset: number): Int16Array {
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.round(6000 * Math.sin((2 * Math.PI * freq * (offset + i)) / rate));
  return out;
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** CPU µs per channel-second of `secondsPerRun` seconds of ticks, and the file's bytes per second. */
async function runChannel(variant: Variant, rate: 8000 | 48000, dir: string): Promise<{ us: number; bytesPerSecond: number }> {
  const ticker = new ManualTicker();
  const mixer = new Mixer({ ticker });
  const pcmu = codecByName("PCMU") as Codec;
  const n = rate / ticksPerSecond;
  let sent = 0;
  const talker: MixerParticipant = mixer.join("talker", (f) => talker.encode(f, pcmu), { pull: () => sine(rate, 440, n, n * sent++), sampleRate: rate });
  const listener: MixerParticipant = mixer.join("listener", (f) => listener.encode(f, pcmu), { pull: () => new Int16Array(n), sampleRate: rate });
  let recorder: Recorder | undefined;
  let file: string | undefined;
  if (variant !== "not recorded") {
    file = join(dir, `${variant === "Ogg Opus" ? "r.ogg" : "r.wav"}`);
    rmSync(file, { force: true });
    recorder = new Recorder({ encoder: variant === "Ogg Opus" ? opusFileEncoder() : wavFileEncoder(16000), sink: await fileSink(file) });
    await recorder.open();
    mixer.addTap(recorder.tap);
  }
  // Warm-up second, then the measured ones.
  for (let i = 0; i < ticksPerSecond; i++) {
    ticker.tick();
    await turn();
  }
  const t0 = process.cpuUsage();
  for (let i = 0; i < secondsPerRun * ticksPerSecond; i++) {
    ticker.tick();
    await turn();
  }
  await recorder?.stop();
  const used = process.cpuUsage(t0);
  mixer.close();
  const bytes = file ? statSync(file).size : 0;
  return { us: (used.user + used.system) / secondsPerRun, bytesPerSecond: bytes / (secondsPerRun + 1) };
}

export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "trunkline-bench-recording-"));
  try {
    for (const rate of [8000, 48000] as const) {
      const best = new Map<Variant, { us: number; bytesPerSecond: number }>();
      const all = new Map<Variant, number[]>(variants.map((v) => [v, []]));
      for (let round = 0; round < rounds; round++) {
        for (const variant of variants) {
          const result = await runChannel(variant, rate, dir);
          all.get(variant)!.push(result.us);
          if (!best.has(variant) || result.us < best.get(variant)!.us) best.set(variant, result);
        }
      }
      const base = best.get("not recorded")!.us;
      console.log(`\nchannel of 2 (${rate === 8000 ? "PCMU phones, 8 kHz mix" : "48 kHz mix"}), one talking; CPU µs per channel-second (fastest of ${rounds} alternating rounds of ${secondsPerRun} s; all runs in brackets)`);
      for (const variant of variants) {
        const { us, bytesPerSecond } = best.get(variant)!;
        const extra = variant === "not recorded" ? "" : `  recording costs ${(us - base).toFixed(0).padStart(5)} µs/s = ${((us - base) / 10_000).toFixed(3)} % of a core; ${(bytesPerSecond * 60 / 1e6).toFixed(2)} MB per minute`;
        const runs = all.get(variant)!.map((x) => x.toFixed(0)).join(", ");
        console.log(`${variant.padEnd(14)} ${us.toFixed(0).padStart(7)} µs/s${extra}  [${runs}]`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
