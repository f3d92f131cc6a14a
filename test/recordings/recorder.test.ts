// The recorder on a mixer driven by hand: files decoded by opusdec and sox carry the mix's tone for
// exactly the ticks recorded, across a change of the mixer's rate; a stalled writer never holds up
// a tick, and the frames it cannot take are dropped, counted, and written as silence afterwards.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Mixer } from "../../src/media/mixer.ts";
import { ManualTicker } from "../../src/media/ticker.ts";
import { metrics } from "../../src/metrics.ts";
import { fileSink, opusFileEncoder, Recorder, type RecordingSink, wavFileEncoder } from "../../src/recordings/recorder.ts";
import { sine } from "../helpers/audio.ts";
import { decodeRecording, opusInfo, toneBlocks } from "../helpers/recordedAudio.ts";
import { until } from "../helpers/until.ts";

const dir = mkdtempSync(join(tmpdir(), "trunkline-recorder-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A mixer on a manual ticker with one talker sending `hz` at `rate`, frame after frame. */
function talkingMixer(hz: number) {
  const ticker = new ManualTicker();
  const mixer = new Mixer({ ticker });
  let sent = 0;
  let rate = 8000;
  const talker = mixer.join("talker", () => {}, { sampleRate: 8000 });
  mixer.join("listener", () => {}, { sampleRate: 8000 });
  return {
    mixer,
    /** Writes a frame for each tick, then ticks. */
    tick(count: number) {
      for (let i = 0; i < count; i++) {
        const n = rate / 50;
        talker.write(sine(rate, hz, n, 8000, sent * n));
        sent++;
        ticker.tick();
      }
    },
    /** The talker now sends (and the mixer runs) at `next`. */
    switchRate(next: number) {
      rate = next;
      talker.setSampleRate(next);
      sent = 0;
    },
  };
}

/** Lets setImmediate callbacks (the recorder's drains) and their writes run. */
const settle = () => new Promise<void>((resolve) => setTimeout(resolve, 5));

describe("recorder", () => {
  test.each(["opus", "wav"] as const)("%s: decoded by a tool nobody here wrote, the file carries 440 Hz for exactly the ticks recorded, across a mixer rate change", async (format) => {
    const file = join(dir, `tone.${format === "opus" ? "ogg" : "wav"}`);
    const encoder = format === "opus" ? opusFileEncoder() : wavFileEncoder(16000);
    const recorder = new Recorder({ encoder, sink: await fileSink(file) });
    const channel = talkingMixer(440);
    await recorder.open();
    const untap = channel.mixer.addTap(recorder.tap);
    for (let i = 0; i < 10; i++) {
      channel.tick(5);
      await settle();
    }
    channel.switchRate(48000);
    for (let i = 0; i < 10; i++) {
      channel.tick(5);
      await settle();
    }
    untap();
    channel.tick(10);
    const stats = await recorder.stop();
    expect(stats).toEqual({ durationMs: 2000, bytes: statSync(file).size, droppedFrames: 0 });

    const { pcm, sampleRate, tool } = decodeRecording(file);
    expect(sampleRate).toBe(format === "opus" ? 48000 : 16000);
    // Opus: the pre-skip removes the encoder's lookahead, so the decoded length is the recorded one.
    expect(Math.abs(pcm.length - 2 * sampleRate), tool).toBeLessThanOrEqual(sampleRate / 100);
    // The first 100 ms holds the talker's fade-in and the resamplers' start.
    expect(toneBlocks(pcm.subarray(sampleRate / 10), sampleRate, 440), tool).toBeGreaterThanOrEqual(0.9);
    if (format === "opus") expect(opusInfo(file)).not.toMatch(/WARNING|ERROR|corrupt|hole/i);
    channel.mixer.close();
  });

  test("a stalled writer never holds up the tick: frames beyond the queue are dropped, counted, and written as silence later", async () => {
    const counter = () => metrics.counter("trunkline_recording_dropped_frames_total", "").get();
    const before = counter();
    const written: Uint8Array[] = [];
    let release: () => void = () => {};
    let stalled = true;
    const sink: RecordingSink = {
      append: (bytes) => {
        written.push(bytes.slice());
        if (!stalled) return Promise.resolve();
        return new Promise<void>((resolve) => (release = resolve));
      },
      writeAt: () => Promise.resolve(),
      close: () => Promise.resolve(),
    };
    const recorder = new Recorder({ encoder: wavFileEncoder(8000), sink, queueFrames: 5 });
    const channel = talkingMixer(440);
    // The header's write stalls, and with it everything queued behind it.
    const opening = recorder.open();
    const untap = channel.mixer.addTap(recorder.tap);
    // 31 ticks while the writer is stuck: all of them ran (the mixer counts them), 5 frames queued.
    for (let i = 0; i < 31; i++) {
      channel.tick(1);
      await settle();
    }
    expect(channel.mixer.stats().ticks).toBe(31);
    expect(recorder.tap.size).toBe(5);
    expect(recorder.stats().droppedFrames).toBe(26);
    expect(counter() - before).toBe(26);
    expect(written).toHaveLength(1);

    stalled = false;
    release();
    await opening;
    await until(() => recorder.tap.size === 0, { what: () => `queue ${recorder.tap.size}` });
    untap();
    const stats = await recorder.stop();
    // Every tick is in the file: 31 frames, the 26 dropped ones as silence, nothing else lost.
    expect(stats.droppedFrames).toBe(26);
    expect(stats.durationMs).toBe(31 * 20);
    const pcmBytes = written.slice(1).reduce((n, b) => n + b.length, 0);
    expect(pcmBytes).toBe(31 * 160 * 2);
    channel.mixer.close();
  });
});
