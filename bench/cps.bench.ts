// Calls per second (issue 16, goal 1). The executable `make build` makes (built here into a temp
// directory) with its limits raised; SIPp on the same box places inbound early-offer calls (INVITE
// with a PCMU offer naming SIPp's own media port, which takes our RTP unread as a real phone's socket
// would → 180/200 → ACK, held 1 s, then BYE → 200), dialling 100 numbers in turn,
// each routed statically to a channel of its own (number 7000+N → channel ch-N, N = 0…99), as a
// ladder of offered rates. Per step: achieved calls/s (successful calls over the time they took to
// place and finish, less the hold), failed and unfinished calls (SIPp's time, the step plus 60 s, ran
// out), p99 INVITE→200 (SIPp's response-time trace), and the Trunkline process's CPU per completed
// call from /proc — its main thread (SIP, calls, records) and all of its threads, by kind (the media
// workers, JSC's JIT and GC threads), less what it burns idle.
//
// BENCH_CPS_STEP_SEC=5 (each step below the top), BENCH_CPS_TOP_SEC=30 (the top step),
// BENCH_CPS_LADDER=200,400,600,800,1000 override the ladder.
// BENCH_CPS_COMPARE=<git ref>: instead of the ladder, the executable of that commit and this tree's,
// alternating over BENCH_CPS_ROUNDS=3 rounds, each taking BENCH_CPS_COMPARE_RATE=300 calls/s for
// BENCH_CPS_STEP_SEC (default 10 here): CPU per call side by side (the before/after of a change).
// BENCH_CPS_COMPARE_ENV="NAME=value …": environment for that commit's node alone; with
// BENCH_CPS_COMPARE=HEAD it weighs a runtime setting on the same code.
// BENCH_CPS_PROFILE=<dir>: runs this tree from source under `bun --cpu-prof` instead of the
// executable and leaves the profile (.cpuprofile and .md) in <dir> (the README's "Calls per second").
// BENCH_CPS_OVERLOAD=off: the node without overload control (limits.maxUnansweredInvites and
// maxEventLoopLagMs 0), to see what the 503s buy past capacity.
// BENCH_CPS_SOURCE=1: the ladder from source (`bun main.ts`, names unminified) for an outside profiler
// such as perf with BUN_JSC_useJITDump=1 (README "Calls per second" says how).
// BENCH_CPS_SIPP_SCHED=other: SIPp under the default scheduling policy instead of SCHED_BATCH (below).
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setLogLevel } from "../src/log.ts";
import { openStore } from "../src/store/index.ts";
import { reportGoal } from "./goals.ts";
import { mediaSocketSendUs } from "./udp-send.bench.ts";
import { freePort } from "../test/helpers/sipp.ts";
import { sippCall } from "../test/helpers/sippCall.ts";
import { until } from "../test/helpers/until.ts";

const LADDER = (process.env.BENCH_CPS_LADDER ?? "200,400,600,800,1000").split(",").map(Number);
const COMPARE = process.env.BENCH_CPS_COMPARE;
const STEP_SEC = Number(process.env.BENCH_CPS_STEP_SEC ?? (COMPARE ? 10 : 5));
const TOP_SEC = Number(process.env.BENCH_CPS_TOP_SEC ?? 30);
const ROUNDS = Number(process.env.BENCH_CPS_ROUNDS ?? 3);
const COMPARE_RATE = Number(process.env.BENCH_CPS_COMPARE_RATE ?? 300);
const COMPARE_ENV = Object.fromEntries(
  (process.env.BENCH_CPS_COMPARE_ENV ?? "").split(/\s+/).filter(Boolean).map((item) => {
    const eq = item.indexOf("=");
    if (eq <= 0) throw new Error(`BENCH_CPS_COMPARE_ENV: ${JSON.stringify(item)} is not NAME=value`);
    return [item.slice(0, eq), item.slice(eq + 1)];
  }),
);
const PROFILE_DIR = process.env.BENCH_CPS_PROFILE;
const HOLD_MS = 1000;
const CHANNELS = 100;
const FIRST_NUMBER = 7000;
const CALLER_IP = "127.0.0.11";
const NODE_IP = "127.0.0.12";
const TOKEN = "bench-cps-token-0123456789";
const repo = resolve(import.meta.dir, "..");
const TICK_MS = 1000 / 100; // /proc times are in clock ticks (USER_HZ, 100 on Linux)
/** CPU with no calls is measured this long before the first step (a measurement window, not a wait for a condition). */
const IDLE_WINDOW_MS = 2000;

