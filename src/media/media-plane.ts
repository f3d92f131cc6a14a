// The media plane: channels sharded over media workers (Bun Workers), each running a MediaEngine
// (media-engine.ts) that owns its channels' mixers, ticker, RTP sockets, jitter buffers and codecs.
// SIP, HTTP and SDP negotiation stay on this thread; a channel lives in one place at a time.
//
//   const plane = new MediaPlane({ workers: 3, maxLegs: 5000 });
//   const channel = plane.open("app/room");      // placed on the worker with the fewest legs
//   const leg = await createHostedLeg({ channel, allocator, ... });   // hosted-leg.ts
//   channel.addTap(recorder.tap); channel.setMuted(id, true);
//   channel.localMixer();                        // moves the channel to this thread (WebRTC clients)
//   channel.close(); plane.close();
//
// Placement: a channel goes to the worker with the fewest legs when it opens and stays there while
// it is open. A leg moved to a channel on another host is re-homed (hosted-leg.ts): the old host
// closes its socket without a BYE, the new one binds the same port and carries the outgoing stream
// on (SSRC, sequence, timestamp). WebRTC peers run on this thread (werift), so a channel a WebRTC
// client joins is hosted here, its phone legs re-homed the same way. Workers start when first used.
import { createLogger } from "../log.ts";
import type { MixTap } from "./mix-tap.ts";
import type { Mixer } from "./mixer.ts";
import { MediaEngine } from "./media-engine.ts";
import { rtcpTap, watchRtcpTap } from "./rtcp-tap.ts";
import { LEG_STAT_FIELDS, slotOffset, statsBufferBytes, type FromHost, type ToHost } from "./media-protocol.ts";
import { addWorkerTotals, totalIndex, type TotalField } from "./worker-totals.ts";

const log = createLogger("media.plane");

/**
 * From source the worker script sits beside this module. The compiled executable bundles this module
 * into its main entrypoint, whose import.meta.url is the bundle's root, and holds the worker (an
 * entrypoint of its own, see the Makefile) under its path from the repository root.
 */
const WORKER_URL = new URL(import.meta.url.endsWith("/media-plane.ts") ? "./media-worker.ts" : "./src/media/media-worker.ts", import.meta.url).href;
/** close() lets a worker send what is queued (RTCP BYEs) before it is terminated regardless. */
const EXIT_GRACE_MS = 1000;

/** What a hosted leg hears from its host. */
export interface HostedLegEvents {
  onMessage(m: Extract<FromHost, { leg: number }>): void;
}

/** Where channels run: a media worker, or this thread. */
export class MediaHost {
  /** legs bound here and channels open here, for placement */
  legs = 0;
  channels = 0;
  readonly stats: Float64Array;
  private readonly freeSlots: number[] = [];
  private nextSlot = 0;
  private readonly slotCount: number;
  private readonly listeners = new Map<number, HostedLegEvents>();
  private readonly taps = new Map<number, MixTap>();
  private worker: Worker | undefined;
  private engine: MediaEngine | undefined;
  private terminateTimer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  /** the worker exited unasked */
  failed = false;
  private removeTotals = (): void => {};
  private unwatchRtcp = (): void => {};

  constructor(
    readonly name: string,
    readonly isWorker: boolean,
    slots: number,
  ) {
    this.slotCount = slots;
    const buffer = new SharedArrayBuffer(statsBufferBytes(slots));
    this.stats = new Float64Array(buffer);
    if (isWorker) this.removeTotals = addWorkerTotals(this.stats);
  }

  /** The engine of this thread's host (channels with WebRTC clients); undefined for a worker. */
  get local(): MediaEngine | undefined {
    return this.isWorker ? undefined : this.started() && this.engine;
  }

  send(m: ToHost): void {
    if (this.closed) return;
    if (this.failed) return this.refuse(m);
    this.started();
    if (this.worker) this.worker.postMessage(m);
    else this.engine!.handle(m);
  }

  listen(leg: number, events: HostedLegEvents): void {
    this.listeners.set(leg, events);
  }

  unlisten(leg: number): void {
    this.listeners.delete(leg);
  }

