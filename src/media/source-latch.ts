// Strict source learning for one RTP (or RTCP) flow: which remote transport address our media goes
// to and is accepted from. Only what the signalling names may be learned, so a stranger spraying the
// port range can neither hear a leg nor be heard in it (the RTP-bleed class of attack that Asterisk's
// strictrtp and rtpengine's strict-source close).
//
//   const latch = new SourceLatch();
//   latch.expect({ address: "203.0.113.7", port: 4000 }, { strict: false });   // from the SDP; learning again
//   latch.admitRtp(address, port, datagram, nowMs);     // ADMIT | PROBATION | STRANGER
//   latch.admitControl(address, port, nowMs);           // RTCP on its own port: no sequence numbers
//   latch.mayAdmit(address, port, nowMs);               // the same question, changing nothing
//   latch.address / latch.port                          // the learned source (undefined until learned)
//
// Which sources may be learned:
// - strict: the SDP's connection address and port, nothing else;
// - otherwise the SDP's connection address from any port (a NAT may rewrite ports, RFC 4787 §4.1), and
//   the address the call's SIP signalling comes from (setSignallingAddress), from any port: a phone
//   behind NAT that wrote its LAN address into the SDP sends its media from the same public address as
//   its SIP (RFC 4787 §4.1 REQ-2, "paired" pooling), and so does a multi-homed host that advertises
//   another interface than the one it routes through.
// The SDP's exact address and port is learned from its first packet and locks at once. A source that
// matches by address only must first send LEARN_PROBATION consecutive sequence numbers of one SSRC
// (RTCP: its first packet); learning then stays open LEARN_WINDOW_MS, during which the exact SDP
// source may still take over, and locks. Once locked, only the learned source is admitted until
// expect() names a different transport address (a re-INVITE or UPDATE that moves the media).
// State is one learned source and one candidate, whatever a sprayer sends.

/** Consecutive in-sequence packets a source that matches the SDP by address only must send (as Asterisk's probation). */
export const LEARN_PROBATION = 4;
/** How long after the first learned packet the exact SDP source may still take over. */
export const LEARN_WINDOW_MS = 1000;

export const ADMIT = 0;
/** From an allowed address, not yet qualified (or displaced by a better source): dropped, not a stranger. */
export const PROBATION = 1;
/** From a source the signalling does not allow, or not the learned one once learning is over. */
export const STRANGER = 2;
export type Admission = typeof ADMIT | typeof PROBATION | typeof STRANGER;

const EXACT = 2;
const SAME_ADDRESS = 1;
const NONE = 0;

export class SourceLatch {
  /** The learned source, as the socket reports it; undefined until learned. */
  address: string | undefined;
  port = 0;
  private expectedAddress = "";
  private expectedPort = 0;
  private strict = false;
  private signallingAddress: string | undefined;
  /** from this time only the learned source is admitted: Infinity until a first source is learned, -Infinity once locked for good */
  private lockAtMs = Infinity;
  private candidateAddress = "";
  private candidatePort = 0;
  private candidateSsrc = 0;
  private candidateSeq = 0;
  private candidateCount = 0;

  /** Names the transport address the signalling gives for this flow; forgets what was learned. */
  expect(expected: { address: string; port: number }, o: { strict: boolean }): void {
    this.expectedAddress = canonicalAddress(expected.address);
    this.expectedPort = expected.port;
    this.strict = o.strict;
    this.address = undefined;
    this.port = 0;
    this.lockAtMs = Infinity;
    this.candidateCount = 0;
  }

  /** Where the SIP signalling of this call comes from (the dialog's peer). */
  setSignallingAddress(address: string): void {
    this.signallingAddress = canonicalAddress(address);
  }

  /**
   * Whether admitRtp/admitControl could admit a datagram from address:port now, changing nothing:
   * lets a caller drop strangers before costlier checks (SRTP authentication) run.
   */
  mayAdmit(address: string, port: number, nowMs: number): boolean {
    if (port === this.port && address === this.address) return true;
    return nowMs < this.lockAtMs && this.rank(address, port) !== NONE;
  }

