// What a client learns from our RTCP and what our answer negotiates, now that the peer sends its RTP
// straight onto werift's DTLS transport and takes the client's RTP straight from the ICE sockets
// (src/webrtc/direct-rtp.ts): the sender reports still count exactly the packets and payload
// octets the client received and pair the RTP timestamp with the time it was sent, and the
// receiver reports still describe what the client sent.
import { afterEach, beforeEach, expect, test } from "bun:test";
import { RtcpRrPacket, RtcpSrPacket, RtpHeader, RtpPacket, type RtcpPacket } from "werift";
import { until } from "../helpers/until.ts";
import { createOfferingPeer, type OfferingPeer } from "../helpers/weriftClient.ts";
import { startHarness, type Harness } from "./harness.ts";

let h: Harness;
const peers: OfferingPeer[] = [];

beforeEach(() => {
  h = startHarness();
});
afterEach(async () => {
  await Promise.all(peers.splice(0).map((p) => p.pc.close()));
  await h.stop();
});

async function join(clientId: string, offerSdp?: (sdp: string) => string): Promise<{ peer: OfferingPeer; answer: string }> {
  const peer = createOfferingPeer("opus", { audioLevels: true });
  peers.push(peer);
  const offer = await peer.offer();
  const res = await h.join(h.token({ clientId, userId: `user-${clientId}` }), offerSdp ? offerSdp(offer) : offer);
  expect(res.status).toBe(200);
  const answer = ((await res.json()) as { sdp: string }).sdp;
  await peer.accept(answer);
  await peer.connected();
  return { peer, answer };
}

/** An NTP timestamp (RFC 3550 §4) as Unix milliseconds. */
function ntpToUnixMs(ntp: bigint): number {
  return (Number(ntp >> 32n) - 2_208_988_800) * 1000 + (Number(ntp & 0xffff_ffffn) / 0x1_0000_0000) * 1000;
}

test("the answer accepts only the ssrc-audio-level extension of what a browser offers, so our packets need no extension written", async () => {
  // Chromium's audio extensions beside the one the werift client offers.
  const { answer } = await join("browser-like", (sdp) =>
    sdp.replace(
      /^(a=extmap:\d+ urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n)/m,
      "$1a=extmap:12 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\na=extmap:13 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\na=extmap:14 urn:ietf:params:rtp-hdrext:sdes:mid\r\n",
    ),
  );
  expect([...answer.matchAll(/^a=extmap:\d+ (\S+)\r$/gm)].map((m) => m[1])).toEqual(["urn:ietf:params:rtp-hdrext:ssrc-audio-level"]);
});

test("our sender reports count the packets and octets the client received and pair the last packet's RTP timestamp with its time", async () => {
  const { peer } = await join("listener");
  const heard = { packets: 0, octets: 0, timestamp: -1 };
  const atReports: { sr: RtcpSrPacket; packets: number; octets: number; timestamp: number; arrivedAt: number }[] = [];
  // The client's track came with the answer.
  peer.transceiver.receiver.tracks[0]!.onReceiveRtp.subscribe((rtp) => {
    heard.packets++;
    heard.octets += rtp.payload.length;
    heard.timestamp = rtp.header.timestamp;
  });
  // RTP and RTCP come in on one socket and are handled in the order they arrive.
  peer.transceiver.receiver.onRtcp.subscribe((rtcp: RtcpPacket) => {
    if (rtcp instanceof RtcpSrPacket && heard.packets > 0) atReports.push({ sr: rtcp, ...heard, arrivedAt: Date.now() });
  });
  // Reports come every 0.5–1.5 s (werift's interval); the first may count packets sent before the client could decrypt them.
  await until(() => atReports.length >= 3, { timeoutMs: 15_000, what: () => ({ reports: atReports.length, heard }) });
  const [first, , last] = atReports as [(typeof atReports)[0], unknown, (typeof atReports)[0]];
  expect(last.sr.senderInfo.packetCount - first.sr.senderInfo.packetCount).toBe(last.packets - first.packets);
  expect(last.sr.senderInfo.octetCount - first.sr.senderInfo.octetCount).toBe(last.octets - first.octets);
  expect(last.packets - first.packets).toBeGreaterThan(10);
  for (const report of atReports) {
    expect(report.sr.ssrc).toBe(peer.transceiver.receiver.tracks[0]!.ssrc!);
    expect(report.sr.senderInfo.rtpTimestamp).toBe(report.timestamp);
    // The time the last packet was sent: before the report arrived, and recent.
    const sentAt = ntpToUnixMs(report.sr.senderInfo.ntpTimestamp);
    expect(sentAt).toBeLessThanOrEqual(report.arrivedAt + 5);
    expect(sentAt).toBeGreaterThan(report.arrivedAt - 5000);
  }
});

test("our receiver reports describe the client's stream: its SSRC, its highest sequence number, nothing lost", async () => {
  const { peer } = await join("talker");
  const { sender } = peer.transceiver;
  let sequence = 0;
  const timer = setInterval(() => {
    // Opus silence (RFC 6716 TOC 0xF8), 20 ms each.
    const header = new RtpHeader({ sequenceNumber: sequence, timestamp: sequence * 960 });
    sender.sendRtp(new RtpPacket(header, Buffer.of(0xf8, 0xff, 0xfe))).catch(() => {});
    sequence++;
  }, 20);
  try {
    const reports: { highestSequence: number; packetsLost: number; sent: number }[] = [];
    sender.onRtcp.subscribe((rtcp: RtcpPacket) => {
      if (!(rtcp instanceof RtcpRrPacket) && !(rtcp instanceof RtcpSrPacket)) return;
      for (const r of rtcp.reports) if (r.ssrc === sender.ssrc) reports.push({ highestSequence: r.highestSequence, packetsLost: r.packetsLost, sent: sequence });
    });
    await until(() => reports.some((r) => r.highestSequence >= 25), { timeoutMs: 15_000, what: () => ({ reports, sequence }) });
    for (const r of reports) {
      expect(r.highestSequence).toBeLessThan(r.sent);
      expect(r.packetsLost).toBe(0);
    }
  } finally {
    clearInterval(timer);
  }
});
