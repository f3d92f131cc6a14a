// Media workers (src/media/media-plane.ts, hosted-leg.ts): a phone leg's media runs in the worker
// hosting its channel; a move to a channel on another worker re-homes it with the RTP stream
// carried on (same SSRC, sequence and timestamps: the far end sees no restart); a channel's WebRTC
// clients run in its worker beside its phone legs. Real sockets, real RTP and werift peers on loopback.
import { afterEach, expect, test } from "bun:test";
import { createLogger } from "../../src/log.ts";
import { HostedLeg } from "../../src/media/hosted-leg.ts";
import { MediaPlane, type ChannelMedia } from "../../src/media/media-plane.ts";
import { RtpPortAllocator } from "../../src/media/ports.ts";
import { serializeRtp } from "../../src/media/rtp-packet.ts";
import { workerTotal } from "../../src/media/worker-totals.ts";
import type { ClientJoinOptions } from "../../src/webrtc/client-host.ts";
import { carriesTone, clientHears, clientHearsUntil, peerHears } from "../helpers/hearing.ts";
import { metricSample } from "../helpers/metricSample.ts";
import { startRtpPeer, type RtpPeer } from "../helpers/rtpPeer.ts";
import { until } from "../helpers/until.ts";
import { createTestClient } from "../helpers/weriftClient.ts";

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const fn of cleanup.splice(0).reverse()) fn();
});

const allocator = new RtpPortAllocator({ min: 20000, max: 59999 });

function offer(port: number): string {
  return `v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio ${port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n`;
}

/** A plane of one media worker and a channel "room" on it, both closed after the test. */
function roomOnOneWorker(): { plane: MediaPlane; room: ChannelMedia } {
  const plane = new MediaPlane({ workers: 1 });
  cleanup.push(() => plane.close());
  const room = plane.open("room");
  cleanup.push(() => room.close());
  return { plane, room };
}

/** A phone (RTP peer sending `toneHz`) whose leg joins `channel`. */
async function phone(channel: ChannelMedia, id: string, toneHz: number, o: { ports?: RtpPortAllocator; mediaTimeoutSec?: number } = {}): Promise<{ leg: HostedLeg; peer: RtpPeer }> {
  const peer = await startRtpPeer(toneHz);
  cleanup.push(() => peer.close());
  const leg = await HostedLeg.create({ channel, allocator: o.ports ?? allocator, mediaTimeoutSec: o.mediaTimeoutSec, advertisedAddress: "127.0.0.1", bindAddress: "127.0.0.1", participantId: id, codecPreferences: ["PCMU"], log: createLogger("test") });
  if ("error" in leg) throw new Error(leg.error);
  cleanup.push(() => leg.close());
  const answer = leg.answer(offer(peer.port));
  expect(answer.ok).toBe(true);
  peer.sendTo("127.0.0.1", leg.localPort);
  return { leg, peer };
}

test("channels spread over the workers; a leg moved to another worker's channel is heard there and its stream carries on", async () => {
  const plane = new MediaPlane({ workers: 2 });
  cleanup.push(() => plane.close());
  const lobby = plane.open("lobby");
  const annex = plane.open("annex");
  cleanup.push(() => lobby.close(), () => annex.close());
  expect(lobby.host.isWorker && annex.host.isWorker).toBe(true);
  expect(lobby.host).not.toBe(annex.host);

  const alice = await phone(lobby, "alice", 440);
  const bob = await phone(lobby, "bob", 700);
  const carol = await phone(annex, "carol", 1000);
  // Each hears its own channel: statistics come from the workers' shared memory.
  await until(() => bob.peer.toneShare(440) > 0.5 && alice.peer.toneShare(700) > 0.5 && alice.leg.stats().packetsReceived > 25);
  const before = alice.leg.stats();
  expect(before.packetsSent).toBeGreaterThan(0);

  alice.leg.moveTo(annex);
  expect(lobby.members.has("alice")).toBe(false);
  await until(() => carol.peer.toneShare(440) > 0.5 && alice.peer.toneShare(1000) > 0.5);
  // One stream from start to end: same SSRC, sequence numbers and timestamps following each other.
  expect(alice.peer.streamRestarts).toBe(0);
  // Counts go on from where the first worker left them.
  await until(() => alice.leg.stats().packetsSent > before.packetsSent + 10);
  expect(alice.leg.stats().packetsReceived).toBeGreaterThanOrEqual(before.packetsReceived);
  expect(annex.members.has("alice")).toBe(true);
  expect(annex.host.legs).toBe(2);
  expect(lobby.host.legs).toBe(1);
});

