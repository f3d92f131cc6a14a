// Messages between the main thread and a media host (media-engine.ts: in a media worker, or on the
// main thread when there are no workers), and the layout of the host's shared statistics.
//
// Statistics cross without messages: the host owns a SharedArrayBuffer of Float64 values, first
// its totals (worker-totals.ts TOTAL_FIELDS), then one slot of LEG_STAT_FIELDS per leg, which the
// host rewrites as the leg runs and the main thread reads whenever asked (CallMedia.stats()).
import type { MediaSettings } from "./media-settings.ts";
import type { LogLevel } from "../log.ts";
import type { LegCounters, MediaPathCarry } from "./leg.ts";
import type { TappedRtcp } from "./rtcp-tap.ts";
import type { NegotiatedMedia } from "./sdp.ts";
import type { ToneCadence } from "./tones.ts";
import { TOTAL_FIELDS } from "./worker-totals.ts";

export const LEG_STAT_FIELDS = [
  "packetsSent", "packetsReceived", "octetsSent", "octetsReceived", "packetsLost", "strangerPackets", "jitterMs",
  "framesConcealed", "latePackets", "dtmfReceived", "srtpAuthFailures", "srtpReplays",
] as const satisfies readonly (keyof LegCounters)[];
export type LegStatField = (typeof LEG_STAT_FIELDS)[number];
export const TOTALS_LENGTH = TOTAL_FIELDS.length;

/** Float64 offset of leg slot `slot`. */
export function slotOffset(slot: number): number {
  return TOTALS_LENGTH + slot * LEG_STAT_FIELDS.length;
}

export function statsBufferBytes(slots: number): number {
  return slotOffset(slots) * Float64Array.BYTES_PER_ELEMENT;
}

export interface PathOptions {
  mediaTimeoutSec?: number;
  strictSource?: boolean;
  dtmfDurationMs?: number;
}

export type ToHost =
  | { t: "init"; stats: SharedArrayBuffer }
  /** The config's media settings (media-settings.ts): sent at start and on every change. */
  | { t: "settings"; settings: MediaSettings }
  /**
   * Binds the RTP/RTCP pair at `port` (or, `spare`, takes the spare bound there) and joins the
   * channel's mixer; `carry` continues a re-homed leg. A spare's leg is answered only if it fails.
   */
  | { t: "bind"; leg: number; slot: number; channel: string; participantId: string; host: string; port: number; options: PathOptions; carry?: MediaPathCarry; spare?: true }
  /** Binds the RTP/RTCP pair at `port` ahead of need and keeps it idle for a leg (spare-ports.ts). */
  | { t: "spare"; host: string; port: number }
  /** Closes the idle spare at `port`. */
  | { t: "unspare"; port: number }
  | { t: "configure"; leg: number; media: NegotiatedMedia }
  | { t: "signalling"; leg: number; address: string }
  | { t: "dtmf"; leg: number; digits: string }
  | { t: "move"; leg: number; channel: string }
  | { t: "close"; leg: number }
  /** Closes the leg's sockets without a BYE and answers with what carries its stream on elsewhere. */
  | { t: "detach"; leg: number }
  | { t: "mute"; channel: string; participantId: string; muted: boolean }
  | { t: "tap"; tap: number; channel: string }
  | { t: "untap"; tap: number }
  | { t: "closeChannel"; channel: string }
  /** Whether this thread's RTCP tap has listeners (HEP): a worker forwards its sessions' RTCP only then. */
  | { t: "rtcpTap"; on: boolean }
  /**
   * A client (a WebRTC browser) joins the channel: the host's client handler (media-engine.ts
   * hostClientsHere) answers `offer` with `options` (its own: ICE addresses, timeouts) and joins the mixer.
   */
  | { t: "clientJoin"; client: number; channel: string; participantId: string; offer: string; options: unknown }
  | { t: "clientLeave"; client: number }
  /** Plays a call-progress tone to the client alone (replacing any other); none stops it. */
  | { t: "clientTone"; client: number; tone?: { cadence: ToneCadence; durationMs?: number } }
  | { t: "exit" };

export type FromHost =
  | { t: "ready" }
  | { t: "bound"; leg: number }
  | { t: "bindFailed"; leg: number; error: string }
  | { t: "spared"; port: number }
  | { t: "spareFailed"; port: number; error: string }
  | { t: "closed"; leg: number }
  | { t: "detached"; leg: number; carry: MediaPathCarry }
  | { t: "dtmf"; leg: number; digit: string; durationMs: number }
  | { t: "timeout"; leg: number }
  /** Said by this thread, never by a worker: the leg's host died under it. */
  | { t: "lost"; leg: number; error: string }
  | { t: "log"; leg: number; level: LogLevel; component: string; msg: string; fields?: Record<string, unknown> }
  /** A tapped channel's full mix of one tick (the pcm is the receiver's). */
  | { t: "mix"; tap: number; pcm: Int16Array; sampleRate: number; tick: number }
  /** The tap is off: every frame of it was sent before this. */
  | { t: "untapped"; tap: number }
  | { t: "rtcp"; packet: TappedRtcp }
  | { t: "clientAnswer"; client: number; sdp: string; codec: string }
  | { t: "clientRefused"; client: number; message: string }
  /** The client is gone by itself (ICE failure, no connection in time, no media), or after clientLeave. */
  | { t: "clientClosed"; client: number; reason: string };

/**
 * When an outbox posts what it gathered:
 * - "turn": once the current callback's synchronous work and microtasks are done (a worker's
 *   replies: the main thread is waiting on `bound` to answer a call).
 * - "loop": once the event loop has run every callback it had ready (setImmediate). The main
 *   thread's messages to a worker: under load one pass of its loop handles a run of datagrams, each
 *   call's bind, configure or close, and one post then carries them all. Every post wakes the worker
 *   (≈ 30 µs of CPU on each side here); side by side at 800 calls/s this took the main thread from
 *   643 to 582 µs per call and the whole process from 1,602 to 1,470 (medians of five rounds, lower
 *   in each), p99 INVITE→200 unchanged (64 and 60 ms).
 */
export type OutboxFlush = "turn" | "loop";

/**
 * The messages one thread posts to another, sent as one batch (an array): every message a Bun
 * thread receives while idle costs it a wake-up, and a call posts several at once (the SDP answer's
 * `configure` and the signalling address; under load, the binds, closes and their replies of several
 * calls).
 */
export class Outbox<M> {
  private queued: M[] = [];
  private transfer: Bun.Transferable[] = [];
  private readonly schedule: (flush: () => void) => void;

  constructor(
    private readonly post: (batch: M[], transfer: Bun.Transferable[]) => void,
    flushOn: OutboxFlush,
  ) {
    this.schedule = flushOn === "turn" ? queueMicrotask : (flush) => setImmediate(flush);
  }

  add(message: M, transfer?: Bun.Transferable[]): void {
    if (this.queued.push(message) === 1) this.schedule(() => this.flush());
    if (transfer) this.transfer.push(...transfer);
  }

  /** Posts what is queued now (before the thread exits or is terminated). */
  flush(): void {
    if (this.queued.length === 0) return;
    const batch = this.queued;
    const transfer = this.transfer;
    this.queued = [];
    this.transfer = [];
    this.post(batch, transfer);
  }
}
