// The media plane: channels sharded over media workers (Bun Workers), each running a MediaEngine
// (media-engine.ts) that owns its channels' mixers, ticker, RTP sockets, jitter buffers and codecs.
// SIP, HTTP and SDP negotiation stay on this thread; a channel lives in one place at a time.
//
//   const plane = new MediaPlane({ workers: 3, maxLegs: 5000 });
//   const channel = plane.open("app/room");      // placed on the worker with the fewest legs
//   const leg = await createHostedLeg({ channel, allocator, ... });   // hosted-leg.ts
//   const client = await channel.joinClient("browser", offerSdp, options);   // a WebRTC peer, in the channel's host
//   channel.addTap(recorder.tap); channel.setMuted(id, true);
//   channel.close(); plane.close();
//
// Placement: a channel goes to the worker with the fewest legs when it opens and stays there while
// it is open. A leg moved to a channel on another host is re-homed (hosted-leg.ts): the old host
// closes its socket without a BYE, the new one binds the same port and carries the outgoing stream
// on (SSRC, sequence, timestamp). A channel's WebRTC clients (werift peers) run on its host too:
// the offer goes there and the answer comes back. Workers start when first used.
import { mediaSettings, onMediaSettings } from "./media-settings.ts";
import { createLogger } from "../log.ts";
import type { MixTap } from "./mix-tap.ts";
import type { Mixer } from "./mixer.ts";
import type { ToneCadence } from "./tones.ts";
import { MediaEngine } from "./media-engine.ts";
import { rtcpTap, watchRtcpTap } from "./rtcp-tap.ts";
import { LEG_STAT_FIELDS, Outbox, slotOffset, statsBufferBytes, type FromHost, type ToHost } from "./media-protocol.ts";
import type { RtpPortAllocator } from "./ports.ts";
import { SparePorts } from "./spare-ports.ts";
import { addWorkerTotals, retireWorkerTotals, totalIndex, type TotalField } from "./worker-totals.ts";

const log = createLogger("media.plane");

/**
 * From source the worker script (the worker's composition root) is src/media-worker.ts. The compiled executable bundles this module
 * into its main entrypoint, whose import.meta.url is the bundle's root, and holds the worker (an
 * entrypoint of its own, see the Makefile) under its path from the repository root.
 */
const WORKER_URL = new URL(import.meta.url.endsWith("/media-plane.ts") ? "../media-worker.ts" : "./src/media-worker.ts", import.meta.url).href;
/** close() lets a worker send what is queued (RTCP BYEs) before it is terminated regardless. */
const EXIT_GRACE_MS = 1000;

/** What a hosted leg hears from its host. */
export interface HostedLegEvents {
  onMessage(m: Extract<FromHost, { leg: number }>): void;
}

type ClientMessage = Extract<FromHost, { client: number }>;

/** A client in a channel, its peer running on the channel's host. */
export interface ChannelClient {
  /** The codec it is sent. */
  readonly codec: string;
  /** Called once when the client is gone by itself (ICE failure, connect or media timeout, closed by the browser). */
  onClosed: (reason: string) => void;
  /** A tone the client alone hears over its mix (replacing any other), until its duration is over; none stops it. */
  playTone(tone: { cadence: ToneCadence; durationMs?: number } | undefined): void;
  leave(): void;
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
  private readonly clientListeners = new Map<number, (m: ClientMessage) => void>();
  private readonly taps = new Map<number, MixTap>();
  /** taps being removed: their frames still in flight are delivered until the host says "untapped" */
  private readonly draining = new Map<number, PromiseWithResolvers<void>>();
  private worker: Worker | undefined;
  private readonly outbox = new Outbox<ToHost>((batch) => this.worker?.postMessage(batch), "loop");
  /** A worker's only: on this thread a bind is answered a microtask later anyway. */
  private readonly spares: SparePorts | undefined;
  private engine: MediaEngine | undefined;
  private terminateTimer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  /** the worker exited unasked */
  failed = false;
  private removeTotals = (): void => {};
  private unwatchRtcp = (): void => {};
  private unwatchSettings = (): void => {};

  constructor(
    readonly name: string,
    readonly isWorker: boolean,
    slots: number,
    /** Told once when the worker exited unasked. */
    private readonly onFailed: () => void = () => {},
  ) {
    this.slotCount = slots;
    const buffer = new SharedArrayBuffer(statsBufferBytes(slots));
    this.stats = new Float64Array(buffer);
    if (isWorker) this.removeTotals = addWorkerTotals(this.stats);
    this.spares = isWorker ? new SparePorts((m) => this.send(m)) : undefined;
  }