test("the RTP packets metric adds what the workers' legs sent and accepted", async () => {
  const packets = (direction: "sent" | "received") => metricSample(`trunkline_rtp_packets_total{direction="${direction}"}`) ?? NaN;
  const sentBefore = packets("sent");
  const receivedBefore = packets("received");
  const { room } = roomOnOneWorker();
  expect(room.host.isWorker).toBe(true);
  const alice = await phone(room, "alice", 440);
  const bob = await phone(room, "bob", 700);
  await until(() => alice.leg.stats().packetsReceived > 25 && bob.leg.stats().packetsReceived > 25);
  // The worker writes its totals after its legs' statistics, in the same turn.
  const legs = (field: "packetsSent" | "packetsReceived") => alice.leg.stats()[field] + bob.leg.stats()[field];
  await until(() => packets("sent") - sentBefore >= legs("packetsSent") && packets("received") - receivedBefore >= legs("packetsReceived"), {
    what: () => ({ sent: packets("sent") - sentBefore, received: packets("received") - receivedBefore, legsSent: legs("packetsSent"), legsReceived: legs("packetsReceived") }),
  });
});

test("a worker's leg counts the loss its peer's stream had, the frames it concealed and a packet that came too late", async () => {
  const { room } = roomOnOneWorker();
  const sender = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
  cleanup.push(() => sender.close());
  const leg = await HostedLeg.create({ channel: room, allocator, advertisedAddress: "127.0.0.1", bindAddress: "127.0.0.1", participantId: "lossy", codecPreferences: ["PCMU"], log: createLogger("test") });
  if ("error" in leg) throw new Error(leg.error);
  cleanup.push(() => leg.close());
  expect(leg.answer(offer(sender.port)).ok).toBe(true);
  const packet = (seq: number) => serializeRtp({ payloadType: 0, sequenceNumber: seq, timestamp: seq * 160, ssrc: 0x5151 }, new Uint8Array(160).fill(0xff));
  // A phone's pace, every fifth packet missing.
  let seq = 0;
  const pacer = setInterval(() => {
    if (seq % 5 !== 4) sender.send(packet(seq), leg.localPort, "127.0.0.1");
    seq++;
  }, 20);
  cleanup.push(() => clearInterval(pacer));
  await until(() => leg.stats().packetsLost >= 4 && leg.stats().framesConcealed >= 4, { what: () => leg.stats() });
  clearInterval(pacer);
  // One of the missing packets, long after its turn: late, not played.
  sender.send(packet(4), leg.localPort, "127.0.0.1");
  await until(() => leg.stats().latePackets === 1, { what: () => leg.stats() });
  expect(leg.stats().packetsReceived).toBeGreaterThanOrEqual(16);
});

test("a leg takes a pair its worker bound ahead, without waiting for the worker, and its media flows; spares close when legs stop coming", async () => {
  const { room } = roomOnOneWorker();
  const ports = new RtpPortAllocator({ min: 20000, max: 59999 });
  const idleSpares = () => metricSample("trunkline_rtp_spare_pairs") ?? NaN;
  // The first leg's pair is bound on demand; the worker binds one ahead for the next.
  const alice = await phone(room, "alice", 440, { ports });
  await until(() => idleSpares() === 1);
  // Taken at once: the worker's answers come only on a later turn of the event loop, after this.
  const bob = await phone(room, "bob", 700, { ports });
  expect(idleSpares()).toBe(0);
  await until(() => bob.peer.toneShare(440) > 0.5 && alice.peer.toneShare(700) > 0.5);
  expect(bob.leg.stats().packetsReceived).toBeGreaterThan(0);
  expect(bob.leg.stats().strangerPackets).toBe(0);
  alice.leg.close();
  bob.leg.close();
  await until(() => ports.used === 0 && idleSpares() === 0, { timeoutMs: 10_000 });
});

