// Memory per call leg at 1,000 legs (issue 16, goal 4: under 100 KiB), each part in a process of its
// own so nothing else this run has allocated is counted:
//   media   1,000 PhoneLegs (RTP session, jitter buffer, codec, mixer participant) in 500 two-party
//           channels, their sockets on the same thread (as in a media worker), a load generator
//           (rtp-loadgen.ts) playing the 1,000 phones so every jitter buffer holds packets. Measured
//           after a forced full GC (Bun.gc(true)) before the legs are made (after a warm-up set of
//           legs was made and closed, so code and module state are not counted) and with RTP flowing:
//           RSS, and the JS heap (cells plus the typed arrays' memory), each divided by the legs.
//           What the heap gained is listed by type (JSC's object counts, and the heap snapshot's
//           bytes per type).
//   calls   The connector as an operator runs it (`bun main.ts serve`), SIPp placing 1,000 inbound
//           calls (two per channel) held open by a pause, RTP echoed back to it (SIPp -rtp_echo), so
//           each call is a whole one: SIP dialog and transactions, call record, events, trace, its
//           leg. A probe preloaded into the connector (memory-probe.ts) forces a full GC and reads
//           RSS and the main thread's JS heap: once after 100 warm-up calls came and went, once with
//           the 1,000 calls up, and once they have ended (what an ended call still holds while its
//           transactions linger). Per call: the difference divided by the calls.
// BENCH_MEMORY_LEGS=1000, BENCH_MEMORY_PARTS="media,calls" and BENCH_MEMORY_TYPES=14 (types listed) override.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { classGrowth, rssOf, sampleMemory, type MemorySample } from "./memory-probe.ts";
import { startTrunkline, type TrunklineProcess } from "../test/helpers/trunklineProcess.ts";
import { freePort } from "../test/helpers/sipp.ts";
import { sippCall } from "../test/helpers/sippCall.ts";
import { until } from "../test/helpers/until.ts";
import { reportGoal } from "./goals.ts";
import { phoneOffer, readLine } from "./loadgen-driver.ts";

const LEGS = Number(process.env.BENCH_MEMORY_LEGS ?? 1000);
const KIB = 1024;
const TARGET_KIB = 100;
/** With RTP flowing this long, every jitter buffer has reached its working depth. */
const FLOWING_MS = 4000;

export interface MediaResult {
  legs: number;
  before: MemorySample;
  after: MemorySample;
  framesPlayed: number;
  packetsReceived: number;
}

