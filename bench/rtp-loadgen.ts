// Load generator for bench/rtp.bench.ts, run as its own process so the benchmark measures only the
// media process. Plays N phones, PHONES_PER_SOCKET of them on each UDP socket (one socket's receive
// buffer overflows when 500 legs answer within a millisecond): every 20 ms one PCMU packet (a 400 Hz
// tone) to each target port, and records when each target's packets arrive.
//
// Protocol: prints {"ports":[P0, P1, …],"phonesPerSocket":K} once bound (phone i plays from ports[floor(i / K)]);
// reads one JSON line {targets, warmupMs, measureMs, talkers} on stdin; streams for warmupMs + measureMs;
// prints one JSON result line and exits.
import { encodeUlaw } from "../src/media/g711.ts";
import { RTP_HEADER_SIZE, writeRtpHeader } from "../src/media/rtp-packet.ts";

interface Command { targets: number[]; warmupMs: number; measureMs: number; talkers: "all" | "half" }

interface Arrivals { times: Float64Array; stamps: Uint32Array; count: number }

const PHONES_PER_SOCKET = 50;
const MAX_PHONES = 2000;
const FRAME_MS = 20;
/** Each target's arrivals, by the port its packets come from (ports < 65536: an array index, not a hash). */
const arrivals: (Arrivals | undefined)[] = new Array(65536);
let measuring = false;
let capacity = 0;

const handler = {
  data(_s: unknown, data: Uint8Array, port: number) {
    if (!measuring || data.length < RTP_HEADER_SIZE) return;
    const a = arrivals[port];
    if (!a || a.count >= capacity) return;
    a.times[a.count] = performance.now();
    a.stamps[a.count] = ((data[4]! << 24) | (data[5]! << 16) | (data[6]! << 8) | data[7]!) >>> 0;
    a.count++;
  },
};
const sockets = await Promise.all(
  Array.from({ length: MAX_PHONES / PHONES_PER_SOCKET }, () => Bun.udpSocket({ hostname: "127.0.0.1", binaryType: "uint8array", socket: handler })),
);
console.log(JSON.stringify({ ports: sockets.map((s) => s.port), phonesPerSocket: PHONES_PER_SOCKET }));

const line = await new Promise<string>((resolve) => {
  let buffered = "";
  process.stdin.on("data", (chunk: Buffer) => {
    buffered += chunk.toString();
    const nl = buffered.indexOf("\n");
    if (nl >= 0) resolve(buffered.slice(0, nl));
  });
});
const cmd = JSON.parse(line) as Command;
capacity = Math.ceil(cmd.measureMs / FRAME_MS) + 100;
// Written once before the clock runs, so the pages are in memory: first-touch page faults would
// otherwise bill the load generator while it measures.
for (const port of cmd.targets) arrivals[port] = { times: new Float64Array(capacity).fill(1), stamps: new Uint32Array(capacity).fill(1), count: 0 };

// 400 Hz repeats exactly every 20 ms at 8 kHz, so one encoded frame serves every packet.
const tone = new Int16Array(160);
for (let i = 0; i < 160; i++) tone[i] = Math.round(8000 * Math.sin((2 * Math.PI * 400 * i) / 8000));
const payload = encodeUlaw(tone);
const silence = encodeUlaw(new Int16Array(160));
// talkers "half": every second phone (the second party of each two-party channel) stays silent.
const packets = cmd.targets.map((_, i) => {
  const p = new Uint8Array(RTP_HEADER_SIZE + payload.length);
  p.set(cmd.talkers === "half" && i % 2 === 1 ? silence : payload, RTP_HEADER_SIZE);
  return p;
});
if (cmd.targets.length > MAX_PHONES) throw new Error(`at most ${MAX_PHONES} phones`);
const batches: (Uint8Array | number | string)[][] = sockets.map(() => []);
cmd.targets.forEach((port, i) => batches[Math.floor(i / PHONES_PER_SOCKET)]!.push(packets[i]!, port, "127.0.0.1"));

let seq = 0;
let sent = 0;
let senderLateTicks = 0;
const start = performance.now();
let measureCpu = process.cpuUsage();
let measureWall = start;
let deadline = start;
const endAt = start + cmd.warmupMs + cmd.measureMs;

function tick(): void {
  const now = performance.now();
  if (now - deadline > FRAME_MS) senderLateTicks++;
  for (let i = 0; i < packets.length; i++) {
    writeRtpHeader(packets[i]!, { payloadType: 0, sequenceNumber: seq & 0xffff, timestamp: seq * 160, ssrc: 0x10000 + i });
  }
  for (let k = 0; k < sockets.length; k++) if (batches[k]!.length > 0) sent += sockets[k]!.sendMany(batches[k]!);
  seq++;
  if (!measuring && now >= start + cmd.warmupMs) {
    measuring = true;
    measureCpu = process.cpuUsage();
    measureWall = now;
  }
  deadline += FRAME_MS;
  if (deadline < endAt) setTimeout(tick, Math.max(0, deadline - performance.now()));
  else setTimeout(finish, 200);
}

function finish(): void {
  measuring = false;
  const cpu = process.cpuUsage(measureCpu);
  const cpuShare = (cpu.user + cpu.system) / 1000 / (performance.now() - measureWall);
  // Lateness of each packet against its 20 ms media-timestamp schedule, relative to the earliest
  // packet of the preceding second (what an adapted jitter buffer would expect); "late" means more
  // than one frame (20 ms) behind. A gap in the timestamps (a skipped tick) is a lost frame, counted
  // separately, and does not make every later packet look late.
  let received = 0;
  let late = 0;
  let missing = 0;
  let maxLatenessMs = 0;
  let silentLegs = 0;
  // 20 ms stretches of wall time in which some packet arrived late: one stall makes many legs late at once.
  const lateStretches = new Set<number>();
  const window = 1000 / FRAME_MS;
  for (const port of cmd.targets) {
    const a = arrivals[port]!;
    if (a.count === 0) { silentLegs++; continue; }
    received += a.count;
    const offsets = new Float64Array(a.count);
    for (let i = 0; i < a.count; i++) {
      const mediaMs = ((a.stamps[i]! - a.stamps[0]!) >>> 0) / 8;
      offsets[i] = a.times[i]! - a.times[0]! - mediaMs;
      if (i > 0) missing += Math.max(0, Math.round(((a.stamps[i]! - a.stamps[i - 1]!) >>> 0) / 160) - 1);
    }
    for (let i = 0; i < a.count; i++) {
      let best = offsets[i]!;
      for (let j = Math.max(0, i - window); j < i; j++) if (offsets[j]! < best) best = offsets[j]!;
      const lateness = offsets[i]! - best;
      if (lateness > FRAME_MS) {
        late++;
        lateStretches.add(Math.floor((a.times[i]! - measureWall) / FRAME_MS));
      }
      if (lateness > maxLatenessMs) maxLatenessMs = lateness;
    }
  }
  const expected = (cmd.targets.length * cmd.measureMs) / FRAME_MS;
  console.log(JSON.stringify({ sent, received, expected, late, lateStretches: lateStretches.size, missing, maxLatenessMs, silentLegs, senderLateTicks, cpuShare }));
  for (const s of sockets) s.close();
  process.exit(0);
}

setTimeout(tick, 0);
