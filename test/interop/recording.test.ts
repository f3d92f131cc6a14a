// Recording a channel where SIPp plays 440 Hz (its rtp_stream of a µ-law WAV that sox made): the
// files, fetched through the API, decode with opusdec (Ogg Opus) and sox (WAV) to audio that carries
// 440 Hz for as long as the API says the recording ran; Range requests return the file's bytes; a
// channel that empties stops its recordings; recording.started/stopped reach the events webhook;
// bad requests name their field. The audio path is third-party at both ends.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { goertzelPower, meanSquare } from "../../src/media/goertzel.ts";
import { sharedTicker } from "../../src/media/ticker.ts";
import { workerTotal } from "../../src/media/worker-totals.ts";
import { recordingsApi } from "../../src/api/routes/services.ts";
import { RecordingService } from "../../src/recordings/service.ts";
import { ADMIN_TOKEN } from "../api/harness.ts";
import { startCallsApp, testApplicationYaml, type CallsApp } from "../helpers/callsApp.ts";
import { decodeRecording, toneBlocks } from "../helpers/recordedAudio.ts";
import { CALLER_UNTIL_BYE, freeMediaPort, runSipp, type SippResult } from "../helpers/sipp.ts";
import { until } from "../helpers/until.ts";
import { startWebhookServer, type WebhookServer } from "../helpers/webhookServer.ts";

let app: CallsApp;
let hooks: WebhookServer;
let toneWav: string;
const recordingsDir = mkdtempSync(join(tmpdir(), "trunkline-recordings-"));

/** The caller of CALLER_UNTIL_BYE, its media on SIPp's own socket, playing `wav` (PCMU) in a loop from the ACK on. */
function callerPlaying(wav: string): string {
  return CALLER_UNTIL_BYE.replace("m=audio [rtpport]", "m=audio [media_port]").replace(
    '<recv request="BYE"/>',
    `<nop><action><exec rtp_stream="${wav},-1,0"/></action></nop>\n  <recv request="BYE"/>`,
  );
}

/** SIPp calls `service` and plays 440 Hz until Trunkline hangs up. */
async function sippPlaying(service: string): Promise<{ run: Promise<SippResult> }> {
  const mediaPort = await freeMediaPort();
  const run = runSipp({
    scenario: callerPlaying(toneWav),
    remote: `127.0.0.1:${app.sipPort}`,
    service,
    keys: { testcase: "recording" },
    extraArgs: ["-mp", String(mediaPort), "-mi", "127.0.0.1"],
    timeoutSec: 40,
  });
  return { run };
}

/** Hangs up the channel's phone call (BYE from Trunkline). */
async function hangUp(channel: string): Promise<void> {
  const calls = (await app.harness.call("GET", "/api/v1/calls?state=active")).json.calls as any[];
  const call = calls.find((c) => c.channelId === channel);
  expect(call, JSON.stringify(calls)).toBeDefined();
  expect((await app.harness.call("DELETE", `/api/v1/calls/${call.id}`)).status).toBe(204);
}

beforeAll(async () => {
  hooks = startWebhookServer();
  app = await startCallsApp(
    `
rtp: { portMin: 45000, portMax: 45999, mediaTimeoutSec: 0 }
trunks:
  - { id: sipp, domain: 127.0.0.1, optionsIntervalSec: 0 }
${testApplicationYaml({ "1000": "lobby", "1001": "hall" })}
recordings: { dir: ${recordingsDir} }
`,
    { services: (ctx, registry) => { const recordings = new RecordingService(ctx, registry); return [recordings, recordingsApi(recordings)]; } },
  );
  const res = await app.harness.call("PUT", "/api/v1/settings/webhooks", { eventsUrl: hooks.url("/events") });
  expect(res.status, res.text).toBe(200);
  // 30 s of 440 Hz at −12 dBFS, µ-law, made by sox: what SIPp's rtp_stream plays.
  toneWav = join(app.harness.dir, "tone-440.wav");
  const sox = Bun.spawnSync(["sox", "-n", "-r", "8000", "-c", "1", "-e", "u-law", toneWav, "synth", "30", "sine", "440", "vol", "0.25"], { stderr: "pipe" });
  expect(sox.exitCode, sox.stderr.toString()).toBe(0);
});

afterAll(async () => {
  await app?.close();
  await hooks?.stop();
  rmSync(recordingsDir, { recursive: true, force: true });
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

/** Ticks skipped so far by the mixers of this thread and of the media workers (where channels run). */
const skippedTicksNow = () => sharedTicker().stats().skippedTicks + workerTotal("skippedTicks");

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
    const { run } = await sippPlaying("1000");
    try {
      await mixCarries("lobby", 440);
      const skippedBefore = skippedTicksNow();
      const started = await app.harness.call("POST", channelPath("lobby"), {});
      expect(started.status, started.text).toBe(201);
      const id = started.json.id as string;
      expect(started.json).toMatchObject({ applicationId: "app1", channelId: "lobby", format: "opus", sampleRate: 48000, state: "recording" });
      await until(async () => (await app.harness.call("GET", `/api/v1/recordings/${id}`)).json.durationMs >= 2000, { timeoutMs: 15_000 });
      const stopped = await app.harness.call("DELETE", `${channelPath("lobby")}/${id}`);
      expect(stopped.status, stopped.text).toBe(200);
      const skippedTicks = skippedTicksNow() - skippedBefore;
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
      await hangUp("lobby");
      const sipp = await run;
      expect(sipp.exitCode, sipp.summary).toBe(0);
    }
  }, 60_000);

  test("WAV: a channel that empties stops its recording (recording.stopped, channel_empty); sox reads 440 Hz for the recorded span", async () => {
    const { run } = await sippPlaying("1001");
    try {
      await mixCarries("hall", 440);
      const skippedBefore = skippedTicksNow();
      const started = await app.harness.call("POST", channelPath("hall"), { format: "wav" });
      expect(started.status, started.text).toBe(201);
      const id = started.json.id as string;
      expect(started.json).toMatchObject({ format: "wav", sampleRate: 16000, state: "recording" });
      await until(async () => (await app.harness.call("GET", `/api/v1/recordings/${id}`)).json.durationMs >= 1500, { timeoutMs: 15_000 });
      // The phone leaves (we hang up its call): the channel empties.
      await hangUp("hall");
      const stoppedEvent = await webhookEvent("recording.stopped", id);
      expect(stoppedEvent.data).toMatchObject({ recordingId: id, channelId: "hall", format: "wav", reason: "channel_empty", droppedFrames: 0 });
      const skippedTicks = skippedTicksNow() - skippedBefore;
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
      const sipp = await run;
      expect(sipp.exitCode, sipp.summary).toBe(0);
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
