// CPU per leg-frame of a PCMU phone leg with real loopback sockets, measured by CPU time and so
// independent of how busy the machine is: everything on this one thread, the mixers on a manual
// clock, each 20 ms frame run as soon as the last one is through (no timers, no 20 ms waits).
// Per frame: the phones (50 per socket, sendMany) send one packet to each leg; the legs receive
// (source learning, parse, jitter buffer); one mixer tick per channel (decode, mix, encode); each
// leg sends one packet back; the phones receive them. Two parties per channel, both talking: mixed
// (media.relayPairs off), and relayed (the default: each leg's packets go straight on to the other,
// relay.ts). Beside them, frame by frame in turn, the same traffic on bare sockets (each receives its
// packet and sends a fixed one per frame): the floor of socket I/O on this machine. The gap between
// a path and the sockets is what it costs above them; the phones' own sending and receiving are in all.
// Interleaving frame by frame keeps the ratio steady on a busy machine (≈ 1 % between runs where
// separate rounds differed by 30 %). BENCH_PATH_LEGS (default 400), BENCH_PATH_FRAMES (default 1000),
// BENCH_PATH_KINDS (default mixed,relayed,bare; one of them alone to profile it: the others report 0).
import { setLogLevel } from "../src/log.ts";
import { encodeUlaw } from "../src/media/g711.ts";
import { createPhoneLeg, type PhoneLeg } from "../src/media/leg.ts";
import { Mixer } from "../src/media/mixer.ts";
import { RtpPortAllocator } from "../src/media/ports.ts";
import { RTP_HEADER_SIZE, writeRtpHeader } from "../src/media/rtp-packet.ts";
import { ManualTicker } from "../src/media/ticker.ts";
import { reportGoal } from "./goals.ts";

const PHONES_PER_SOCKET = 50;

interface Setup {
  /** Runs the legs' side of one frame: what arrived is in; send one packet per leg. */
  tick(): void;
  ports: number[];
  close(): void;
}

const nextLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

async function phoneLegs(count: number, phonePort: (i: number) => number, relayPairs: boolean): Promise<Setup> {
  const ticker = new ManualTicker();
  const allocator = new RtpPortAllocator({ min: 20000, max: 29999 });
  const mixers: Mixer[] = [];
  const legs: PhoneLeg[] = [];
  for (let i = 0; i < count; i++) {
    if (i % 2 === 0) mixers.push(new Mixer({ ticker, relayPairs }));
    const leg = await createPhoneLeg({
      allocator, bindAddress: "127.0.0.1", advertisedAddress: "127.0.0.1", mixer: mixers.at(-1)!, participantId: `leg${i}`,
      codecPreferences: ["PCMU"], mediaTimeoutSec: 0,
    });
    if ("error" in leg) throw new Error(leg.error);
    const offer = ["v=0", "o=phone 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0", `m=audio ${phonePort(i)} RTP/AVP 0`, "a=rtpmap:0 PCMU/8000", "a=sendrecv", ""].join("\r\n");
    const answered = leg.answer(offer);
    if (!answered.ok) throw new Error(answered.reason);
    legs.push(leg);
  }
  return {
    tick: () => ticker.tick(),
    ports: legs.map((l) => l.localPort),
    close() {
      for (const leg of legs) leg.close();
      for (const mixer of mixers) mixer.close();
    },
  };
}

async function bareSockets(count: number, phonePort: (i: number) => number): Promise<Setup> {
  const packet = new Uint8Array(RTP_HEADER_SIZE + 160);
  const sockets = await Promise.all(Array.from({ length: count }, () => Bun.udpSocket({ hostname: "127.0.0.1", binaryType: "uint8array", socket: { data() {} } })));
  return {
    tick() {
      for (let i = 0; i < count; i++) sockets[i]!.send(packet, phonePort(i), "127.0.0.1");
    },
    ports: sockets.map((s) => s.port),
    close() {
      for (const s of sockets) s.close();
    },
  };
}

/**
 * Binds `count` legs (or bare sockets) and their phones; returns one frame's step: the phones send
 * one packet to each, the legs' side runs its tick, and the step ends when the phones have them back.
 */
type Kind = "mixed" | "relayed" | "bare";
const kinds = (process.env.BENCH_PATH_KINDS ?? "mixed,relayed,bare").split(",") as Kind[];

