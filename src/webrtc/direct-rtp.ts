// Our Opus RTP to a client, straight onto werift's DTLS transport (its SRTP session and ICE
// connection) instead of through RTCRtpSender.sendRtp, which per packet clones the packet, rebuilds
// the header's extensions, formats an NTP time through strings, feeds a bandwidth estimator for
// transport-cc feedback we do not negotiate, keeps a NACK history we do not negotiate, and starts a
// promise chain or two. On the wire nothing changes: the sender's SSRC and payload type, our
// sequence numbers and timestamps, no header extension (the only one we negotiate, ssrc-audio-level,
// is the client's to send). The sender's RTCP loop still sends the sender reports (RFC 3550 §6.4.1)
// from the counts and the RTP/NTP timestamp pair kept here, and still measures the round trip from
// the client's receiver reports. The packet is protected here on werift's SRTP session state
// (direct-srtp.ts: its keys and rollover counters; AES-CM through src/media/srtp-transform.ts) and
// handed to the ICE pair's socket, without werift's four async calls per packet and the socket's
// address lookup.
import { isMedia, isRtcp, RTP_EXTENSION_URI, RtpHeader, RtpPacket, type RTCDtlsTransport, type RTCRtpSender, type RTCRtpTransceiver } from "werift";
import { isIP } from "node:net";
import { ntpNow } from "../media/rtcp.ts";
import { RTP_HEADER_SIZE, parseRtp, writeRtpHeader, type ParsedRtp, type RtpHeaderFields } from "../media/rtp-packet.ts";
import { directSrtpContexts, protectRtp, unprotectRtp } from "./direct-srtp.ts";

/** The RTCRtpSender state its sender reports are made of (private in werift's types, plain fields in its code). */
interface SenderReportState {
  ntpTimestamp: bigint;
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
  headerBytesSent: number;
  runRtcp(): Promise<void>;
}

/**
 * Now as werift's 64-bit NTP timestamp, from the one our phone legs' RTCP uses (RFC 3550 §4: seconds
 * since 1900 and a binary fraction). werift's own ntpTime() puts the decimal digits of the
 * milliseconds in the fraction, so its reports' time jumped back and forth within each second.
 */
function ntpTimestamp(): bigint {
  const { sec, frac } = ntpNow();
  return (BigInt(sec) << 32n) | BigInt(frac);
}

/** The parts of werift's ICE connection (private in its types) a direct send uses. */
interface IceSending {
  canSendApplicationData(): boolean;
  nominated?: {
    protocol: { transport?: { type?: string; closed?: boolean; socket?: { send(data: Uint8Array, port: number, address: string): void } } };
    remoteAddr: [string, number];
    packetsSent: number;
    bytesSent: number;
  };
}

export class DirectRtpSender {
  private readonly header: RtpHeader;
  private readonly headerBytes = new Uint8Array(RTP_HEADER_SIZE);
  private readonly headerFields: RtpHeaderFields;
  private readonly report: SenderReportState;
  private reporting = false;
  /** The last nominated pair whose remote address was found to be an IP address (werift's send needs a lookup otherwise). */
  private pairWithIpAddress: object | undefined;

  constructor(
    private readonly sender: RTCRtpSender,
    payloadType: number,
  ) {
    this.header = new RtpHeader({ ssrc: sender.ssrc, payloadType });
    this.headerFields = { payloadType, sequenceNumber: 0, timestamp: 0, ssrc: sender.ssrc };
    this.report = sender as unknown as SenderReportState;
  }

  /** Protects and sends one packet now (the payload is copied into the SRTP packet before this returns). */
  send(payload: Uint8Array, sequenceNumber: number, timestamp: number): void {
    const dtls = this.sender.dtlsTransport;
    if (dtls.state !== "connected") return;
    const { header, report } = this;
    if (!this.sendDirectly(dtls, payload, sequenceNumber, timestamp)) {
      header.sequenceNumber = sequenceNumber;
      header.timestamp = timestamp;
      dtls.sendRtp(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), header).catch(() => {});
    }
    report.ntpTimestamp = ntpTimestamp();
    report.rtpTimestamp = timestamp;
    report.octetCount += payload.byteLength;
    report.packetCount = (report.packetCount + 1) >>> 0;
    report.headerBytesSent += RTP_HEADER_SIZE;
    if (!this.reporting) {
      this.reporting = true;
      void report.runRtcp();
    }
  }

  /**
   * What werift's sendRtp does on a UDP candidate pair with an IP address (its consent check, the
   * packet's SRTP protection, one datagram, its counters), without its four async calls and the
   * socket's address lookup; false when direct-srtp.ts lacks the session's profile or the pair is not such a pair.
   */
  private sendDirectly(dtls: RTCDtlsTransport, payload: Uint8Array, sequenceNumber: number, timestamp: number): boolean {
    const srtp = directSrtpContexts(dtls.srtp);
    const connection = dtls.iceTransport.connection as unknown as IceSending;
    const pair = connection.nominated;
    const transport = pair?.protocol.transport;
    if (!srtp || !pair || transport?.type !== "udp" || !transport.socket) return false;
    const [host, port] = pair.remoteAddr;
    // A pair's remote address never changes: checked once per nominated pair, not per packet.
    if (pair !== this.pairWithIpAddress) {
      if (isIP(host) === 0) return false;
      this.pairWithIpAddress = pair;
    }
    const { headerBytes } = this;
    this.headerFields.sequenceNumber = sequenceNumber;
    this.headerFields.timestamp = timestamp;
    writeRtpHeader(headerBytes, this.headerFields);
    // Protected (the rollover state advanced) and counted by the DTLS transport even when not sent, as werift does.
    const packet = protectRtp(srtp.localContext, headerBytes, payload);
    dtls.bytesSent += packet.length;
    dtls.packetsSent++;
    if (!connection.canSendApplicationData() || transport.closed) return true; // RFC 7675: no consent, nothing sent
    transport.socket.send(packet, port, host);
    pair.packetsSent++;
    pair.bytesSent += packet.length;
    return true;
  }
}