  /** The port of a pair this host has bound already (bind with `spare`), or undefined. */
  takeSparePort(allocator: RtpPortAllocator, address: string): number | undefined {
    return this.closed || this.failed ? undefined : this.spares?.take(allocator, address);
  }

  /** The engine of this thread's host (a plane without workers); undefined for a worker. */
  get local(): MediaEngine | undefined {
    return this.isWorker ? undefined : this.started() && this.engine;
  }

  send(m: ToHost): void {
    if (this.closed) return;
    if (this.failed) return this.refuse(m);
    this.started();
    if (this.worker) this.outbox.add(m);
    else this.engine!.handle(m);
  }

  listen(leg: number, events: HostedLegEvents): void {
    this.listeners.set(leg, events);
  }

  unlisten(leg: number): void {
    this.listeners.delete(leg);
  }

  listenClient(client: number, listener: (m: ClientMessage) => void): void {
    this.clientListeners.set(client, listener);
  }

  unlistenClient(client: number): void {
    this.clientListeners.delete(client);
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

  /** Resolves once the last frame the host mixed for the tap was delivered (no frame is lost on a stop). */
  removeTap(id: number): Promise<void> {
    const pending = this.draining.get(id);
    if (pending) return pending.promise;
    if (!this.taps.has(id) || this.closed || this.failed) {
      this.taps.delete(id);
      return Promise.resolve();
    }
    const drain = Promise.withResolvers<void>();
    this.draining.set(id, drain);
    this.send({ t: "untap", tap: id });
    return drain.promise;
  }

  private untapped(id: number): void {
    this.taps.delete(id);
    this.draining.get(id)?.resolve();
    this.draining.delete(id);
  }

  close(): void {
    if (this.closed) return;
    if (this.worker) {
      this.outbox.add({ t: "exit" });
      this.outbox.flush();
      this.terminateTimer = setTimeout(() => this.worker?.terminate(), EXIT_GRACE_MS);
      this.terminateTimer.unref();
    } else this.engine?.handle({ t: "exit" });
    this.closed = true;
    this.spares?.clear();
    for (const id of [...this.draining.keys()]) this.untapped(id);
    this.removeTotals();
    this.unwatchRtcp();
    this.unwatchSettings();
  }

  private started(): true {
    if (this.worker || this.engine) return true;
    if (this.isWorker) {
      const worker = new Worker(WORKER_URL, { ref: false });
      worker.addEventListener("message", (event: MessageEvent<FromHost[]>) => {
        // One batch holds many legs' messages: one listener's failure must not cost the others theirs.
        for (const m of event.data) {
          try {
            this.onMessage(m);
          } catch (error) {
            log.error("media host message failed", { worker: this.name, message: m.t, error });
          }
        }
      });
      worker.addEventListener("error", (event) => log.error("media worker failed", { worker: this.name, error: event.message }));
      worker.addEventListener("close", () => {
        clearTimeout(this.terminateTimer);
        if (!this.closed) this.fail();
      });
      this.worker = worker;
      this.unwatchRtcp = watchRtcpTap((on) => this.send({ t: "rtcpTap", on }));
      this.outbox.add({ t: "settings", settings: mediaSettings() });
      this.unwatchSettings = onMediaSettings((settings) => this.send({ t: "settings", settings }));
    } else {
      // On this thread replies come a microtask later, as from a worker: never inside the sender's call.
      this.engine = new MediaEngine((m) => queueMicrotask(() => this.onMessage(m)), false);
    }
    this.send({ t: "init", stats: this.stats.buffer as SharedArrayBuffer });
    return true;
  }

  /**
   * The worker died: its legs have lost their media (their calls end), what waits for it is answered
   * as a dead worker would, and no channel is placed here again (the plane puts a new worker in its place).
   */
  private fail(): void {
    this.failed = true;
    log.error("media worker exited; the calls on it end", { worker: this.name, legs: this.legs });
    const error = `media worker ${this.name} exited`;
    for (const [leg, listener] of [...this.listeners]) {
      listener.onMessage({ t: "bindFailed", leg, error });
      listener.onMessage({ t: "closed", leg });
      listener.onMessage({ t: "lost", leg, error });
    }
    for (const [client, listener] of [...this.clientListeners]) listener({ t: "clientClosed", client, reason: "media-worker-exited" });
    for (const id of [...this.draining.keys()]) this.untapped(id);
    this.spares?.clear();
    this.retire();
    this.onFailed();
  }

  /** Its counters stay in the totals; its settings and RTCP tap subscriptions end. */
  private retire(): void {
    retireWorkerTotals(this.stats);
    this.removeTotals = () => {};
    this.unwatchRtcp();
    this.unwatchSettings();
  }

  private refuse(m: ToHost): void {
    if (m.t === "clientJoin") {
      const listener = this.clientListeners.get(m.client);
      queueMicrotask(() => listener?.({ t: "clientClosed", client: m.client, reason: "media-worker-exited" }));
      return;
    }
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
      case "untapped":
        this.untapped(m.tap);
        return;
      case "spared":
        this.spares?.onSpared(m.port);
        return;
      case "spareFailed":
        this.spares?.onSpareFailed(m.port);
        return;
      case "clientAnswer":
      case "clientRefused":
      case "clientClosed":
        this.clientListeners.get(m.client)?.(m);
        return;
      default:
        this.listeners.get(m.leg)?.onMessage(m);
    }
  }
}

