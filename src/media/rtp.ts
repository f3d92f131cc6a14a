// RtpSession: one RTP (+RTCP) flow on a UDP socket pair from the port allocator, bound through a
// UdpIo (udp-io.ts), on the thread that runs the session (a media worker's, see media-plane.ts).
//
//   const s = await RtpSession.open({ allocator, bindAddress: "0.0.0.0", cname, io });  // or { error }
//   s.configure({ remote, payloadTypes, clockRate, expectMedia, mediaTimeoutMs, strictSource });
//   s.setSignallingAddress(dialogPeerAddress);  // the SIP peer's address may send media too (NAT)
//   s.onPacket = (packet, arrivalMs) => …;     // valid RTP from the learned peer, accepted PTs only
//   s.onNewSource = (ssrc) => …;               // the peer's SSRC changed (reset decoders/jitter)
//   s.onTimeout = () => …;                     // no RTP for mediaTimeoutMs while media is expected
//   s.send(payloadType, payload, timestamp, marker);   // our SSRC, continuous sequence numbers
//   s.useSrtp({ send, receive });              // SRTP/SRTCP from now on (srtp.ts contexts); undefined: plain
//   s.stats(); s.close();
//
// Symmetric RTP (RFC 4961) with strict source learning (source-latch.ts): we send to the SDP address
// until the peer's media arrives, then to where it really comes from, learned only among the sources
// the signalling allows (the SDP's or the SIP peer's address; only the SDP's exact address and port
// with strictSource); anything else is dropped and counted (stats().strangerPackets,
// trunkline_rtp_stranger_packets_total) before it is parsed. configure() with a new remote transport
// address (re-INVITE, UPDATE) learns afresh; the same address keeps what was learned. RTCP is learned
// the same way on its own port, or read only from the RTP source with rtcp-mux (RFC 5761). RTCP SR/RR
// + SDES go out every ~5 s (RFC 3550 §6.2, randomised 0.5–1.5×), on the RTP port when rtcp-mux is on.
// With SRTP a datagram from an admissible source must authenticate before it is parsed or
// can advance learning; what does not is dropped and counted (srtpAuthFailures, srtpReplays).
import { createLogger, type Logger } from "../log.ts";
import { metrics } from "../metrics.ts";
import { bindRtpPair, type BoundRtpPair, type RtpPortAllocator } from "./ports.ts";
import { RTP_HEADER_SIZE, looksLikeRtcp, parseRtp, writeRtpHeader, type ParsedRtp } from "./rtp-packet.ts";
import { rtcpTap } from "./rtcp-tap.ts";
import { ReceptionStats, buildCompound, ntpNow, parseCompound, roundTripMs, type ReportBlock } from "./rtcp.ts";
import { isNullAddress } from "./sdp.ts";
import { ADMIT, STRANGER, SourceLatch } from "./source-latch.ts";
import type { SrtpReceiveContext, SrtpSendContext } from "./srtp.ts";
import { inThreadUdpIo, type UdpIo } from "./udp-io.ts";
import { workerTotal } from "./worker-totals.ts";

const moduleLog = createLogger("rtp");

export interface RtpRemote {
  address: string;
  port: number;
  rtcpAddress: string;
  rtcpPort: number;
  rtcpMux: boolean;
}

export interface RtpSessionConfig {
  remote: RtpRemote;
  /** payload types we accept from the peer (audio codec + telephone-event) */
  payloadTypes: readonly number[];
  /** RTP clock of the audio codec (for jitter and SR timestamps) */
  clockRate: number;
  /** false while the peer is not supposed to send (hold): no media timeout then */
  expectMedia: boolean;
  /** 0 disables the media timeout */
  mediaTimeoutMs: number;
  /** learn only the SDP's exact address and port (default: its address, any port) */
  strictSource?: boolean;
}

/** Where our outgoing RTP stream is: a session opened with it continues the stream (same SSRC, next sequence number). */
export interface RtpStreamState { ssrc: number; sequence: number }

export interface PeerReport { fractionLost: number; cumulativeLost: number; jitterMs: number; rttMs?: number }

