// Records a channel's full mix to a file without ever holding up the mixer tick. The tick only
// copies its frame into a bounded queue (MixFrameQueue, the mixer's tap). Everything else runs
// after the tick, on the event loop: the queued frames are taken in one batch, resampled to the
// file's rate, encoded (Opus in Ogg, or 16-bit PCM for WAV) and appended with one asynchronous
// write; frames arriving meanwhile wait in the queue. A disk slower than real time fills the
// queue, and frames that find it full are dropped and counted (trunkline_recording_dropped_frames_total)
// instead of stalling audio; each dropped frame is written as silence once writing catches up, so
// the file keeps the channel's timeline.
//
//   const recorder = new Recorder({ encoder: opusFileEncoder(), sink: await fileSink(path) });
//   await recorder.open();
//   const untap = mixer.addTap(recorder.tap);
//   ...
//   untap(); const result = await recorder.stop();
import { open } from "node:fs/promises";
import { MixFrameQueue } from "../media/mix-tap.ts";
import { OggOpusWriter } from "../media/ogg-opus.ts";
import { createOpusEncoder } from "../media/opus.ts";
import { SwitchingResampler } from "../media/rate-switch.ts";
import { wavHeader } from "../media/wav.ts";
import { metrics } from "../metrics.ts";

export type RecordingFormat = "opus" | "wav";

const droppedFrames = metrics.counter(
  "trunkline_recording_dropped_frames_total",
  "20 ms frames of a channel's mix a recording dropped because its writer had fallen behind (written as silence).",
);

/** Where a recording's bytes go: a file (fileSink), or anything that behaves like one. */
export interface RecordingSink {
  append(bytes: Uint8Array): Promise<void>;
  /** Overwrites bytes already written (a WAV header's sizes). */
  writeAt(bytes: Uint8Array, position: number): Promise<void>;
  close(): Promise<void>;
}

/** A new file (never an existing one) written at the end, then at given positions. */
export async function fileSink(path: string): Promise<RecordingSink> {
  const handle = await open(path, "wx");
  let end = 0;
  return {
    async append(bytes) {
      let done = 0;
      while (done < bytes.length) {
        const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, end);
        done += bytesWritten;
        end += bytesWritten;
      }
    },
    async writeAt(bytes, position) {
      await handle.write(bytes, 0, bytes.length, position);
    },
    close: () => handle.close(),
  };
}

/** Turns 20 ms frames at `sampleRate` into a file's bytes. */
export interface FileEncoder {
  readonly format: RecordingFormat;
  readonly sampleRate: number;
  /** What the file starts with. */
  start(): Uint8Array;
  /** Bytes to append for one frame (Ogg: a page once a second's packets are pending). */
  frame(pcm: Int16Array): Uint8Array | undefined;
  /** What ends the file, and the file's first bytes again when they change at the end. */
  finish(): { tail: Uint8Array; header?: Uint8Array };
}

/** Ogg Opus (RFC 7845), 48 kHz mono, 32 kbit/s. */
export function opusFileEncoder(): FileEncoder {
  const encoder = createOpusEncoder({ inbandFec: false, packetLossPercent: 0 });
  const ogg = new OggOpusWriter({ preSkip: encoder.lookahead, serial: crypto.getRandomValues(new Uint32Array(1))[0] as number });
  return {
    format: "opus",
    sampleRate: 48000,
    start: () => ogg.headers(),
    frame: (pcm) => ogg.packet(encoder.encode(pcm), pcm.length),
    finish: () => ({ tail: ogg.finish(encoder.encode(new Int16Array(960))) }),
  };
}

/** RIFF WAVE, 16-bit mono PCM at `sampleRate`. */
export function wavFileEncoder(sampleRate: number): FileEncoder {
  let dataBytes = 0;
  return {
    format: "wav",
    sampleRate,
    start: () => wavHeader(sampleRate, 0),
    frame(pcm) {
      const bytes = new Uint8Array(pcm.length * 2);
      const view = new DataView(bytes.buffer);
      for (let i = 0; i < pcm.length; i++) view.setInt16(i * 2, pcm[i] as number, true);
      dataBytes += bytes.length;
      return bytes;
    },
    finish: () => ({ tail: new Uint8Array(0), header: wavHeader(sampleRate, dataBytes) }),
  };
}