  /** A stats slot for a leg, or undefined when every slot is taken. */
  takeSlot(): number | undefined {
    const slot = this.freeSlots.pop() ?? (this.nextSlot < this.slotCount ? this.nextSlot++ : undefined);
    if (slot !== undefined) this.stats.fill(0, slotOffset(slot), slotOffset(slot + 1));
    return slot;
  }

  freeSlot(slot: number): void {
    this.freeSlots.push(slot);
  }

  readSlot(slot: number): Record<(typeof LEG_STAT_FIELDS)[number], number> {
    const at = slotOffset(slot);
    const out = {} as Record<(typeof LEG_STAT_FIELDS)[number], number>;
    LEG_STAT_FIELDS.forEach((f, i) => (out[f] = this.stats[at + i] as number));
    return out;
  }

  total(field: TotalField): number {
    return this.stats[totalIndex[field]] as number;
  }

  addTap(id: number, channel: string, tap: MixTap): void {
    this.taps.set(id, tap);
    this.send({ t: "tap", tap: id, channel });
  }

  removeTap(id: number): void {
    if (!this.taps.delete(id)) return;
    this.send({ t: "untap", tap: id });
  }

  close(): void {
    if (this.closed) return;
    if (this.worker) {
      this.worker.postMessage({ t: "exit" } satisfies ToHost);
      this.terminateTimer = setTimeout(() => this.worker?.terminate(), EXIT_GRACE_MS);
      this.terminateTimer.unref();
    } else this.engine?.handle({ t: "exit" });
    this.closed = true;
    this.removeTotals();
    this.unwatchRtcp();
  }

  private started(): true {
    if (this.worker || this.engine) return true;
    if (this.isWorker) {
      const worker = new Worker(WORKER_URL, { ref: false });
      worker.addEventListener("message", (event: MessageEvent<FromHost>) => this.onMessage(event.data));
      worker.addEventListener("error", (event) => log.error("media worker failed", { worker: this.name, error: event.message }));
      worker.addEventListener("close", () => {
        clearTimeout(this.terminateTimer);
        if (!this.closed) this.fail();
      });
      this.worker = worker;
      this.unwatchRtcp = watchRtcpTap((on) => this.worker?.postMessage({ t: "rtcpTap", on } satisfies ToHost));
    } else {
      // On this thread replies come a microtask later, as from a worker: never inside the sender's call.
      this.engine = new MediaEngine((m) => queueMicrotask(() => this.onMessage(m)), false);
    }
    this.send({ t: "init", stats: this.stats.buffer as SharedArrayBuffer });
    return true;
  }

  /**
   * The worker died: its legs time out (their calls end), what waits for it is answered as a dead
   * worker would, and no channel is placed here again.
   */
  private fail(): void {
    this.failed = true;
    log.error("media worker exited; the calls on it end", { worker: this.name, legs: this.legs });
    for (const [leg, listener] of [...this.listeners]) {
      listener.onMessage({ t: "bindFailed", leg, error: `media worker ${this.name} exited` });
      listener.onMessage({ t: "closed", leg });
      listener.onMessage({ t: "timeout", leg });
    }
  }

  private refuse(m: ToHost): void {
    const listener = "leg" in m ? this.listeners.get(m.leg) : undefined;
    if (!listener || !("leg" in m)) return;
    if (m.t === "bind") queueMicrotask(() => listener.onMessage({ t: "bindFailed", leg: m.leg, error: `media worker ${this.name} exited` }));
    else if (m.t === "close" || m.t === "detach") queueMicrotask(() => listener.onMessage({ t: "closed", leg: m.leg }));
  }

  private onMessage(m: FromHost): void {
    switch (m.t) {
      case "ready":
        log.debug("media worker started", { worker: this.name });
        return;
      case "rtcp":
        rtcpTap?.(m.packet);
        return;
      case "mix": {
        const tap = this.taps.get(m.tap);
        if (!tap) return;
        try {
          tap.onMix({ pcm: m.pcm, sampleRate: m.sampleRate, tick: m.tick, mixId: 0, silent: false });
        } catch (error) {
          log.error("mix tap failed", { error });
        }
        return;
      }
      default:
        this.listeners.get(m.leg)?.onMessage(m);
    }
  }
}