export interface RtpSessionStats {
  localPort: number;
  remote: string;                  // where we send RTP now
  latched: boolean;
  packetsSent: number;
  octetsSent: number;
  packetsReceived: number;
  octetsReceived: number;
  packetsLost: number;             // RFC 3550 A.3 cumulative, for the current peer SSRC
  fractionLost: number;            // 0..1 over the last RTCP interval
  jitterMs: number;                // RFC 3550 A.8
  ignoredPackets: number;          // unknown payload types, or a source still on probation
  strangerPackets: number;         // RTP/RTCP from a source the signalling does not allow
  invalidPackets: number;
  sourceChanges: number;           // peer SSRC changes
  socketErrors: number;            // e.g. ICMP port unreachable from a vanished peer
  srtpAuthFailures: number;        // SRTP/SRTCP datagrams that failed authentication (dropped)
  srtpReplays: number;             // SRTP/SRTCP datagrams replayed or too old (dropped)
  peerReport?: PeerReport;         // what the peer's RTCP says about our stream
}

const RTCP_INTERVAL_MS = 5000;
const HOUSEKEEPING_MS = 250;

/** The counters of a session a host copies to shared memory (readCounters). */
export interface RtpCounters {
  packetsSent: number;
  packetsReceived: number;
  octetsSent: number;
  octetsReceived: number;
  packetsLost: number;
  strangerPackets: number;
  jitterMs: number;
  srtpAuthFailures: number;
  srtpReplays: number;
}

/** Per-process totals, read at scrape time (a sprayer's packets cost an increment, no label lookup). */
export const strangerTotals = { rtp: 0, rtcp: 0 };
const strangers = strangerTotals;
metrics.counter(
  "trunkline_rtp_stranger_packets_total",
  "RTP/RTCP datagrams dropped because they came from a source the call's signalling does not allow.",
  ["kind"],
  () => [{ labels: { kind: "rtp" }, value: strangers.rtp + workerTotal("strangerRtp") }, { labels: { kind: "rtcp" }, value: strangers.rtcp + workerTotal("strangerRtcp") }],
);

/** RTP packets this thread's sessions sent and accepted (after source, SRTP and payload-type checks). */
export const rtpPacketTotals = { sent: 0, received: 0 };
const packetTotals = rtpPacketTotals;
metrics.counter(
  "trunkline_rtp_packets_total",
  "RTP packets of phone legs: sent (mixed, relayed or DTMF), and received and accepted (from the call's source, authenticated, of a negotiated payload type).",
  ["direction"],
  () => [
    { labels: { direction: "sent" }, value: packetTotals.sent + workerTotal("rtpSent") },
    { labels: { direction: "received" }, value: packetTotals.received + workerTotal("rtpReceived") },
  ],
);

/** One shared timer drives RTCP and media timeouts for all sessions. */
const liveSessions = new Set<RtpSession>();
let housekeeping: ReturnType<typeof setInterval> | undefined;

function register(s: RtpSession): void {
  liveSessions.add(s);
  if (!housekeeping) {
    housekeeping = setInterval(() => {
      const now = performance.now();
      for (const session of liveSessions) session.housekeep(now);
    }, HOUSEKEEPING_MS);
    housekeeping.unref();
  }
}

function unregister(s: RtpSession): void {
  liveSessions.delete(s);
  if (liveSessions.size === 0 && housekeeping) {
    clearInterval(housekeeping);
    housekeeping = undefined;
  }
}

function randomUint32(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0]!;
}

export class RtpSession {
  onPacket: (packet: ParsedRtp, arrivalMs: number) => void = () => {};
  onNewSource: (ssrc: number) => void = () => {};
  onTimeout: () => void = () => {};