export interface RecorderOptions {
  encoder: FileEncoder;
  sink: RecordingSink;
  /** Frames the queue holds while a write is under way (default 100: two seconds). */
  queueFrames?: number;
  frameMs?: number;
  /** Told once when writing fails; the recording then stops taking frames. */
  onError?: (err: unknown) => void;
}

export interface RecorderStats {
  /** Media written, dropped frames (as silence) included. */
  durationMs: number;
  bytes: number;
  droppedFrames: number;
}

export class Recorder {
  readonly tap: MixFrameQueue;
  private readonly frameMs: number;
  private readonly resampler = new SwitchingResampler();
  private framesWritten = 0;
  private bytes = 0;
  private lastTick = -1;
  private lastRate = 0;
  private lastLength = 0;
  private scheduled = false;
  private failed = false;
  private stopped = false;
  /** The drains run one after another on this chain. */
  private work: Promise<void> = Promise.resolve();

  constructor(private readonly o: RecorderOptions) {
    this.frameMs = o.frameMs ?? 20;
    this.tap = new MixFrameQueue(o.queueFrames ?? 100, () => this.schedule(), () => droppedFrames.inc());
  }

  /** Writes the file's start; frames the tap queues meanwhile are written after it. */
  open(): Promise<void> {
    this.work = this.work.then(() => this.append(this.o.encoder.start()));
    return this.work;
  }

  stats(): RecorderStats {
    return { durationMs: this.framesWritten * this.frameMs, bytes: this.bytes, droppedFrames: this.tap.dropped };
  }

  /** Call after detaching the tap: writes what is queued, ends the file and closes it. */
  async stop(): Promise<RecorderStats> {
    if (!this.stopped) {
      this.stopped = true;
      this.work = this.work.then(async () => {
        await this.drain();
        if (!this.failed) {
          // Frames dropped after the last one queued, as silence too.
          const parts: Uint8Array[] = [];
          this.fillSilence(this.tap.latestTick, parts);
          const { tail, header } = this.o.encoder.finish();
          await this.append(concat([...parts, tail]));
          if (header) await this.o.sink.writeAt(header, 0);
        }
        await this.o.sink.close();
      });
    }
    await this.work.catch((err: unknown) => this.fail(err));
    return this.stats();
  }

  private schedule(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    // After the tick: the drain never runs inside the mixer's timer callback.
    setImmediate(() => {
      this.work = this.work.then(() => this.drain());
    });
  }

  private async drain(): Promise<void> {
    this.scheduled = false;
    try {
      while (this.tap.size > 0 && !this.failed) {
        const bytes = this.encodeQueued();
        // Frames that arrive during the write wait in the queue, or are dropped when it is full.
        await this.append(bytes);
      }
    } catch (err) {
      this.fail(err);
    }
  }

  /** Encodes every queued frame (silence for the ticks dropped before each) into one buffer. */
  private encodeQueued(): Uint8Array {
    const parts: Uint8Array[] = [];
    for (let frame = this.tap.take(); frame; frame = this.tap.take()) {
      this.fillSilence(frame.tick - 1, parts);
      this.encodeFrame(frame.pcm, frame.sampleRate, parts);
      this.lastTick = frame.tick;
      this.lastRate = frame.sampleRate;
      this.lastLength = frame.pcm.length;
    }
    return concat(parts);
  }

  /** Silence for the dropped ticks after the last written one, up to `tick`. */
  private fillSilence(tick: number, parts: Uint8Array[]): void {
    if (this.lastTick < 0) return;
    const silence = new Int16Array(this.lastLength);
    for (; this.lastTick < tick; this.lastTick++) this.encodeFrame(silence, this.lastRate, parts);
  }

  private encodeFrame(pcm: Int16Array, rate: number, parts: Uint8Array[]): void {
    const out = this.resampler.process(pcm, rate, this.o.encoder.sampleRate);
    const bytes = this.o.encoder.frame(out);
    if (bytes) parts.push(bytes);
    this.framesWritten++;
  }

  private async append(bytes: Uint8Array): Promise<void> {
    if (bytes.length === 0 || this.failed) return;
    try {
      await this.o.sink.append(bytes);
      this.bytes += bytes.length;
    } catch (err) {
      this.fail(err);
    }
  }

  private fail(err: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.o.onError?.(err);
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0] as Uint8Array;
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