test("a WebRTC client and phone legs share the channel's worker: offer out, answer and its close back, tones as data", async () => {
  const { plane, room } = roomOnOneWorker();
  const alice = await phone(room, "alice", 440);
  const browser = createTestClient("opus");
  cleanup.push(() => void browser.close());
  const options: ClientJoinOptions = { network: { hostAddresses: ["127.0.0.1"] }, timeouts: { connectMs: 10_000, mediaMs: 2_000 } };
  const joined = await room.joinClient("browser", await browser.offer(), options);
  if (!joined.ok) throw new Error(joined.message);
  const { client } = joined;
  expect(client.codec).toBe("opus");
  await browser.accept(joined.sdp);
  await browser.connected();
  expect(room.host.isWorker).toBe(true);
  expect(plane.workers[0]!.legs).toBe(2);
  // Both directions are mixed in the worker: the browser hears the phone and the phone the browser.
  browser.startSending(1000);
  await clientHears(browser, 440);
  await peerHears(alice.peer, 1000);
  // A tone crosses as its cadence: the browser alone hears it over the mix (the phone, louder, too).
  client.playTone({ cadence: { frequencies: [2000], onMs: 1000, offMs: 0 } });
  await clientHears(browser, 2000, { share: 0.1 });
  expect(alice.peer.toneShare(2000, 400)).toBeLessThan(0.01);
  client.playTone(undefined);
  await clientHearsUntil(browser, (pcm, rate) => carriesTone(pcm, rate, 440) && !carriesTone(pcm, rate, 2000, 0.01));
  // The browser vanishes (this test client sends no DTLS close_notify): the worker's peer tells this thread why.
  const reasons: string[] = [];
  client.onClosed = (reason) => void reasons.push(reason);
  await browser.close();
  await until(() => reasons.length === 1);
  expect(reasons).toEqual(["media-timeout"]);
  client.leave();
  expect(plane.workers[0]!.legs).toBe(1);
});

test("an offer the worker's peer cannot answer is refused with the reason; the channel keeps its worker", async () => {
  const { plane, room } = roomOnOneWorker();
  const options: ClientJoinOptions = { network: { hostAddresses: ["127.0.0.1"] }, timeouts: { connectMs: 10_000, mediaMs: 5_000 } };
  const refused = await room.joinClient("browser", "v=0\r\ns=-\r\n", options);
  expect(refused).toEqual({ ok: false, message: "the offer needs an m=audio section with UDP/TLS/RTP/SAVPF" });
  expect(room.host.isWorker).toBe(true);
  expect(plane.workers[0]!.legs).toBe(0);
});

test("a worker that dies ends its WebRTC clients (media-worker-exited) and refuses new ones as unavailable, not as a bad offer; a fresh worker takes its place", async () => {
  const { plane, room } = roomOnOneWorker();
  const browser = createTestClient("opus");
  cleanup.push(() => void browser.close());
  const options: ClientJoinOptions = { network: { hostAddresses: ["127.0.0.1"] }, timeouts: { connectMs: 10_000, mediaMs: 5_000 } };
  const joined = await room.joinClient("browser", await browser.offer(), options);
  if (!joined.ok) throw new Error(joined.message);
  const reasons: string[] = [];
  joined.client.onClosed = (reason) => void reasons.push(reason);
  // The worker ends as if it had crashed: terminated under the host, which did not ask for it.
  (room.host as unknown as { worker: Worker }).worker.terminate();
  await until(() => room.host.failed);
  expect(reasons).toEqual(["media-worker-exited"]);
  const late = createTestClient("opus");
  cleanup.push(() => void late.close());
  const refused = await room.joinClient("late", await late.offer(), options);
  expect(refused).toEqual({ ok: false, message: "the channel's media host is gone (media-worker-exited)", unavailable: true });
  // The channel, once closed, opens again on the dead worker's successor, whose clients are heard.
  const dead = room.host;
  room.close();
  const again = plane.open("room");
  cleanup.push(() => again.close());
  expect(again.host).toBe(plane.workers[0]!);
  expect(again.host).not.toBe(dead);
  expect(again.host.failed).toBe(false);
  const next = createTestClient("opus");
  cleanup.push(() => void next.close());
  const rejoined = await again.joinClient("next", await next.offer(), options);
  if (!rejoined.ok) throw new Error(rejoined.message);
  cleanup.push(() => rejoined.client.leave());
  await next.accept(rejoined.sdp);
  await next.connected();
});

