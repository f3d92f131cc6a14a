// Trunk calls while a stranger floods the SIP port (issue 12). The real app as composed in
// production (calls, trunks, channels, media; default config, so `sip.strangers: drop`) with a trunk
// on 127.0.0.1; a trunk SipStack in this process places calls one after another: INVITE with SDP →
// 180 → 200 → ACK → BYE → 200. In alternate rounds another process (bench/sip-flooder.ts) floods
// the same SIP port from 127.0.0.9 at 20,000 OPTIONS per second. Loopback only.
// Reported per condition over all its rounds: call setup (INVITE → 200) and whole-call latency,
// p50 and p99, with the ratio flood/quiet; the flood rate reached and what the app dropped; this
// process's extra CPU per dropped datagram.
// BENCH_SIP_FLOOD_RATE=20000, BENCH_SIP_FLOOD_CALLS=100 (per round), BENCH_SIP_FLOOD_ROUNDS=10 override.
import { join } from "node:path";
import { Dialog } from "../src/sip/dialog.ts";
import { parseUri } from "../src/sip/message.ts";
import { SipStack } from "../src/sip/stack.ts";
import type { Endpoint } from "../src/sip/transport.ts";
import { startCallsApp, testApplicationYaml, type CallsApp } from "../test/helpers/callsApp.ts";
import { loopbackIsTrunk } from "../test/helpers/loopbackTrunks.ts";

const RATE = Number(process.env.BENCH_SIP_FLOOD_RATE ?? 20_000);
const CALLS = Number(process.env.BENCH_SIP_FLOOD_CALLS ?? 100);
const ROUNDS = Number(process.env.BENCH_SIP_FLOOD_ROUNDS ?? 10);
const ROUND_TIMEOUT_MS = 60_000;

interface Sample {
  setupMs: number;
  callMs: number;
}

function offer(rtpPort: number): string {
  return `v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio ${rtpPort} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n`;
}

async function oneCall(trunk: SipStack, dest: Endpoint, rtpPort: number): Promise<Sample> {
  const uri = parseUri(`sip:1000@127.0.0.1:${dest.port}`)!;
  const invite = trunk.createOutOfDialogRequest({
    method: "INVITE",
    uri,
    from: { uri: parseUri("sip:+15551110000@127.0.0.1")!, params: new Map() },
    to: { uri, params: new Map() },
    transport: "udp",
    body: offer(rtpPort),
    contentType: "application/sdp",
  });
  const t0 = performance.now();
  const tx = trunk.sendRequest(invite, dest);
  const outcome = await tx.outcome;
  const setupMs = performance.now() - t0;
  if (outcome.kind !== "final" || outcome.response.status !== 200) {
    throw new Error(`call failed: ${outcome.kind === "final" ? outcome.response.status : outcome.kind}`);
  }
  const dialog = Dialog.fromInvite2xx(trunk, invite, outcome.response, tx, dest);
  const bye = await dialog.bye();
  if (bye?.kind !== "final" || bye.response.status !== 200) throw new Error("BYE failed");
  return { setupMs, callMs: performance.now() - t0 };
}

async function metric(app: CallsApp, series: string): Promise<number> {
  const text = (await app.harness.call("GET", "/metrics")).text;
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return Number(line?.split(" ")[1] ?? 0);
}

