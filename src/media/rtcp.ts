// RTCP (RFC 3550 §6): per-source reception statistics (sequence validation A.1, loss A.3, interarrival
// jitter A.8) and the compound packets we send and read: SR/RR + SDES CNAME, BYE.

export interface ReportBlock {
  ssrc: number;
  fractionLost: number;       // 0..255, fixed point /256
  cumulativeLost: number;     // signed 24 bit
  extendedHighestSeq: number;
  jitter: number;             // timestamp units
  lastSr: number;             // middle 32 bits of the NTP timestamp of the last SR received
  delaySinceLastSr: number;   // 1/65536 s
}

export interface SenderInfo { ntpSec: number; ntpFrac: number; rtpTimestamp: number; packetCount: number; octetCount: number }

export type RtcpPacket =
  | { type: "sr"; ssrc: number; sender: SenderInfo; reports: ReportBlock[] }
  | { type: "rr"; ssrc: number; reports: ReportBlock[] }
  | { type: "sdes"; chunks: { ssrc: number; cname?: string }[] }
  | { type: "bye"; ssrcs: number[] }
  | { type: "other"; packetType: number };

const RTP_SEQ_MOD = 1 << 16;
const MAX_DROPOUT = 3000;
const MAX_MISORDER = 100;
const MIN_SEQUENTIAL = 2;
const NTP_EPOCH_OFFSET = 2208988800; // seconds from 1900-01-01 to 1970-01-01

/** Wall clock as a 64-bit NTP timestamp split in seconds and fraction. */
export function ntpNow(nowMs: number = performance.timeOrigin + performance.now()): { sec: number; frac: number } {
  const seconds = nowMs / 1000 + NTP_EPOCH_OFFSET;
  const sec = Math.floor(seconds);
  return { sec: sec >>> 0, frac: Math.floor((seconds - sec) * 2 ** 32) >>> 0 };
}

function ntpMiddle(sec: number, frac: number): number {
  return (((sec & 0xffff) << 16) | (frac >>> 16)) >>> 0;
}

/** Reception state for one remote SSRC, RFC 3550 Appendix A.1, A.3, A.8. */
export class ReceptionStats {
  readonly ssrc: number;
  private readonly clockRate: number;
  private maxSeq = 0;
  private cycles = 0;
  private baseSeq = 0;
  private badSeq = RTP_SEQ_MOD + 1;
  private probation = MIN_SEQUENTIAL;
  private expectedPrior = 0;
  private receivedPrior = 0;
  private transit: number | undefined;
  private jitterUnits = 0;   // J in timestamp units (float; reported truncated)
  received = 0;
  /** fraction lost (0..1) in the interval of the last report block */
  lastFractionLost = 0;
  private lastSrMiddle = 0;
  private lastSrArrivalMs = 0;

  constructor(ssrc: number, seq: number, clockRate: number) {
    this.ssrc = ssrc;
    this.clockRate = clockRate;
    this.initSeq(seq);
    this.maxSeq = (seq - 1) & 0xffff;
  }

  private initSeq(seq: number): void {
    this.baseSeq = seq;
    this.maxSeq = seq;
    this.badSeq = RTP_SEQ_MOD + 1;
    this.cycles = 0;
    this.received = 0;
    this.receivedPrior = 0;
    this.expectedPrior = 0;
  }

  /** A.1 update_seq: false while the source is on probation or the packet is far out of order. */
  updateSeq(seq: number): boolean {
    const udelta = (seq - this.maxSeq) & 0xffff;
    if (this.probation > 0) {
      if (seq === ((this.maxSeq + 1) & 0xffff)) {
        this.probation--;
        this.maxSeq = seq;
        if (this.probation === 0) {
          this.initSeq(seq);
          this.received++;
          return true;
        }
      } else {
        this.probation = MIN_SEQUENTIAL - 1;
        this.maxSeq = seq;
      }
      return false;
    }
    if (udelta < MAX_DROPOUT) {
      if (seq < this.maxSeq) this.cycles += RTP_SEQ_MOD;
      this.maxSeq = seq;
    } else if (udelta <= RTP_SEQ_MOD - MAX_MISORDER) {
      // A large jump: accept it as a restart only when the next packet follows it.
      if (seq === this.badSeq) {
        this.initSeq(seq);
      } else {
        this.badSeq = (seq + 1) & 0xffff;
        return false;
      }
    }
    // else: duplicate or reordered packet, counted below.
    this.received++;
    return true;
  }