const CALL = {
  name: "bench-cps",
  requestUri: "sip:[field0]@[remote_ip]:[remote_port]",
  user: "+15550001111",
  contactUser: "caller",
  tag: "cps",
  offerPort: "[media_port]",
  ending: "hang-up",
  holdMs: HOLD_MS,
  measureAnswer: true,
} as const;
const SCENARIO = sippCall(CALL);
/**
 * The same calls offering sendonly: the node answers recvonly and its legs send no RTP, everything
 * else alike (ports, sockets, the mixer, records). The top rate's CPU per call without the datagrams.
 */
const SCENARIO_NO_RTP = sippCall({ ...CALL, direction: "sendonly" });

interface Node {
  proc: Bun.Subprocess;
  pid: number;
  remote: string;
  dir: string;
  metricsUrl: string;
  /** CPU ms per wall ms with no calls: [main thread, whole process]. */
  idle: [number, number];
}

interface StepResult {
  offered: number;
  calls: number;
  failed: number;
  /** Of the failed: INVITEs the node refused with 503 because it was overloaded (its metrics). */
  refused: number;
  /** Calls of the step neither ok nor failed when SIPp's time ran out (still up, or never placed: the node fell behind). */
  unfinished: number;
  achieved: number;
  p50Ms: number;
  p99Ms: number;
  mainUs: number;
  allUs: number;
  /** Of mainUs and allUs, the part spent in the kernel (system time): sends, receives, sockets. */
  mainKernelUs: number;
  allKernelUs: number;
  /** RTP datagrams the node sent per call (trunkline_rtp_packets_total{direction="sent"}). */
  rtpSentPerCall: number;
  /** Share of the machine's CPU time the hypervisor gave to others during the step (/proc/stat steal). */
  stealShare: number;
  /** CPU µs per call by kind of thread (media workers, JIT compiler, garbage collector, other). */
  byThread: Record<ThreadKind, number>;
  /** SIPp's own CPU µs per call: what the load generator takes of the same two vCPUs. */
  sippUs: number;
}

type ThreadKind = "media workers" | "JIT" | "GC" | "other";

/** JSC and Bun name their threads (/proc/<pid>/task/<tid>/comm): Bun Workers "Worker", JIT "JITWorker"/"JSCWarmUp", GC "HeapHelper"/"mi-scavenger". */
function threadKind(comm: string): ThreadKind {
  if (comm === "Worker") return "media workers";
  if (comm.startsWith("JIT") || comm === "JSCWarmUp") return "JIT";
  if (comm.startsWith("Heap") || comm.includes("scavenger")) return "GC";
  return "other";
}

