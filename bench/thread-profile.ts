// Where each thread's CPU goes, from perf: per thread, its samples by kind (each system call, other
// kernel work such as page faults, JavaScript, Bun's own native code), by innermost function, and
// by every function on the stack. JIT code is named from JavaScriptCore's jitdump
// (BUN_JSC_useJITDump=1 writes /tmp/jit-<tid>-<pid>-*.dump); each address is named by the code
// loaded there at the sample's time (jitdump.ts). Bun's binary carries no symbols, so
// its native code shows as one "[bun native]" (its callers tell which JavaScript called it).
//
//   BUN_JSC_useJITDump=1 bun run bench/run.ts media-workers &     # or any Bun process
//   perf record -F 1999 -g -p PID[,PID2] -o perf.data -- sleep 10
//   perf script -i perf.data -F comm,pid,tid,time,ip,sym > perf.txt
//   bun bench/thread-profile.ts perf.txt [--top 30] [--callers-of "\[bun native\]"]
import { readdirSync, readFileSync } from "node:fs";
import { jitNameAt, readJitDump, type JitCodeMap } from "./jitdump.ts";

/** The kind of a sample, innermost frame first. */
function kindOf(frames: string[]): string {
  const syscall = frames.find((f) => f.startsWith("__x64_sys_"));
  if (syscall) return `system call ${syscall.slice("__x64_sys_".length)}`;
  if (frames.includes("entry_SYSCALL_64_after_hwframe")) return "system call entry and exit";
  const entry = frames.find((f) => f.startsWith("asm_"));
  if (entry) return `kernel: ${entry.slice(4)}`;
  const first = frames[0] ?? "";
  if (first.startsWith("JSC-")) return "JavaScript (JIT code)";
  if (first === "[bun native]") return "Bun's native code";
  return `C library: ${first}`;
}

interface Thread { samples: number; kinds: Map<string, number>; self: Map<string, number>; inclusive: Map<string, number>; callers: Map<string, number> }

const args = process.argv.slice(2);
const option = (name: string) => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
};
const scriptPath = args[0];
if (!scriptPath) {
  console.error('usage: bun bench/thread-profile.ts perf.txt [--top 30] [--callers-of "REGEX"]');
  process.exit(2);
}
const top = Number(option("--top") ?? 25);
const callersOf = new RegExp(option("--callers-of") ?? "^\\[bun native\\]$");

const script = readFileSync(scriptPath, "utf8");
const pids = new Set([...script.matchAll(/^\S.*?\s(\d+)\/\d+\s+\d+\.\d+:/gm)].map((m) => m[1]!));
const dumps = new Map<string, JitCodeMap>();
for (const file of readdirSync("/tmp")) {
  const m = /^jit-\d+-(\d+)-/.exec(file);
  if (!m || !pids.has(m[1]!)) continue;
  const byPage: JitCodeMap = dumps.get(m[1]!) ?? new Map();
  readJitDump(readFileSync(`/tmp/${file}`), byPage);
  dumps.set(m[1]!, byPage);
}

const threads = new Map<string, Thread>();
let sample: { thread: string; pid: string; time: number; frames: string[] } | undefined;
const count = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1);
function finish(): void {
  if (!sample) return;
  let t = threads.get(sample.thread);
  if (!t) threads.set(sample.thread, (t = { samples: 0, kinds: new Map(), self: new Map(), inclusive: new Map(), callers: new Map() }));
  const { frames } = sample;
  t.samples++;
  count(t.kinds, kindOf(frames));
  count(t.self, frames[0] ?? "?");
  for (const f of new Set(frames)) count(t.inclusive, f);
  if (callersOf.test(frames[0] ?? "")) count(t.callers, frames.filter((f) => f.startsWith("JSC-")).slice(0, 3).join(" < ") || "(no JavaScript on the stack)");
}
for (const line of script.split("\n")) {
  const head = /^(\S.*?)\s+(\d+)\/(\d+)\s+(\d+\.\d+):/.exec(line);
  if (head) {
    finish();
    sample = { thread: `${head[1]} ${head[2]}/${head[3]}`, pid: head[2]!, time: Number(head[4]), frames: [] };
    continue;
  }
  const frame = /^\s+([0-9a-f]+)\s+(.*)$/.exec(line);
  if (!frame || !sample) continue;
  const ip = parseInt(frame[1]!, 16);
  let name = frame[2]!.replace(/\+0x[0-9a-f]+$/, "").replace(/ \(.*\)$/, "");
  if (name.startsWith("[unknown]")) name = jitNameAt(dumps.get(sample.pid), ip, sample.time) ?? (ip >= 0x7f0000000000 ? "[anonymous memory]" : "[bun native]");
  sample.frames.push(name);
}
finish();

for (const [name, t] of [...threads].sort((a, b) => b[1].samples - a[1].samples)) {
  if (t.samples < 20) continue;
  console.log(`\n=== ${name}: ${t.samples} samples`);
  const list = (title: string, map: Map<string, number>, n = top) => {
    console.log(`-- ${title}`);
    for (const [key, c] of [...map].sort((a, b) => b[1] - a[1]).slice(0, n)) console.log(`${((100 * c) / t.samples).toFixed(1).padStart(6)} %  ${key}`);
  };
  list("by kind", t.kinds);
  list("innermost function", t.self);
  list("on the stack", t.inclusive, 2 * top);
  list(`callers of ${callersOf.source} (up to three JavaScript frames)`, t.callers, 10);
}