test("a phone leg whose worker dies has lost its media (not an RTP timeout); the worker's counters never go back", async () => {
  const { plane, room } = roomOnOneWorker();
  const { leg } = await phone(room, "alice", 440, { mediaTimeoutSec: 30 });
  const lost: string[] = [];
  let timedOut = false;
  leg.onLost = (error) => void lost.push(error);
  leg.onTimeout = () => void (timedOut = true);
  await until(() => workerTotal("ticks") > 0, { what: () => "the worker ticks" });
  (room.host as unknown as { worker: Worker }).worker.terminate();
  await until(() => lost.length > 0, { what: () => "the leg hears its media is lost" });
  expect(lost).toEqual(["media worker media-1 exited"]);
  expect(timedOut).toBe(false);
  const ticks = workerTotal("ticks");
  expect(ticks).toBeGreaterThan(0);
  // The successor starts counting from the dead worker's total.
  const again = plane.open("again");
  cleanup.push(() => again.close());
  await phone(again, "bob", 1000);
  await until(() => workerTotal("ticks") > ticks, { what: () => "the new worker's ticks add to the old one's" });
});

test("a recording tap on a worker's channel gets the mix on this thread, and is told when the channel closes", async () => {
  const plane = new MediaPlane({ workers: 1 });
  cleanup.push(() => plane.close());
  const room = plane.open("room");
  const frames: { rate: number; loud: boolean }[] = [];
  let closed = false;
  room.addTap({ onMix: (f) => void frames.push({ rate: f.sampleRate, loud: f.pcm.some((v) => Math.abs(v) > 1000) }), onClose: () => void (closed = true) });
  const alice = await phone(room, "alice", 440);
  await until(() => frames.filter((f) => f.loud).length > 10);
  expect(frames.every((f) => f.rate === 8000)).toBe(true);
  alice.leg.close();
  room.close();
  expect(closed).toBe(true);
});

test("removing a tap loses no frame: those the worker mixed while this thread was busy still arrive before the removal resolves", async () => {
  const { room } = roomOnOneWorker();
  let frames = 0;
  const untap = room.addTap({ onMix: () => void frames++ });
  await phone(room, "alice", 440);
  await until(() => frames > 0, { what: () => "the tap gets frames" });
  // This thread stays busy while the worker mixes on (its tick count, shared memory, says so):
  // the frames of those ticks are in flight when the tap is removed.
  const ticksBefore = workerTotal("ticks");
  const framesBefore = frames;
  const giveUpAt = Date.now() + 10_000;
  while (workerTotal("ticks") < ticksBefore + 20 && Date.now() < giveUpAt);
  const mixedMeanwhile = workerTotal("ticks") - ticksBefore;
  expect(mixedMeanwhile).toBeGreaterThanOrEqual(20);
  expect(frames).toBe(framesBefore);
  await untap();
  // The worker writes its counters every 100 ms: the first reading may be up to five ticks old.
  expect(frames - framesBefore).toBeGreaterThanOrEqual(mixedMeanwhile - 5);
  // Removed: no frame after it.
  const framesAtRemoval = frames;
  const ticksAtRemoval = workerTotal("ticks");
  await until(() => workerTotal("ticks") > ticksAtRemoval + 5, { what: () => "the worker ticks on" });
  expect(frames).toBe(framesAtRemoval);
});

