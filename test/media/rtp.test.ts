import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { RtpPortAllocator } from "../../src/media/ports.ts";
import { RtpSession, type RtpSessionConfig } from "../../src/media/rtp.ts";
import { parseRtp, serializeRtp, type RtpPacket } from "../../src/media/rtp-packet.ts";
import { buildCompound, parseCompound } from "../../src/media/rtcp.ts";
import { LEARN_PROBATION } from "../../src/media/source-latch.ts";
import type { Logger } from "../../src/log.ts";
import { SrtpReceiveContext, SrtpSendContext, generateSrtpKey } from "../../src/media/srtp.ts";
import { inThreadUdpIo, type UdpIo } from "../../src/media/udp-io.ts";
import { metricSample } from "../helpers/metricSample.ts";
import { until } from "../helpers/until.ts";

const allocator = new RtpPortAllocator({ min: 42000, max: 43999 });
const opened: { close(): void }[] = [];
afterEach(() => { for (const s of opened.splice(0)) s.close(); });

/** A plain socket standing in for the peer; collects what it receives (`rtp`: without RTCP reports). */
async function peer(hostname = "127.0.0.1") {
  const received: { data: Uint8Array; port: number }[] = [];
  const socket = await Bun.udpSocket({ hostname, binaryType: "uint8array", socket: { data: (_s, data, port) => { received.push({ data: data.slice(), port }); } } });
  opened.push(socket);
  // RTCP goes out on a 2.5-7.5 s timer (RFC 3550 §6.2), so a slow run may catch a report;
  // RFC 5761 §4: RTCP packet types are 192-223 in the second byte.
  const rtp = () => received.filter((r) => !(r.data[1]! >= 192 && r.data[1]! <= 223));
  return { socket, received, rtp };
}

function config(remotePort: number, extra: Partial<RtpSessionConfig> = {}): RtpSessionConfig {
  return {
    remote: { address: "127.0.0.1", port: remotePort, rtcpAddress: "127.0.0.1", rtcpPort: remotePort + 1, rtcpMux: true },
    payloadTypes: [0, 101], clockRate: 8000, expectMedia: true, mediaTimeoutMs: 0, ...extra,
  };
}

/** trunkline_rtp_stranger_packets_total{kind} as /metrics shows it. */
function strangerMetric(kind: "rtp" | "rtcp"): number {
  return metricSample(`trunkline_rtp_stranger_packets_total{kind="${kind}"}`) ?? NaN;
}

/** trunkline_rtp_packets_total{direction} as /metrics shows it. */
function packetsMetric(direction: "sent" | "received"): number {
  return metricSample(`trunkline_rtp_packets_total{direction="${direction}"}`) ?? NaN;
}

function rtp(seq: number, ssrc = 0x1111, pt = 0): Uint8Array {
  return serializeRtp({ payloadType: pt, sequenceNumber: seq, timestamp: seq * 160, ssrc }, new Uint8Array(160).fill(0xff));
}