  /** A.8 interarrival jitter; `arrivalMs` is the local receive time. */
  updateJitter(rtpTimestamp: number, arrivalMs: number): void {
    const arrival = (arrivalMs * this.clockRate) / 1000;
    const transit = arrival - rtpTimestamp;
    if (this.transit !== undefined) {
      let d = transit - this.transit;
      // A timestamp jump (new talk spurt after a long gap, sender clock reset) is not jitter.
      if (Math.abs(d) > this.clockRate) d = 0;
      this.jitterUnits += (Math.abs(d) - this.jitterUnits) / 16;
    }
    this.transit = transit;
  }

  noteSenderReport(ntpSec: number, ntpFrac: number, arrivalMs: number): void {
    this.lastSrMiddle = ntpMiddle(ntpSec, ntpFrac);
    this.lastSrArrivalMs = arrivalMs;
  }

  get extendedHighestSeq(): number { return this.cycles + this.maxSeq; }
  get expected(): number { return this.extendedHighestSeq - this.baseSeq + 1; }
  get cumulativeLost(): number { return this.expected - this.received; }
  get jitterMs(): number { return (this.jitterUnits * 1000) / this.clockRate; }

  /** A.3: a report block; advances the "prior" interval counters. */
  reportBlock(nowMs: number): ReportBlock {
    const expected = this.expected;
    const expectedInterval = expected - this.expectedPrior;
    const receivedInterval = this.received - this.receivedPrior;
    this.expectedPrior = expected;
    this.receivedPrior = this.received;
    const lostInterval = expectedInterval - receivedInterval;
    const fractionLost = expectedInterval === 0 || lostInterval <= 0 ? 0 : Math.min(255, Math.floor((lostInterval << 8) / expectedInterval));
    this.lastFractionLost = fractionLost / 256;
    const lost = Math.max(-0x800000, Math.min(0x7fffff, this.cumulativeLost));
    return {
      ssrc: this.ssrc,
      fractionLost,
      cumulativeLost: lost,
      extendedHighestSeq: this.extendedHighestSeq >>> 0,
      jitter: Math.floor(this.jitterUnits) >>> 0,
      lastSr: this.lastSrMiddle,
      delaySinceLastSr: this.lastSrArrivalMs === 0 ? 0 : Math.floor(((nowMs - this.lastSrArrivalMs) / 1000) * 65536) >>> 0,
    };
  }
}

/** Round-trip time from a report block about our stream (RFC 3550 §6.4.1), in ms. */
export function roundTripMs(block: ReportBlock, arrivalMs: number): number | undefined {
  if (block.lastSr === 0) return undefined;
  const now = ntpNow(arrivalMs);
  const a = ntpMiddle(now.sec, now.frac);
  const rtt = (a - block.lastSr - block.delaySinceLastSr) >>> 0;
  const ms = (rtt / 65536) * 1000;
  return ms < 60_000 ? ms : undefined;
}

// ---- serialization -----------------------------------------------------------------------------

function writeReportBlock(v: DataView, o: number, b: ReportBlock): void {
  v.setUint32(o, b.ssrc >>> 0);
  v.setUint32(o + 4, ((b.fractionLost & 0xff) << 24 | (b.cumulativeLost & 0xffffff)) >>> 0);
  v.setUint32(o + 8, b.extendedHighestSeq >>> 0);
  v.setUint32(o + 12, b.jitter >>> 0);
  v.setUint32(o + 16, b.lastSr >>> 0);
  v.setUint32(o + 20, b.delaySinceLastSr >>> 0);
}

function readReportBlock(v: DataView, o: number): ReportBlock {
  const word = v.getUint32(o + 4);
  const lost24 = word & 0xffffff;
  return {
    ssrc: v.getUint32(o),
    fractionLost: word >>> 24,
    cumulativeLost: lost24 & 0x800000 ? lost24 - 0x1000000 : lost24,
    extendedHighestSeq: v.getUint32(o + 8),
    jitter: v.getUint32(o + 12),
    lastSr: v.getUint32(o + 16),
    delaySinceLastSr: v.getUint32(o + 20),
  };
}

export interface CompoundOptions {
  ssrc: number;
  cname: string;
  sender?: SenderInfo;          // present → SR, absent → RR (RFC 3550 §6.4)
  reports: ReportBlock[];       // at most 31
  bye?: boolean;
}

