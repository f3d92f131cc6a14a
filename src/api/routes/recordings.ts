// Recordings of a channel's mix.
//   POST   /applications/:appId/channels/:channelId/recordings  { format?, sampleRate? }  → 201 recording
//   DELETE /applications/:appId/channels/:channelId/recordings/:id                     → 200 recording (stopped)
//   GET    /recordings/:id                                                              → recording
//   GET    /recordings/:id/audio                                                        → the file (Range: bytes=…)
import { stat } from "node:fs/promises";
import { channelIdSchema, idSchema } from "../../config/entities.ts";
import { s } from "../../config/schema.ts";
import { contentTypes, type RecordingFailure, type RecordingService, type WavSampleRate } from "../../recordings/service.ts";
import type { RecordingRecord } from "../../store/index.ts";
import { ApiError, notFound } from "../errors.ts";
import type { ApiRouter } from "../router.ts";

export const startRecordingBody = s
  .object({
    format: s.enum(["opus", "wav"]).default("opus").describe("opus: Ogg Opus (RFC 7845), 48 kHz mono, 32 kbit/s; wav: 16-bit mono PCM."),
    sampleRate: s
      .integer()
      .refine((rate) => ([8000, 16000, 48000].includes(rate) ? undefined : "must be 8000, 16000 or 48000"))
      .optional()
      .describe("WAV only: the file's rate (default 16000); the mix is resampled to it."),
  })
  .refine((body) => (body.format === "opus" && body.sampleRate !== undefined ? { at: ["sampleRate"], message: "only for format \"wav\" (Ogg Opus is 48 kHz)" } : undefined));

const recordingIdSchema = s.string({ minLength: 1, maxLength: 64, pattern: /^rec_[0-9a-f]{32}$/, patternHint: "a recording id (rec_…)" });

export const recordingView = s
  .object({
    id: s.string(),
    applicationId: s.string(),
    channelId: s.string(),
    format: s.enum(["opus", "wav"]),
    sampleRate: s.integer(),
    state: s.enum(["recording", "stopped"]),
    startedAt: s.string(),
    stoppedAt: s.string().optional(),
    durationMs: s.integer().describe("Audio written so far (frames dropped by a slow disk count, as silence)."),
    bytes: s.integer(),
    droppedFrames: s.integer().describe("20 ms frames dropped because writing fell behind."),
    stopReason: s.string().optional().describe("stopped, channel_empty, write_failed, shutdown, interrupted"),
  })
  .describe("Recording");

function view(record: RecordingRecord) {
  const { file: _file, ...rest } = record;
  return rest;
}

function fail(failure: RecordingFailure): never {
  throw new ApiError(failure.status, failure.code, failure.message, failure.field);
}

export function recordingRoutes(api: ApiRouter, recordings: RecordingService): void {
  const tag = "recordings";
  const channelParams = { appId: idSchema, channelId: channelIdSchema };

  api.route(
    {
      method: "post",
      path: "/applications/:appId/channels/:channelId/recordings",
      summary: "Start recording the channel's full mix",
      tag,
      params: channelParams,
      body: startRecordingBody,
      response: { status: 201, description: "Recording", schema: recordingView },
      errors: [404, 500],
    },
    async (c, body, { appId, channelId }) => {
      const result = await recordings.startRecording({
        applicationId: appId, channelId, format: body.format,
        ...(body.sampleRate !== undefined ? { sampleRate: body.sampleRate as WavSampleRate } : {}),
      });
      if (!result.ok) fail(result);
      return c.json(view(result.recording), 201);
    },
  );

  api.route(
    {
      method: "delete",
      path: "/applications/:appId/channels/:channelId/recordings/:id",
      summary: "Stop a recording",
      tag,
      params: { ...channelParams, id: recordingIdSchema },
      response: { status: 200, description: "The stopped recording", schema: recordingView },
      errors: [404, 409],
    },
    async (c, _body, { appId, channelId, id }) => {
      const existing = await recordings.get(id);
      if (!existing || existing.applicationId !== appId || existing.channelId !== channelId) throw notFound("recording", id);
      if (existing.state === "stopped") throw new ApiError(409, "already_stopped", `recording ${JSON.stringify(id)} has stopped already`);
      const stopped = await recordings.stopRecording(id, "stopped");
      if (!stopped) throw new ApiError(409, "recording_elsewhere", `recording ${JSON.stringify(id)} runs on another node; stop it there`);
      return c.json(view(stopped));
    },
  );

  api.route(
    {
      method: "get",
      path: "/recordings/:id",
      summary: "Get a recording's metadata",
      tag,
      params: { id: recordingIdSchema },
      response: { status: 200, description: "Recording", schema: recordingView },
      errors: [404],
    },
    async (c, _body, { id }) => c.json(view((await recordings.get(id)) ?? notFoundRecording(id))),
  );

  api.route(
    {
      method: "get",
      path: "/recordings/:id/audio",
      summary: "Download a recording's file (Range requests supported; a running recording's file grows)",
      tag,
      params: { id: recordingIdSchema },
      response: { status: 200, description: "audio/ogg (Opus) or audio/wav; 206 for a Range" },
      errors: [404, 416],
    },
    async (c, _body, { id }) => {
      const record = (await recordings.get(id)) ?? notFoundRecording(id);
      let size: number;
      try {
        size = (await stat(record.file)).size;
      } catch {
        throw new ApiError(404, "file_not_found", `the audio of recording ${JSON.stringify(id)} is not on this node's disk`);
      }
      return audioResponse(record.file, size, contentTypes[record.format], c.req.header("range"));
    },
  );
}

function notFoundRecording(id: string): never {
  throw notFound("recording", id);
}

/** The file, or one range of it (RFC 9110 §14); several ranges or an unreadable Range get the whole file. */
function audioResponse(path: string, size: number, contentType: string, rangeHeader: string | undefined): Response {
  const headers = { "Content-Type": contentType, "Accept-Ranges": "bytes" };
  const range = rangeHeader === undefined ? undefined : parseRange(rangeHeader, size);
  if (range === "unsatisfiable") {
    return new Response(null, { status: 416, headers: { ...headers, "Content-Range": `bytes */${size}` } });
  }
  if (!range) return new Response(Bun.file(path).slice(0, size), { status: 200, headers: { ...headers, "Content-Length": String(size) } });
  const { start, end } = range;
  return new Response(Bun.file(path).slice(start, end + 1), {
    status: 206,
    headers: { ...headers, "Content-Range": `bytes ${start}-${end}/${size}`, "Content-Length": String(end - start + 1) },
  });
}

/** One `bytes=` range (RFC 9110 §14.1.2) within `size`, inclusive; undefined to ignore the header. */
export function parseRange(header: string, size: number): { start: number; end: number } | "unsatisfiable" | undefined {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match) return undefined;
  const [, first = "", last = ""] = match;
  if (first === "" && last === "") return undefined;
  if (first === "") {
    // A suffix: the last N bytes.
    const length = Number(last);
    if (length === 0 || size === 0) return "unsatisfiable";
    return { start: Math.max(0, size - length), end: size - 1 };
  }
  const start = Number(first);
  const end = last === "" ? size - 1 : Math.min(Number(last), size - 1);
  if (last !== "" && Number(last) < start) return undefined;
  if (start >= size) return "unsatisfiable";
  return { start, end };
}