  readonly ssrc: number;
  private seq: number;
  private cname: string;
  /** The last packet sent, reused while packets keep its length (audio packets keep one size). */
  private sendBuffer = new Uint8Array(0);
  private pair!: BoundRtpPair;
  private config: RtpSessionConfig | undefined;
  private accepted = new Set<number>();
  private readonly rtpSource = new SourceLatch();
  /** the remote the latches learn for: the last one with a real address */
  private learningFor: RtpRemote | undefined;
  /** RTCP on its own port (no rtcp-mux) */
  private readonly rtcpSource = new SourceLatch();
  private reception: ReceptionStats | undefined;
  private lastRtpAtMs = performance.now();
  private timedOut = false;
  private nextRtcpAtMs = performance.now() + RTCP_INTERVAL_MS * (0.5 + Math.random());
  private lastSentTimestamp = 0;
  private lastSentAtMs = 0;
  private peerReport: PeerReport | undefined;
  private closed = false;
  private srtp: { send: SrtpSendContext; receive: SrtpReceiveContext } | undefined;
  private readonly counters = {
    packetsSent: 0, octetsSent: 0, packetsReceived: 0, octetsReceived: 0, ignoredPackets: 0, strangerPackets: 0, invalidPackets: 0,
    sourceChanges: 0, socketErrors: 0, srtpAuthFailures: 0, srtpReplays: 0,
  };

  private constructor(
    cname: string,
    private log: Logger,
    stream: RtpStreamState | undefined,
  ) {
    this.cname = cname;
    this.ssrc = stream?.ssrc ?? randomUint32();
    this.seq = stream?.sequence ?? randomUint32() & 0xffff;
  }

  /**
   * `log`: whose session this is (a call's leg logs with the call's fields). `stream`: carry on an
   * outgoing stream another session sent (a leg re-homed to another media worker, see media-plane.ts).
   */
  static async open(o: { allocator: RtpPortAllocator; bindAddress?: string; cname?: string; io?: UdpIo; log?: Logger; stream?: RtpStreamState }): Promise<RtpSession | { error: string }> {
    const session = new RtpSession(o.cname ?? "trunkline", o.log ?? moduleLog, o.stream);
    // ICMP port-unreachable from a peer that went away surfaces as a socket error (ECONNREFUSED):
    // the media timeout reports a dead peer, so these are only counted.
    const error = () => { session.counters.socketErrors++; };
    const bound = await bindRtpPair(o.allocator, o.bindAddress ?? "0.0.0.0", {
      rtp: { data: (data, port, address, arrivalMs) => session.receiveOnRtpPort(data, port, address, arrivalMs), error },
      rtcp: { data: (data, port, address, arrivalMs) => session.receiveRtcp(data, port, address, arrivalMs), error },
    }, o.io ?? inThreadUdpIo);
    if ("error" in bound) return bound;
    session.pair = bound;
    register(session);
    return session;
  }

  /**
   * A spare session (bound before anyone needed it, see spare-ports.ts) becomes its leg's: its name
   * and log, and its clocks (media timeout, first RTCP report) start now. Nobody was told of its
   * port before, so whatever it received meanwhile is not counted.
   */
  assign(o: { cname: string; log: Logger }): void {
    this.cname = o.cname;
    this.log = o.log;
    const now = performance.now();
    this.lastRtpAtMs = now;
    this.nextRtcpAtMs = now + RTCP_INTERVAL_MS * (0.5 + Math.random());
    for (const key of Object.keys(this.counters) as (keyof typeof this.counters)[]) this.counters[key] = 0;
  }

  get localPort(): number {
    return this.pair.port;
  }

  /** Sets (or, for a re-INVITE, replaces) the peer and what we accept from it; a new address is learned afresh. */
  configure(config: RtpSessionConfig): void {
    const previous = this.config;
    this.config = config;
    this.accepted = new Set(config.payloadTypes);
    const strict = config.strictSource ?? false;
    const { remote } = config;
    const known = this.learningFor;
    // RFC 3264 §8.4: c=0.0.0.0 (old-style hold) says "do not send to me", not that the media moved.
    if (!known || !isNullAddress(remote.address)) {
      const policyChanged = known !== undefined && (previous?.strictSource ?? false) !== strict;
      if (!known || policyChanged || known.address !== remote.address || known.port !== remote.port) {
        this.rtpSource.expect({ address: remote.address, port: remote.port }, { strict });
      }
      if (!known || policyChanged || known.rtcpAddress !== remote.rtcpAddress || known.rtcpPort !== remote.rtcpPort) {
        this.rtcpSource.expect({ address: remote.rtcpAddress, port: remote.rtcpPort }, { strict });
      }
      this.learningFor = remote;
    }
    // Statistics are in RTP clock units: a codec change (re-INVITE) starts them afresh.
    if (previous && previous.clockRate !== config.clockRate) this.reception = undefined;
    if (!previous?.expectMedia && config.expectMedia) this.lastRtpAtMs = performance.now();
    this.timedOut = false;
  }

