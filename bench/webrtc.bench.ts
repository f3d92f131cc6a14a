// WebRTC participants per core: N werift Opus clients (a separate process) in 10-party channels,
// each hearing its N−1 mix encoded for it. Measures the server process's CPU (every thread) while
// they talk. The clients' peers run in the media workers, as in production (media.workers default).
// The everyone-talking case runs four times, side by side: as the mixer used to work (every talker
// mixed, so ten N−1 mixes and ten encodes per channel and tick, at Opus complexity 10, voip), with
// the defaults (the 3 loudest mixed, complexity 5, lowdelay) and clients sending no audio levels
// (all ten decoded to find the loudest), with clients sending RFC 6464 levels as browsers do (only
// the mixed talkers decoded) and the encoders in voip (SILK/hybrid with FEC), and with those levels
// and the defaults. The goal is read from the last.
import { loadavg } from "node:os";
import { setLogLevel } from "../src/log.ts";
import { defaultMediaWorkers } from "../src/media/media-plane.ts";
import { applyMediaSettings, type MediaSettings } from "../src/media/media-settings.ts";
import { sharedTicker } from "../src/media/ticker.ts";
import { workerTotal } from "../src/media/worker-totals.ts";
import { APP, startHarness } from "../test/webrtc/harness.ts";
import { reportGoal } from "./goals.ts";

const PER_CHANNEL = 10;
const SECONDS = 10;

type Silence = "dtx" | "continuous";

/** Mixer and encoder settings of a run; the defaults are config's (media.maxSpeakers, media.opusComplexity, media.opusApplication). */
interface Settings extends Omit<MediaSettings, "relayPairs"> {
  label: string;
  /** The clients send RFC 6464 audio levels. */
  audioLevels: boolean;
}
const defaults: Settings = { label: "3 loudest mixed, complexity 5, lowdelay, clients send levels", maxSpeakers: 3, opusComplexity: 5, opusApplication: "lowdelay", audioLevels: true };
const voip: Settings = { ...defaults, label: "3 loudest mixed, complexity 5, voip, clients send levels", opusApplication: "voip" };
const withoutLevels: Settings = { ...defaults, label: "3 loudest mixed, complexity 5, lowdelay, no levels (all decoded)", audioLevels: false };
const before: Settings = { label: "every talker mixed, complexity 10, voip, no levels (before)", maxSpeakers: 0, opusComplexity: 10, opusApplication: "voip", audioLevels: false };

interface Outcome {
  participants: number;
  speakersPerChannel: number;
  silence: Silence;
  cpuCores: number;
  /** this thread's share: SIP, HTTP, the join's signalling; the peers and their codecs run in the workers */
  mainThreadCores: number;
  lateTicks: number;
  skippedTicks: number;
  /** Share of the 50 ticks a second that the workers' mixer clocks actually ran (below 1 when the server was starved of CPU). */
  ticksRun: number;
  minPacketsPerSecond: number;
  medianPacketsPerSecond: number;
}

async function measure(participants: number, speakersPerChannel: number, silence: Silence, settings: Settings): Promise<Outcome> {
  // Sent to the media workers as they start, as the app does with the config's.
  applyMediaSettings({ ...settings, relayPairs: true });
  // The clients send only once all have joined, which on a busy machine takes longer than a
  // production media timeout: the first channels' peers would be closed as silent before it.
  const h = startHarness({ timeouts: { connectMs: 60_000, mediaMs: 120_000 }, mediaWorkers: defaultMediaWorkers() });
  const plan = {
    url: h.url,
    applicationId: APP.id,
    secret: APP.secret,
    channels: participants / PER_CHANNEL,
    perChannel: PER_CHANNEL,
    speakersPerChannel,
    silence,
    seconds: SECONDS,
    audioLevels: settings.audioLevels,
  };
  const child = Bun.spawn([process.execPath, `${import.meta.dir}/webrtc-clients.ts`, JSON.stringify(plan)], {
    stdout: "pipe",
    stderr: "inherit",
  });
  const lines = readLines(child.stdout);
  try {
    if ((await lines.next()).value !== "ready") throw new Error("the load generator could not connect every client");
    const cpuBefore = process.cpuUsage();
    const threadBefore = process.threadCpuUsage();
    const wallBefore = performance.now();
    const ticksBefore = mixerTicks();
    const line = (await lines.next()).value;
    if (line === undefined) throw new Error("the load generator ended without its statistics");
    const result = JSON.parse(line) as { minPacketsPerSecond: number; medianPacketsPerSecond: number };
    const cpu = process.cpuUsage(cpuBefore);
    const thread = process.threadCpuUsage(threadBefore);
    const wallMs = performance.now() - wallBefore;
    const ticks = mixerTicks();
    return {
      participants,
      speakersPerChannel,
      silence,
      cpuCores: (cpu.user + cpu.system) / 1000 / wallMs,
      mainThreadCores: (thread.user + thread.system) / 1000 / wallMs,
      lateTicks: ticks.lateTicks - ticksBefore.lateTicks,
      skippedTicks: ticks.skippedTicks - ticksBefore.skippedTicks,
      ticksRun: (ticks.ticks - ticksBefore.ticks) / defaultMediaWorkers() / (wallMs / 20),
      ...result,
    };
  } finally {
    child.kill();
    await child.exited;
    await h.stop();
  }
}