test("DTMF both ways and the media timeout cross between the worker and this thread; a closed leg frees its port", async () => {
  const { room } = roomOnOneWorker();
  // 15 pairs: too few to hold spares (spare-ports.ts), so `used` counts the leg's pair alone.
  const ports = new RtpPortAllocator({ min: 20000, max: 20029 });
  const alice = await phone(room, "alice", 440, { ports, mediaTimeoutSec: 1 });
  let timedOut = false;
  alice.leg.onTimeout = () => void (timedOut = true);
  const digits: string[] = [];
  alice.leg.onDtmf = (e) => void digits.push(e.digit);
  await until(() => alice.leg.stats().packetsReceived > 5);
  await alice.peer.sendDtmf(5);
  await until(() => digits.length === 1);
  expect(digits).toEqual(["5"]);
  expect(alice.leg.stats().dtmfReceived).toBe(1);
  alice.leg.sendDtmf("7");
  await until(() => alice.peer.dtmfEvents.includes(7));
  expect(alice.leg.stats().dtmfSent).toBe(1);
  alice.peer.close();
  await until(() => timedOut);
  expect(ports.used).toBe(1);
  alice.leg.close();
  await until(() => ports.used === 0);
});

test("moves in quick succession across workers end where the last one said, the stream unbroken", async () => {
  const plane = new MediaPlane({ workers: 2 });
  cleanup.push(() => plane.close());
  const rooms = ["a", "b", "c"].map((id) => plane.open(id));
  cleanup.push(() => rooms.forEach((r) => r.close()));
  const [a, b, c] = rooms as [ChannelMedia, ChannelMedia, ChannelMedia];
  expect(a.host).not.toBe(b.host);
  const alice = await phone(a, "alice", 440);
  const carol = await phone(c, "carol", 1000);
  await until(() => alice.peer.packetsReceived > 10);
  alice.leg.moveTo(b);
  alice.leg.moveTo(c);
  alice.leg.sendDtmf("9");
  await until(() => carol.peer.toneShare(440) > 0.5 && alice.peer.dtmfEvents.includes(9));
  expect(alice.peer.streamRestarts).toBe(0);
  expect([...c.members.keys()].sort()).toEqual(["alice", "carol"]);
  expect(a.members.size + b.members.size).toBe(0);
});

test("a leg moved on to a second channel of the worker it is being re-homed to ends in that second channel", async () => {
  const plane = new MediaPlane({ workers: 2 });
  cleanup.push(() => plane.close());
  const rooms = ["a", "b", "c"].map((id) => plane.open(id));
  cleanup.push(() => rooms.forEach((r) => r.close()));
  // a and c share worker 1, b is on worker 2.
  const [a, b, c] = rooms as [ChannelMedia, ChannelMedia, ChannelMedia];
  expect(a.host).toBe(c.host);
  const alice = await phone(b, "alice", 440);
  const carol = await phone(c, "carol", 1000);
  const dave = await phone(a, "dave", 700);
  await until(() => alice.peer.packetsReceived > 10);
  alice.leg.moveTo(a);
  // The second move comes once worker 2 has let go, most likely while worker 1 binds the port for a.
  await until(() => b.host.legs === 0, { pollMs: 1 });
  alice.leg.moveTo(c);
  await until(() => carol.peer.toneShare(440) > 0.5);
  expect([...c.members.keys()].sort()).toEqual(["alice", "carol"]);
  expect([...a.members.keys()]).toEqual(["dave"]);
  // Dave's channel does not hear alice any more (only silence from an empty channel).
  const daveHeard = dave.peer.packetsReceived;
  await until(() => dave.peer.packetsReceived > daveHeard + 25);
  expect(dave.peer.toneShare(440, 400)).toBeLessThan(0.1);
});
