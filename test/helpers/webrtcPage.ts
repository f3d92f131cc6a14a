// What the browser tests of /ui/ share, whichever browser drives the page: the app composed as in
// production with a WebRTC application whose channel "room1" a SIPp caller reaches by dialling
// "1000", client tokens for it, and the in-page measurement of what the page hears (the page's own
// WebAudio analyser on the channel's audio, `window.trunkline.levelAt`).
import type { ChannelRegistry } from "../../src/channels/registry.ts";
import { webrtcApi } from "../../src/api/routes/services.ts";
import { subscribeEvents } from "../../src/events.ts";
import { WebRtcService } from "../../src/webrtc/service.ts";
import { signClientToken } from "../../src/webrtc/tokens.ts";
import { startHarness, type Harness } from "../api/harness.ts";
import { composeCalls, findCall } from "./callsApp.ts";
import { until } from "./until.ts";
import { mixerTotals } from "../../src/media/mixer.ts";
import { workerTotal } from "../../src/media/worker-totals.ts";

/** The browsers' fake microphones play this tone (Chromium: a WAV file; Firefox: its fake device). */
export const BROWSER_HZ = 1000;
/** The SIPp caller's RTP peer plays this one. */
export const PHONE_HZ = 440;

export interface WebRtcTestApp {
  harness: Harness;
  registry: ChannelRegistry;
  sipPort: number;
  /** Mints a token for channel "room1" of application "app1", allowed to dial, valid 10 minutes. */
  token(claims: { clientId: string; userId: string; userAlias: string }): string;
}

/**
 * Application "app1" routes calls to "1000" into channel "room1"; trunk "phones" dials `phonePort`.
 * `host` (default 127.0.0.1) is the node's HTTP and SIP listen address, as scripts/cluster.sh gives each node its own.
 */
/** Frames the mixers (this thread's and the media workers') ranked by their sender's RFC 6464 level. */
export function levelFramesNow(): number {
  return mixerTotals.levelFrames + workerTotal("levelFrames");
}

export async function startWebRtcTestApp(o: { secret: string; phonePort: number; host?: string }): Promise<WebRtcTestApp> {
  const calls = composeCalls(o.host ? { sipHost: o.host } : {});
  const harness = await startHarness(
    `
rtp: { portMin: 45000, portMax: 45999, mediaTimeoutSec: 0 }
trunks:
  - { id: phones, domain: 127.0.0.1, port: ${o.phonePort}, username: trunk, optionsIntervalSec: 0 }
  - { id: sipp, domain: 127.0.0.1, canTerminate: false, optionsIntervalSec: 0 }
applications:
  - id: app1
    name: Browser test app
    sharedSecret: ${o.secret}
    inboundRoutes:
      - { sipUsername: "1000", channelId: room1 }
`,
    async (ctx) => {
      const webrtc = new WebRtcService(ctx, calls.registry);
      return [...(await calls.compose(ctx)), webrtc, webrtcApi(webrtc, ctx, () => calls.calls().manager.clientControl())];
    },
    "warn",
    o.host ? { host: o.host } : {},
  );
  return {
    harness,
    registry: calls.registry,
    sipPort: calls.sipPort(),
    token: (claims) =>
      signClientToken({ applicationId: "app1", channelId: "room1", roles: ["dial"], exp: Math.floor(Date.now() / 1000) + 600, ...claims }, o.secret),
  };
}

/** Hangs up the phone call in channel "room1" (the one answered call) through the admin API. */
export async function hangUpPhone(app: WebRtcTestApp): Promise<void> {
  const call = await findCall(app, (c) => c.state === "answered" && c.channelId === "room1");
  const res = await app.harness.call("DELETE", `/api/v1/calls/${call.id}`);
  if (res.status !== 204) throw new Error(`hanging up ${call.id}: ${res.status} ${res.text}`);
}

/** The reasons of participant.left events for `participantId` from now on, until `stop`. */
export function leaveReasons(participantId: string): { reasons: string[]; stop(): void } {
  const reasons: string[] = [];
  const stop = subscribeEvents((e) => {
    const data = e.data as { participantId?: string; reason?: string };
    if (e.type === "participant.left" && data.participantId === participantId) reasons.push(data.reason ?? "");
  });
  return { reasons, stop };
}

/** Runs in the page: the level (dB) of `hz` in what the page receives from the channel. */
export const pageLevelAt = (hz: number) => (globalThis as unknown as { trunkline: { levelAt(hz: number): number } }).trunkline.levelAt(hz);

/** Readings of both levels taken once `hz` is heard; their medians are the result. */
const HEARING_SAMPLES = 9;

/**
 * Waits until the page's level of `hz` (`levelAt` runs `pageLevelAt` in the page) is above −50 dB;
 * then reads both levels HEARING_SAMPLES times, 100 ms apart, and returns their medians in dB. One
 * reading at the tone's onset can catch the click of its start spread over every frequency, the
 * own tone's included; a stretch of readings says what the page goes on hearing. Fails with the
 * last level after `timeoutMs`.
 */
export async function pageHearing(levelAt: (hz: number) => Promise<number>, hz: number, ownHz: number, timeoutMs = 10_000): Promise<{ heard: number; own: number }> {
  let heard = -Infinity;
  await until(async () => (heard = await levelAt(hz)) > -50, { timeoutMs, pollMs: 100, what: () => `the page's level of ${hz} Hz stayed at ${heard} dB` });
  const heardLevels: number[] = [];
  const ownLevels: number[] = [];
  while (heardLevels.length < HEARING_SAMPLES) {
    heardLevels.push(await levelAt(hz));
    ownLevels.push(await levelAt(ownHz));
    await Bun.sleep(100);
  }
  return { heard: median(heardLevels), own: median(ownLevels) };
}

function median(values: number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
}