/** A phone leg in a channel: re-homed when it moves to a channel on another host. */
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
    readonly host: MediaHost,
  ) {}

  /** The channel's mixer, when the channel runs on this thread (a plane without workers). */
  localMixer(): Mixer {
    if (this.closed) throw new Error("mixer is closed");
    const engine = this.host.local;
    if (!engine) throw new Error(`channel ${this.key} runs in media worker ${this.host.name}`);
    return engine.mixer(this.key);
  }

  /**
   * Joins a client (a WebRTC browser) whose peer runs on the channel's host: `offer` and `options`
   * go there, the answer comes back. The channel must stay open until this resolves (the registry's
   * joinWhenReady keeps it open).
   */
  joinClient(
    participantId: string,
    offer: string,
    options: unknown,
  ): Promise<{ ok: true; sdp: string; client: ChannelClient } | { ok: false; message: string; /** the host, not the offer, is the problem */ unavailable?: true }> {
    if (this.closed) return Promise.resolve({ ok: false, message: "mixer is closed", unavailable: true });
    const { host } = this;
    const id = this.plane.nextId();
    return new Promise((resolve) => {
      let client: ChannelClient | undefined;
      host.listenClient(id, (m) => {
        switch (m.t) {
          case "clientRefused":
            host.unlistenClient(id);
            return resolve({ ok: false, message: m.message });
          case "clientClosed":
            host.unlistenClient(id);
            if (client) client.onClosed(m.reason);
            else resolve({ ok: false, message: `the channel's media host is gone (${m.reason})`, unavailable: true });
            return;
          case "clientAnswer": {
            host.legs++;
            let left = false;
            client = {
              codec: m.codec,
              onClosed: () => {},
              playTone: (tone) => host.send({ t: "clientTone", client: id, ...(tone ? { tone } : {}) }),
              leave: () => {
                if (left) return;
                left = true;
                host.legs--;
                host.send({ t: "clientLeave", client: id });
              },
            };
            return resolve({ ok: true, sdp: m.sdp, client });
          }
        }
      });
      host.send({ t: "clientJoin", client: id, channel: this.key, participantId, offer, options });
    });
  }

  isMuted(participantId: string): boolean {
    return this.muted.has(participantId);
  }

  setMuted(participantId: string, muted: boolean): void {
    if (muted) this.muted.add(participantId);
    else this.muted.delete(participantId);
    this.host.send({ t: "mute", channel: this.key, participantId, muted });
  }

  /**
   * Hands every tick's full mix to `tap` (a copy, a few milliseconds later from a worker) until the
   * returned function is called; what it returns resolves once the frames mixed before were delivered.
   */
  addTap(tap: MixTap): () => Promise<void> {
    const id = this.plane.nextId();
    this.taps.set(id, tap);
    this.host.addTap(id, this.key, tap);
    return () => {
      this.taps.delete(id);
      return this.host.removeTap(id);
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const id of this.taps.keys()) void this.host.removeTap(id);
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
  private closed = false;

  constructor(o: MediaPlaneOptions) {
    const slots = o.maxLegs ?? 10_000;
    this.workers = Array.from({ length: o.workers }, (_, i) => this.worker(i, slots));
    this.mainHost = new MediaHost("main", false, slots);
  }

  /**
   * Worker `index`, replaced by a fresh one (started when first used) the moment it dies: the
   * channels on the dead one end, new channels go to its successor.
   */
  private worker(index: number, slots: number): MediaHost {
    return new MediaHost(`media-${index + 1}`, true, slots, () => {
      if (!this.closed) this.workers[index] = this.worker(index, slots);
    });
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
    this.closed = true;
    for (const host of this.workers) host.close();
    this.mainHost.close();
  }
}
