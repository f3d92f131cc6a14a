// Two-party relay. A channel of exactly two phone legs that negotiated the same self-contained codec
// (G.711: every packet decodes on its own) needs no mixer: each hears exactly the other. So each
// one's audio packets go on to the other as they arrive, under the listener's own SSRC, sequence
// numbers and timestamps (RFC 3550 §7.3: we stay the source, as a mixer does), with no jitter
// buffer, decode, mix or encode — and a jitter buffer's delay less: the listener's phone de-jitters,
// as it does behind any SBC. Asterisk's native RTP bridge does the same for two channels whose
// formats match.
//
// The Mixer pairs and unpairs (Mixer.updateRelay); a leg has one PacketRelay end per mixer it joins.
// What the relay cannot carry brings the mixer back for the whole channel: a third participant, a
// tap (a recording), a mute, a codec that differs or is not self-contained, a leg whose packets are
// not 20 ms. For a while, one leg's stream also comes from the mixer again: while we send it DTMF,
// and when its peer has sent nothing for RELAY_QUIET_TICKS (it hears the mixer's silence, as it
// would in a mixed channel).

import { metrics } from "../metrics.ts";
import type { ParsedRtp } from "./rtp-packet.ts";
import { workerTotal } from "./worker-totals.ts";

/** Packets relayed from one leg of a pair to the other, this thread's legs together. */
export const relayTotals = { packets: 0 };
metrics.counter(
  "trunkline_relayed_packets_total",
  "RTP packets a two-party channel passed from one phone leg straight to the other instead of mixing (media.relayPairs), every media worker's included.",
  [],
  () => relayTotals.packets + workerTotal("relayedPackets"),
);

export interface PacketRelay {
  /** Equal for two participants that can take each other's packets as they are; undefined: this one cannot be relayed now. */
  readonly format: string | undefined;
  /**
   * The mixer paired this participant with `peer` (undefined: unpaired). While paired the participant
   * hands its audio packets to `peer.deliver` instead of to the mixer, and hears the peer through its
   * own `deliver`.
   */
  pair(peer: PacketRelay | undefined): void;
  /** One audio packet of the paired peer (read at `arrivalMs`), to be sent on as this participant's own stream. */
  deliver(packet: ParsedRtp, arrivalMs: number): void;
}

/** Ticks without a relayed packet after which the listener hears the mixer's frames (silence) again. */
export const RELAY_QUIET_TICKS = 10;

/** A forward jump in the peer's sequence numbers larger than this is a new stream, not loss. */
const MAX_SEQUENCE_GAP = 100;

/**
 * Packets a peer may have relayed per 20 ms, and at most at once: a phone sends one per 20 ms; a
 * second's worth arrives at once after a hiccup of the network or of this thread. More is dropped,
 * so a peer cannot use us to send the other party much more than the mixer would (a flood costs the
 * listener nothing).
 */
const RELAY_PACKETS_PER_FRAME = 1.5;
export const RELAY_BURST = 50;

/**
 * Where a relayed peer's packets land on the listener's own stream. Sequence numbers keep the peer's
 * gaps (the listener's phone sees the loss and conceals it) and drop what comes late or twice; the
 * timestamp offset is fixed at each (re)synchronisation so that the first packet relayed continues
 * our stream exactly where it stands: a pairing, a move or the end of our own frames is no restart
 * for the listener's phone.
 */
export class RelayedStream {
  /** Out: the packet's timestamp on our stream, and the sequence numbers to skip before it. */
  timestamp = 0;
  gap = 0;
  /** The tick at which the peer's last packet arrived. */
  lastTick = -Infinity;
  /** A packet was relayed since our own frames last went out. */
  carried = false;
  private credit = RELAY_BURST;
  private creditAtMs = 0;
  private synced = false;
  private ssrc = 0;
  private sequence = 0;
  private offset = 0;

  /** The next packet starts a new run (our stream came from elsewhere meanwhile). */
  resync(): void {
    this.synced = false;
  }


  /**
   * Maps one packet of the peer; false when it is to be dropped (late, a duplicate, or beyond the
   * rate). `next` is the timestamp our stream would use next; `nowMs` when the packet was read.
   */
  map(packet: ParsedRtp, next: number, nowMs: number): boolean {
    this.credit = Math.min(RELAY_BURST, this.credit + ((nowMs - this.creditAtMs) * RELAY_PACKETS_PER_FRAME) / 20);
    this.creditAtMs = nowMs;
    if (this.credit < 1) return false;
    const step = (packet.sequenceNumber - this.sequence) & 0xffff;
    const sameRun = this.synced && packet.ssrc === this.ssrc;
    if (sameRun && step === 0) return false;
    // Behind the last one relayed: too late for a stream that is already past it.
    if (sameRun && step >= 0x8000) return false;
    if (sameRun && step <= MAX_SEQUENCE_GAP) this.gap = step - 1;
    else {
      this.synced = true;
      this.ssrc = packet.ssrc;
      this.offset = (next - packet.timestamp) >>> 0;
      this.gap = 0;
    }
    this.sequence = packet.sequenceNumber;
    this.timestamp = (packet.timestamp + this.offset) >>> 0;
    this.credit--;
    return true;
  }
}
