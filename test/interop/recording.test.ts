// Recording a channel where a SIPp phone plays 440 Hz: the files, fetched through the API, decode
// with opusdec (Ogg Opus) and sox (WAV) to audio that carries 440 Hz for as long as the API says the
// recording ran; Range requests return the file's bytes; a channel that empties stops its
// recordings; recording.started/stopped reach the events webhook; bad requests name their field.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { goertzelPower, meanSquare } from "../../src/media/goertzel.ts";
import { sharedTicker } from "../../src/media/ticker.ts";
import { recordingsApi } from "../../src/api/routes/services.ts";
import { RecordingService } from "../../src/recordings/service.ts";
import { ADMIN_TOKEN } from "../api/harness.ts";
import { phoneCaller, startCallsApp, testApplicationYaml, type CallsApp } from "../helpers/callsApp.ts";
import { decodeRecording, toneBlocks } from "../helpers/recordedAudio.ts";
import { until } from "../helpers/until.ts";
import { startWebhookServer, type WebhookServer } from "../helpers/webhookServer.ts";

let app: CallsApp;
let hooks: WebhookServer;

beforeAll(async () => {
  hooks = startWebhookServer();
  app = await startCallsApp(
    `
rtp: { portMin: 45000, portMax: 45999, mediaTimeoutSec: 0 }
trunks:
  - { id: sipp, domain: 127.0.0.1, optionsIntervalSec: 0 }
${testApplicationYaml({ "1000": "lobby", "1001": "hall" })}
recordings: { dir: recordings-here }
`,
    { services: (ctx, registry) => { const recordings = new RecordingService(ctx, registry); return [recordings, recordingsApi(recordings)]; } },
  );
  const res = await app.harness.call("PUT", "/api/v1/settings/webhooks", { eventsUrl: hooks.url("/events") });
  expect(res.status, res.text).toBe(200);
});

afterAll(async () => {
  await app?.close();
  await hooks?.stop();
});

const channelPath = (channel: string) => `/api/v1/applications/app1/channels/${channel}/recordings`;

/** Waits until the channel's full mix carries `hz` (an in-process tap beside the recording's). */
async function mixCarries(channel: string, hz: number): Promise<void> {
  await until(() => app.registry.participants("app1", channel).length > 0, { what: () => `nobody in ${channel}` });
  let share = 0;
  const untap = app.registry.addMixTap("app1", channel, {
    onMix: (frame) => {
      const total = meanSquare(frame.pcm);
      share = total === 0 ? 0 : goertzelPower(frame.pcm, frame.sampleRate, hz) / total;
    },
  });
  try {
    await until(() => share > 0.8, { what: () => ({ share }) });
  } finally {
    untap?.();
  }
}

async function getAudio(id: string, range?: string): Promise<Response> {
  return fetch(`${app.harness.app.url}/api/v1/recordings/${id}/audio`, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(range ? { range } : {}) },
  });
}

/** The event of `type` for `recordingId` the events webhook received. */
async function webhookEvent(type: string, recordingId: string): Promise<any> {
  let found: any;
  await until(
    () => (found = hooks.received.map((r) => r.json as any).find((e) => e?.type === type && e.data?.recordingId === recordingId)) !== undefined,
    { what: () => hooks.received.map((r) => (r.json as any)?.type) },
  );
  return found;
}

/**
 * The decoded length must match the span between the API's startedAt and stoppedAt: the first frame
 * comes at the next tick (≤ 20 ms), and the shared ticker may run up to 5 ticks behind the wall clock
 * before catching up (either end); ticks it skipped outright are missing from the mix too.
 */
function expectDurationMatches(recording: any, decodedMs: number, skippedTicks: number): void {
  const spanMs = Date.parse(recording.stoppedAt) - Date.parse(recording.startedAt);
  const context = { spanMs, decodedMs, skippedTicks, recording };
  expect(decodedMs, JSON.stringify(context)).toBeGreaterThanOrEqual(spanMs - 20 - 100 - 20 * skippedTicks - 10);
  expect(decodedMs, JSON.stringify(context)).toBeLessThanOrEqual(spanMs + 100 + 10);
  // The metadata's duration is what the file holds.
  expect(Math.abs(decodedMs - recording.durationMs), JSON.stringify(context)).toBeLessThanOrEqual(1);
}