  /** One RTP datagram (at least a 12-byte header, RFC 3550 §5.1) from address:port. */
  admitRtp(address: string, port: number, data: Uint8Array, nowMs: number): Admission {
    return this.decide(address, port, nowMs) ?? this.qualify(address, port, data, nowMs);
  }

  /** One RTCP datagram on a port of its own (RTCP without rtcp-mux): learned from its first packet. */
  admitControl(address: string, port: number, nowMs: number): Admission {
    const decided = this.decide(address, port, nowMs);
    if (decided !== undefined) return decided;
    this.learn(address, port, nowMs + LEARN_WINDOW_MS);
    return ADMIT;
  }

  /** Whether a packet from address:port may be read before anything is learned (RTCP on the RTP port). */
  allows(address: string, port: number): boolean {
    if (this.address !== undefined) return port === this.port && address === this.address;
    return this.rank(address, port) !== NONE;
  }

  /**
   * What RTP and RTCP share: the learned source, a lock, strangers, the exact SDP source; undefined
   * for a source that matches by address only while nothing is learned (each flow qualifies it).
   */
  private decide(address: string, port: number, nowMs: number): Admission | undefined {
    if (port === this.port && address === this.address) return ADMIT;
    if (nowMs >= this.lockAtMs) return STRANGER;
    const rank = this.rank(address, port);
    if (rank === NONE) return STRANGER;
    if (rank === EXACT) {
      this.learn(address, port, -Infinity);
      return ADMIT;
    }
    return this.address !== undefined ? PROBATION : undefined;
  }

  private rank(address: string, port: number): number {
    const a = address.startsWith("::ffff:") ? address.slice(7) : address;
    if (a === this.expectedAddress) {
      if (port === this.expectedPort) return EXACT;
      return this.strict ? NONE : SAME_ADDRESS;
    }
    return !this.strict && a === this.signallingAddress ? SAME_ADDRESS : NONE;
  }

  /** RFC 3550 A.1 style probation: consecutive sequence numbers of one SSRC from one source. */
  private qualify(address: string, port: number, data: Uint8Array, nowMs: number): Admission {
    if (data.length < 12 || data[0]! >> 6 !== 2) return PROBATION;
    const seq = (data[2]! << 8) | data[3]!;
    const ssrc = ((data[8]! << 24) | (data[9]! << 16) | (data[10]! << 8) | data[11]!) >>> 0;
    const continues = this.candidateCount > 0 && port === this.candidatePort && address === this.candidateAddress
      && ssrc === this.candidateSsrc && seq === ((this.candidateSeq + 1) & 0xffff);
    if (continues) {
      this.candidateCount++;
    } else {
      this.candidateAddress = address;
      this.candidatePort = port;
      this.candidateSsrc = ssrc;
      this.candidateCount = 1;
    }
    this.candidateSeq = seq;
    if (this.candidateCount < LEARN_PROBATION) return PROBATION;
    this.learn(address, port, nowMs + LEARN_WINDOW_MS);
    return ADMIT;
  }

  private learn(address: string, port: number, lockAtMs: number): void {
    this.address = address;
    this.port = port;
    this.lockAtMs = lockAtMs;
    this.candidateCount = 0;
  }
}

/**
 * An address as a socket reports it: IPv6 in lower case with zeros compressed (RFC 5952), and an
 * IPv4-mapped IPv6 address (a dual-stack socket's view of IPv4) as plain IPv4.
 */
export function canonicalAddress(address: string): string {
  const a = address.toLowerCase();
  if (a.startsWith("::ffff:") && a.includes(".")) return a.slice(7);
  if (!a.includes(":") || a.includes("%")) return a;
  let canonical: string;
  try {
    canonical = new URL(`http://[${a}]/`).hostname.slice(1, -1);
  } catch {
    return a; // not an IPv6 literal: compared as written
  }
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (!mapped) return canonical;
  const high = parseInt(mapped[1]!, 16);
  const low = parseInt(mapped[2]!, 16);
  return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
}