  /** Where the call's SIP signalling comes from: media from that address is allowed too (NAT), unless strict. */
  setSignallingAddress(address: string): void {
    this.rtpSource.setSignallingAddress(address);
    this.rtcpSource.setSignallingAddress(address);
  }

  /** SRTP (RFC 3711) from now on: `send` protects what we send, `receive` checks what arrives; undefined: plain RTP. */
  useSrtp(contexts: { send: SrtpSendContext; receive: SrtpReceiveContext } | undefined): void {
    this.srtp = contexts;
  }

  /** The plain datagram, or undefined after counting an SRTP drop. */
  private unprotect(data: Uint8Array, rtcp: boolean): Uint8Array | undefined {
    const srtp = this.srtp!;
    const plain = rtcp ? srtp.receive.unprotectRtcp(data) : srtp.receive.unprotectRtp(data);
    if (plain === "auth") {
      // Once per session: further failures are only counted (an attacker's packets cost no log line).
      if (this.counters.srtpAuthFailures++ === 0) this.log.warn("SRTP authentication failed; the packet is dropped, further failures only counted", { localPort: this.pair.port, kind: rtcp ? "srtcp" : "srtp" });
    } else if (plain === "replay") this.counters.srtpReplays++;
    else return plain;
    return undefined;
  }

  private receiveOnRtpPort(data: Uint8Array, port: number, address: string, now: number): void {
    if (!this.config) {
      this.stranger("rtp");
      return;
    }
    if (looksLikeRtcp(data)) {
      if (!this.rtpSource.allows(address, port)) return this.stranger("rtcp");
      const plain = this.srtp ? this.unprotect(data, true) : data;
      if (plain) {
        if (rtcpTap) this.tapRtcp("received", plain, this.pair.port, address, port);
        this.readRtcp(plain, now);
      }
      return;
    }
    const source = this.rtpSource;
    // Strangers are dropped before the HMAC; a forged packet never advances learning.
    if (!source.mayAdmit(address, port, now)) return this.stranger("rtp");
    if (this.srtp) {
      const plain = this.unprotect(data, false);
      if (!plain) return;
      data = plain;
    }
    const known = source.port === port && source.address === address;
    const admission = source.admitRtp(address, port, data, now);
    if (admission !== ADMIT) {
      if (admission === STRANGER) this.stranger("rtp");
      else this.counters.ignoredPackets++;
      return;
    }
    if (!known) this.log.debug("learned the RTP source", { localPort: this.pair.port, address, port });
    const packet = parseRtp(data);
    if (!packet) {
      this.counters.invalidPackets++;
      return;
    }
    if (!this.accepted.has(packet.payloadType)) {
      this.counters.ignoredPackets++;
      return;
    }
    this.counters.packetsReceived++;
    packetTotals.received++;
    this.counters.octetsReceived += packet.payloadLength;
    let reception = this.reception;
    if (!reception || reception.ssrc !== packet.ssrc) {
      const changed = reception !== undefined;
      reception = this.reception = new ReceptionStats(packet.ssrc, packet.sequenceNumber, this.config.clockRate);
      if (changed) {
        this.counters.sourceChanges++;
        this.safely(() => this.onNewSource(packet.ssrc));
      }
    }
    reception.updateSeq(packet.sequenceNumber);
    reception.updateJitter(packet.timestamp, now);
    this.lastRtpAtMs = now;
    this.timedOut = false;
    // Per packet: a plain try instead of safely()'s closure.
    try {
      this.onPacket(packet, now);
    } catch (error) {
      this.log.error("media handler failed", { localPort: this.pair.port, error });
    }
  }

  private stranger(kind: "rtp" | "rtcp"): void {
    this.counters.strangerPackets++;
    strangers[kind]++;
  }