// Every behaviour holds alike with the sockets on this thread and on the RTP I/O worker.
describe.each<[string, UdpIo]>([["in-thread", inThreadUdpIo]])("RtpSession (%s sockets)", (_name, io) => {
  async function session(log?: Logger): Promise<RtpSession> {
    const s = await RtpSession.open({ allocator, bindAddress: "127.0.0.1", cname: "test", io, ...(log ? { log } : {}) });
    if ("error" in s) throw new Error(s.error);
    opened.push(s);
    return s;
  }

  test("outbound stream: our SSRC, consecutive sequence numbers, caller's timestamps", async () => {
    const s = await session();
    const p = await peer();
    s.configure(config(p.socket.port));
    const sentBefore = packetsMetric("sent");
    for (let i = 0; i < 5; i++) s.send(0, new Uint8Array(160), 1000 + i * 160, i === 0);
    expect(packetsMetric("sent") - sentBefore).toBe(5);
    await until(() => p.received.length === 5);
    const packets = p.received.map((r) => parseRtp(r.data)!);
    expect(packets.every((x) => x.ssrc === s.ssrc)).toBe(true);
    expect(packets.map((x) => (x.sequenceNumber - packets[0]!.sequenceNumber) & 0xffff)).toEqual([0, 1, 2, 3, 4]);
    expect(packets.map((x) => x.timestamp)).toEqual([1000, 1160, 1320, 1480, 1640]);
    expect(packets.map((x) => x.marker)).toEqual([true, false, false, false, false]);
  });

  test("learns the SDP's exact source at once, another port of its address after four packets in sequence (NAT), a stranger never", async () => {
    const s = await session();
    const sdpPeer = await peer();     // the address the SDP named: never sends
    const natPeer = await peer();     // where the media actually comes from: same address, another port
    const stranger = await peer("127.0.0.66");
    s.configure(config(sdpPeer.socket.port));
    const metricBefore = strangerMetric("rtp");
    const receivedBefore = packetsMetric("received");
    const got: RtpPacket[] = [];
    s.onPacket = (p) => got.push(p);
    s.send(0, new Uint8Array(160), 0);
    await until(() => sdpPeer.rtp().length === 1);
    for (let i = 0; i < 10; i++) stranger.socket.send(rtp(100 + i, 0x2222), s.localPort, "127.0.0.1");
    for (let i = 1; i <= LEARN_PROBATION; i++) natPeer.socket.send(rtp(i), s.localPort, "127.0.0.1");
    await until(() => got.length === 1);
    s.send(0, new Uint8Array(160), 160);
    await until(() => natPeer.rtp().length === 1);
    for (let i = 0; i < 5; i++) stranger.socket.send(rtp(110 + i, 0x2222), s.localPort, "127.0.0.1");
    natPeer.socket.send(rtp(LEARN_PROBATION + 1), s.localPort, "127.0.0.1");
    await until(() => got.length === 2 && s.stats().strangerPackets === 15);
    expect(got.map((p) => p.sequenceNumber)).toEqual([LEARN_PROBATION, LEARN_PROBATION + 1]);
    expect(s.stats()).toMatchObject({ latched: true, remote: `127.0.0.1:${natPeer.socket.port}`, ignoredPackets: LEARN_PROBATION - 1, strangerPackets: 15 });
    expect(strangerMetric("rtp") - metricBefore).toBe(15);
    // Only what was accepted: not the strangers', not the NAT peer's packets before it was learned.
    expect(packetsMetric("received") - receivedBefore).toBe(2);
    // Sent after every stranger packet was counted: reaches the peer, and the stranger still has nothing.
    s.send(0, new Uint8Array(160), 320);
    await until(() => natPeer.rtp().length === 2);
    expect(sdpPeer.rtp().length).toBe(1);
    expect(stranger.received).toEqual([]);
  });

  test("strictSource: another port of the SDP address is a stranger however long its run of sequence numbers", async () => {
    const s = await session();
    const sdpPeer = await peer();
    const samePlace = await peer();
    s.configure(config(sdpPeer.socket.port, { strictSource: true }));
    const got: RtpPacket[] = [];
    s.onPacket = (p) => got.push(p);
    for (let i = 1; i <= 10; i++) samePlace.socket.send(rtp(i, 0x2222), s.localPort, "127.0.0.1");
    sdpPeer.socket.send(rtp(500), s.localPort, "127.0.0.1");
    await until(() => got.length === 1 && s.stats().strangerPackets === 10);
    expect(got[0]!.sequenceNumber).toBe(500);
    s.send(0, new Uint8Array(160), 0);
    await until(() => sdpPeer.rtp().length === 1);
    expect(samePlace.received).toEqual([]);
  });

  test("RTCP from a stranger is neither read nor answered, with and without rtcp-mux", async () => {
    for (const rtcpMux of [true, false]) {
      const s = await session();
      const p = await peer();
      const stranger = await peer("127.0.0.66");
      s.configure({ ...config(p.socket.port), remote: { ...config(p.socket.port).remote, rtcpMux } });
      const report = (fractionLost: number) => buildCompound({
        ssrc: 0x1111, cname: "peer",
        reports: [{ ssrc: s.ssrc, fractionLost, cumulativeLost: 12, extendedHighestSeq: 100, jitter: 80, lastSr: 0, delaySinceLastSr: 0 }],
      });
      const metricBefore = strangerMetric("rtcp");
      for (const port of [s.localPort, s.localPort + 1]) stranger.socket.send(report(255), port, "127.0.0.1");
      p.socket.send(report(64), rtcpMux ? s.localPort : s.localPort + 1, "127.0.0.1");
      await until(() => s.stats().peerReport !== undefined && s.stats().strangerPackets === 2);
      expect(strangerMetric("rtcp") - metricBefore).toBe(2);
      expect(s.stats().peerReport?.fractionLost).toBe(0.25);
      if (!rtcpMux) {
        // Another port of the peer's address, once the RTCP source is learned: dropped unread.
        const samePlace = await peer();
        samePlace.socket.send(report(128), s.localPort + 1, "127.0.0.1");
        await until(() => s.stats().ignoredPackets === 1);
        expect(s.stats().peerReport?.fractionLost).toBe(0.25);
      }
      // Our RTCP BYE at close goes to the peer, not to the stranger.
      opened.splice(opened.indexOf(s), 1);
      s.close();
      await until(() => p.received.some((r) => parseCompound(r.data)?.some((x) => x.type === "bye")));
      expect(stranger.received).toEqual([]);
    }
  });

  test("re-configuring with the same remote (a session refresh) keeps the learned NAT source", async () => {
    const s = await session();
    const sdpPeer = await peer();
    const natPeer = await peer();
    s.configure(config(sdpPeer.socket.port));
    let n = 0;
    s.onPacket = () => n++;
    for (let i = 1; i <= LEARN_PROBATION; i++) natPeer.socket.send(rtp(i), s.localPort, "127.0.0.1");
    await until(() => n === 1);
    s.configure(config(sdpPeer.socket.port));
    natPeer.socket.send(rtp(LEARN_PROBATION + 1), s.localPort, "127.0.0.1");
    await until(() => n === 2);
    expect(s.stats().remote).toBe(`127.0.0.1:${natPeer.socket.port}`);
  });

  test("old-style hold (c=0.0.0.0) does not move the media: what the peer still sends (music on hold) is heard", async () => {
    const s = await session();
    const sdpPeer = await peer();
    const natPeer = await peer();
    s.configure(config(sdpPeer.socket.port));
    let n = 0;
    s.onPacket = () => n++;
    for (let i = 1; i <= LEARN_PROBATION; i++) natPeer.socket.send(rtp(i), s.localPort, "127.0.0.1");
    await until(() => n === 1);
    const hold = config(0);
    s.configure({ ...hold, remote: { ...hold.remote, address: "0.0.0.0", rtcpAddress: "0.0.0.0" } });
    natPeer.socket.send(rtp(LEARN_PROBATION + 1), s.localPort, "127.0.0.1");
    await until(() => n === 2);
    s.configure(config(sdpPeer.socket.port));
    natPeer.socket.send(rtp(LEARN_PROBATION + 2), s.localPort, "127.0.0.1");
    await until(() => n === 3);
    expect(s.stats()).toMatchObject({ remote: `127.0.0.1:${natPeer.socket.port}`, strangerPackets: 0 });
  });

  test("re-configuring with a new remote (re-INVITE) unlatches", async () => {
    const s = await session();
    const a = await peer();
    const b = await peer();
    s.configure(config(a.socket.port));
    let n = 0;
    s.onPacket = () => n++;
    a.socket.send(rtp(1), s.localPort, "127.0.0.1");
    await until(() => n === 1);
    s.configure(config(b.socket.port));
    b.socket.send(rtp(2), s.localPort, "127.0.0.1");
    await until(() => n === 2);
    s.send(0, new Uint8Array(160), 0);
    await until(() => b.received.length === 1);
  });

  test("unknown payload types and garbage are dropped and counted", async () => {
    const s = await session();
    const p = await peer();
    s.configure(config(p.socket.port));
    let n = 0;
    s.onPacket = () => n++;
    p.socket.send(rtp(1, 0x1111, 18), s.localPort, "127.0.0.1");
    p.socket.send(new Uint8Array([1, 2, 3]), s.localPort, "127.0.0.1");
    p.socket.send(rtp(2), s.localPort, "127.0.0.1");
    await until(() => n === 1);
    await until(() => s.stats().invalidPackets === 1);
    expect(s.stats().ignoredPackets).toBe(1);
  });

  test("new peer SSRC is reported", async () => {
    const s = await session();
    const p = await peer();
    s.configure(config(p.socket.port));
    const sources: number[] = [];
    s.onNewSource = (ssrc) => sources.push(ssrc);
    let n = 0;
    s.onPacket = () => n++;
    for (let i = 0; i < 3; i++) p.socket.send(rtp(i), s.localPort, "127.0.0.1");
    await until(() => n === 3);
    p.socket.send(rtp(500, 0x9999), s.localPort, "127.0.0.1");
    await until(() => n === 4);
    expect(sources).toEqual([0x9999]);
    expect(s.stats().sourceChanges).toBe(1);
  });

  test("SRTP: what goes out is protected, what comes in must authenticate; plain, forged and replayed datagrams are dropped and counted", async () => {
    // The owner's logger (a call's) hears of the first authentication failure only.
    const warnings: [string, Record<string, unknown> | undefined][] = [];
    const owner: Logger = { debug() {}, info() {}, error() {}, warn: (msg, fields) => void warnings.push([msg, fields]), child: () => owner };
    const s = await session(owner);
    const p = await peer();
    s.configure(config(p.socket.port));
    const ours = generateSrtpKey("AES_CM_128_HMAC_SHA1_80");
    const theirs = generateSrtpKey("AES_CM_128_HMAC_SHA1_32");
    s.useSrtp({ send: new SrtpSendContext(ours), receive: new SrtpReceiveContext(theirs) });
    const peerSend = new SrtpSendContext(theirs);
    const peerReceive = new SrtpReceiveContext(ours);
    const got: RtpPacket[] = [];
    s.onPacket = (packet) => got.push({ ...packet, payload: packet.payload.slice() });

    s.send(0, new Uint8Array(160).fill(0x42), 1000, true);
    await until(() => p.rtp().length === 1);
    const wire = p.rtp()[0]!.data;
    expect(wire.length).toBe(12 + 160 + 10);
    expect(Array.from(wire.subarray(12, 172)).filter((b) => b === 0x42).length).toBeLessThan(10);
    const opened = parseRtp(peerReceive.unprotectRtp(wire) as Uint8Array)!;
    expect(opened).toMatchObject({ ssrc: s.ssrc, timestamp: 1000, marker: true });
    expect(opened.payload).toEqual(new Uint8Array(160).fill(0x42));

    const first = peerSend.protectRtp(rtp(1));
    const forged = peerSend.protectRtp(rtp(2)).slice();
    forged[30]! ^= 1;
    for (const datagram of [rtp(3), first, first, forged, peerSend.protectRtp(rtp(4))]) p.socket.send(datagram, s.localPort, "127.0.0.1");
    // The last datagram arriving shows the ones before it were handled.
    await until(() => got.length === 2);
    expect(got.map((x) => x.sequenceNumber)).toEqual([1, 4]);
    expect(got[1]!.payload).toEqual(new Uint8Array(160).fill(0xff));
    expect(s.stats()).toMatchObject({ srtpAuthFailures: 2, srtpReplays: 1, packetsReceived: 2 });
    expect(warnings).toEqual([[expect.stringMatching(/^SRTP authentication failed/), { localPort: s.localPort, kind: "srtp" }]]);

    // RTCP too: the BYE sent on close is SRTCP.
    s.close();
    await until(() => p.received.length > p.rtp().length);
    const rtcp = p.received.find((r) => !p.rtp().includes(r))!.data;
    expect(Buffer.from(rtcp).includes("test")).toBe(false); // the SDES CNAME is encrypted
    const compound = parseCompound(peerReceive.unprotectRtcp(rtcp) as Uint8Array);
    expect(compound?.some((x) => x.type === "bye")).toBe(true);
  });

  test("sending to a peer that went away (ICMP port unreachable) never throws", async () => {
    const s = await session();
    const p = await peer();
    s.configure(config(p.socket.port));
    p.socket.close();
    // One packet per poll until the ICMP errors come back, then a few more into the error state.
    let sent = 0;
    const send = () => { s.send(0, new Uint8Array(160), sent * 160); sent++; };
    await until(() => { send(); return s.stats().socketErrors > 0; }, { what: () => s.stats() });
    for (let i = 0; i < 5; i++) send();
    expect(s.stats().packetsSent).toBe(sent);
  });

  test("RTCP from the peer: on the RTP port with rtcp-mux, on port + 1 without; the peer's view of our stream is kept", async () => {
    for (const rtcpMux of [true, false]) {
      const s = await session();
      const p = await peer();
      s.configure({ ...config(p.socket.port), remote: { ...config(p.socket.port).remote, rtcpMux } });
      const report = buildCompound({
        ssrc: 0x1111, cname: "peer",
        reports: [{ ssrc: s.ssrc, fractionLost: 64, cumulativeLost: 12, extendedHighestSeq: 100, jitter: 80, lastSr: 0, delaySinceLastSr: 0 }],
      });
      p.socket.send(report, rtcpMux ? s.localPort : s.localPort + 1, "127.0.0.1");
      await until(() => s.stats().peerReport !== undefined);
      expect(s.stats().peerReport).toEqual({ fractionLost: 0.25, cumulativeLost: 12, jitterMs: 10, rttMs: undefined });
    }
  });

  test("IPv6: binds, receives and latches on ::1", async () => {
    const s = await RtpSession.open({ allocator, bindAddress: "::1", io });
    if ("error" in s) throw new Error(s.error);
    opened.push(s);
    const got: string[] = [];
    const p = await Bun.udpSocket({ hostname: "::1", binaryType: "uint8array", socket: { data: (_s, _d, _port, address) => { got.push(address); } } });
    opened.push(p);
    s.configure({ ...config(p.port), remote: { address: "::1", port: p.port, rtcpAddress: "::1", rtcpPort: p.port + 1, rtcpMux: true } });
    let n = 0;
    s.onPacket = () => n++;
    p.send(rtp(1), s.localPort, "::1");
    await until(() => n === 1);
    s.send(0, new Uint8Array(160), 0);
    await until(() => got.length === 1);
    expect(s.stats().remote).toBe(`[::1]:${p.port}`);
  });

  test("media timeout fires once when RTP stops, not while on hold", async () => {
    const s = await session();
    const p = await peer();
    let timeouts = 0;
    s.onTimeout = () => timeouts++;
    /**
     * A session that expects media from now on and never gets any: once it has timed out, the shared
     * housekeeping pass that saw it do so has also looked at `s`, with the same clock, at least
     * `mediaTimeoutMs` after `s` was last configured.
     */
    const witnessTimesOut = async () => {
      const w = await session();
      let witnessTimeouts = 0;
      w.onTimeout = () => witnessTimeouts++;
      w.configure(config(p.socket.port, { mediaTimeoutMs: 300, expectMedia: true }));
      await until(() => witnessTimeouts === 1, { what: () => ({ timeouts, witnessTimeouts }) });
    };
    s.configure(config(p.socket.port, { mediaTimeoutMs: 300, expectMedia: false }));
    await witnessTimesOut();
    expect(timeouts).toBe(0);
    s.configure(config(p.socket.port, { mediaTimeoutMs: 300, expectMedia: true }));
    await until(() => timeouts === 1);
    // Passes go on past another timeout's length: still the one report.
    await witnessTimesOut();
    expect(timeouts).toBe(1);
  });

  test("loss and RTCP BYE: stats count the gaps, close sends BYE with our SSRC", async () => {
    const s = await session();
    const p = await peer();
    s.configure(config(p.socket.port));
    let n = 0;
    s.onPacket = () => n++;
    for (let i = 0; i < 100; i++) if (i % 10 !== 7) p.socket.send(rtp(i), s.localPort, "127.0.0.1");
    await until(() => n === 90);
    expect(s.stats().packetsLost).toBe(10);
    s.send(0, new Uint8Array(160), 0);
    opened.splice(opened.indexOf(s), 1);
    s.close();
    await until(() => p.received.some((r) => parseCompound(r.data)?.some((x) => x.type === "bye")));
    const compound = parseCompound(p.received.find((r) => parseCompound(r.data)?.some((x) => x.type === "bye"))!.data)!;
    const sr = compound[0]!;
    expect(sr.type).toBe("sr");
    if (sr.type === "sr") {
      expect(sr.ssrc).toBe(s.ssrc);
      expect(sr.sender.packetCount).toBe(1);
      expect(sr.reports[0]).toMatchObject({ ssrc: 0x1111, cumulativeLost: 10 });
    }
  });
});