/** The media part, in the child process. */
async function measureMediaLegs(legCount: number): Promise<MediaResult> {
  const { createPhoneLeg } = await import("../src/media/leg.ts");
  const { Mixer } = await import("../src/media/mixer.ts");
  const { RtpPortAllocator } = await import("../src/media/ports.ts");
  const { inThreadUdpIo: io } = await import("../src/media/udp-io.ts");
  const allocator = new RtpPortAllocator({ min: 30000, max: 39999 });
  const loadgen = Bun.spawn([process.execPath, join(import.meta.dir, "rtp-loadgen.ts")], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  const reader = loadgen.stdout.getReader();
  const lines = { buffered: "" };
  const { ports, phonesPerSocket } = JSON.parse(await readLine(reader, lines)) as { ports: number[]; phonesPerSocket: number };
  type Leg = Exclude<Awaited<ReturnType<typeof createPhoneLeg>>, { error: string }>;
  const makeLegs = async (count: number, mixers: InstanceType<typeof Mixer>[], legs: Leg[]) => {
    for (let i = 0; i < count; i++) {
      if (i % 2 === 0) mixers.push(new Mixer());
      const leg = await createPhoneLeg({ allocator, bindAddress: "127.0.0.1", advertisedAddress: "127.0.0.1", mixer: mixers.at(-1)!, participantId: `leg${i}`, codecPreferences: ["PCMU"], mediaTimeoutSec: 0, io });
      if ("error" in leg) throw new Error(leg.error);
      const answered = leg.answer(phoneOffer(ports[Math.floor(i / phonesPerSocket)]!));
      if (!answered.ok) throw new Error(answered.reason);
      legs.push(leg);
    }
  };

  // Warm-up: code compiled, module state made, then closed again.
  {
    const mixers: InstanceType<typeof Mixer>[] = [];
    const legs: Leg[] = [];
    await makeLegs(20, mixers, legs);
    await Bun.sleep(200);
    for (const leg of legs) leg.close();
    for (const m of mixers) m.close();
  }
  await Bun.sleep(100);
  const before = sampleMemory({ classes: false });

  const mixers: InstanceType<typeof Mixer>[] = [];
  const legs: Leg[] = [];
  await makeLegs(legCount, mixers, legs);
  loadgen.stdin.write(JSON.stringify({ targets: legs.map((l) => l.localPort), warmupMs: 0, measureMs: FLOWING_MS + 2000, talkers: "all" }) + "\n");
  loadgen.stdin.flush();
  await Bun.sleep(FLOWING_MS);
  const framesPlayed = legs.reduce((n, l) => n + l.stats().jitter.played, 0);
  const packetsReceived = legs.reduce((n, l) => n + l.stats().rtp.packetsReceived, 0);
  const after = sampleMemory({ classes: true });

  await readLine(reader, lines); // the load generator's result: it has stopped sending
  await loadgen.exited;
  for (const leg of legs) leg.close();
  for (const m of mixers) m.close();
  return { legs: legCount, before, after, framesPlayed, packetsReceived };
}

const kib = (bytes: number) => `${(bytes / KIB).toFixed(1)} KiB`;

function printMemory(before: MemorySample, after: MemorySample, count: number, what: string): void {
  const heap = (m: MemorySample) => m.heapSize + m.extraMemorySize;
  console.log(`  RSS ${(before.rss / KIB / KIB).toFixed(1)} → ${(after.rss / KIB / KIB).toFixed(1)} MiB: ${kib((after.rss - before.rss) / count)} per ${what}`);
  console.log(`  JS heap ${(heap(before) / KIB / KIB).toFixed(1)} → ${(heap(after) / KIB / KIB).toFixed(1)} MiB: ${kib((heap(after) - heap(before)) / count)} per ${what} (of which outside cells: ${kib((after.extraMemorySize - before.extraMemorySize) / count)}); GC heap capacity ${kib((after.heapCapacity - before.heapCapacity) / count)} per ${what}`);
  const growth = classGrowth(before, after);
  console.log(`  largest by type, bytes (cells) per ${what}: ${growth.slice(0, Number(process.env.BENCH_MEMORY_TYPES ?? 14)).map(([name, bytes, cells]) => `${name} ${(bytes / count).toFixed(0)} (${(cells / count).toFixed(1)})`).join(", ")}`);
}

async function mediaPart(): Promise<void> {
  const child = Bun.spawn([process.execPath, import.meta.path, "media", String(LEGS)], { stdout: "pipe", stderr: "inherit" });
  const output = await new Response(child.stdout).text();
  if ((await child.exited) !== 0) throw new Error(`media child failed: ${output}`);
  const r = JSON.parse(output.trim().split("\n").at(-1)!) as MediaResult;
  const rssPerLeg = (r.after.rss - r.before.rss) / r.legs;
  const heapPerLeg = (r.after.heapSize + r.after.extraMemorySize - r.before.heapSize - r.before.extraMemorySize) / r.legs;
  console.log(`media plane: ${r.legs} PCMU legs in ${r.legs / 2} two-party channels, RTP flowing (${(r.packetsReceived / r.legs).toFixed(0)} packets received and ${(r.framesPlayed / r.legs).toFixed(0)} frames played per leg in ${FLOWING_MS / 1000} s), after a forced GC:`);
  printMemory(r.before, r.after, r.legs, "leg");
  reportGoal({
    goal: `memory per leg, media plane, ${r.legs} legs (RSS; JS heap)`,
    figure: `${kib(rssPerLeg)}; ${kib(heapPerLeg)}`,
    anchor: `< ${TARGET_KIB} KiB per leg at 1,000 legs`,
    met: rssPerLeg < TARGET_KIB * KIB,
  });
}

const CALLER_IP = "127.0.0.9";
const FIRST_USER = 4000;
/** Calls per second while the 1,000 are placed (well under what the connector takes). */
const CALL_RATE = 200;
/** Warm-up calls before the baseline: code compiled, first-use structures made. */
const WARMUP_CALLS = 100;

/** The metric's value from a Prometheus text page (unlabelled series). */
function metricValue(page: string, name: string): number {
  const line = page.split("\n").find((l) => l.startsWith(`${name} `));
  return line ? Number(line.slice(name.length + 1)) : NaN;
}

/**
 * SIPp placing `calls` calls (two per channel), each held `holdMs` after its ACK, RTP echoed back to
 * the connector from SIPp's media port; resolves when SIPp exits.
 */
async function placeCalls(tl: TrunklineProcess, sipPort: number, calls: number, holdMs: number): Promise<{ exitCode: number; stderr: string; successful: number; failed: number }> {
  const dir = mkdtempSync(join(tl.dir, "sipp-"));
  writeFileSync(join(dir, "scenario.xml"), sippCall({ name: "memory-call", requestUri: "sip:[field0]@[remote_ip]:[remote_port]", user: "+15550001111", contactUser: "caller", tag: "m", offerPort: "[media_port]", ending: "hang-up", holdMs }));
  const users = Array.from({ length: calls }, (_, i) => String(FIRST_USER + Math.floor(i / 2)));
  writeFileSync(join(dir, "users.csv"), `SEQUENTIAL\n${users.join("\n")}\n`);
  const proc = Bun.spawn(
    [
      "sipp", `127.0.0.1:${sipPort}`, "-sf", "scenario.xml", "-inf", "users.csv", "-i", CALLER_IP, "-p", String(await freePort()),
      "-mp", String(await freePort()), "-rtp_echo", "-t", "u1", "-m", String(calls), "-l", String(calls), "-r", String(CALL_RATE),
      "-timeout", `${Math.ceil(holdMs / 1000) + 60}s`, "-timeout_error", "-nostdin", "-nd", "-trace_stat", "-stf", "stat.csv",
    ],
    { cwd: dir, stdout: "ignore", stderr: "pipe", stdin: "ignore" },
  );
  const [stderr, exitCode] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  const stat = readFileSync(join(dir, "stat.csv"), "utf8").trim().split("\n");
  const header = stat[0]!.split(";");
  const last = stat.at(-1)!.split(";");
  const column = (name: string) => Number(last[header.indexOf(name)]);
  return { exitCode, stderr, successful: column("SuccessfulCall(C)"), failed: column("FailedCall(C)") };
}

async function callsPart(): Promise<void> {
  const sipPort = await freePort();
  const routes = Array.from({ length: Math.ceil(LEGS / 2) }, (_, i) => `      - { sipUsername: "${FIRST_USER + i}", channelId: ch${i} }`);
  const probeDir = mkdtempSync(join(tmpdir(), "bench-memory-"));
  const probeOut = join(probeDir, "sample.json");
  const rtpMin = 20000 + 2 * Math.floor(Math.random() * 5000);
  const tl = await startTrunkline(`sip:
  listen: [{ transport: udp, host: 127.0.0.1, port: ${sipPort} }]
http: { host: 127.0.0.1, port: 0 }
rtp: { portMin: ${rtpMin}, portMax: ${rtpMin + 4 * LEGS + 999}, codecs: [PCMU] }
adminToken: bench-memory-token-0123456789
database: { path: \${DIR}/trunkline.db }
logLevel: info
calls: { maxConcurrentCalls: ${2 * LEGS} }
trunks: [{ id: bench, domain: ${CALLER_IP}, optionsIntervalSec: 0 }]
applications:
  - id: bench
    name: Bench
    sharedSecret: bench-secret-0123456789
    inboundRoutes:
${routes.join("\n")}
`, { bunArgs: ["--preload", join(import.meta.dir, "memory-probe.ts")], env: { MEMORY_PROBE_OUT: probeOut } });
  /** The connector's memory after a forced GC, by the probe preloaded into it. */
  const sample = async (classes: boolean): Promise<MemorySample> => {
    if (classes) writeFileSync(`${probeOut}.classes`, "");
    tl.proc.kill("SIGUSR2");
    await until(() => existsSync(probeOut), { timeoutMs: 30_000, pollMs: 50, what: () => "no memory sample from the connector" });
    const text = readFileSync(probeOut, "utf8");
    rmSync(probeOut);
    return JSON.parse(text) as MemorySample;
  };
  try {
    const pid = tl.proc.pid;
    const legsUp = async () => metricValue(await (await fetch(`${tl.url}/metrics`)).text(), "trunkline_phone_legs");
    const warmup = await placeCalls(tl, sipPort, WARMUP_CALLS, 500);
    if (warmup.successful !== WARMUP_CALLS) throw new Error(`warm-up: ${warmup.successful} of ${WARMUP_CALLS} calls succeeded: ${warmup.stderr.slice(0, 1000)}`);
    await until(async () => (await legsUp()) === 0, { timeoutMs: 10_000, what: () => "the warm-up calls never ended" });
    const rssBefore = rssOf(pid);
    const before = await sample(false);
    // Held long enough to place them all at CALL_RATE, then a few seconds with every call up.
    const placingMs = (LEGS / CALL_RATE) * 1000;
    const held = placeCalls(tl, sipPort, LEGS, placingMs + 15_000);
    await until(async () => (await legsUp()) >= LEGS, { timeoutMs: placingMs + 30_000, pollMs: 200, what: () => `not all ${LEGS} calls came up` });
    // With every call up and its RTP echoed for a few seconds: jitter buffers at their working depth.
    await Bun.sleep(4000);
    const up = await legsUp();
    const rssAfter = rssOf(pid);
    const after = await sample(true);
    const stillUp = await legsUp();
    const result = await held;
    await until(async () => (await legsUp()) === 0, { timeoutMs: 10_000, what: () => "the calls never ended" });
    const ended = await sample(true);
    if (result.successful !== LEGS) throw new Error(`${result.successful} of ${LEGS} calls succeeded (${result.failed} failed): ${result.stderr.slice(0, 1000)}`);
    if (up !== LEGS || stillUp !== LEGS) throw new Error(`calls ended while measured: ${up}, then ${stillUp} of ${LEGS} up`);
    const perCall = (after.rss - before.rss) / LEGS;
    console.log(`whole calls: ${LEGS} SIPp calls held up at once (two per channel, RTP echoed), \`bun main.ts serve\`, after ${WARMUP_CALLS} warm-up calls, forced GC:`);
    console.log(`  RSS without the forced GC: ${(rssBefore / KIB / KIB).toFixed(1)} → ${(rssAfter / KIB / KIB).toFixed(1)} MiB: ${kib((rssAfter - rssBefore) / LEGS)} per call`);
    // The JS heap is the main thread's (SIP, calls, and the media while it runs there); RSS is everything.
    printMemory(before, after, LEGS, "call");
    const lingering = classGrowth(before, ended);
    console.log(
      `  once the calls have ended: JS heap ${kib((ended.heapSize + ended.extraMemorySize - before.heapSize - before.extraMemorySize) / LEGS)} per call still held (what lingers after a call: ` +
        `${lingering.slice(0, 8).map(([name, bytes, cells]) => `${name} ${(bytes / LEGS).toFixed(0)} (${(cells / LEGS).toFixed(1)})`).join(", ")})`,
    );
    const heldAfterEnd = (ended.heapSize + ended.extraMemorySize - before.heapSize - before.extraMemorySize) / LEGS;
    reportGoal({ goal: "JS heap an ended call still holds (transactions linger 64*T1, traces 5 s)", figure: kib(Math.max(0, heldAfterEnd)), anchor: "48–64 KiB before the SIP layer let go of the call's listeners" });
    reportGoal({
      goal: `memory per call, whole SIPp calls, ${LEGS} up (RSS; main thread's JS heap)`,
      figure: `${kib(perCall)}; ${kib((after.heapSize + after.extraMemorySize - before.heapSize - before.extraMemorySize) / LEGS)}`,
      anchor: `< ${TARGET_KIB} KiB per leg at 1,000 legs`,
      met: perCall < TARGET_KIB * KIB,
    });
  } finally {
    await tl.stop();
    rmSync(probeDir, { recursive: true, force: true });
  }
}

export async function run(): Promise<void> {
  const parts = (process.env.BENCH_MEMORY_PARTS ?? "media,calls").split(",");
  if (parts.includes("media")) await mediaPart();
  if (parts.includes("calls")) await callsPart();
}

if (import.meta.main) {
  if (process.argv[2] === "media") {
    const result = await measureMediaLegs(Number(process.argv[3] ?? LEGS));
    console.log(JSON.stringify(result));
    process.exit(0);
  }
  await run();
}
