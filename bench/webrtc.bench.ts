// WebRTC participants per core: N werift Opus clients (a separate process) in 10-party channels,
// each hearing its N−1 mix encoded for it. Measures the server process's CPU (every thread) while
// they talk. The clients' peers run in the media workers, as in production (media.workers default).
import { loadavg } from "node:os";
import { setLogLevel } from "../src/log.ts";
import { defaultMediaWorkers } from "../src/media/media-plane.ts";
import { sharedTicker } from "../src/media/ticker.ts";
import { workerTotal } from "../src/media/worker-totals.ts";
import { APP, startHarness } from "../test/webrtc/harness.ts";

const PER_CHANNEL = 10;
const SECONDS = 10;

type Silence = "dtx" | "continuous";

interface Outcome {
  participants: number;
  speakersPerChannel: number;
  silence: Silence;
  cpuCores: number;
  /** this thread's share: SIP, HTTP, the join's signalling; the peers and their codecs run in the workers */
  mainThreadCores: number;
  lateTicks: number;
  skippedTicks: number;
  minPacketsPerSecond: number;
  medianPacketsPerSecond: number;
}

async function measure(participants: number, speakersPerChannel: number, silence: Silence): Promise<Outcome> {
  const h = startHarness({ timeouts: { connectMs: 60_000, mediaMs: 10_000 }, mediaWorkers: defaultMediaWorkers() });
  const plan = {
    url: h.url,
    applicationId: APP.id,
    secret: APP.secret,
    channels: participants / PER_CHANNEL,
    perChannel: PER_CHANNEL,
    speakersPerChannel,
    silence,
    seconds: SECONDS,
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
      ...result,
    };
  } finally {
    child.kill();
    await child.exited;
    await h.stop();
  }
}

/** Late and skipped mixer ticks of this thread and the media workers together. */
function mixerTicks(): { lateTicks: number; skippedTicks: number } {
  const here = sharedTicker().stats();
  return { lateTicks: here.lateTicks + workerTotal("lateTicks"), skippedTicks: here.skippedTicks + workerTotal("skippedTicks") };
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
  // "per core, at full delivery" column scales its CPU up to what 50 packets/s to everyone would take.
  console.log(
    "participants | speakers/channel | silent clients send | server CPU (cores) | main thread's share | participants per core | late/skipped mixer ticks | packets/s heard (min/median) | per core, at full delivery",
  );
  // WEBRTC_BENCH=100x2xdtx runs one configuration.
  const only = process.env.WEBRTC_BENCH?.split("x");
  const plans: [number, number, Silence][] = only
    ? [[Number(only[0]), Number(only[1]), only[2] === "continuous" ? "continuous" : "dtx"]]
    : [
        [100, 1, "dtx"],
        [100, 1, "continuous"],
        [100, 10, "dtx"],
      ];
  for (const [participants, speakers, silence] of plans) {
    const o = await measure(participants, speakers, silence).catch((error: Error) => error);
    if (o instanceof Error) {
      console.log(`${participants} | ${speakers} | ${silence} | failed: ${o.message}`);
      continue;
    }
    console.log(
      `${o.participants} | ${o.speakersPerChannel} | ${o.silence === "dtx" ? "DTX" : "50 pkt/s"} | ${o.cpuCores.toFixed(2)} | ${o.mainThreadCores.toFixed(3)} | ${Math.round(o.participants / o.cpuCores)} | ${o.lateTicks}/${o.skippedTicks} | ${o.minPacketsPerSecond}/${o.medianPacketsPerSecond} | ${Math.round((o.participants * Math.min(1, o.medianPacketsPerSecond / 50)) / o.cpuCores)}`,
    );
  }
}

if (import.meta.main) await run();
