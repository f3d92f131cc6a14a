// Recordings of channels: each records the channel's full mix (what every listener who is not
// talking hears) from the moment it starts until it is stopped, the channel empties, or the process
// stops. Files go to recordings.dir as <id>.ogg (Ogg Opus) or <id>.wav; their metadata to the store
// (table recordings); recording.started / recording.stopped go out on the event bus (so to the
// events webhook and the channel's client streams). recordings.retentionDays deletes old ones.
//
//   const result = await recordings.startRecording({ applicationId, channelId, format: "opus" });
//   await recordings.stopRecording(result.recording.id, "stopped");
import { mkdir, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { AppContext, Service } from "../app.ts";
import type { ChannelRegistry } from "../channels/registry.ts";
import { emitEvent, type RecordingEventData } from "../events.ts";
import { createLogger } from "../log.ts";
import { metrics } from "../metrics.ts";
import { timeOrderedId } from "../store/ids.ts";
import type { RecordingRecord } from "../store/index.ts";
import { Retention } from "../store/retention.ts";
import { fileSink, opusFileEncoder, Recorder, type FileEncoder, type RecordingFormat, wavFileEncoder } from "./recorder.ts";

const log = createLogger("recordings");

export type WavSampleRate = 8000 | 16000 | 48000;

export interface StartRequest {
  applicationId: string;
  channelId: string;
  format: RecordingFormat;
  /** WAV only (default 16000); Ogg Opus is always 48 kHz. */
  sampleRate?: WavSampleRate;
}

export type RecordingFailure = { ok: false; status: 404 | 500; code: string; message: string; field?: string };

interface ActiveRecording {
  record: RecordingRecord;
  recorder: Recorder;
  /** Resolves once the frames mixed before it reached the recorder. */
  untap: () => Promise<void>;
}

let activeRecordings = 0;
metrics.gauge("trunkline_recordings_active", "Recordings running in this process.", [], () => activeRecordings);
const prunedRecordings = metrics.counter("trunkline_recordings_pruned_total", "Recordings (file and metadata) deleted by recordings.retentionDays.");

export const contentTypes: Record<RecordingFormat, string> = { opus: "audio/ogg; codecs=opus", wav: "audio/wav" };

export class RecordingService implements Service {
  readonly name = "recordings";
  private readonly active = new Map<string, ActiveRecording>();
  private readonly stopping = new Map<string, Promise<RecordingRecord>>();
  private readonly retention: Retention;

  constructor(
    private readonly ctx: AppContext,
    private readonly registry: ChannelRegistry,
  ) {
    this.retention = new Retention({
      what: "recordings",
      retentionDays: () => ctx.config.recordings.retentionDays,
      pruned: prunedRecordings,
      prune: async (cutoff, limit) => {
        const pruned = await ctx.store.recordings.pruneStopped(cutoff, limit);
        await Promise.all(pruned.map((r) => rm(r.file, { force: true }).catch((err: unknown) => log.warn("recording file not deleted", { file: r.file, err }))));
        return pruned.length;
      },
    });
  }

  async start(): Promise<void> {
    const interrupted = await this.ctx.store.recordings.closeInterrupted();
    if (interrupted.length > 0) log.warn("recordings running at the last stop closed as interrupted", { count: interrupted.length });
    this.retention.start();
  }

  async stop(): Promise<void> {
    await Promise.all([...this.active.keys()].map((id) => this.stopRecording(id, "shutdown")));
    await this.retention.stop();
  }

  /** Starts recording the channel's mix; the channel must have someone in it. */
  async startRecording(request: StartRequest): Promise<{ ok: true; recording: RecordingRecord } | RecordingFailure> {
    const { applicationId, channelId, format } = request;
    if (!this.ctx.store.applications.get(applicationId)) return notFound("application", applicationId, "appId");
    if (this.registry.participants(applicationId, channelId).length === 0) return channelEmpty(channelId);
    const encoder: FileEncoder = format === "wav" ? wavFileEncoder(request.sampleRate ?? 16000) : opusFileEncoder();
    const id = timeOrderedId("rec");
    const dir = resolve(this.ctx.config.recordings.dir);
    const file = join(dir, `${id}.${format === "wav" ? "wav" : "ogg"}`);
    let recorder: Recorder;
    try {
      await mkdir(dir, { recursive: true });
      recorder = new Recorder({ encoder, sink: await fileSink(file), onError: (err) => this.writeFailed(id, err) });
    } catch (err) {
      log.error("recording file could not be created", { file, err });
      return { ok: false, status: 500, code: "recording_failed", message: `the recording file could not be created in recordings.dir (${(err as Error).message})` };
    }
    // The header is queued first; frames the tap queues meanwhile are written after it.
    const opened = recorder.open();
    const untap = this.registry.addMixTap(applicationId, channelId, {
      onMix: (frame) => recorder.tap.onMix(frame),
      onClose: () => void this.stopRecording(id, "channel_empty"),
    });
    if (!untap) {
      // The channel emptied while the file was being created.
      await opened;
      await recorder.stop();
      await rm(file, { force: true });
      return channelEmpty(channelId);
    }
    const startedAt = Date.now();
    const record: RecordingRecord = {
      id, applicationId, channelId, format, sampleRate: encoder.sampleRate, file, state: "recording",
      startedAt: new Date(startedAt).toISOString(), durationMs: 0, bytes: 0, droppedFrames: 0,
    };
    this.active.set(id, { record, recorder, untap });
    activeRecordings++;
    // Before any wait, so recording.stopped (the channel may empty meanwhile) always follows it.
    emitEvent("recording.started", eventData(record));
    try {
      await this.ctx.store.recordings.create(record, startedAt);
    } catch (err) {
      log.error("recording metadata not stored", { id, err });
      await this.stopRecording(id, "write_failed");
      return { ok: false, status: 500, code: "recording_failed", message: "the recording's metadata could not be stored" };
    }
    log.info("recording started", { id, applicationId, channelId, format });
    return { ok: true, recording: this.live(record, recorder) };
  }

  /** Stops a running recording of this process; undefined when it is not one. */
  stopRecording(id: string, reason: string): Promise<RecordingRecord | undefined> {
    // A second stop (the API while the channel empties) gets the first one's outcome.
    const pending = this.stopping.get(id);
    if (pending) return pending;
    const running = this.active.get(id);
    if (!running) return Promise.resolve(undefined);
    this.active.delete(id);
    activeRecordings--;
    const stoppedAt = Date.now();
    // The frames mixed up to the stop, still on their way from the channel's media worker, go in the file too.
    const done = running.untap().then(() => this.finish(running, reason, stoppedAt)).finally(() => this.stopping.delete(id));
    this.stopping.set(id, done);
    return done;
  }

  /** The recording's metadata, with the running figures of one recording now. */
  async get(id: string): Promise<RecordingRecord | undefined> {
    const running = this.active.get(id);
    if (running) return this.live(running.record, running.recorder);
    return (await this.stopping.get(id)) ?? this.ctx.store.recordings.get(id);
  }

  /** Ends the file, stores the final figures and tells the world. */
  private async finish(running: ActiveRecording, reason: string, stoppedAt: number): Promise<RecordingRecord> {
    const { id } = running.record;
    const stats = await running.recorder.stop();
    const end = { ...stats, stopReason: reason };
    let stored: RecordingRecord | undefined;
    try {
      stored = await this.ctx.store.recordings.stop(id, end, stoppedAt);
    } catch (err) {
      log.error("recording metadata not stored", { id, err });
    }
    const record: RecordingRecord = stored ?? { ...running.record, ...end, state: "stopped", stoppedAt: new Date(stoppedAt).toISOString() };
    emitEvent("recording.stopped", { ...eventData(record), reason, durationMs: stats.durationMs, bytes: stats.bytes, droppedFrames: stats.droppedFrames });
    log.info("recording stopped", { id, reason, ...stats });
    return record;
  }

  private live(record: RecordingRecord, recorder: Recorder): RecordingRecord {
    return { ...record, ...recorder.stats() };
  }

  private writeFailed(id: string, err: unknown): void {
    log.error("recording write failed", { id, err });
    void this.stopRecording(id, "write_failed");
  }
}

function eventData(record: RecordingRecord): RecordingEventData {
  return { recordingId: record.id, applicationId: record.applicationId, channelId: record.channelId, format: record.format };
}

function notFound(what: string, id: string, field: string): RecordingFailure {
  return { ok: false, status: 404, code: "not_found", message: `${what} ${JSON.stringify(id)} not found`, field };
}

function channelEmpty(channelId: string): RecordingFailure {
  return { ok: false, status: 404, code: "not_found", message: `channel ${JSON.stringify(channelId)} has nobody in it: there is no mix to record`, field: "channelId" };
}