/** The parts of werift's ICE connection (private in its types) the direct receive reads. */
interface IceSockets {
  protocols: { transport?: { type?: string; onData: (data: Buffer, address: [string, number]) => void } }[];
  nominated?: { protocol: unknown; packetsReceived: number; bytesReceived: number };
}

/** A stream's reception statistics in werift's RTCRtpReceiver, which its receiver reports are made of. */
interface ReceiverStatistics {
  remoteStreams: Record<number, { add(packet: StatisticsPacket): void } | undefined>;
}

/** What werift's StreamStatistics.add reads of a packet. */
interface StatisticsPacket {
  header: { sequenceNumber: number; timestamp: number; serializeSize: number };
  payload: { length: number };
}

/** A client's audio packet (a view into the decrypted datagram), with its RFC 6464 level when it sent one. */
export type ClientRtpHandler = (packet: ParsedRtp, level: number | undefined) => void;

/**
 * Takes the client's SRTP packets from werift's ICE sockets as they arrive and hands them over
 * decrypted, instead of through werift's chain of events for each (the STUN parse attempt, the ICE
 * connection's and the DTLS transport's data events, a parse of every header extension, the
 * router, the receiver's packet clone and the track's event, each event also starting a promise).
 * Only RTP (RFC 7983 §7: first byte 128–191; RFC 5761 §4: not an RTCP packet type) once werift's
 * SRTP is started takes this way: STUN, DTLS and SRTCP still go through werift as before. The
 * packet is still decrypted and authenticated on werift's SRTP session (its keys and rollover
 * state; by direct-srtp.ts into a buffer valid until the handler returns), a packet that
 * does not authenticate is dropped as werift drops it, only the SSRCs the offer signalled are taken
 * (werift routes no other), and each packet still goes into the receiver's statistics that its
 * receiver reports (RFC 3550 §6.4.2) are made of.
 */
export function receiveRtpDirectly(transceiver: RTCRtpTransceiver, onRtp: ClientRtpHandler): void {
  const { receiver } = transceiver;
  const dtls = receiver.dtlsTransport;
  const connection = dtls.iceTransport.connection as unknown as IceSockets;
  const statistics = receiver as unknown as ReceiverStatistics;
  const payloadTypes = new Set(transceiver.codecs.map((c) => c.payloadType));
  const levelId = transceiver.headerExtensions.find((e) => e.uri === RTP_EXTENSION_URI.audioLevelIndication)?.id;
  for (const protocol of connection.protocols) {
    const transport = protocol.transport;
    if (transport?.type !== "udp") continue;
    const werift = transport.onData;
    transport.onData = (data, address) => {
      if (!dtls.srtpStarted || !isMedia(data) || isRtcp(data)) return werift(data, address);
      const pair = connection.nominated;
      if (pair?.protocol === protocol) {
        pair.packetsReceived++;
        pair.bytesReceived += data.length;
      }
      dtls.packetsReceived++;
      dtls.bytesReceived += data.length;
      const srtp = directSrtpContexts(dtls.srtp);
      let plain: Buffer | undefined;
      if (srtp) plain = unprotectRtp(srtp.remoteContext, data);
      else
        try {
          plain = dtls.srtp.decrypt(data);
        } catch {
          plain = undefined;
        }
      if (!plain) return; // not authentic
      const rtp = parseRtp(plain);
      if (!rtp || receiver.trackBySSRC[rtp.ssrc] === undefined || !payloadTypes.has(rtp.payloadType)) return;
      const stream = statistics.remoteStreams[rtp.ssrc];
      if (stream) stream.add({ header: { sequenceNumber: rtp.sequenceNumber, timestamp: rtp.timestamp, serializeSize: rtp.payloadOffset }, payload: { length: rtp.payloadLength } });
      // The first packet of a stream goes through werift once: it makes the stream's statistics and starts the receiver reports.
      else receiver.handleRtpBySsrc(RtpPacket.deSerialize(Buffer.from(plain)), {});
      onRtp(rtp, levelId === undefined ? undefined : audioLevelOf(plain, levelId));
    };
  }
}

/**
 * The RFC 6464 level (−dBov, 0–127) in a well-formed RTP packet's header extension element `id`
 * (RFC 8285 §4.2 one-byte or §4.3 two-byte form), or undefined when it has none.
 */
export function audioLevelOf(packet: Uint8Array, id: number): number | undefined {
  const b0 = packet[0]!;
  if ((b0 & 0x10) === 0) return undefined;
  const start = 12 + (b0 & 0x0f) * 4;
  const profile = (packet[start]! << 8) | packet[start + 1]!;
  const end = Math.min(packet.length, start + 4 + ((packet[start + 2]! << 8) | packet[start + 3]!) * 4);
  const oneByte = profile === 0xbede;
  if (!oneByte && (profile & 0xfff0) !== 0x1000) return undefined;
  for (let at = start + 4; at < end; ) {
    const first = packet[at]!;
    if (first === 0) {
      at++; // padding between elements
      continue;
    }
    if (oneByte && first >> 4 === 15) return undefined; // §4.2: stop at ID 15
    const elementId = oneByte ? first >> 4 : first;
    const length = oneByte ? (first & 0x0f) + 1 : packet[at + 1]!;
    const data = at + (oneByte ? 1 : 2);
    if (elementId === id) return length > 0 && data < end ? packet[data]! & 0x7f : undefined; // RFC 6464 §3: V bit, then the level
    at = data + length;
  }
  return undefined;
}
