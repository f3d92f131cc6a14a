// The whole media path for N G.711 legs in two-party channels, on loopback: a load generator in
// another process plays N phones (one 20 ms PCMU packet per leg every 20 ms); this process runs N
// PhoneLegs (RTP receive, jitter buffer, decode, mixer, encode, RTP send), mixed: the two-party relay
// (media.relayPairs) is off here, media-path and media-workers measure it. A channel of phones mixes
// at 8 kHz and resamples nothing; the "mixer at 16/48 kHz" runs add one silent listener that needs that
// rate to each channel (a muted G.722 phone / WebRTC client), which makes every leg resample both ways.
// Reported: this process's CPU per leg (share of one core) and the share of late frames —
// packets arriving at the phones more than 20 ms behind their schedule, and mixer ticks that ran
// late. Target (issue 5): ≥500 legs on one core with no late frames.
// Everything runs on one thread here (PhoneLegs in-process, sockets beside them): the cost of the
// media path itself. The connector runs the same path in media workers, one thread per worker:
// bench/media-workers.bench.ts measures that, with 1 worker against 2. CPU is the whole process's.
// Defaults: 100 and 500 legs, mixer at 48 and 8 kHz, both parties or one party talking, 10 s each;
// BENCH_RTP_LEGS="100,500", BENCH_RTP_MIXER_RATES="48000,8000",
// BENCH_RTP_TALKERS="all,half", BENCH_RTP_IO="thread" and BENCH_RTP_SECONDS=10 override them;
// BENCH_RTP_PIN="0:1" gives the media process one core and the load generator the other;
// BENCH_RTP_IO=bare measures the floor: the same sockets and packets without any media work.
import { loadavg } from "node:os";
import { join } from "node:path";
import { createPhoneLeg, type PhoneLeg } from "../src/media/leg.ts";
import { Mixer } from "../src/media/mixer.ts";
import { RtpPortAllocator } from "../src/media/ports.ts";
import { sharedTicker, type TickSource } from "../src/media/ticker.ts";
import { RTP_HEADER_SIZE, writeRtpHeader } from "../src/media/rtp-packet.ts";
import { inThreadUdpIo, type DatagramSocket, type UdpIo } from "../src/media/udp-io.ts";
import { threadDelta, threadTicks } from "./cpu-time.ts";
import { phoneOffer, readLine, type LoadResult } from "./loadgen-driver.ts";

const CLOCK_TICKS_PER_SECOND = 100;

/**
 * The media path on this thread — or "bare": the same sockets and packets with no media work at all
 * (each tick sends one fixed PCMU packet per socket, received packets are dropped), the floor this
 * machine and load generator set for CPU and late frames.
 */
type IoPlacement = "thread" | "bare";

/** What the measurement needs of a leg, or of a bare socket standing in for one. */
interface Endpoint {
  readonly localPort: number;
  packetsSent(): number;
  jitter(): { played: number; lost: number };
  close(): void;
}

function legEndpoint(leg: PhoneLeg): Endpoint {
  return {
    localPort: leg.localPort,
    packetsSent: () => leg.stats().rtp.packetsSent,
    jitter: () => leg.stats().jitter,
    close: () => leg.close(),
  };
}

/** Bare sockets: one fixed 20 ms PCMU packet per socket per tick, nothing decoded, mixed or encoded. */
async function bareEndpoints(count: number, phonePort: (i: number) => number, ticker: TickSource): Promise<{ endpoints: Endpoint[]; stop(): void }> {
  const packet = new Uint8Array(RTP_HEADER_SIZE + 160).fill(0xff);
  const sockets: DatagramSocket[] = [];
  for (let i = 0; i < count; i++) sockets.push(await inThreadUdpIo.bind("127.0.0.1", 0, { data: () => {}, error: () => {} }));
  let seq = 0;
  const stop = ticker.subscribe(() => {
    seq++;
    for (let i = 0; i < count; i++) {
      writeRtpHeader(packet, { payloadType: 0, sequenceNumber: seq & 0xffff, timestamp: seq * 160, ssrc: 0x2000 + i });
      sockets[i]!.send(packet, phonePort(i), "127.0.0.1");
    }
  });
  const endpoints = sockets.map((socket) => ({
    localPort: socket.port,
    packetsSent: () => seq,
    jitter: () => ({ played: 0, lost: 0 }),
    close: () => socket.close(),
  }));
  return { endpoints, stop };
}

/**
 * BENCH_RTP_PIN="0:1": this process (every thread) on core 0, the load generator
 * on core 1 (taskset), so the media path gets exactly one core and the generator never competes for it.
 */
