import { readFileSync } from "node:fs";
import { join } from "node:path";
import { heapStats } from "bun:jsc";
import { createPhoneLeg } from "../src/media/leg.ts";
import { Mixer } from "../src/media/mixer.ts";
import { RtpPortAllocator } from "../src/media/ports.ts";
import { WorkerUdpIo } from "../src/media/worker-udp-io.ts";
import { inThreadUdpIo } from "../src/media/udp-io.ts";
const rss = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))![1]);
const mode = process.argv[2] ?? "worker";
const flow = process.argv[3] !== "noflow";
const io = mode === "worker" ? new WorkerUdpIo() : inThreadUdpIo;
const allocator = new RtpPortAllocator({ min: 30000, max: 39999 });
const loadgen = Bun.spawn([process.execPath, join(import.meta.dir, "rtp-loadgen.ts")], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
const reader = loadgen.stdout.getReader();
const first = new TextDecoder().decode((await reader.read()).value);
const { ports, phonesPerSocket } = JSON.parse(first.split("\n")[0]!);
const offer = (port: number) => ["v=0", "o=loadgen 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0", `m=audio ${port} RTP/AVP 0 101`, "a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000", "a=sendrecv", ""].join("\r\n");
async function make(n: number, mixers: Mixer[], legs: any[]) {
  for (let i = 0; i < n; i++) {
    if (i % 2 === 0) mixers.push(new Mixer());
    const leg: any = await createPhoneLeg({ allocator, bindAddress: "127.0.0.1", advertisedAddress: "127.0.0.1", mixer: mixers.at(-1)!, participantId: `leg${i}`, codecPreferences: ["PCMU"], mediaTimeoutSec: 0, io });
    leg.answer(offer(ports[Math.floor(i / phonesPerSocket)]));
    legs.push(leg);
  }
}
{ const m: Mixer[] = []; const l: any[] = []; await make(20, m, l); await Bun.sleep(200); l.forEach((x) => x.close()); m.forEach((x) => x.close()); }
await Bun.sleep(100); Bun.gc(true);
const h = () => { const s = heapStats(); return `heap ${(s.heapSize/1024/1024).toFixed(1)} cap ${(s.heapCapacity/1024/1024).toFixed(1)} extra ${(s.extraMemorySize/1024/1024).toFixed(1)} MiB`; };
const r0 = rss(); console.log("before", r0 >> 10, "MiB", h());
const mixers: Mixer[] = []; const legs: any[] = [];
await make(1000, mixers, legs);
Bun.gc(true); console.log("legs made", (rss() - r0) / 1000, "KiB/leg", h());
if (flow) { loadgen.stdin.write(JSON.stringify({ targets: legs.map((l) => l.localPort), warmupMs: 0, measureMs: 6000, talkers: "all" }) + "\n"); loadgen.stdin.flush(); }
let t1: Record<string, number> = {};
for (let s = 1; s <= 5; s++) { await Bun.sleep(1000); Bun.gc(true); console.log(`t=${s}s`, (rss() - r0) / 1000, "KiB/leg", h()); if (s === 1) t1 = heapStats().objectTypeCounts; }
const t5 = heapStats().objectTypeCounts;
console.log(Object.entries(t5).map(([k, v]) => [k, v - (t1[k] ?? 0)] as [string, number]).filter(([, v]) => Math.abs(v) > 500).sort((a, b) => b[1] - a[1]));
const sum: Record<string, number> = {};
for (const l of legs) for (const [k, v] of Object.entries(l.stats().jitter)) sum[k] = (sum[k] ?? 0) + (v as number);
console.log("jitter totals", JSON.stringify(sum));
const rtpSum: Record<string, number> = {};
for (const l of legs) for (const [k, v] of Object.entries(l.stats().rtp)) if (typeof v === "number") rtpSum[k] = (rtpSum[k] ?? 0) + v;
console.log("rtp totals", JSON.stringify(rtpSum));
const m = process.memoryUsage(); console.log(JSON.stringify(m));
process.exit(0);
