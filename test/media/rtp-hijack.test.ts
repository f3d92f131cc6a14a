// RTP bleed / media hijack, tried as an attacker would: a socket sprays a leg's RTP and RTCP ports
// with a tone of its own (in-sequence RTP of one SSRC, the pattern that used to latch) and RTCP,
// before the call's SDP is known and all through the call. Two phone legs share a mixer, each
// phone hearing the other: every phone must hear the other phone's tone and never the attacker's,
// and the attacker must never receive a datagram from us — checked once our RTCP BYEs have reached
// the phones, after audio that the phones received once the spray had stopped.
import { afterAll, afterEach, expect, test } from "bun:test";
import { encodeUlaw } from "../../src/media/g711.ts";
import { createPhoneLeg, type PhoneLeg } from "../../src/media/leg.ts";
import { Mixer } from "../../src/media/mixer.ts";
import { RtpPortAllocator } from "../../src/media/ports.ts";
import { buildCompound, parseCompound } from "../../src/media/rtcp.ts";
import { serializeRtp } from "../../src/media/rtp-packet.ts";
import { inThreadUdpIo } from "../../src/media/udp-io.ts";
import { startRtpPeer, toneShareOf, type RtpPeer } from "../helpers/rtpPeer.ts";
import { until } from "../helpers/until.ts";

const allocator = new RtpPortAllocator({ min: 53600, max: 53799 });
const io = inThreadUdpIo;
const cleanup: (() => void)[] = [];
afterEach(() => { for (const f of cleanup.splice(0).reverse()) f(); });

const PHONE_A_HZ = 440;
const PHONE_B_HZ = 1000;
const ATTACKER_HZ = 1700;

/** Sprays RTP (a PCMU tone, one SSRC, consecutive sequence numbers per target) and RTCP at targets. */
async function attacker(host: string) {
  const received: Uint8Array[] = [];
  const socket = await Bun.udpSocket({
    hostname: host, binaryType: "uint8array",
    socket: { data: (_s, data) => { received.push(data.slice()); }, error() {} },
  });
  const tone = new Int16Array(160);
  for (let i = 0; i < 160; i++) tone[i] = Math.round(12000 * Math.sin((2 * Math.PI * ATTACKER_HZ * i) / 8000));
  const payload = encodeUlaw(tone);
  const rtcp = buildCompound({ ssrc: 0x6666, cname: "attacker", reports: [] });
  let targets: number[] = [];
  let seq = 0;
  let sent = 0;
  const timer = setInterval(() => {
    seq++;
    for (const port of targets) {
      socket.send(serializeRtp({ payloadType: 0, sequenceNumber: seq & 0xffff, timestamp: seq * 160, ssrc: 0x6666 }, payload), port, "127.0.0.1");
      socket.send(rtcp, port, "127.0.0.1");
      sent += 2;
    }
  }, 10);
  const stop = () => { clearInterval(timer); targets = []; };
  cleanup.push(() => { stop(); socket.close(); });
  return {
    received,
    get sent() { return sent; },
    spray(ports: number[]) { targets = ports; },
    stop,
  };
}

/** A phone: RtpPeer for its tone and what it hears, plus a socket of its own for our RTCP (a=rtcp). */
async function phone(toneHz: number) {
  const rtp = await startRtpPeer(toneHz);
  const rtcpReceived: Uint8Array[] = [];
  const rtcp = await Bun.udpSocket({ hostname: "127.0.0.1", binaryType: "uint8array", socket: { data: (_s, d) => { rtcpReceived.push(d.slice()); } } });
  cleanup.push(() => { rtp.close(); rtcp.close(); });
  const offer = [
    "v=0", "o=phone 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
    `m=audio ${rtp.port} RTP/AVP 0`, "a=rtpmap:0 PCMU/8000", `a=rtcp:${rtcp.port}`, "a=sendrecv", "",
  ].join("\r\n");
  const gotBye = () => rtcpReceived.some((d) => parseCompound(d)?.some((p) => p.type === "bye"));
  return { rtp, offer, gotBye };
}