const pinnedCores = (() => {
  const spec = process.env.BENCH_RTP_PIN;
  if (!spec) return undefined;
  const [media, loadgen] = spec.split(":");
  if (!media || !loadgen) throw new Error(`BENCH_RTP_PIN wants MEDIA_CORES:LOADGEN_CORES, got ${spec}`);
  return { media, loadgen };
})();

async function measure(legCount: number, seconds: number, mixerRate: number, talkers: "all" | "half", placement: IoPlacement): Promise<void> {
  const io: UdpIo = inThreadUdpIo;
  const bare = placement === "bare";
  const loadgen = [process.execPath, join(import.meta.dir, "rtp-loadgen.ts")];
  const generator = Bun.spawn(pinnedCores ? ["taskset", "-c", pinnedCores.loadgen, ...loadgen] : loadgen, { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  const reader = generator.stdout.getReader();
  const state = { buffered: "" };
  const { ports: phonePorts, phonesPerSocket } = JSON.parse(await readLine(reader, state)) as { ports: number[]; phonesPerSocket: number };

  const ticker = sharedTicker();
  // How long each tick's work takes (all mixers: pull, mix, encode, send): a probe that runs before
  // the mixers (subscribed first) and the gap probe below that runs after them.
  let tickStartedAt = 0;
  const unsubscribeStart = ticker.subscribe(() => (tickStartedAt = performance.now()));
  const allocator = new RtpPortAllocator({ min: 30000, max: 39999 });
  const mixers: Mixer[] = [];
  const phonePort = (i: number) => phonePorts[Math.floor(i / phonesPerSocket)]!;
  const bareSockets = bare ? await bareEndpoints(legCount, phonePort, ticker) : undefined;
  const legs: Endpoint[] = bareSockets?.endpoints ?? [];
  for (let i = 0; i < (bare ? 0 : legCount); i++) {
    if (i % 2 === 0) {
      const mixer = new Mixer({ relayPairs: false });
      if (mixerRate > 8000) mixer.join(`wideband${i}`, () => {}, { sampleRate: mixerRate });
      mixers.push(mixer);
    }
    const leg = await createPhoneLeg({ allocator, bindAddress: "127.0.0.1", advertisedAddress: "127.0.0.1", mixer: mixers.at(-1)!, participantId: `leg${i}`, codecPreferences: ["PCMU"], mediaTimeoutSec: 0, io });
    if ("error" in leg) throw new Error(leg.error);
    const r = leg.answer(phoneOffer(phonePort(i)));
    if (!r.ok) throw new Error(r.reason);
    legs.push(legEndpoint(leg));
  }

  const warmupMs = 2000;
  const measureMs = seconds * 1000;
  generator.stdin.write(JSON.stringify({ targets: legs.map((l) => l.localPort), warmupMs, measureMs, talkers }) + "\n");
  generator.stdin.flush();
  await Bun.sleep(warmupMs);
  const sentFrames = () => legs.reduce((n, l) => n + l.packetsSent(), 0);
  // Tick-to-tick gaps as this process saw them (a probe subscribed after the mixers: it runs last).
  const gaps: number[] = [];
  const work: number[] = [];
  let lastTick = performance.now();
  const unsubscribeProbe = ticker.subscribe(() => {
    const now = performance.now();
    work.push(now - tickStartedAt);
    gaps.push(now - lastTick);
    lastTick = now;
  });
  const tick0 = ticker.stats();
  const sent0 = sentFrames();
  const cpu0 = process.cpuUsage();
  const threads0 = threadTicks();
  const wall0 = performance.now();
  await Bun.sleep(measureMs);
  const cpu = process.cpuUsage(cpu0);
  const threads1 = threadTicks();
  const wallMs = performance.now() - wall0;
  const frames = sentFrames() - sent0;
  const tick1 = ticker.stats();
  unsubscribeProbe();
  unsubscribeStart();
  const quantile = (xs: number[]) => {
    const sorted = [...xs].sort((x, y) => x - y);
    return (q: number) => (sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] ?? 0).toFixed(1);
  };
  const gapAt = quantile(gaps);
  const workAt = quantile(work);
  const load = JSON.parse(await readLine(reader, state)) as LoadResult;
  await generator.exited;

  let played = 0;
  let concealed = 0;
  for (const leg of legs) {
    const s = leg.jitter();
    played += s.played;
    concealed += s.lost;
  }
  bareSockets?.stop();
  for (const leg of legs) leg.close();
  for (const m of mixers) m.close();

  const coreShare = (cpu.user + cpu.system) / 1000 / wallMs;
  const skipped = tick1.skippedTicks - tick0.skippedTicks;
  const ticks = tick1.ticks - tick0.ticks + skipped;
  const lateTicks = tick1.lateTicks - tick0.lateTicks + skipped;
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  const mixing = mixerRate > 8000 ? `mixer at ${mixerRate / 1000} kHz: a silent wideband listener in each channel` : "mixer at 8 kHz: no resampling";
  const where = { thread: "media path and sockets on one thread", bare: "BARE SOCKETS, no media work: the machine's floor" }[placement];
  console.log(`${legCount} legs (${legCount / 2} two-party channels, PCMU 20 ms, ${mixing}, ${talkers === "all" ? "both parties talking" : "one party talking"}, ${where}, ${seconds} s):`);
  console.log(`  CPU: ${pct(coreShare)} of one core (kernel ${pct(cpu.system / 1000 / wallMs)}) → ${((coreShare * 1e6) / legCount).toFixed(0)} µs CPU per leg per second (${pct(coreShare / legCount)} of a core per leg)`);
  const threadShare = (ticks: number) => pct(ticks / CLOCK_TICKS_PER_SECOND / (wallMs / 1000));
  const byThread = threadDelta(threads0, threads1);
  console.log(`  by thread: main ${threadShare(byThread.main)}, others ${threadShare(byThread.others)} (garbage collector, JIT)`);
  // Per frame actually sent (each also means one received, decoded and mixed): robust when the
  // machine is shared and this process gets less than a core.
  const perFrameUs = (cpu.user + cpu.system) / Math.max(1, frames);
  console.log(`  CPU per leg-frame (20 ms each way): ${perFrameUs.toFixed(1)} µs → one core carries ≈ ${Math.floor(20_000 / perFrameUs)} legs`);
  console.log(`  frames to phones: ${load.received}/${load.expected} received, late (>20 ms behind schedule) ${load.late} = ${pct(load.late / Math.max(1, load.received))} in ${load.lateStretches} of ${measureMs / 20} 20 ms stretches, worst ${load.maxLatenessMs.toFixed(1)} ms, lost on the way (timestamp gaps: UDP drops) ${load.missing}`);
  console.log(`  mixer ticks due: ${ticks}, late or skipped ${lateTicks} = ${pct(lateTicks / Math.max(1, ticks))} (tick-to-tick p50 ${gapAt(0.5)} ms, p99 ${gapAt(0.99)} ms, max ${gapAt(1)} ms; work per tick p50 ${workAt(0.5)} ms, p99 ${workAt(0.99)} ms, max ${workAt(1)} ms); frames from phones played ${played}, concealed ${concealed}`);
  console.log(`  load generator: ${pct(load.cpuShare)} of a core${load.senderLateTicks > 0 ? `, ran ${load.senderLateTicks} of its own ticks late` : ""}`);
  // Late frames only mean something on an otherwise idle machine: say how busy it was.
  console.log(`  machine load average (1 min): ${loadavg()[0]!.toFixed(2)} on ${navigator.hardwareConcurrency} cores`);
}

export async function run(): Promise<void> {
  if (pinnedCores) {
    // -a: every thread now; threads started later inherit the main thread's cores.
    const pinned = Bun.spawnSync(["taskset", "-a", "-p", "-c", pinnedCores.media, String(process.pid)]);
    if (pinned.exitCode !== 0) throw new Error(`taskset failed: ${pinned.stderr.toString()}`);
    console.log(`media process on core(s) ${pinnedCores.media}, load generator on core(s) ${pinnedCores.loadgen}`);
  }
  const legCounts = (process.env.BENCH_RTP_LEGS ?? "100,500").split(",").map(Number).filter((n) => n > 0);
  const seconds = Number(process.env.BENCH_RTP_SECONDS ?? 10);
  const rates = (process.env.BENCH_RTP_MIXER_RATES ?? "48000,8000").split(",").map(Number).filter((r) => r > 0);
  const talkers = (process.env.BENCH_RTP_TALKERS ?? "all,half").split(",").filter((t): t is "all" | "half" => t === "all" || t === "half");
  const placements = (process.env.BENCH_RTP_IO ?? "thread").split(",").filter((p): p is IoPlacement => p === "thread" || p === "bare");
  for (const rate of rates) for (const t of talkers) for (const n of legCounts) for (const p of placements) await measure(n + (n % 2), seconds, rate, t, p);
}

if (import.meta.main) await run();