  /** A datagram on the RTCP port (RTCP without rtcp-mux). */
  private receiveRtcp(data: Uint8Array, port: number, address: string, now: number): void {
    const source = this.rtcpSource;
    if (!this.config || !source.mayAdmit(address, port, now)) return this.stranger("rtcp");
    const plain = this.srtp ? this.unprotect(data, true) : data;
    if (!plain) return;
    if (source.admitControl(address, port, now) === ADMIT) {
      if (rtcpTap) this.tapRtcp("received", plain, this.pair.port + 1, address, port);
      this.readRtcp(plain, now);
    } else this.counters.ignoredPackets++;
  }

  private readRtcp(data: Uint8Array, now: number): void {
    const packets = parseCompound(data);
    if (!packets) {
      this.counters.invalidPackets++;
      return;
    }
    for (const p of packets) {
      if (p.type === "sr" && this.reception?.ssrc === p.ssrc) this.reception.noteSenderReport(p.sender.ntpSec, p.sender.ntpFrac, now);
      if (p.type === "sr" || p.type === "rr") {
        const mine = p.reports.find((b) => b.ssrc === this.ssrc);
        if (mine) this.peerReport = this.toPeerReport(mine, now);
      }
    }
  }

  private toPeerReport(b: ReportBlock, nowMs: number): PeerReport {
    const clock = this.config?.clockRate ?? 8000;
    return {
      fractionLost: b.fractionLost / 256,
      cumulativeLost: b.cumulativeLost,
      jitterMs: (b.jitter * 1000) / clock,
      rttMs: roundTripMs(b, performance.timeOrigin + nowMs),
    };
  }