async function startFlood(port: number): Promise<{ stop(): Promise<{ sent: number; seconds: number }> }> {
  const child = Bun.spawn([process.execPath, join(import.meta.dir, "sip-flooder.ts"), String(port), String(RATE), "127.0.0.9"], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  const reader = child.stdout.getReader();
  let text = "";
  while (!text.includes("ready\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("flooder exited early");
    text += new TextDecoder().decode(value);
  }
  return {
    async stop() {
      child.stdin.end();
      for (;;) {
        const { value, done } = await reader.read();
        if (value) text += new TextDecoder().decode(value);
        if (done) break;
      }
      await child.exited;
      return JSON.parse(text.slice(text.indexOf("{"))) as { sent: number; seconds: number };
    },
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

export async function run(): Promise<void> {
  const app = await startCallsApp(`
trunks:
  - { id: carrier, domain: 127.0.0.1, optionsIntervalSec: 0 }
${testApplicationYaml({ "1000": "lobby" })}
`);
  const trunk = new SipStack({ listen: [{ transport: "udp", host: "127.0.0.1", port: 0 }], isKnownSource: loopbackIsTrunk });
  // Where the app's RTP for the calls goes: a socket that reads and ignores it.
  const rtp = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  await trunk.start();
  const dest: Endpoint = { transport: "udp", address: "127.0.0.1", port: app.sipPort };
  const samples = { quiet: [] as Sample[], flood: [] as Sample[] };
  const cpu = { quiet: 0, flood: 0 };
  const flood = { sent: 0, seconds: 0 };
  try {
    // The flood alone, before any call (so no call's timers run meanwhile), in alternating seconds
    // with and without it: what one dropped datagram costs the app's process.
    let idleUs = 0;
    let busyUs = 0;
    let alone = 0;
    for (let i = 0; i < 5; i++) {
      const idle0 = process.cpuUsage();
      await Bun.sleep(1000);
      const idle = process.cpuUsage(idle0);
      idleUs += idle.user + idle.system;
      const before = await metric(app, 'trunkline_sip_dropped_total{reason="stranger"}');
      const flooder = await startFlood(app.sipPort);
      const busy0 = process.cpuUsage();
      await Bun.sleep(1000);
      const busy = process.cpuUsage(busy0);
      busyUs += busy.user + busy.system;
      await flooder.stop();
      alone += (await metric(app, 'trunkline_sip_dropped_total{reason="stranger"}')) - before;
    }
    console.log(
      `flood alone (before any call), 5 × 1 s against 5 × 1 s idle: ${alone} dropped, ${((busyUs - idleUs) / alone).toFixed(2)} µs of this process's CPU each ` +
        `(socket read included), ${(((busyUs - idleUs) / 5e6) * 100).toFixed(1)} % of a core`,
    );
    for (let i = 0; i < 50; i++) await oneCall(trunk, dest, rtp.port); // warm-up
    const droppedBefore = await metric(app, 'trunkline_sip_dropped_total{reason="stranger"}');
    for (let round = 0; round < ROUNDS; round++) {
      for (const condition of ["quiet", "flood"] as const) {
        const flooder = condition === "flood" ? await startFlood(app.sipPort) : undefined;
        const cpu0 = process.cpuUsage();
        const started = performance.now();
        for (let i = 0; i < CALLS && performance.now() - started < ROUND_TIMEOUT_MS; i++) {
          samples[condition].push(await oneCall(trunk, dest, rtp.port));
        }
        const used = process.cpuUsage(cpu0);
        cpu[condition] += used.user + used.system;
        if (flooder) {
          const result = await flooder.stop();
          flood.sent += result.sent;
          flood.seconds += result.seconds;
        }
      }
    }
    const dropped = (await metric(app, 'trunkline_sip_dropped_total{reason="stranger"}')) - droppedBefore;
    const report = (condition: "quiet" | "flood") => {
      const setup = samples[condition].map((s) => s.setupMs).sort((a, b) => a - b);
      const whole = samples[condition].map((s) => s.callMs).sort((a, b) => a - b);
      return { setup, whole, p50: percentile(setup, 50), p99: percentile(setup, 99), wholeP50: percentile(whole, 50), wholeP99: percentile(whole, 99) };
    };
    const quiet = report("quiet");
    const loud = report("flood");
    const line = (name: string, r: ReturnType<typeof report>, n: number) =>
      `${name}: ${n} calls, setup (INVITE→200) p50 ${r.p50.toFixed(2)} ms p99 ${r.p99.toFixed(2)} ms; whole call p50 ${r.wholeP50.toFixed(2)} ms p99 ${r.wholeP99.toFixed(2)} ms`;
    console.log(line("no flood", quiet, samples.quiet.length));
    console.log(line(`flood from 127.0.0.9`, loud, samples.flood.length));
    console.log(
      `ratio flood/quiet: setup p99 ${(loud.p99 / quiet.p99).toFixed(2)}×, whole-call p99 ${(loud.wholeP99 / quiet.wholeP99).toFixed(2)}× ` +
        `(side by side, ${ROUNDS} alternating rounds each)`,
    );
    console.log(
      `flood: ${(flood.sent / flood.seconds).toFixed(0)} datagrams/s reached (${flood.sent} sent), ${dropped} dropped unread by the app as a stranger's ` +
        `(CPU of this process per call: ${(cpu.quiet / samples.quiet.length).toFixed(0)} µs quiet, ${(cpu.flood / samples.flood.length).toFixed(0)} µs under the flood)`,
    );
  } finally {
    rtp.close();
    await trunk.stop();
    await app.close();
  }
}

if (import.meta.main) await run();