describe("recording a channel", () => {
  test("Ogg Opus: stopped through the API, decodes with opusdec to 440 Hz for the recorded span; Range requests return the file's bytes", async () => {
    const { peer, run } = await phoneCaller(app, { service: "1000", toneHz: 440, holdMs: 20_000 });
    try {
      await mixCarries("lobby", 440);
      const skippedBefore = sharedTicker().stats().skippedTicks;
      const started = await app.harness.call("POST", channelPath("lobby"), {});
      expect(started.status, started.text).toBe(201);
      const id = started.json.id as string;
      expect(started.json).toMatchObject({ applicationId: "app1", channelId: "lobby", format: "opus", sampleRate: 48000, state: "recording" });
      await until(async () => (await app.harness.call("GET", `/api/v1/recordings/${id}`)).json.durationMs >= 2000, { timeoutMs: 15_000 });
      const stopped = await app.harness.call("DELETE", `${channelPath("lobby")}/${id}`);
      expect(stopped.status, stopped.text).toBe(200);
      const skippedTicks = sharedTicker().stats().skippedTicks - skippedBefore;
      const recording = (await app.harness.call("GET", `/api/v1/recordings/${id}`)).json;
      expect(recording).toMatchObject({ state: "stopped", stopReason: "stopped", droppedFrames: 0 });
      expect(recording.file).toBeUndefined();

      const whole = await getAudio(id);
      expect(whole.status).toBe(200);
      expect(whole.headers.get("content-type")).toBe("audio/ogg; codecs=opus");
      expect(whole.headers.get("accept-ranges")).toBe("bytes");
      const bytes = new Uint8Array(await whole.arrayBuffer());
      expect(bytes.length).toBe(recording.bytes);
      const file = join(app.harness.dir, "recording.ogg");
      writeFileSync(file, bytes);
      const { pcm, sampleRate, tool } = decodeRecording(file);
      expect(sampleRate).toBe(48000);
      expectDurationMatches(recording, (pcm.length / sampleRate) * 1000, skippedTicks);
      expect(toneBlocks(pcm, sampleRate, 440), tool).toBeGreaterThanOrEqual(0.9);

      const middle = await getAudio(id, "bytes=100-1099");
      expect(middle.status).toBe(206);
      expect(middle.headers.get("content-range")).toBe(`bytes 100-1099/${bytes.length}`);
      expect(middle.headers.get("content-type")).toBe("audio/ogg; codecs=opus");
      expect(new Uint8Array(await middle.arrayBuffer())).toEqual(bytes.subarray(100, 1100));
      const tail = await getAudio(id, "bytes=-27");
      expect(tail.status).toBe(206);
      expect(new Uint8Array(await tail.arrayBuffer())).toEqual(bytes.subarray(bytes.length - 27));
      const open = await getAudio(id, `bytes=${bytes.length - 5}-`);
      expect(new Uint8Array(await open.arrayBuffer())).toEqual(bytes.subarray(bytes.length - 5));
      const beyond = await getAudio(id, `bytes=${bytes.length}-`);
      expect(beyond.status).toBe(416);
      expect(beyond.headers.get("content-range")).toBe(`bytes */${bytes.length}`);

      expect((await webhookEvent("recording.started", id)).data).toEqual({ recordingId: id, applicationId: "app1", channelId: "lobby", format: "opus" });
      expect((await webhookEvent("recording.stopped", id)).data).toMatchObject({ recordingId: id, reason: "stopped", durationMs: recording.durationMs, bytes: recording.bytes });
      const again = await app.harness.call("DELETE", `${channelPath("lobby")}/${id}`);
      expect(again.status).toBe(409);
    } finally {
      // The phone hangs up: its call ends with a BYE from our side.
      const calls = (await app.harness.call("GET", "/api/v1/calls?state=active")).json.calls as any[];
      for (const call of calls) await app.harness.call("DELETE", `/api/v1/calls/${call.id}`);
      await run;
      peer.close();
    }
  }, 60_000);

  test("WAV: a channel that empties stops its recording (recording.stopped, channel_empty); sox reads 440 Hz for the recorded span", async () => {
    const { peer, run } = await phoneCaller(app, { service: "1001", toneHz: 440, holdMs: 20_000 });
    try {
      await mixCarries("hall", 440);
      const skippedBefore = sharedTicker().stats().skippedTicks;
      const started = await app.harness.call("POST", channelPath("hall"), { format: "wav" });
      expect(started.status, started.text).toBe(201);
      const id = started.json.id as string;
      expect(started.json).toMatchObject({ format: "wav", sampleRate: 16000, state: "recording" });
      await until(async () => (await app.harness.call("GET", `/api/v1/recordings/${id}`)).json.durationMs >= 1500, { timeoutMs: 15_000 });
      // The phone leaves: we hang up its call, the channel empties.
      const calls = (await app.harness.call("GET", "/api/v1/calls?state=active")).json.calls as any[];
      const call = calls.find((c) => c.channelId === "hall");
      expect((await app.harness.call("DELETE", `/api/v1/calls/${call.id}`)).status).toBe(204);
      const stoppedEvent = await webhookEvent("recording.stopped", id);
      expect(stoppedEvent.data).toMatchObject({ recordingId: id, channelId: "hall", format: "wav", reason: "channel_empty", droppedFrames: 0 });
      const skippedTicks = sharedTicker().stats().skippedTicks - skippedBefore;
      const recording = (await app.harness.call("GET", `/api/v1/recordings/${id}`)).json;
      expect(recording).toMatchObject({ state: "stopped", stopReason: "channel_empty" });

      const res = await getAudio(id);
      expect(res.headers.get("content-type")).toBe("audio/wav");
      const file = join(app.harness.dir, "recording.wav");
      writeFileSync(file, new Uint8Array(await res.arrayBuffer()));
      expect(readFileSync(file).length).toBe(recording.bytes);
      const { pcm, sampleRate } = decodeRecording(file);
      expect(sampleRate).toBe(16000);
      expectDurationMatches(recording, (pcm.length / sampleRate) * 1000, skippedTicks);
      // The phone's audio ends as its leg leaves; the end of the file may hold that fade.
      expect(toneBlocks(pcm, sampleRate, 440)).toBeGreaterThanOrEqual(0.85);
    } finally {
      await run;
      peer.close();
    }
  }, 60_000);

  test("bad requests get 4xx JSON naming the field", async () => {
    const post = (channel: string, body: unknown, app_ = "app1") =>
      app.harness.call("POST", `/api/v1/applications/${app_}/channels/${channel}/recordings`, body);
    const cases: [Promise<{ status: number; json: any }>, number, string][] = [
      [post("lobby", {}, "nope"), 404, "appId"],
      [post("empty-room", {}), 404, "channelId"],
      [post("lobby", { format: "mp3" }), 400, "format"],
      [post("lobby", { format: "opus", sampleRate: 16000 }), 400, "sampleRate"],
      [post("lobby", { format: "wav", sampleRate: 44100 }), 400, "sampleRate"],
      [app.harness.call("GET", "/api/v1/recordings/not-an-id"), 400, "id"],
    ];
    for (const [pending, status, field] of cases) {
      const res = await pending;
      expect(res.status, JSON.stringify(res.json)).toBe(status);
      expect(res.json.error.field, JSON.stringify(res.json)).toBe(field);
    }
    const unknown = await app.harness.call("GET", `/api/v1/recordings/rec_${"0".repeat(32)}`);
    expect(unknown.status).toBe(404);
    expect(unknown.json.error.code).toBe("not_found");
  });
});
