// The connector's media path as it runs in production: phone legs in media workers (MediaPlane,
// HostedLeg: negotiation on this thread, sockets, jitter buffers, codecs and mixers in the workers),
// the same load measured with 1 media worker and with 2, side by side in one run. A load generator
// in its own process (rtp-loadgen.ts) plays the phones: one 20 ms PCMU packet per leg every 20 ms,
// every phone talking (a 400 Hz tone), two legs per channel.
// Reported per worker count: CPU of this process (every thread) per leg-frame, where it went (main
// thread vs the others: workers, GC, JIT), late frames at the phones (more than 20 ms behind their
// schedule) and late or skipped mixer ticks in the workers. Goals (issue 16): < 0.1 % late frames
// at 1,000 legs, and the ratio 1 worker : 2 workers.
// Each worker count runs twice: relayed (the default for a two-party channel of alike phones: each
// leg's packets go straight to the other, relay.ts) and mixed (media.relayPairs off).
// Defaults: 1,000 legs, workers "1,2", modes "relayed,mixed", 10 s each (≈ 80 s in all);
// BENCH_MW_LEGS, BENCH_MW_WORKERS, BENCH_MW_MODES and BENCH_MW_SECONDS override them.
import { loadavg } from "node:os";
import { join } from "node:path";
import { createLogger, setLogLevel } from "../src/log.ts";
import { HostedLeg } from "../src/media/hosted-leg.ts";
import { MediaPlane, defaultMediaWorkers, type ChannelMedia } from "../src/media/media-plane.ts";
import { applyMediaSettings, mediaSettings } from "../src/media/media-settings.ts";
import { RtpPortAllocator } from "../src/media/ports.ts";
import { threadDelta, threadTicks } from "./cpu-time.ts";
import { reportGoal } from "./goals.ts";
import { phoneOffer, readLine, type LoadResult } from "./loadgen-driver.ts";

type Mode = "relayed" | "mixed";

interface Measured { mode: Mode; workers: number; perFrameUs: number; coreShare: number; mainShare: number; otherShare: number; lateShare: number; load: LoadResult; tickLateShare: number }

