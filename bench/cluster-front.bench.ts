// What the cluster's front and shared store cost per call (issue 13). Side by side in one run on
// this machine, SIPp (from 127.0.0.5, a trunk's address) places short calls — INVITE with SDP →
// 200 → ACK → BYE → 200, each call to a channel of its own — at:
//   sqlite      one node on SQLite (127.0.0.6), directly
//   pg-direct   node 1 of `scripts/cluster.sh` (three nodes on one PostgreSQL), directly
//   pg-front    the same cluster through its Kamailio front, which spreads calls over the three nodes
// After one unreported warm-up run each, every configuration runs twice per round, the
// configurations alternating: paced (a fixed offered
// rate, for latency and CPU per call) and saturated (as fast as SIPp can, BENCH_CLUSTER_LIMIT calls
// in flight, for calls per second). Reported: calls/s, INVITE→200 p50/p99 (SIPp's response-time
// trace, whole milliseconds), and the CPU each part spent per call (every thread and child process,
// from /proc, less what it burns idle over the same time, measured just before each run).
// Needs root (the cluster script runs PostgreSQL as `postgres`) and builds its own executable.
// BENCH_CLUSTER_CALLS=400 (per run), BENCH_CLUSTER_RATE=40 (paced calls/s), BENCH_CLUSTER_LIMIT=20,
// BENCH_CLUSTER_ROUNDS=2 override.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { freePort } from "../test/helpers/sipp.ts";
import { until } from "../test/helpers/until.ts";
import { sippCall } from "../test/helpers/sippCall.ts";

const CALLS = Number(process.env.BENCH_CLUSTER_CALLS ?? 400);
const RATE = Number(process.env.BENCH_CLUSTER_RATE ?? 40);
const LIMIT = Number(process.env.BENCH_CLUSTER_LIMIT ?? 20);
const ROUNDS = Number(process.env.BENCH_CLUSTER_ROUNDS ?? 2);
/** Channels in rotation: far more than calls in flight, so no two live calls share one. */
const CHANNELS = 200;
const FIRST_USER = 3000;
const CALLER_IP = "127.0.0.5";
const SQLITE_NODE_IP = "127.0.0.6";
const TOKEN = "bench-cluster-token-0123456789";
const repo = resolve(import.meta.dir, "..");
const TICK_MS = 1000 / 100; // /proc times are in clock ticks (USER_HZ, 100 on Linux)
/** Before each run, the parts' CPU with no calls is measured this long (a measurement window, not a wait for a condition). */
const IDLE_WINDOW_MS = 2000;

/** Calls [field0] (a user of its own channel), then hangs up along the Record-Route set, if any. */
const SCENARIO = sippCall({ name: "bench-call", requestUri: "sip:[field0]@[remote_ip]:[remote_port]", user: "+15550001111", contactUser: "caller", tag: "b", offerPort: "9", ending: "hang-up", measureAnswer: true, trailer: '  <ResponseTimeRepartition value="1, 2, 5, 10, 20, 50, 100"/>\n' });

interface Target {
  name: "sqlite" | "pg-direct" | "pg-front";
  remote: string;
  /** Whose CPU counts, by part: process ids whose whole process tree is summed. */
  parts: Record<string, number[]>;
}

interface RunResult {
  calls: number;
  failed: number;
  wallMs: number;
  setupUs: number[];
  cpuMs: Record<string, number>;
}

/** CPU ms of a process and all its descendants, including children already reaped (cutime/cstime). */
function treeCpuMs(root: number): number {
  const stats = new Map<number, { ppid: number; ticks: number }>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      // after "pid (comm) ": state ppid … utime(14) stime(15) cutime(16) cstime(17), 1-based in stat
      stats.set(Number(entry), { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]) });
    } catch {
      // exited meanwhile
    }
  }
  const inTree = (pid: number): boolean => {
    for (let p: number | undefined = pid, depth = 0; p !== undefined && p > 1 && depth < 64; depth++) {
      if (p === root) return true;
      p = stats.get(p)?.ppid;
    }
    return false;
  };
  let ticks = 0;
  for (const [pid, s] of stats) if (inTree(pid)) ticks += s.ticks;
  return ticks * TICK_MS;
}

function cpuOf(parts: Record<string, number[]>): Record<string, number> {
  return Object.fromEntries(Object.entries(parts).map(([part, pids]) => [part, pids.reduce((sum, pid) => sum + treeCpuMs(pid), 0)]));
}

