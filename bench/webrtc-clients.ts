// Child process of bench/webrtc.bench.ts: N werift Opus clients joining channels of a Trunkline
// server, speakers sending speech at 50 packets/s (each from another point of the recorded speech,
// so the voices of a channel overlap like people talking at once), the others Opus-encoded silence:
// 50 packets/s, or one packet per 400 ms as a browser does with DTX (which Trunkline's answer asks for).
// With `audioLevels` each client offers RFC 6464 levels and tags every packet with its level, as a
// browser does (measured on the decoded speech like libwebrtc measures what it encodes).
// Prints "ready" once every client is connected and sending, then one JSON line of receive stats.
import { setPriority } from "node:os";
import { RtpHeader, RtpPacket } from "werift";
import { codecByName } from "../src/media/codec.ts";
import { signClientToken } from "../src/webrtc/tokens.ts";
import { audioLevelOf, createOfferingPeer, type OfferingPeer } from "../test/helpers/weriftClient.ts";
import { speechPacketCount, speechPackets } from "./speech.ts";

interface Plan {
  url: string;
  applicationId: string;
  secret: string;
  channels: number;
  perChannel: number;
  speakersPerChannel: number;
  silence: "dtx" | "continuous";
  seconds: number;
  audioLevels: boolean;
}

const plan = JSON.parse(process.argv[2] ?? "{}") as Plan;
const opus = codecByName("opus")!;

/** One second of Opus-encoded digital silence, looped. */
const silenceEncoder = opus.createEncoder();
const silence = Array.from({ length: 50 }, () => silenceEncoder.encode(new Int16Array(960)));
const levelDecoder = opus.createDecoder();
const speechLevels = speechPackets(0, speechPacketCount).map((p) => audioLevelOf(levelDecoder.decode(p)));
const silenceLevel = 127;

interface BenchClient {
  peer: OfferingPeer;
  payloads: Uint8Array[];
  /** −dBov of each payload (RFC 6464), when levels are sent. */
  levels: number[] | undefined;
  /** Frames per packet actually sent: 1, or 20 for a silent DTX client. */
  every: number;
  sequence: number;
  received: number;
}

async function joinOne(channel: number, index: number): Promise<BenchClient> {
  const peer = createOfferingPeer("opus", { audioLevels: plan.audioLevels });
  const token = signClientToken(
    { applicationId: plan.applicationId, channelId: `bench-${channel}`, clientId: `c${channel}-${index}`, roles: [], exp: Math.floor(Date.now() / 1000) + 3600 },
    plan.secret,
  );
  const res = await fetch(`${plan.url}/api/v1/client/join`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ sdp: await peer.offer() }),
  });
  if (!res.ok) throw new Error(`join failed: ${res.status} ${await res.text()}`);
  const speaker = index < plan.speakersPerChannel;
  const every = speaker || plan.silence === "continuous" ? 1 : 20;
  const offset = (index * 40 + channel * 7) % speechPacketCount;
  const payloads = speaker ? speechPackets(offset, speechPacketCount) : silence;
  const levels = !plan.audioLevels ? undefined : speaker ? payloads.map((_, i) => speechLevels[(offset + i) % speechPacketCount]!) : payloads.map(() => silenceLevel);
  const client: BenchClient = { peer, payloads, levels, every, sequence: 0, received: 0 };
  peer.transceiver.onTrack.subscribe((track) => track.onReceiveRtp.subscribe(() => client.received++));
  await peer.accept(((await res.json()) as { sdp: string }).sdp);
  await peer.connected(60_000); // as long as the server waits (a busy machine is slow at 100 DTLS handshakes)
  return client;
}

const clients: BenchClient[] = [];
for (let channel = 0; channel < plan.channels; channel++) {
  clients.push(...(await Promise.all(Array.from({ length: plan.perChannel }, (_, i) => joinOne(channel, i)))));
}
// Once everyone is in, the load generator yields the CPU to the server it measures (small machines).
setPriority(10);

// One drift-free clock for all clients: every due frame is sent, whatever the timer jitter.
const started = performance.now();
let sent = 0;
const timer = setInterval(() => {
  const due = Math.floor((performance.now() - started) / 20);
  for (; sent < due; sent++) {
    for (const c of clients) {
      if (sent % c.every !== 0) continue;
      const at = sent % c.payloads.length;
      const levelExtension = c.levels && c.peer.audioLevelExtension(c.levels[at]!);
      const header = new RtpHeader({ sequenceNumber: c.sequence & 0xffff, timestamp: (sent * 960) >>> 0, ...(levelExtension ? { extension: true, extensions: [levelExtension] } : {}) });
      const payload = c.payloads[at]!;
      c.sequence++;
      c.peer.transceiver.sender.sendRtp(new RtpPacket(header, Buffer.from(payload))).catch(() => {});
    }
  }
}, 5);

await Bun.sleep(1000);
for (const c of clients) c.received = 0;
console.log("ready");
await Bun.sleep(plan.seconds * 1000);
const rates = clients.map((c) => c.received / plan.seconds).sort((a, b) => a - b);
console.log(JSON.stringify({ minPacketsPerSecond: rates[0], medianPacketsPerSecond: rates[Math.floor(rates.length / 2)] }));
clearInterval(timer);
await Promise.all(clients.map((c) => c.peer.pc.close()));
process.exit(0);