async function measure(legCount: number, workers: number, mode: Mode, seconds: number): Promise<Measured> {
  // The plane hands the settings to its workers when they start.
  applyMediaSettings({ ...mediaSettings(), relayPairs: mode === "relayed" });
  const generator = Bun.spawn([process.execPath, join(import.meta.dir, "rtp-loadgen.ts")], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  const reader = generator.stdout.getReader();
  const state = { buffered: "" };
  const { ports: phonePorts, phonesPerSocket } = JSON.parse(await readLine(reader, state)) as { ports: number[]; phonesPerSocket: number };
  const phonePort = (i: number) => phonePorts[Math.floor(i / phonesPerSocket)]!;

  const plane = new MediaPlane({ workers, maxLegs: legCount });
  const allocator = new RtpPortAllocator({ min: 30000, max: 39999 });
  const log = createLogger("bench");
  const channels: ChannelMedia[] = Array.from({ length: legCount / 2 }, (_, i) => plane.open(`channel-${i}`));
  const legs: HostedLeg[] = new Array(legCount);
  // Bound a batch at a time: each bind is a round trip to a worker.
  for (let from = 0; from < legCount; from += 100) {
    await Promise.all(Array.from({ length: Math.min(100, legCount - from) }, async (_, k) => {
      const i = from + k;
      const leg = await HostedLeg.create({
        channel: channels[Math.floor(i / 2)]!, allocator, bindAddress: "127.0.0.1", advertisedAddress: "127.0.0.1",
        participantId: `leg${i}`, codecPreferences: ["PCMU"], mediaTimeoutSec: 0, log,
      });
      if ("error" in leg) throw new Error(leg.error);
      const r = leg.answer(phoneOffer(phonePort(i)));
      if (!r.ok) throw new Error(r.reason);
      legs[i] = leg;
    }));
  }

  const warmupMs = 2000;
  const measureMs = seconds * 1000;
  generator.stdin.write(JSON.stringify({ targets: legs.map((l) => l.localPort), warmupMs, measureMs, talkers: "all" }) + "\n");
  generator.stdin.flush();
  await Bun.sleep(warmupMs);
  const sentFrames = () => legs.reduce((n, l) => n + l.stats().packetsSent, 0);
  const tickTotals = () => plane.workerTotals().reduce((t, w) => ({ ticks: t.ticks + w.ticks + w.skippedTicks, late: t.late + w.lateTicks + w.skippedTicks }), { ticks: 0, late: 0 });
  const ticks0 = tickTotals();
  const sent0 = sentFrames();
  const cpu0 = process.cpuUsage();
  const threads0 = threadTicks();
  const wall0 = performance.now();
  await Bun.sleep(measureMs);
  const cpu = process.cpuUsage(cpu0);
  const threads1 = threadTicks();
  const wallMs = performance.now() - wall0;
  const frames = sentFrames() - sent0;
  const ticks1 = tickTotals();
  const load = JSON.parse(await readLine(reader, state)) as LoadResult;
  await generator.exited;
  for (const leg of legs) leg.close();
  for (const channel of channels) channel.close();
  // The workers close their sockets before they exit.
  await Bun.sleep(200);
  plane.close();

  const coreShare = (cpu.user + cpu.system) / 1000 / wallMs;
  const perFrameUs = (cpu.user + cpu.system) / Math.max(1, frames);
  const share = (ticks: number) => ticks / 100 / (wallMs / 1000);
  const lateShare = load.late / Math.max(1, load.received);
  const tickLateShare = (ticks1.late - ticks0.late) / Math.max(1, ticks1.ticks - ticks0.ticks);
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  console.log(`${legCount} legs (${legCount / 2} two-party channels, PCMU 20 ms, both parties talking), ${mode}, ${workers} media worker${workers > 1 ? "s" : ""}, ${seconds} s:`);
  const byThread = threadDelta(threads0, threads1);
  console.log(`  CPU: ${pct(coreShare)} of one core (main thread ${pct(share(byThread.main))}, other threads ${pct(share(byThread.others))}: workers, GC, JIT)`);
  console.log(`  CPU per leg-frame (20 ms each way): ${perFrameUs.toFixed(1)} µs → one core carries ≈ ${Math.floor(20_000 / perFrameUs)} legs`);
  console.log(`  frames to phones: ${load.received}/${load.expected} received, late (>20 ms behind schedule) ${load.late} = ${pct(lateShare)} in ${load.lateStretches} of ${measureMs / 20} 20 ms stretches, worst ${load.maxLatenessMs.toFixed(1)} ms, lost on the way ${load.missing}`);
  console.log(`  mixer ticks due in the workers: ${ticks1.ticks - ticks0.ticks}, late or skipped ${pct(tickLateShare)}; load generator ${pct(load.cpuShare)} of a core; load average ${loadavg()[0]!.toFixed(2)} on ${navigator.hardwareConcurrency} cores`);
  return { mode, workers, perFrameUs, coreShare, mainShare: share(byThread.main), otherShare: share(byThread.others), lateShare, load, tickLateShare };
}

export async function run(): Promise<void> {
  setLogLevel("warn");
  const legCount = Number(process.env.BENCH_MW_LEGS ?? 1000);
  const counts = (process.env.BENCH_MW_WORKERS ?? "1,2").split(",").map(Number).filter((n) => n > 0);
  const modes = (process.env.BENCH_MW_MODES ?? "relayed,mixed").split(",").filter((m): m is Mode => m === "relayed" || m === "mixed");
  const seconds = Number(process.env.BENCH_MW_SECONDS ?? 10);
  const settings = mediaSettings();
  const results: Measured[] = [];
  for (const mode of modes) for (const workers of counts) results.push(await measure(legCount + (legCount % 2), workers, mode, seconds));
  applyMediaSettings(settings);
  const pct = (x: number) => `${(100 * x).toFixed(2)} %`;
  const label = (r: Measured) => `${r.mode}, ${r.workers} worker${r.workers > 1 ? "s" : ""}`;
  // Judged on what an operator runs without configuring anything: relayed pairs, the default worker count.
  const asShipped = results.find((r) => r.mode === "relayed" && r.workers === defaultMediaWorkers());
  reportGoal({
    goal: `${legCount} G.711 legs (${legCount / 2} two-party channels, both talking), late frames`,
    figure: results.map((r) => `${label(r)}${r === asShipped ? " (the defaults)" : ""}: ${pct(r.lateShare)}`).join("; "),
    anchor: "< 0.1 % with the defaults",
    met: asShipped ? asShipped.lateShare < 0.001 : undefined,
  });
  for (const mode of modes) {
    const one = results.find((r) => r.mode === mode && r.workers === 1);
    const two = results.find((r) => r.mode === mode && r.workers === 2);
    if (!one || !two) continue;
    reportGoal({
      goal: `media workers 1 vs 2 (${mode}): CPU per leg-frame, late frames`,
      figure: `${one.perFrameUs.toFixed(1)} vs ${two.perFrameUs.toFixed(1)} µs (ratio ${(two.perFrameUs / one.perFrameUs).toFixed(2)}), late ${pct(one.lateShare)} vs ${pct(two.lateShare)}, mixer ticks late ${pct(one.tickLateShare)} vs ${pct(two.tickLateShare)}`,
      anchor: "per-leg CPU ratio ≈ 1 (the work splits, not grows), late frames no worse with 2",
    });
  }
}

if (import.meta.main) await run();