/** Late and skipped mixer ticks of this thread and the media workers together. */
function mixerTicks(): { ticks: number; lateTicks: number; skippedTicks: number } {
  const here = sharedTicker().stats();
  return { ticks: workerTotal("ticks"), lateTicks: here.lateTicks + workerTotal("lateTicks"), skippedTicks: here.skippedTicks + workerTotal("skippedTicks") };
}

async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffer = "";
  const decoder = new TextDecoder();
  for await (const chunk of stream) {
    buffer += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline).trim();
      buffer = buffer.slice(newline + 1);
      if (line.startsWith("{") || line === "ready") yield line;
    }
  }
}

export async function run(): Promise<void> {
  setLogLevel("warn");
  console.log(`WebRTC Opus participants in ${PER_CHANNEL}-party channels, ${SECONDS} s each (werift clients in a separate process; peers in ${defaultMediaWorkers()} media worker(s))`);
  // Another busy process on the machine starves the mixer clock (skipped ticks): read numbers with the load in mind.
  console.log(`load average before: ${loadavg().map((l) => l.toFixed(1)).join(" ")}`);
  // When the machine is oversubscribed the server gets too little CPU and skips mixer ticks; the
  // "per core, at full delivery" column scales its CPU up to what 50 packets/s to everyone would take,
  // judged by what the clients heard (a starved load generator hears less than was sent), and "per
  // core, per tick run" by the mixer ticks the server ran. The goal is read from the latter.
  console.log(
    "participants | speakers/channel | silent clients send | mixing | server CPU (cores) | main thread's share | participants per core | late/skipped mixer ticks | packets/s heard (min/median) | per core, at full delivery | mixer ticks run | per core, per tick run",
  );
  // WEBRTC_BENCH=100x2xdtx runs one configuration (with the defaults; WEBRTC_LEVELS=0: clients send
  // no levels; WEBRTC_OPUS=voip: the encoders in voip).
  const only = process.env.WEBRTC_BENCH?.split("x");
  const single = process.env.WEBRTC_LEVELS === "0" ? withoutLevels : process.env.WEBRTC_OPUS === "voip" ? voip : defaults;
  const plans: [number, number, Silence, Settings][] = only
    ? [[Number(only[0]), Number(only[1]), only[2] === "continuous" ? "continuous" : "dtx", single]]
    : [
        [100, 1, "dtx", defaults],
        [100, 10, "dtx", before],
        [100, 10, "dtx", withoutLevels],
        [100, 10, "dtx", voip],
        [100, 10, "dtx", defaults],
      ];
  const everyoneTalking = new Map<Settings, number>();
  for (const [participants, speakers, silence, settings] of plans) {
    const o = await measure(participants, speakers, silence, settings).catch((error: Error) => error);
    if (o instanceof Error) {
      console.log(`${participants} | ${speakers} | ${silence} | ${settings.label} | failed: ${o.message}`);
      continue;
    }
    const atFullDelivery = Math.round((o.participants * Math.min(1, o.medianPacketsPerSecond / 50)) / o.cpuCores);
    const perTickRun = Math.round((o.participants * Math.min(1, o.ticksRun)) / o.cpuCores);
    if (speakers === PER_CHANNEL) everyoneTalking.set(settings, perTickRun);
    console.log(
      `${o.participants} | ${o.speakersPerChannel} | ${o.silence === "dtx" ? "DTX" : "50 pkt/s"} | ${settings.label} | ${o.cpuCores.toFixed(2)} | ${o.mainThreadCores.toFixed(3)} | ${Math.round(o.participants / o.cpuCores)} | ${o.lateTicks}/${o.skippedTicks} | ${o.minPacketsPerSecond}/${o.medianPacketsPerSecond} | ${atFullDelivery} | ${(100 * o.ticksRun).toFixed(0)} % | ${perTickRun}`,
    );
  }
  applyMediaSettings({ ...defaults, relayPairs: true });
  const after = everyoneTalking.get(defaults);
  if (after !== undefined) {
    const old = everyoneTalking.get(before);
    const noLevels = everyoneTalking.get(withoutLevels);
    const inVoip = everyoneTalking.get(voip);
    const sameRun = [
      ...(inVoip === undefined ? [] : [`encoders in voip: ${inVoip}`]),
      ...(noLevels === undefined ? [] : [`clients without levels: ${noLevels}`]),
      ...(old === undefined ? [] : [`every talker mixed at complexity 10: ${old}`]),
    ];
    reportGoal({
      goal: "WebRTC Opus participants per core, 10-party channels, everyone talking",
      figure: `${after}${sameRun.length === 0 ? "" : ` (same run, ${sameRun.join("; ")})`}`,
      anchor: "≈ 52 before; target ≥ 150",
      met: after >= 150,
    });
  }
}

if (import.meta.main) await run();
