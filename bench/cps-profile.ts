// Where one Trunkline thread's CPU goes per call, from perf: its samples (`perf script -F time,ip,sym`
// of `perf record -k 1 -g -t TID`) with the JIT's code named from JavaScriptCore's jitdump
// (BUN_JSC_useJITDump=1 writes /tmp/jit-<pid>-<tid>-*). The JIT reuses freed code memory, so each
// address is named by the code that was loaded there at the sample's time (both clocks are
// CLOCK_MONOTONIC). Each sample goes to the innermost frame that names a cost below. README
// "Calls per second" shows the whole procedure.
//
//   bun bench/cps-profile.ts cps.txt /tmp/jit-1234-1230-AbCdEf --hz 1999 --calls 1600
//   (--calls: calls placed while perf recorded; prints CPU µs per call beside each share)
import { readFileSync } from "node:fs";
import { jitNameAt, readJitDump, type JitCodeMap } from "./jitdump.ts";

/** Innermost frame first. */
function readSamples(script: string, byPage: JitCodeMap): string[][] {
  const samples: string[][] = [];
  let frames: string[] | undefined;
  let time = 0;
  for (const line of script.split("\n")) {
    const head = /(\d+\.\d+):\s*$/.exec(line);
    if (head && !line.startsWith("\t")) {
      frames = [];
      samples.push(frames);
      time = Number(head[1]);
      continue;
    }
    const frame = /^\s+([0-9a-f]+)\s+(.*)$/.exec(line);
    if (!frame || !frames) continue;
    frames.push(jitNameAt(byPage, parseInt(frame[1]!, 16), time) ?? frame[2]!.replace(/\+0x[0-9a-f]+$/, ""));
  }
  return samples;
}

/** Where events are emitted (emitEvent is often inlined into them). */
const EVENT_EMITTERS = new Set(["emitEvent", "ringing", "answered", "finish", "admit", "depart", "transferred", "onDigit"]);
const RECORD_CHANGES = new Set(["record", "finish", "createCall", "routed", "ringing", "answered", "inviting", "trunkChosen"]);

/** Checked innermost frame first; the first cost a frame names takes the sample. */
const costs: [string, (frame: string, caller: string | undefined) => boolean][] = [
  ["SQLite file I/O: WAL writes, locks, checkpoints (record writes and trace saves)", (f) => ["__libc_pwrite", "__fcntl64_nocancel_adjusted", "fsync", "__libc_pread"].includes(f)],
  ["SIP over UDP: the kernel's send (loopback: also SIPp's receive and wake-up)", (f) => f === "__sendmmsg"],
  ["waking the RTP I/O worker (postMessage)", (f) => f === "eventfd_write"],
  ["log lines written (stdout)", (f) => f === "__GI___libc_write"],
  ["call record writes, JavaScript side (store.calls create/update, bun:sqlite)", (f, caller) => (f === "update" || f === "create") && RECORD_CHANGES.has(caller ?? "")],
  ["events and their log lines", (f, caller) => f === "emitEvent" || (f === "emit" && EVENT_EMITTERS.has(caller ?? ""))],
  ["SIP trace save after the call (JSON, masking, bun:sqlite)", (f) => f === "save" || f === "snapshot" || f === "maskedMessage"],
  ["SIP message tap and trace, per message", (f) => f === "tap" || f === "message" || f === "onRecord"],
  ["mixer ticks and RTP out (the call's 1 s of media)", (f) => f === "fire" || f === "tick" || f === "hear"],
  ["RTP/RTCP pair bound and closed through the I/O worker, RTCP BYE", (f) => ["bindRtpPair", "open", "closeSocket", "sendRtcp", "bind"].includes(f)],
  ["phone leg, SDP answer, channel and mixer join/leave", (f) => ["createPhoneLeg", "RtpPhoneLeg", "answer", "join", "Participant", "leave", "depart", "admit"].includes(f)],
  ["SIP UDP send, JavaScript side (node:dgram)", (f) => f === "handleSend" || f === "doSend" || f === "afterDns" || f === "sendOnce"],
  ["SIP parse", (f) => f === "parseMessage"],
  ["SIP messages built and serialized", (f) => f === "serializeMessage" || f === "createResponse" || f === "createRequest"],
  ["page faults outside the costs above (heap growth, GC)", (f) => f === "asm_exc_page_fault"],
];
const REST = "the rest: SIP transactions and dialogs, call flow, events, event loop, runtime";

const args = process.argv.slice(2);
const option = (name: string) => {
  const at = args.indexOf(name);
  return at >= 0 ? Number(args[at + 1]) : undefined;
};
const [scriptPath, dumpPath] = args;
if (!scriptPath || !dumpPath) {
  console.error("usage: bun bench/cps-profile.ts PERF_SCRIPT.txt JITDUMP [--hz 1999 --calls N]");
  process.exit(2);
}
const samples = readSamples(readFileSync(scriptPath, "utf8"), readJitDump(readFileSync(dumpPath)));
const counts = new Map<string, number>();
for (const frames of samples) {
  let cost = REST;
  search: for (let i = 0; i < frames.length; i++) {
    for (const [name, names] of costs) {
      if (names(frames[i]!, frames[i + 1])) {
        cost = name;
        break search;
      }
    }
  }
  counts.set(cost, (counts.get(cost) ?? 0) + 1);
}
const hz = option("--hz") ?? 1999;
const calls = option("--calls");
const usPerSample = calls ? 1e6 / hz / calls : undefined;
console.log(`${samples.length} samples${usPerSample ? `, ${Math.round(samples.length * usPerSample)} µs of this thread's CPU per call` : ""}`);
for (const [cost, n] of [...counts].sort((a, b) => b[1] - a[1])) {
  const share = `${((100 * n) / samples.length).toFixed(1)} %`.padStart(7);
  console.log(`${share}${usPerSample ? `${Math.round(n * usPerSample)} µs`.padStart(9) : ""}  ${cost}`);
}