/** CPU ms of each thread other than the main one, by kind (threads that ended meanwhile are not counted). */
function cpuMsByKind(pid: number): Map<number, { kind: ThreadKind; ms: number }> {
  const threads = new Map<number, { kind: ThreadKind; ms: number }>();
  for (const tid of readdirSync(`/proc/${pid}/task`).map(Number)) {
    if (tid === pid) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      threads.set(tid, { kind: threadKind(readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim()), ms: (Number(fields[11]) + Number(fields[12])) * TICK_MS });
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return threads;
}

interface CpuMs { main: number; all: number; mainKernel: number; allKernel: number }

/** CPU ms of the process (every thread) and of its main thread, each with its kernel part, from /proc. */
function cpuMs(pid: number): CpuMs {
  const times = (path: string) => {
    const stat = readFileSync(path, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const system = Number(fields[12]) * TICK_MS;
    return { total: Number(fields[11]) * TICK_MS + system, system }; // utime + stime, stime
  };
  const main = times(`/proc/${pid}/task/${pid}/stat`);
  const all = times(`/proc/${pid}/stat`);
  return { main: main.total, all: all.total, mainKernel: main.system, allKernel: all.system };
}

/** The machine's CPU time in clock ticks, all and stolen by the hypervisor (/proc/stat's first line). */
function machineTicks(): { total: number; steal: number } {
  const fields = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  return { total: fields.reduce((a, b) => a + b, 0), steal: fields[7]! };
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** The worker entrypoint `make build` bundles beside main.ts, wherever the commit being built keeps it. */
const WORKER_ENTRIES = ["src/media-worker.ts", "src/media/media-worker.ts", "src/media/udp-io-worker.ts"];

function buildExecutable(sourceDir: string, outfile: string): void {
  const worker = WORKER_ENTRIES.find((entry) => existsSync(join(sourceDir, entry)));
  if (!worker) throw new Error(`no media worker entrypoint in ${sourceDir} (looked for ${WORKER_ENTRIES.join(", ")})`);
  const build = Bun.spawnSync([process.execPath, "build", "--compile", "--minify", "main.ts", worker, "--outfile", outfile], { cwd: sourceDir, stderr: "pipe", stdout: "pipe" });
  if (build.exitCode !== 0) throw new Error(`build in ${sourceDir} failed: ${build.stderr.toString()}`);
}

/** The tree of a commit, unpacked beside this one's node_modules, built. */
function buildCommit(ref: string, dir: string): string {
  const source = join(dir, "source");
  const archive = Bun.spawnSync(["bash", "-c", `mkdir -p '${source}' && git -C '${repo}' archive '${ref}' | tar -x -C '${source}'`], { stderr: "pipe" });
  if (archive.exitCode !== 0) throw new Error(`git archive ${ref}: ${archive.stderr.toString()}`);
  symlinkSync(join(repo, "node_modules"), join(source, "node_modules"));
  const binary = join(dir, "trunkline");
  buildExecutable(source, binary);
  return binary;
}

// SIPp shares the box with the node, which a trunk's SBC does not. Two effects of that are the load
// generator's, not the node's, and are taken out:
// - SIPp's UDP socket buffers default to 64 KiB: when SIPp fell behind, its socket dropped the node's
//   responses (/proc/net/udp counted them) and it re-sent the INVITE 500 ms later. It gets the 4 MiB
//   the node's SIP socket asks for.
// - Each datagram the node sends over loopback wakes SIPp, and the scheduler ran SIPp on the node's
//   CPU at once: the node's main thread spent 66 µs of wall clock per send, 18 µs of it on the CPU.
//   As SCHED_BATCH (`chrt -b 0`), SIPp's wake-ups do not preempt the node; it still takes its CPU
//   time from the same two cores. 32 µs per send then.
const SIPP_SOCKET_BUFFER_BYTES = 4 << 20;
const SIPP_SCHEDULING = process.env.BENCH_CPS_SIPP_SCHED === "other" ? [] : ["chrt", "--batch", "0"];

async function startNode(command: string[], name: string, env: Record<string, string> = {}): Promise<Node> {
  const dir = mkdtempSync(join(tmpdir(), `bench-cps-${name}-`));
  const sipPort = await freePort();
  const httpPort = await freePort();
  // A window of the high ports of its own (other benches and tests run beside this one).
  const portMin = 20000 + 2 * Math.floor(Math.random() * 15000);
  const routes = Array.from({ length: CHANNELS }, (_, n) => `      - { sipUsername: "${FIRST_NUMBER + n}", channelId: ch-${n} }`);
  writeFileSync(
    join(dir, "config.yaml"),
    `sip:
  listen: [{ transport: udp, host: ${NODE_IP}, port: ${sipPort} }]
http: { host: ${NODE_IP}, port: ${httpPort} }
rtp: { portMin: ${portMin}, portMax: ${portMin + 9999} }
adminToken: ${TOKEN}
database: { path: ${join(dir, "trunkline.db")} }
logLevel: info
trunks: [{ id: bench, domain: ${CALLER_IP}, optionsIntervalSec: 0 }]
calls: { maxConcurrentCalls: 20000 }
limits:
  maxSipTrunkMessagesPerSecond: 0
  maxSipTransactions: 200000
  maxParticipantsPerChannel: 2000
${process.env.BENCH_CPS_OVERLOAD === "off" ? "  maxUnansweredInvites: 0\n  maxEventLoopLagMs: 0\n" : ""}applications:
  - id: bench
    name: Bench
    sharedSecret: bench-secret-0123456789
    inboundRoutes:
${routes.join("\n")}
`,
  );
  const proc = Bun.spawn([...command, "serve", "--config", join(dir, "config.yaml")], {
    cwd: dir,
    env: { ...process.env, ...env },
    stdout: Bun.file(join(dir, "trunkline.log")),
    stderr: "inherit",
    stdin: "ignore",
  });
  await until(async () => (await fetch(`http://${NODE_IP}:${httpPort}/readyz`).catch(() => undefined))?.ok === true, { timeoutMs: 30_000, pollMs: 100 });
  const node: Node = { proc, pid: proc.pid, remote: `${NODE_IP}:${sipPort}`, dir, metricsUrl: `http://${NODE_IP}:${httpPort}/metrics`, idle: [0, 0] };
  // Warm-up (the JIT, the first channels' mixers), not reported; then what it burns idle.
  await placeCalls(node, 100, 2);
  const before = cpuMs(node.pid);
  const started = performance.now();
  await Bun.sleep(IDLE_WINDOW_MS);
  const wall = performance.now() - started;
  const after = cpuMs(node.pid);
  node.idle = [(after.main - before.main) / wall, (after.all - before.all) / wall];
  return node;
}

async function stopNode(node: Node): Promise<void> {
  node.proc.kill("SIGTERM");
  const timer = setTimeout(() => node.proc.kill("SIGKILL"), 20_000);
  await node.proc.exited;
  clearTimeout(timer);
  rmSync(node.dir, { recursive: true, force: true });
}

/** The sum of the node's metric samples whose line starts with `prefix`. */
async function metricSum(node: Node, prefix: string): Promise<number> {
  const text = await (await fetch(node.metricsUrl, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
  let n = 0;
  for (const line of text.split("\n")) if (line.startsWith(prefix)) n += Number(line.split(" ").at(-1));
  return n;
}

/** INVITEs the node has refused as overloaded since it started. */
const overloadRefusals = (node: Node) => metricSum(node, 'trunkline_sip_rejected_total{reason="overload_');
/** RTP datagrams the node's phone legs have sent since it started. */
const rtpSent = (node: Node) => metricSum(node, 'trunkline_rtp_packets_total{direction="sent"}');

/** Runs again when SIPp's port, free a moment ago, was taken meanwhile. */
async function placeCalls(node: Node, rate: number, seconds: number, scenario = SCENARIO): Promise<StepResult> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await placeCallsOnce(node, rate, seconds, scenario);
    } catch (err) {
      if (attempt >= 5 || !String(err).includes("Unable to bind")) throw err;
    }
  }
}

async function placeCallsOnce(node: Node, rate: number, seconds: number, scenario: string): Promise<StepResult> {
  const runDir = mkdtempSync(join(tmpdir(), "bench-cps-sipp-"));
  try {
    writeFileSync(join(runDir, "scenario.xml"), scenario);
    const numbers = Array.from({ length: CHANNELS }, (_, n) => String(FIRST_NUMBER + n));
    writeFileSync(join(runDir, "numbers.csv"), `SEQUENTIAL\n${numbers.join("\n")}\n`);
    const total = Math.round(rate * seconds);
    const refusedBefore = await overloadRefusals(node);
    const rtpBefore = await rtpSent(node);
    const machineBefore = machineTicks();
    const before = cpuMs(node.pid);
    const threadsBefore = cpuMsByKind(node.pid);
    const started = performance.now();
    const sipp = Bun.spawn(
      [
        ...SIPP_SCHEDULING,
        "sipp", node.remote, "-sf", "scenario.xml", "-inf", "numbers.csv",
        "-i", CALLER_IP, "-p", String(await freePort()), "-mp", String(await freePort()), "-t", "u1",
        "-m", String(total), "-r", String(rate), "-l", String(rate * 40),
        "-timeout", `${seconds + 60}s`, "-timeout_error", "-nostdin", "-nd",
        "-trace_rtt", "-rtt_freq", "1", "-trace_stat", "-stf", "stat.csv",
        "-buff_size", String(SIPP_SOCKET_BUFFER_BYTES),
      ],
      { cwd: runDir, stdout: "pipe", stderr: "pipe", stdin: "ignore" },
    );
    const [stderr, exitCode] = await Promise.all([new Response(sipp.stderr).text(), sipp.exited, new Response(sipp.stdout).text()]);
    const wallMs = performance.now() - started;
    const sippCpu = sipp.resourceUsage()?.cpuTime.total;
    const after = cpuMs(node.pid);
    const machineAfter = machineTicks();
    const threadsAfter = cpuMsByKind(node.pid);
    const refused = (await overloadRefusals(node)) - refusedBefore;
    const rtpDatagrams = (await rtpSent(node)) - rtpBefore;
    if (exitCode !== 0 && stderr.includes("Unable to bind")) throw new Error(`sipp: ${stderr.slice(0, 500)}`);
    const stat = readFileSync(join(runDir, "stat.csv"), "utf8").trim().split("\n");
    const header = stat[0]!.split(";");
    const last = stat.at(-1)!.split(";");
    const column = (name: string) => Number(last[header.indexOf(name)]);
    const calls = column("SuccessfulCall(C)");
    const failed = column("FailedCall(C)");
    const unfinished = Math.max(0, total - calls - failed);
    if (exitCode !== 0 && failed === 0 && unfinished === 0) throw new Error(`sipp exited ${exitCode}: ${stderr.slice(0, 1000)}`);
    const rttFile = readdirSync(runDir).find((f) => f.endsWith("_rtt.csv"));
    // "Date_ms;response_time_ms;rtd_no": one line per answered call.
    const setupMs = (rttFile ? readFileSync(join(runDir, rttFile), "utf8").split("\n").slice(1) : [])
      .filter((l) => l.trim())
      .map((l) => Number(l.split(";")[1]))
      .sort((a, b) => a - b);
    const completed = Math.max(1, calls + failed);
    const byThread: Record<ThreadKind, number> = { "media workers": 0, JIT: 0, GC: 0, other: 0 };
    for (const [tid, t] of threadsAfter) byThread[t.kind] += ((t.ms - (threadsBefore.get(tid)?.ms ?? 0)) * 1000) / completed;
    return {
      offered: rate,
      calls,
      failed,
      refused,
      unfinished,
      achieved: calls / Math.max(0.001, (wallMs - HOLD_MS) / 1000),
      p50Ms: percentile(setupMs, 50),
      p99Ms: percentile(setupMs, 99),
      mainUs: ((after.main - before.main - node.idle[0] * wallMs) * 1000) / completed,
      allUs: ((after.all - before.all - node.idle[1] * wallMs) * 1000) / completed,
      mainKernelUs: ((after.mainKernel - before.mainKernel) * 1000) / completed,
      allKernelUs: ((after.allKernel - before.allKernel) * 1000) / completed,
      rtpSentPerCall: rtpDatagrams / completed,
      stealShare: (machineAfter.steal - machineBefore.steal) / Math.max(1, machineAfter.total - machineBefore.total),
      byThread,
      sippUs: sippCpu === undefined ? NaN : Number(sippCpu) / completed,
    };
  } finally {
    rmSync(runDir, { recursive: true, force: true });
  }
}

/**
 * The store writes one inbound call of the ladder makes, alone, on a SQLite file in a temp directory
 * (WAL, as the node runs it): its record (created, routed, ringing, answered, ended) and, 5 s after
 * its end, its SIP trace (8 messages). CPU µs per call of this process, the best of several batches.
 */
async function storeWritesUs(): Promise<{ records: number; trace: number }> {
  const dir = mkdtempSync(join(tmpdir(), "bench-cps-store-"));
  setLogLevel("warn"); // the migrations' lines
  const store = openStore(join(dir, "trunkline.db"));
  setLogLevel("info");
  try {
    const message = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.11:5060;branch=z9hG4bK-1\r\n".padEnd(600, "x");
    const trace = (callId: string) => ({
      callId,
      bytes: 8 * message.length,
      droppedMessages: 0,
      // Serialized here as the trace recorder does when the call ends: part of what a trace costs.
      messagesJson: JSON.stringify(
        Array.from({ length: 8 }, (_, i) => ({
          time: Date.now() + i, direction: i % 2 ? ("sent" as const) : ("received" as const), transport: "udp" as const,
          source: { address: "127.0.0.11", port: 5060 }, destination: { address: "127.0.0.12", port: 5060 }, message,
        })),
      ),
    });
    let n = 0;
    const oneCall = () => {
      const id = `call_bench_${n++}`;
      store.calls.create({ id, direction: "inbound", from: "sip:+15550001111@127.0.0.11", to: "sip:7000@127.0.0.12", sipCallId: `${id}@127.0.0.11`, trunkId: "bench" });
      store.calls.update(id, { applicationId: "bench", channelId: "ch-0", userId: "sip:+15550001111@127.0.0.11" });
      store.calls.update(id, { state: "ringing", sipStatus: 180 });
      store.calls.update(id, { state: "answered", sipStatus: 200, codec: "PCMU" });
      store.calls.update(id, { state: "ended", endReason: "remote_bye" });
      return id;
    };
    const best = async (work: () => Promise<void>) => {
      let us = Infinity;
      for (let batch = 0; batch < 7; batch++) {
        const t0 = process.cpuUsage();
        await work();
        const used = process.cpuUsage(t0);
        us = Math.min(us, (used.user + used.system) / 500);
      }
      return us;
    };
    const records = await best(async () => {
      for (let i = 0; i < 500; i++) oneCall();
      await store.calls.flush();
    });
    const ids: string[] = [];
    for (let batch = 0; batch < 7; batch++) {
      for (let i = 0; i < 500; i++) ids.push(oneCall());
      await store.calls.flush();
    }
    let next = 0;
    const traces = await best(async () => {
      for (let i = 0; i < 500; i++) store.sipTraces.save(trace(ids[next++]!), Date.now());
      await store.sipTraces.flush();
    });
    return { records, trace: traces };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");

function stepLine(label: string, r: StepResult): string {
  return (
    `${label.padEnd(22)} offered ${fmt(r.offered).padStart(5)}/s  achieved ${fmt(r.achieved).padStart(5)}/s  ` +
    `${String(r.calls).padStart(6)} ok ${String(r.failed).padStart(5)} failed (${r.refused} refused 503 overloaded)${r.unfinished ? ` ${r.unfinished} unfinished` : ""}  INVITE→200 p50 ${r.p50Ms.toFixed(0).padStart(5)} ms p99 ${r.p99Ms.toFixed(0).padStart(6)} ms  ` +
    `CPU/call main thread ${fmt(r.mainUs).padStart(5)} µs, all threads ${fmt(r.allUs).padStart(5)} µs (${Object.entries(r.byThread).map(([kind, us]) => `${kind} ${fmt(us)}`).join(", ")}; ` +
    `in the kernel: main ${fmt(r.mainKernelUs)}, all ${fmt(r.allKernelUs)}); SIPp ${fmt(r.sippUs)} µs; ${r.rtpSentPerCall.toFixed(1)} RTP datagrams sent per call; steal ${(r.stealShare * 100).toFixed(1)} %`
  );
}

async function ladder(command: string[]): Promise<void> {
  const node = await startNode(command, "ladder");
  const results: StepResult[] = [];
  let noRtp: StepResult;
  try {
    console.log(`load average before: ${readFileSync("/proc/loadavg", "utf8").trim()}`);
    console.log(`${CHANNELS} channels, hold ${HOLD_MS} ms, steps of ${STEP_SEC} s, the top one ${TOP_SEC} s; idle CPU taken out: main ${(node.idle[0] * 1000).toFixed(0)} ms/s, all ${(node.idle[1] * 1000).toFixed(0)} ms/s`);
    for (const [i, rate] of LADDER.entries()) {
      const result = await placeCalls(node, rate, i === LADDER.length - 1 ? TOP_SEC : STEP_SEC);
      results.push(result);
      console.log(stepLine(`step ${i + 1}`, result));
    }
    noRtp = await placeCalls(node, LADDER.at(-1)!, TOP_SEC, SCENARIO_NO_RTP);
    console.log(stepLine("top rate, no RTP", noRtp));
    console.log(`load average after: ${readFileSync("/proc/loadavg", "utf8").trim()}`);
  } finally {
    await stopNode(node);
  }
  console.log("\n| offered | achieved | failed (unfinished) [503 overloaded] | p99 INVITE→200 | CPU/call, main thread | CPU/call, all threads | SIPp's CPU/call |\n|---|---|---|---|---|---|---|");
  const row = (label: string, r: StepResult) =>
    console.log(`| ${label} | ${fmt(r.achieved)} | ${r.failed}${r.unfinished ? ` (+${r.unfinished})` : ""} [${r.refused}] | ${fmt(r.p99Ms)} ms | ${fmt(r.mainUs)} µs | ${fmt(r.allUs)} µs | ${fmt(r.sippUs)} µs |`);
  for (const r of results) row(`${fmt(r.offered)} CPS`, r);
  row(`${fmt(noRtp.offered)} CPS, sendonly offers (no RTP sent)`, noRtp);
  const writes = await storeWritesUs();
  console.log(`\nthe store writes of one call alone (same SQLite setup, this process): record ${fmt(writes.records)} µs (1 insert + 4 updates), SIP trace ${fmt(writes.trace)} µs`);
  const top = results.at(-1)!;
  const sendUs = await mediaSocketSendUs();
  const rtpUs = top.rtpSentPerCall * sendUs;
  console.log(`the RTP datagrams of one call alone: ${top.rtpSentPerCall.toFixed(1)} × ${sendUs.toFixed(2)} µs = ${fmt(rtpUs)} µs (one media-socket send over loopback to a reading process, this process, the best of 3 rounds of 20,000)`);
  reportGoal({
    goal: `calls per second (${fmt(top.offered)} offered for ${TOP_SEC} s, 100 channels)`,
    figure: `${fmt(top.achieved)} achieved, ${top.failed} failed${top.unfinished ? ` and ${top.unfinished} unfinished` : ""}, p99 INVITE→200 ${fmt(top.p99Ms)} ms`,
    anchor: "1,000 offered → 482 achieved, 96 failed, p99 7,656 ms; goal 1,000, 0 failed, p99 < 20 ms",
    met: top.achieved >= 0.98 * top.offered && top.failed === 0 && top.unfinished === 0 && top.p99Ms < 20,
  });
  reportGoal({
    goal: `CPU per call at ${fmt(top.offered)} CPS (all threads [the same calls sending no RTP]; main thread; of which record + SIP trace writes alone; the call's RTP sends alone)`,
    figure: `${fmt(top.allUs)} [${fmt(noRtp.allUs)}] µs; ${fmt(top.mainUs)} µs; ${fmt(writes.records)} + ${fmt(writes.trace)} µs; ${fmt(rtpUs)} µs`,
    anchor: "≈ 2,200 µs; goal ≤ 600 µs",
    met: top.allUs <= 600,
  });
}

/** This tree against `ref`, alternating, at one paced rate: CPU per call side by side. */
async function compare(ref: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "bench-cps-build-"));
  try {
    const builds = [
      { name: ref, binary: buildCommit(ref, join(dir, "before")) },
      { name: "this tree", binary: join(dir, "trunkline") },
    ];
    buildExecutable(repo, builds[1]!.binary);
    const totals = new Map<string, StepResult[]>();
    console.log(`${ref} vs this tree, ${COMPARE_RATE} calls/s for ${STEP_SEC} s each, ${ROUNDS} rounds, alternating`);
    for (let round = 1; round <= ROUNDS; round++) {
      for (const build of round % 2 === 1 ? builds : [...builds].reverse()) {
        const node = await startNode([build.binary], "compare", build.name === ref ? COMPARE_ENV : {});
        try {
          const result = await placeCalls(node, COMPARE_RATE, STEP_SEC);
          totals.set(build.name, [...(totals.get(build.name) ?? []), result]);
          console.log(stepLine(`round ${round} ${build.name}`.slice(0, 22), result));
        } finally {
          await stopNode(node);
        }
      }
    }
    console.log("\n| build | CPU/call, main thread (median of rounds) | CPU/call, all threads | p50 / p99 INVITE→200 | refused 503 |\n|---|---|---|---|---|");
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    for (const build of builds) {
      const rs = totals.get(build.name)!;
      console.log(`| ${build.name} | ${fmt(median(rs.map((r) => r.mainUs)))} µs | ${fmt(median(rs.map((r) => r.allUs)))} µs | ${fmt(median(rs.map((r) => r.p50Ms)))} / ${fmt(median(rs.map((r) => r.p99Ms)))} ms | ${fmt(median(rs.map((r) => r.refused)))} |`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<void> {
  if (COMPARE) return compare(COMPARE);
  if (process.env.BENCH_CPS_SOURCE === "1") return ladder([process.execPath, join(repo, "main.ts")]);
  if (PROFILE_DIR) {
    console.log(`profiling from source under bun --cpu-prof; profile in ${PROFILE_DIR}`);
    return ladder([process.execPath, "--cpu-prof", "--cpu-prof-md", `--cpu-prof-dir=${resolve(PROFILE_DIR)}`, join(repo, "main.ts")]);
  }
  const dir = mkdtempSync(join(tmpdir(), "bench-cps-build-"));
  try {
    const binary = join(dir, "trunkline");
    buildExecutable(repo, binary);
    await ladder([binary]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) await run();