  private safely(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.log.error("media handler failed", { localPort: this.pair.port, error });
    }
  }

  /** Sends one RTP packet; returns false when there is nowhere to send or the socket refused it. */
  send(payloadType: number, payload: Uint8Array, timestamp: number, marker = false): boolean {
    return this.sendFrom(payloadType, payload, 0, payload.length, timestamp, marker, 0);
  }

  /**
   * Sends one RTP packet whose payload lies in `data` at `offset` (a relayed packet, copied by offset
   * as the receive path does), after skipping `gap` sequence numbers: the loss its source had.
   */
  sendFrom(payloadType: number, data: Uint8Array, offset: number, payloadLength: number, timestamp: number, marker: boolean, gap: number): boolean {
    if (this.closed || !this.config) return false;
    const learned = this.rtpSource.address;
    const address = learned ?? this.config.remote.address;
    const port = learned !== undefined ? this.rtpSource.port : this.config.remote.port;
    if (port === 0) return false;
    const length = RTP_HEADER_SIZE + payloadLength;
    // Sized to the packet, not to an MTU: a 1,500-byte buffer per leg would mostly stay unused.
    if (this.sendBuffer.length !== length) this.sendBuffer = new Uint8Array(length);
    const buffer = this.sendBuffer;
    this.seq = (this.seq + gap) & 0xffff;
    writeRtpHeader(buffer, { marker, payloadType, sequenceNumber: this.seq, timestamp, ssrc: this.ssrc });
    if (offset === 0 && payloadLength === data.length) buffer.set(data, RTP_HEADER_SIZE);
    else for (let i = 0; i < payloadLength; i++) buffer[RTP_HEADER_SIZE + i] = data[offset + i]!;
    this.seq = (this.seq + 1) & 0xffff;
    this.counters.packetsSent++;
    packetTotals.sent++;
    this.counters.octetsSent += payloadLength;
    this.lastSentTimestamp = timestamp >>> 0;
    this.lastSentAtMs = performance.now();
    return this.pair.rtp.send(this.srtp ? this.srtp.send.protectRtp(buffer) : buffer, port, address);
  }

  /** Called by the shared timer: RTCP reports and the media timeout. */
  housekeep(now: number): void {
    const c = this.config;
    if (this.closed || !c) return;
    if (c.expectMedia && c.mediaTimeoutMs > 0 && !this.timedOut && now - this.lastRtpAtMs >= c.mediaTimeoutMs) {
      this.timedOut = true;
      this.safely(() => this.onTimeout());
    }
    if (now >= this.nextRtcpAtMs) {
      this.nextRtcpAtMs = now + RTCP_INTERVAL_MS * (0.5 + Math.random());
      this.sendRtcp(now, false);
    }
  }

  private sendRtcp(now: number, bye: boolean): void {
    const c = this.config;
    if (!c) return;
    const recentlySent = this.counters.packetsSent > 0 && now - this.lastSentAtMs < 2 * RTCP_INTERVAL_MS;
    let sender;
    if (recentlySent) {
      const ntp = ntpNow(performance.timeOrigin + now);
      // The SR's RTP timestamp is our media clock at the SR's wall-clock instant (RFC 3550 §6.4.1).
      const rtpTimestamp = (this.lastSentTimestamp + Math.round(((now - this.lastSentAtMs) * c.clockRate) / 1000)) >>> 0;
      sender = { ntpSec: ntp.sec, ntpFrac: ntp.frac, rtpTimestamp, packetCount: this.counters.packetsSent, octetCount: this.counters.octetsSent };
    }
    const reports = this.reception && now - this.lastRtpAtMs < 2 * RTCP_INTERVAL_MS ? [this.reception.reportBlock(now)] : [];
    const packet = buildCompound({ ssrc: this.ssrc, cname: this.cname, sender, reports, bye });
    const mux = c.remote.rtcpMux;
    const source = mux ? this.rtpSource : this.rtcpSource;
    const address = source.address ?? (mux ? c.remote.address : c.remote.rtcpAddress);
    const port = source.address !== undefined ? source.port : (mux ? c.remote.port : c.remote.rtcpPort);
    if (port === 0 || isNullAddress(address) || isNullAddress(c.remote.address)) return;
    if (rtcpTap) this.tapRtcp("sent", packet, mux ? this.pair.port : this.pair.port + 1, address, port);
    (mux ? this.pair.rtp : this.pair.rtcp).send(this.srtp ? this.srtp.send.protectRtcp(packet) : packet, port, address);
  }

  private tapRtcp(direction: "sent" | "received", data: Uint8Array, localPort: number, address: string, port: number): void {
    rtcpTap?.({ direction, data: data.slice(), rtpPort: this.pair.port, localPort, remote: { address, port }, time: performance.timeOrigin + performance.now() });
  }

  stats(): RtpSessionStats {
    const r = this.reception;
    const c = this.config;
    const learned = this.rtpSource.address;
    const address = learned ?? c?.remote.address ?? "";
    const port = learned !== undefined ? this.rtpSource.port : (c?.remote.port ?? 0);
    return {
      localPort: this.pair.port,
      remote: address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`,
      latched: learned !== undefined,
      ...this.counters,
      packetsLost: this.packetsLost,
      fractionLost: r ? r.lastFractionLost : 0,
      jitterMs: this.jitterMs,
      peerReport: this.peerReport,
    };
  }

  /** The counters stats() reports, into `into`: no object made (a host copies them every 100 ms). */
  readCounters(into: RtpCounters): void {
    const c = this.counters;
    into.packetsSent = c.packetsSent;
    into.packetsReceived = c.packetsReceived;
    into.octetsSent = c.octetsSent;
    into.octetsReceived = c.octetsReceived;
    into.packetsLost = this.packetsLost;
    into.strangerPackets = c.strangerPackets;
    into.jitterMs = this.jitterMs;
    into.srtpAuthFailures = c.srtpAuthFailures;
    into.srtpReplays = c.srtpReplays;
  }

  /** RFC 3550 §6.4.1 cumulative loss of the current source, at least 0 (duplicates can take RFC 3550's count below). */
  private get packetsLost(): number {
    return this.reception ? Math.max(0, this.reception.cumulativeLost) : 0;
  }

  private get jitterMs(): number {
    return this.reception ? this.reception.jitterMs : 0;
  }

  get stream(): RtpStreamState {
    return { ssrc: this.ssrc, sequence: this.seq };
  }

  /**
   * Sends RTCP BYE (RFC 3550 §6.6), closes both sockets and frees the port pair. `bye: false` when
   * the stream carries on from another session on the same port (no BYE: the source does not leave).
   */
  close(o: { bye?: boolean } = {}): void {
    if (this.closed) return;
    if (o.bye ?? true) this.sendRtcp(performance.now(), true);
    this.closed = true;
    unregister(this);
    this.pair.close();
  }
}