async function leg(mixer: Mixer, id: string, strictSource: boolean): Promise<PhoneLeg> {
  const l = await createPhoneLeg({ allocator, bindAddress: "127.0.0.1", advertisedAddress: "127.0.0.1", mixer, participantId: id, codecPreferences: ["PCMU"], mediaTimeoutSec: 0, io, strictSource });
  if ("error" in l) throw new Error(l.error);
  cleanup.push(() => l.close());
  return l;
}

const strangers = (legs: PhoneLeg[]) => legs.reduce((n, l) => n + l.stats().rtp.strangerPackets, 0);
const hears = (p: RtpPeer, hz: number) => toneShareOf(p.received(), 8000, hz);

async function sprayThroughACall(o: { attackerHost: string; strictSource: boolean }) {
  const mixer = new Mixer();
  cleanup.push(() => mixer.close());
  const legA = await leg(mixer, "a", o.strictSource);
  const legB = await leg(mixer, "b", o.strictSource);
  const evil = await attacker(o.attackerHost);
  evil.spray([legA.localPort, legA.localPort + 1, legB.localPort, legB.localPort + 1]);
  // Before the call: the legs' ports are bound, no SDP is known yet.
  await until(() => strangers([legA, legB]) >= 40, { what: () => strangers([legA, legB]) });

  const a = await phone(PHONE_A_HZ);
  const b = await phone(PHONE_B_HZ);
  expect(legA.answer(a.offer).ok).toBe(true);
  expect(legB.answer(b.offer).ok).toBe(true);
  const sentBeforeCall = evil.sent;
  a.rtp.sendTo("127.0.0.1", legA.localPort);
  b.rtp.sendTo("127.0.0.1", legB.localPort);
  // During the call: two seconds of each phone hearing the other while the spray goes on.
  await until(() => a.rtp.packetsReceived >= 100 && b.rtp.packetsReceived >= 100 && hears(a.rtp, PHONE_B_HZ) > 0.5 && hears(b.rtp, PHONE_A_HZ) > 0.5, {
    what: () => ({ a: a.rtp.packetsReceived, b: b.rtp.packetsReceived, legA: legA.stats().rtp, legB: legB.stats().rtp }),
  });
  evil.stop();
  expect(evil.sent - sentBeforeCall).toBeGreaterThan(200);
  // Every datagram the attacker sent was read and dropped as a stranger's.
  await until(() => strangers([legA, legB]) === evil.sent, { what: () => ({ strangers: strangers([legA, legB]), sent: evil.sent }) });
  const heardA = a.rtp.packetsReceived;
  const heardB = b.rtp.packetsReceived;
  await until(() => a.rtp.packetsReceived >= heardA + 10 && b.rtp.packetsReceived >= heardB + 10);
  expect(legA.stats().rtp).toMatchObject({ latched: true, remote: `127.0.0.1:${a.rtp.port}` });
  expect(legB.stats().rtp).toMatchObject({ latched: true, remote: `127.0.0.1:${b.rtp.port}` });
  legA.close();
  legB.close();
  await until(() => a.gotBye() && b.gotBye());

  expect(evil.received.length).toBe(0);
  expect(hears(b.rtp, PHONE_A_HZ)).toBeGreaterThan(0.5);
  expect(hears(a.rtp, PHONE_B_HZ)).toBeGreaterThan(0.5);
  expect(hears(a.rtp, ATTACKER_HZ)).toBeLessThan(0.01);
  expect(hears(b.rtp, ATTACKER_HZ)).toBeLessThan(0.01);
}

test("default settings: an attacker on another address spraying RTP and RTCP before and during a call is never heard and never hears", async () => {
  await sprayThroughACall({ attackerHost: "127.0.0.66", strictSource: false });
}, 30_000);

test("rtp.strictSource: an attacker on the SDP's own address but another port, spraying during and after learning, is never heard and never hears", async () => {
  await sprayThroughACall({ attackerHost: "127.0.0.1", strictSource: true });
}, 30_000);
