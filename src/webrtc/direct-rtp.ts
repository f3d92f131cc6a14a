// Our Opus RTP to a client, straight onto werift's DTLS transport (its SRTP session and ICE
// connection) instead of through RTCRtpSender.sendRtp, which per packet clones the packet, rebuilds
// the header's extensions, formats an NTP time through strings, feeds a bandwidth estimator for
// transport-cc feedback we do not negotiate, keeps a NACK history we do not negotiate, and starts a
// promise chain or two. On the wire nothing changes: the sender's SSRC and payload type, our
// sequence numbers and timestamps, no header extension (the only one we negotiate, ssrc-audio-level,
// is the client's to send). The sender's RTCP loop still sends the sender reports (RFC 3550 §6.4.1)
// from the counts and the RTP/NTP timestamp pair kept here, and still measures the round trip from
// the client's receiver reports.
import { RtpHeader, type RTCRtpSender } from "werift";

/** The RTCRtpSender state its sender reports are made of (private in werift's types, plain fields in its code). */
interface SenderReportState {
  ntpTimestamp: bigint;
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
  headerBytesSent: number;
  runRtcp(): Promise<void>;
}

/** RFC 3550 §5.1: no CSRC, no extension. */
const RTP_HEADER_SIZE = 12;
/** Seconds from the NTP epoch (1900) to the Unix epoch (1970), RFC 868. */
const NTP_UNIX_OFFSET_SECONDS = 2_208_988_800;

/**
 * Now as a 64-bit NTP timestamp (RFC 3550 §4: seconds since 1900 and a binary fraction). werift's
 * own ntpTime() puts the decimal digits of the milliseconds in the fraction, so its reports' time
 * jumped back and forth within each second.
 */
export function ntpNow(nowMs = performance.timeOrigin + performance.now()): bigint {
  const seconds = Math.floor(nowMs / 1000);
  const fraction = Math.floor(((nowMs - seconds * 1000) / 1000) * 0x1_0000_0000);
  return (BigInt(seconds + NTP_UNIX_OFFSET_SECONDS) << 32n) | BigInt(fraction);
}

export class DirectRtpSender {
  private readonly header: RtpHeader;
  private readonly report: SenderReportState;
  private reporting = false;

  constructor(
    private readonly sender: RTCRtpSender,
    payloadType: number,
  ) {
    this.header = new RtpHeader({ ssrc: sender.ssrc, payloadType });
    this.report = sender as unknown as SenderReportState;
  }

  /** Protects and sends one packet now (the payload is copied into the SRTP packet before this returns). */
  send(payload: Uint8Array, sequenceNumber: number, timestamp: number): void {
    const dtls = this.sender.dtlsTransport;
    if (dtls.state !== "connected") return;
    const { header, report } = this;
    header.sequenceNumber = sequenceNumber;
    header.timestamp = timestamp;
    dtls.sendRtp(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), header).catch(() => {});
    report.ntpTimestamp = ntpNow();
    report.rtpTimestamp = timestamp;
    report.octetCount += payload.byteLength;
    report.packetCount = (report.packetCount + 1) >>> 0;
    report.headerBytesSent += RTP_HEADER_SIZE;
    if (!this.reporting) {
      this.reporting = true;
      void report.runRtcp();
    }
  }
}