/** SR or RR, then SDES CNAME (RFC 3550 §6.1), then optionally BYE. */
export function buildCompound(o: CompoundOptions): Uint8Array {
  const reports = o.reports.slice(0, 31);
  const cname = new TextEncoder().encode(o.cname.slice(0, 255));
  const reportLen = (o.sender ? 28 : 8) + reports.length * 24;
  const sdesItems = 4 + 2 + cname.length + 1;                 // ssrc, type+len, text, END
  const sdesLen = 4 + Math.ceil(sdesItems / 4) * 4;
  const byeLen = o.bye ? 8 : 0;
  const out = new Uint8Array(reportLen + sdesLen + byeLen);
  const v = new DataView(out.buffer);
  v.setUint8(0, 0x80 | reports.length);
  v.setUint8(1, o.sender ? 200 : 201);
  v.setUint16(2, reportLen / 4 - 1);
  v.setUint32(4, o.ssrc >>> 0);
  let off = 8;
  if (o.sender) {
    v.setUint32(8, o.sender.ntpSec >>> 0);
    v.setUint32(12, o.sender.ntpFrac >>> 0);
    v.setUint32(16, o.sender.rtpTimestamp >>> 0);
    v.setUint32(20, o.sender.packetCount >>> 0);
    v.setUint32(24, o.sender.octetCount >>> 0);
    off = 28;
  }
  for (const b of reports) { writeReportBlock(v, off, b); off += 24; }
  v.setUint8(off, 0x81);
  v.setUint8(off + 1, 202);
  v.setUint16(off + 2, sdesLen / 4 - 1);
  v.setUint32(off + 4, o.ssrc >>> 0);
  v.setUint8(off + 8, 1); // CNAME
  v.setUint8(off + 9, cname.length);
  out.set(cname, off + 10);
  off += sdesLen;           // END item and padding are already zero
  if (o.bye) {
    v.setUint8(off, 0x81);
    v.setUint8(off + 1, 203);
    v.setUint16(off + 2, 1);
    v.setUint32(off + 4, o.ssrc >>> 0);
  }
  return out;
}

/** Parses a compound RTCP datagram; undefined when the first header is not RTCP v2 (RFC 3550 A.2). */
export function parseCompound(data: Uint8Array): RtcpPacket[] | undefined {
  if (data.length < 8 || data[0]! >> 6 !== 2) return undefined;
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out: RtcpPacket[] = [];
  let off = 0;
  while (off + 4 <= data.length) {
    const b0 = data[off]!;
    if (b0 >> 6 !== 2) return out.length ? out : undefined;
    const count = b0 & 0x1f;
    const pt = data[off + 1]!;
    const len = (v.getUint16(off + 2) + 1) * 4;
    if (off + len > data.length) return out.length ? out : undefined;
    const end = off + len;
    if ((pt === 200 || pt === 201) && len >= 8) {
      const ssrc = v.getUint32(off + 4);
      let p = off + 8;
      let sender: SenderInfo | undefined;
      if (pt === 200) {
        if (p + 20 > end) return out.length ? out : undefined;
        sender = { ntpSec: v.getUint32(p), ntpFrac: v.getUint32(p + 4), rtpTimestamp: v.getUint32(p + 8), packetCount: v.getUint32(p + 12), octetCount: v.getUint32(p + 16) };
        p += 20;
      }
      const reports: ReportBlock[] = [];
      for (let i = 0; i < count && p + 24 <= end; i++, p += 24) reports.push(readReportBlock(v, p));
      out.push(sender ? { type: "sr", ssrc, sender, reports } : { type: "rr", ssrc, reports });
    } else if (pt === 202) {
      const chunks: { ssrc: number; cname?: string }[] = [];
      let p = off + 4;
      for (let i = 0; i < count && p + 4 <= end; i++) {
        const chunk: { ssrc: number; cname?: string } = { ssrc: v.getUint32(p) };
        p += 4;
        while (p < end && data[p] !== 0) {
          const type = data[p]!;
          const itemLen = data[p + 1] ?? 0;
          if (p + 2 + itemLen > end) break;
          if (type === 1) chunk.cname = new TextDecoder().decode(data.subarray(p + 2, p + 2 + itemLen));
          p += 2 + itemLen;
        }
        p = (p + 4) & ~3; // END item, then pad to the next 32-bit boundary
        chunks.push(chunk);
      }
      out.push({ type: "sdes", chunks });
    } else if (pt === 203) {
      const ssrcs: number[] = [];
      for (let i = 0; i < count && off + 4 + i * 4 + 4 <= end; i++) ssrcs.push(v.getUint32(off + 4 + i * 4));
      out.push({ type: "bye", ssrcs });
    } else {
      out.push({ type: "other", packetType: pt });
    }
    off = end;
  }
  return out;
}