/** Something a channel re-homes when it moves to this thread. */
export interface HostedMember {
  readonly participantId: string;
  rehome(channel: ChannelMedia): void;
}

/** A channel's media, wherever it runs: what a participant joins and moves between. */
export class ChannelMedia {
  closed = false;
  /** phone legs in this channel, by participant id */
  readonly members = new Map<string, HostedMember>();
  private readonly taps = new Map<number, MixTap>();
  private readonly muted = new Set<string>();

  constructor(
    private readonly plane: MediaPlane,
    readonly key: string,
    public host: MediaHost,
  ) {}

  /** The channel's mixer on this thread, for a participant whose media runs here (a WebRTC peer). */
  localMixer(): Mixer {
    if (this.closed) throw new Error("mixer is closed");
    if (this.host.isWorker) this.moveHere();
    return this.host.local!.mixer(this.key);
  }

  isMuted(participantId: string): boolean {
    return this.muted.has(participantId);
  }

  setMuted(participantId: string, muted: boolean): void {
    if (muted) this.muted.add(participantId);
    else this.muted.delete(participantId);
    this.host.send({ t: "mute", channel: this.key, participantId, muted });
  }

  /** Hands every tick's full mix to `tap` (a copy, a few milliseconds later from a worker) until the returned function is called. */
  addTap(tap: MixTap): () => void {
    const id = this.plane.nextId();
    this.taps.set(id, tap);
    this.host.addTap(id, this.key, tap);
    return () => {
      if (!this.taps.delete(id)) return;
      this.host.removeTap(id);
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const id of this.taps.keys()) this.host.removeTap(id);
    this.host.send({ t: "closeChannel", channel: this.key });
    this.host.channels--;
    const taps = [...this.taps.values()];
    this.taps.clear();
    for (const tap of taps) {
      try {
        tap.onClose?.();
      } catch (error) {
        log.error("mix tap failed", { error });
      }
    }
  }

  /** Hosts the channel on this thread from now on: its legs re-home, its taps and mutes follow. */
  private moveHere(): void {
    const from = this.host;
    const to = this.plane.mainHost;
    this.host = to;
    from.channels--;
    to.channels++;
    log.debug("channel moves to the main thread (WebRTC)", { channel: this.key, from: from.name, legs: this.members.size });
    for (const member of [...this.members.values()]) member.rehome(this);
    for (const [id, tap] of this.taps) {
      from.removeTap(id);
      to.addTap(id, this.key, tap);
    }
    from.send({ t: "closeChannel", channel: this.key });
  }
}

export interface MediaPlaneOptions {
  /** media workers; 0 runs every channel on this thread */
  workers: number;
  /** legs one host can hold (stats slots); default 10,000 */
  maxLegs?: number;
}

/** The default count of media workers: one per core but the one SIP and HTTP use, at least one. */
export function defaultMediaWorkers(): number {
  return Math.max(1, (navigator.hardwareConcurrency || 1) - 1);
}

export class MediaPlane {
  readonly workers: MediaHost[];
  readonly mainHost: MediaHost;
  private id = 0;

  constructor(o: MediaPlaneOptions) {
    const slots = o.maxLegs ?? 10_000;
    this.workers = Array.from({ length: o.workers }, (_, i) => new MediaHost(`media-${i + 1}`, true, slots));
    this.mainHost = new MediaHost("main", false, slots);
  }

  /** Opens a channel's media on the host with the fewest legs (this thread without workers). */
  open(key: string): ChannelMedia {
    let best = this.mainHost;
    for (const host of this.workers) {
      if (host.failed) continue;
      if (best === this.mainHost || host.legs < best.legs || (host.legs === best.legs && host.channels < best.channels)) best = host;
    }
    best.channels++;
    return new ChannelMedia(this, key, best);
  }

  nextId(): number {
    return ++this.id;
  }

  /** Every worker's totals (ticks, late ticks…), in worker order. */
  workerTotals(): Record<TotalField, number>[] {
    return this.workers.map((w) => Object.fromEntries(Object.keys(totalIndex).map((f) => [f, w.total(f as TotalField)])) as Record<TotalField, number>);
  }

  close(): void {
    for (const host of this.workers) host.close();
    this.mainHost.close();
  }
}
