// A phone leg's setup and teardown through a media worker, as each call of the calls-per-second
// bench makes one (issue 16, goal 1): the bind round trip (the worker binds the RTP/RTCP pair and
// joins the channel's mixer), the SDP answer (negotiation here, `configure` to the worker), the
// signalling address, and the close round trip (RTCP BYE, sockets closed, port released). No RTP
// flows: the legs' per-packet path is the rtp and media-workers benches' business.
// CPU per leg of the main thread (CLOCK_THREAD_CPUTIME_ID) and of the whole process (the worker
// included), fastest of several batches: legs one after another (each message wakes an idle thread,
// the worst case), then 20 at a time (calls arriving together, as under load). Compare two commits
// by running this file from each tree in turn (README "Calls per second").
// The process holds a bound UDP socket throughout, as the node holds its SIP socket: the media
// worker is unref'd, and a Bun thread that awaits an unref'd worker with nothing else keeping its
// loop alive polls instead of sleeping (CPU ≈ the wait's wall clock), which no node does.
//
// BENCH_LEG_SETUP_LEGS=1000 legs per batch; BENCH_LEG_SETUP_CONCURRENT=1,20 the concurrencies.
import { createLogger, setLogLevel } from "../src/log.ts";
import { HostedLeg } from "../src/media/hosted-leg.ts";
import { MediaPlane } from "../src/media/media-plane.ts";
import { RtpPortAllocator } from "../src/media/ports.ts";
import { threadCpuUs } from "./cpu-time.ts";

const LEGS = Number(process.env.BENCH_LEG_SETUP_LEGS ?? 1000);
const CONCURRENCIES = (process.env.BENCH_LEG_SETUP_CONCURRENT ?? "1,20").split(",").map(Number);
const BATCHES = 7;
const CHANNELS = 100;

function processCpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** Tells when the last reserved pair has been released: every close answered, without polling. */
class WatchedAllocator extends RtpPortAllocator {
  private idle: (() => void) | undefined;

  override release(port: number): void {
    super.release(port);
    if (this.used === 0) this.idle?.();
  }

  released(): Promise<void> {
    return this.used === 0 ? Promise.resolve() : new Promise((resolve) => (this.idle = resolve));
  }
}

const OFFER = (port: number) =>
  `v=0\r\no=- 1 1 IN IP4 127.0.0.11\r\ns=-\r\nc=IN IP4 127.0.0.11\r\nt=0 0\r\nm=audio ${port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n`;

export async function run(): Promise<void> {
  setLogLevel("warn");
  const sipSocketStandIn = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
  const plane = new MediaPlane({ workers: 1 });
  const channels = Array.from({ length: CHANNELS }, (_, i) => plane.open(`bench/ch-${i}`));
  const allocator = new WatchedAllocator({ min: 40000, max: 49999 });
  const log = createLogger("bench");
  let next = 0;
  async function oneLeg(): Promise<void> {
    const n = next++;
    const leg = await HostedLeg.create({ channel: channels[n % CHANNELS]!, allocator, bindAddress: "127.0.0.1", advertisedAddress: "127.0.0.1", participantId: `leg-${n}`, codecPreferences: ["PCMU"], log });
    if ("error" in leg) throw new Error(leg.error);
    // The offer names a port nobody reads; no RTP is sent without a tick's audio to send.
    const answer = leg.answer(OFFER(6000 + (n % 1000) * 2));
    if (!answer.ok) throw new Error(answer.reason);
    leg.setSignallingAddress("127.0.0.11");
    leg.close();
  }
  async function batch(concurrent: number): Promise<{ main: number; all: number }> {
    const main0 = threadCpuUs();
    const all0 = processCpuUs();
    for (let done = 0; done < LEGS; done += concurrent) await Promise.all(Array.from({ length: concurrent }, oneLeg));
    // Every close has been answered (the ports are free again) before the clock stops.
    await allocator.released();
    return { main: (threadCpuUs() - main0) / LEGS, all: (processCpuUs() - all0) / LEGS };
  }
  await batch(CONCURRENCIES[0]!); // warm-up
  for (const concurrent of CONCURRENCIES) {
    let best = { main: Infinity, all: Infinity };
    for (let b = 0; b < BATCHES; b++) {
      const r = await batch(concurrent);
      if (r.main < best.main) best = r;
    }
    console.log(`a phone leg set up and closed through a media worker, ${concurrent} at a time (${LEGS} legs per batch, fastest of ${BATCHES}): main thread ${best.main.toFixed(1)} µs, all threads ${best.all.toFixed(1)} µs per leg`);
  }
  for (const channel of channels) channel.close();
  plane.close();
  sipSocketStandIn.close();
}

if (import.meta.main) await run();