async function prepare(count: number, kind: Kind): Promise<{ step(): Promise<void>; close(): void; lost(): number }> {
  let heard = 0;
  let frame = 0;
  const phones = await Promise.all(Array.from({ length: Math.ceil(count / PHONES_PER_SOCKET) }, () =>
    Bun.udpSocket({ hostname: "127.0.0.1", binaryType: "uint8array", socket: { data() { heard++; } } })));
  const phonePort = (i: number) => phones[Math.floor(i / PHONES_PER_SOCKET)]!.port;
  const setup = kind === "bare" ? await bareSockets(count, phonePort) : await phoneLegs(count, phonePort, kind === "relayed");
  const tone = new Int16Array(160).map((_, i) => Math.round(8000 * Math.sin((2 * Math.PI * 400 * i) / 8000)));
  const payload = encodeUlaw(tone);
  const packets = setup.ports.map(() => {
    const p = new Uint8Array(RTP_HEADER_SIZE + payload.length);
    p.set(payload, RTP_HEADER_SIZE);
    return p;
  });
  const batches = phones.map(() => [] as (Uint8Array | number | string)[]);
  setup.ports.forEach((port, i) => batches[Math.floor(i / PHONES_PER_SOCKET)]!.push(packets[i]!, port, "127.0.0.1"));
  return {
    async step() {
      // Relayed packets may be back before the tick.
      const expected = heard + count;
      for (let i = 0; i < count; i++) writeRtpHeader(packets[i]!, { payloadType: 0, sequenceNumber: frame & 0xffff, timestamp: frame * 160, ssrc: 0x1000 + i });
      for (let k = 0; k < phones.length; k++) phones[k]!.sendMany(batches[k]!);
      // The legs' sockets are read on the next turns of the event loop.
      for (let k = 0; k < 3; k++) await nextLoop();
      setup.tick();
      for (let k = 0; k < 200 && heard < expected; k++) await nextLoop();
      frame++;
    },
    lost: () => count * frame - heard,
    close() {
      setup.close();
      for (const p of phones) p.close();
    },
  };
}

export async function run(): Promise<void> {
  setLogLevel("warn");
  const legs = Number(process.env.BENCH_PATH_LEGS ?? 400);
  const frames = Number(process.env.BENCH_PATH_FRAMES ?? 1000);
  const setups = new Map<Kind, Awaited<ReturnType<typeof prepare>>>();
  for (const kind of kinds) setups.set(kind, await prepare(legs, kind));
  // Warm-up: jitter buffers fill, sources are learned, the JIT settles.
  for (let f = 0; f < 100; f++) for (const kind of kinds) await setups.get(kind)!.step();
  // Frame by frame, rotating which goes first, so all see the same machine.
  const cpu: Record<Kind, number> = { mixed: 0, relayed: 0, bare: 0 };
  for (let f = 0; f < frames; f++) {
    for (let k = 0; k < kinds.length; k++) {
      const kind = kinds[(f + k) % kinds.length]!;
      const before = process.cpuUsage();
      await setups.get(kind)!.step();
      const used = process.cpuUsage(before);
      cpu[kind] += used.user + used.system;
    }
  }
  for (const [kind, setup] of setups) {
    const lost = setup.lost();
    setup.close();
    if (lost > legs * (frames + 100) * 0.01) throw new Error(`${kind}: ${lost} packets did not come back`);
  }
  const perLegFrame = (kind: Kind) => cpu[kind] / (legs * frames);
  const [m, r, b] = [perLegFrame("mixed"), perLegFrame("relayed"), perLegFrame("bare")];
  console.log(`${legs} PCMU legs, real loopback sockets, one thread, phones included, ${frames} frames each, interleaved (CPU per leg-frame): mixed ${m.toFixed(1)} µs, relayed ${r.toFixed(1)} µs, bare sockets ${b.toFixed(1)} µs; above the sockets: mixed ${(m - b).toFixed(1)} µs, relayed ${(r - b).toFixed(1)} µs`);
  reportGoal({
    goal: "PCMU leg-frame with real sockets, CPU, phones included: two-party channel mixed vs relayed vs bare sockets",
    figure: `${m.toFixed(1)} vs ${r.toFixed(1)} vs ${b.toFixed(1)} µs (relayed/mixed ${(r / m).toFixed(2)})`,
    anchor: "the media work above the socket floor (media path without sockets ≈ 4.5 µs)",
  });
}

if (import.meta.main) await run();