/** Runs again when SIPp's port, free on 127.0.0.1 a moment ago, was taken on the caller's address. */
async function runSippCalls(target: Target, dir: string, mode: "paced" | "saturated"): Promise<RunResult> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await runSippOnce(target, dir, mode);
    } catch (err) {
      if (attempt >= 5 || !String(err).includes("Unable to bind main socket")) throw err;
    }
  }
}

async function runSippOnce(target: Target, dir: string, mode: "paced" | "saturated"): Promise<RunResult> {
  const runDir = mkdtempSync(join(dir, `${target.name}-${mode}-`));
  writeFileSync(join(runDir, "scenario.xml"), SCENARIO);
  const users = Array.from({ length: CHANNELS }, (_, i) => String(FIRST_USER + i));
  writeFileSync(join(runDir, "users.csv"), `SEQUENTIAL\n${users.join("\n")}\n`);
  // What the parts burn with no calls (heartbeats, timers), measured just before, is taken out again.
  const idleStart = cpuOf(target.parts);
  const idleStarted = performance.now();
  await Bun.sleep(IDLE_WINDOW_MS);
  const idleMs = performance.now() - idleStarted;
  const before = cpuOf(target.parts);
  const idleRate = Object.fromEntries(Object.entries(before).map(([part, ms]) => [part, (ms - idleStart[part]!) / idleMs]));
  const started = performance.now();
  const proc = Bun.spawn(
    [
      "sipp", target.remote, "-sf", "scenario.xml", "-inf", "users.csv",
      "-i", CALLER_IP, "-p", String(await freePort()), "-t", "u1",
      "-m", String(CALLS), "-l", String(LIMIT), "-r", String(mode === "paced" ? RATE : 10_000),
      "-timeout", "120s", "-timeout_error", "-nostdin", "-nd",
      "-trace_rtt", "-rtt_freq", "1", "-trace_stat", "-stf", "stat.csv",
    ],
    { cwd: runDir, stdout: "pipe", stderr: "pipe", stdin: "ignore" },
  );
  const [stderr, exitCode] = await Promise.all([new Response(proc.stderr).text(), proc.exited, new Response(proc.stdout).text()]);
  const wallMs = performance.now() - started;
  const cpuMs = Object.fromEntries(Object.entries(cpuOf(target.parts)).map(([part, ms]) => [part, ms - before[part]! - idleRate[part]! * wallMs]));
  const rttFile = readdirSync(runDir).find((f) => f.endsWith("_rtt.csv"));
  // "Date_ms;response_time_ms;rtd_no": one line per call.
  const setupUs = rttFile
    ? readFileSync(join(runDir, rttFile), "utf8")
        .split("\n")
        .slice(1)
        .filter((l) => l.trim())
        .map((l) => Number(l.split(";")[1]) * 1000)
    : [];
  if (exitCode !== 0 && stderr.includes("Unable to bind")) {
    rmSync(runDir, { recursive: true, force: true });
    throw new Error(`sipp ${target.name}: ${stderr.slice(0, 500)}`);
  }
  const stat = readFileSync(join(runDir, "stat.csv"), "utf8").trim().split("\n");
  const header = stat[0]!.split(";");
  const last = stat.at(-1)!.split(";");
  const column = (name: string) => Number(last[header.indexOf(name)]);
  const failed = column("FailedCall(C)");
  const calls = column("SuccessfulCall(C)");
  rmSync(runDir, { recursive: true, force: true });
  if (exitCode !== 0 && failed === 0) throw new Error(`sipp ${target.name} exited ${exitCode}: ${stderr.slice(0, 1000)}`);
  return { calls, failed, wallMs, setupUs, cpuMs };
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function startSqliteNode(binary: string, dir: string): Promise<{ proc: Bun.Subprocess; sipPort: number }> {
  const sipPort = await freePort();
  const httpPort = await freePort();
  const routes = Array.from({ length: CHANNELS }, (_, i) => `      - { sipUsername: "${FIRST_USER + i}", channelId: ch${FIRST_USER + i} }`);
  writeFileSync(
    join(dir, "sqlite.yaml"),
    `sip:
  listen: [{ transport: udp, host: ${SQLITE_NODE_IP}, port: ${sipPort} }]
http: { host: ${SQLITE_NODE_IP}, port: ${httpPort} }
rtp: { portMin: 19000, portMax: 19998 }
adminToken: ${TOKEN}
database: { path: ${join(dir, "sqlite.db")} }
cluster: { nodeId: sqlite }
logLevel: info
trunks: [{ id: bench, domain: ${CALLER_IP}, optionsIntervalSec: 0 }]
applications:
  - id: bench
    name: Bench
    sharedSecret: bench-secret-0123456789
    inboundRoutes:
${routes.join("\n")}
`,
  );
  const proc = Bun.spawn([binary, "serve", "--config", join(dir, "sqlite.yaml")], { stdout: Bun.file(join(dir, "sqlite.log")), stderr: "inherit", stdin: "ignore" });
  await until(async () => (await fetch(`http://${SQLITE_NODE_IP}:${httpPort}/readyz`).catch(() => undefined))?.ok === true, { timeoutMs: 30_000, pollMs: 100 });
  return { proc, sipPort };
}

function cluster(command: "up" | "down", env: Record<string, string>): Record<string, string> {
  const result = Bun.spawnSync(["bash", join(repo, "scripts/cluster.sh"), command], { env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
  if (result.exitCode !== 0) throw new Error(`cluster.sh ${command} failed: ${result.stderr.toString()}`);
  return Object.fromEntries(
    result.stdout
      .toString()
      .split("\n")
      .filter((l) => l.includes("="))
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
}

async function provisionCluster(keys: Record<string, string>): Promise<void> {
  const api = (base: string, method: string, path: string, body?: unknown) =>
    fetch(`${base}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${keys.ADMIN_TOKEN}`, "content-type": "application/json" },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
  const node1 = keys.NODE1_API!;
  const ok = async (res: Promise<Response>) => {
    const r = await res;
    if (!r.ok) throw new Error(`provisioning: ${r.status} ${await r.text()}`);
  };
  await ok(api(node1, "POST", "/trunks", { id: "bench", domain: CALLER_IP, optionsIntervalSec: 0 }));
  await ok(api(node1, "POST", "/applications", { id: "bench", name: "Bench", sharedSecret: "bench-secret-0123456789" }));
  for (let i = 0; i < CHANNELS; i++) {
    await ok(api(node1, "POST", "/applications/bench/inbound-routes", { sipUsername: String(FIRST_USER + i), channelId: `ch${FIRST_USER + i}` }));
  }
  const lastRoute = `/applications/bench/inbound-routes/${FIRST_USER + CHANNELS - 1}`;
  for (const base of [keys.NODE2_API!, keys.NODE3_API!]) {
    await until(async () => (await api(base, "GET", lastRoute)).ok, { timeoutMs: 10_000, pollMs: 50, what: () => `${base} never saw the routes` });
  }
}

function pidsFromState(stateFile: string): Record<string, number> {
  return Object.fromEntries(
    readFileSync(stateFile, "utf8")
      .split("\n")
      .filter((l) => /_PID=\d+$/.test(l))
      .map((l) => [l.slice(0, l.indexOf("=")), Number(l.slice(l.indexOf("=") + 1))]),
  );
}

export async function run(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.log("skipped: needs root (scripts/cluster.sh runs PostgreSQL as the postgres user)");
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), "bench-cluster-"));
  const binary = join(dir, "trunkline");
  const build = Bun.spawnSync([process.execPath, "build", "--compile", "main.ts", "src/media-worker.ts", "--outfile", binary], { cwd: repo, stderr: "pipe", stdout: "pipe" });
  if (build.exitCode !== 0) throw new Error(`build failed: ${build.stderr.toString()}`);
  const stateFile = join(dir, "cluster.state");
  const env = {
    TRUNKLINE_BIN: binary,
    CLUSTER_STATE: stateFile,
    CLUSTER_PG_PORT: String(await freePort()),
    CLUSTER_FRONT_PORT: String(await freePort()),
    CLUSTER_NODE_SIP_PORT: String(await freePort()),
    CLUSTER_HTTP_PORT_BASE: String((await freePort()) - 4),
    CLUSTER_ADMIN_TOKEN: TOKEN,
  };
  let sqlite: Awaited<ReturnType<typeof startSqliteNode>> | undefined;
  try {
    const keys = cluster("up", env);
    await provisionCluster(keys);
    sqlite = await startSqliteNode(binary, dir);
    const pids = pidsFromState(stateFile);
    const nodes = [pids.NODE1_PID!, pids.NODE2_PID!, pids.NODE3_PID!];
    const front = keys.FRONT_SIP!.replace(/^sip:/, "");
    const targets: Target[] = [
      { name: "sqlite", remote: `${SQLITE_NODE_IP}:${sqlite.sipPort}`, parts: { node: [sqlite.proc.pid] } },
      { name: "pg-direct", remote: `127.0.0.2:${env.CLUSTER_NODE_SIP_PORT}`, parts: { node: nodes, postgres: [pids.PG_PID!] } },
      { name: "pg-front", remote: front, parts: { node: nodes, postgres: [pids.PG_PID!], kamailio: [pids.KAMAILIO_PID!] } },
    ];
    console.log(`load average before: ${readFileSync("/proc/loadavg", "utf8").trim()}`);
    console.log(`${CALLS} calls per run, paced at ${RATE}/s or saturated, at most ${LIMIT} in flight, ${ROUNDS} rounds, configurations alternating`);
    // Every node's JIT warms up first (nodes 2 and 3 only ever get calls through the front).
    for (const target of targets) await runSippCalls(target, dir, "saturated");
    const results = new Map<string, RunResult[]>();
    for (let round = 0; round < ROUNDS; round++) {
      for (const mode of ["paced", "saturated"] as const) {
        for (const target of targets) {
          const result = await runSippCalls(target, dir, mode);
          const key = `${target.name} ${mode}`;
          results.set(key, [...(results.get(key) ?? []), result]);
          const sorted = [...result.setupUs].sort((a, b) => a - b);
          const cpu = Object.entries(result.cpuMs)
            .map(([part, ms]) => `${part} ${((ms * 1000) / Math.max(1, result.calls)).toFixed(0)} µs`)
            .join(", ");
          console.log(
            `round ${round + 1} ${key.padEnd(20)} ${(result.calls / (result.wallMs / 1000)).toFixed(0).padStart(5)} calls/s  ` +
              `INVITE→200 p50 ${(percentile(sorted, 50) / 1000).toFixed(2)} ms p99 ${(percentile(sorted, 99) / 1000).toFixed(2)} ms  ` +
              `CPU per call: ${cpu}${result.failed ? `  FAILED ${result.failed}` : ""}`,
          );
        }
      }
    }
    console.log(`load average after: ${readFileSync("/proc/loadavg", "utf8").trim()}`);
    console.log("\nall rounds together:");
    console.log("| configuration | calls/s (saturated) | INVITE→200 p50 / p99 (paced) | p50 / p99 (saturated) | CPU per call (paced, idle taken out): node(s) | PostgreSQL | Kamailio | total |");
    console.log("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (const target of targets) {
      const paced = results.get(`${target.name} paced`)!;
      const saturated = results.get(`${target.name} saturated`)!;
      const all = (runs: RunResult[]) => runs.flatMap((r) => r.setupUs).sort((a, b) => a - b);
      const ms = (us: number) => (us / 1000).toFixed(2);
      const cps = saturated.reduce((n, r) => n + r.calls, 0) / (saturated.reduce((n, r) => n + r.wallMs, 0) / 1000);
      const calls = paced.reduce((n, r) => n + r.calls, 0);
      const perCall = (part: string) => {
        if (!(part in paced[0]!.cpuMs)) return undefined;
        return (paced.reduce((n, r) => n + r.cpuMs[part]!, 0) * 1000) / calls;
      };
      const parts = ["node", "postgres", "kamailio"].map(perCall);
      const total = parts.reduce((n: number, v) => n + (v ?? 0), 0);
      const cell = (v: number | undefined) => (v === undefined ? "—" : `${v.toFixed(0)} µs`);
      const failed = [...paced, ...saturated].reduce((n, r) => n + r.failed, 0);
      console.log(
        `| ${target.name} | ${cps.toFixed(0)} | ${ms(percentile(all(paced), 50))} / ${ms(percentile(all(paced), 99))} ms | ` +
          `${ms(percentile(all(saturated), 50))} / ${ms(percentile(all(saturated), 99))} ms | ${parts.map(cell).join(" | ")} | ${cell(total)} |` +
          (failed ? ` (${failed} failed)` : ""),
      );
    }
  } finally {
    sqlite?.proc.kill("SIGTERM");
    await sqlite?.proc.exited;
    cluster("down", env);
    rmSync(dir, { recursive: true, force: true });
  }
}
