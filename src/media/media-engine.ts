// The media host side of the media plane (media-plane.ts): the channels' mixers, the phone legs'
// media paths (LegMediaPath: RTP sockets, jitter buffers, codecs, DTMF, SRTP) and the mix taps of
// the channels it hosts, and their clients (WebRTC peers, through the client handler this thread
// registered: hostClientsHere), driven by messages (media-protocol.ts). One runs in each media
// worker (src/media-worker.ts); one runs on the main thread when there are no workers.
import { applyMediaSettings } from "./media-settings.ts";
import type { Logger, LogLevel } from "../log.ts";
import { srtpDropTotals } from "./srtp.ts";
import { LegMediaPath, type LegCounters } from "./leg.ts";
import { LEG_STAT_FIELDS, slotOffset, type FromHost, type ToHost } from "./media-protocol.ts";
import { Mixer, mixerTotals } from "./mixer.ts";
import { RtpPortAllocator } from "./ports.ts";
import { relayTotals } from "./relay.ts";
import { tapRtcp } from "./rtcp-tap.ts";
import { RtpSession, rtpPacketTotals, strangerTotals } from "./rtp.ts";
import { tickerTotals } from "./ticker.ts";
import type { ToneCadence } from "./tones.ts";
import { totalIndex } from "./worker-totals.ts";

/** A client in a channel's mixer, as its handler runs it on the channel's host. */
export interface HostedClient {
  /** Called once when the client is gone by itself (the reason), or after close(). */
  onClosed: (reason: string) => void;
  /** Joins `mixer` as `participantId`: the client's audio goes in, its N−1 mix goes out. */
  attach(mixer: Mixer, participantId: string): void;
  /** A tone only this client hears over its mix, until its duration is over; none stops it. */
  playTone(tone: { cadence: ToneCadence; durationMs?: number } | undefined): void;
  /** Leaves the mixer and closes the connection. */
  close(): void;
}

/** What answers a client's offer on a media host (src/webrtc/client-host.ts: werift peers). */
export interface ClientHandler {
  answer(offer: string, options: unknown): Promise<{ ok: true; sdp: string; codec: string; client: HostedClient } | { ok: false; message: string }>;
}

let clientHandler: ClientHandler | undefined;

/** Lets the media hosts of this thread host clients (the composition root of each thread registers one). */
export function hostClientsHere(handler: ClientHandler): void {
  clientHandler = handler;
}

/** How often every leg's slot and the totals are rewritten (besides at once on DTMF and first media). */
const STATS_INTERVAL_MS = 100;

interface HostedPath {
  path: LegMediaPath;
  slot: number;
  channel: string;
}

export class MediaEngine {
  private readonly mixers = new Map<string, Mixer>();
  private readonly legs = new Map<number, HostedPath>();
  /** legs whose sockets are being bound: a close or detach meanwhile happens once bound */
  private readonly binding = new Map<number, { closed: boolean; detach: boolean }>();
  /** pairs bound ahead of need, by port, idle until a leg takes one (spare-ports.ts) */
  private readonly spares = new Map<number, RtpSession>();
  /** Where write() reads a leg's counters into: one object for all legs (every 100 ms each). */
  private readonly counters: LegCounters = {
    packetsSent: 0, packetsReceived: 0, octetsSent: 0, octetsReceived: 0, packetsLost: 0, strangerPackets: 0, jitterMs: 0,
    framesConcealed: 0, latePackets: 0, dtmfReceived: 0, srtpAuthFailures: 0, srtpReplays: 0,
  };
  private readonly taps = new Map<number, { channel: string; untap: () => void }>();
  private readonly clients = new Map<number, { client: HostedClient; channel: string }>();
  /** clients whose offer is being answered: true once a clientLeave came meanwhile */
  private readonly answering = new Map<number, boolean>();
  private stats: Float64Array | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private untapRtcp: (() => void) | undefined;

  /**
   * @param post where replies and events go
   * @param ownTotals whether this thread's module totals are the host's (a worker): false on the main
   *   thread, whose metrics count them already
   */
  constructor(
    private readonly post: (message: FromHost, transfer?: Bun.Transferable[]) => void,
    private readonly ownTotals: boolean,
  ) {}

  /** The mixer of a channel hosted here (opened on first use). */
  mixer(channel: string): Mixer {
    let mixer = this.mixers.get(channel);
    if (!mixer) this.mixers.set(channel, (mixer = new Mixer()));
    return mixer;
  }

  handle(m: ToHost): void {
    switch (m.t) {
      case "init":
        this.stats = new Float64Array(m.stats);
        this.timer = setInterval(() => this.writeAll(), STATS_INTERVAL_MS);
        this.timer.unref?.();
        return;
      case "settings":
        applyMediaSettings(m.settings);
        return;
      case "bind":
        void this.bind(m);
        return;
      case "spare":
        void this.spare(m);
        return;
      case "unspare":
        this.spares.get(m.port)?.close();
        this.spares.delete(m.port);
        return;
      case "configure":
        this.legs.get(m.leg)?.path.configure(m.media);
        return;
      case "signalling":
        this.legs.get(m.leg)?.path.setSignallingAddress(m.address);
        return;
      case "dtmf":
        this.legs.get(m.leg)?.path.sendDtmf(m.digits);
        return;
      case "move": {
        const hosted = this.legs.get(m.leg);
        if (!hosted) return;
        const from = hosted.channel;
        hosted.path.moveTo(this.mixer(m.channel));
        hosted.channel = m.channel;
        this.releaseIfEmpty(from);
        return;
      }
      case "close": {
        const pending = this.binding.get(m.leg);
        if (pending) return void (pending.closed = true);
        const hosted = this.legs.get(m.leg);
        if (hosted) {
          hosted.path.close();
          this.write(hosted);
          this.legs.delete(m.leg);
          this.releaseIfEmpty(hosted.channel);
        }
        this.post({ t: "closed", leg: m.leg });
        return;
      }
      case "detach": {
        const pending = this.binding.get(m.leg);
        if (pending) return void (pending.detach = true);
        this.detach(m.leg);
        return;
      }
      case "mute":
        this.mixers.get(m.channel)?.setMuted(m.participantId, m.muted);
        return;
      case "tap": {
        const untap = this.mixer(m.channel).addTap({
          onMix: (frame) => {
            const pcm = frame.pcm.slice();
            this.post({ t: "mix", tap: m.tap, pcm, sampleRate: frame.sampleRate, tick: frame.tick }, [pcm.buffer]);
          },
        });
        this.taps.set(m.tap, { channel: m.channel, untap });
        return;
      }
      case "untap": {
        const tap = this.taps.get(m.tap);
        this.post({ t: "untapped", tap: m.tap });
        if (!tap) return;
        tap.untap();
        this.taps.delete(m.tap);
        this.releaseIfEmpty(tap.channel);
        return;
      }
      case "rtcpTap":
        // Only in a worker: on the main thread the sessions call this thread's tap directly.
        if (!this.ownTotals) return;
        this.untapRtcp?.();
        this.untapRtcp = m.on ? tapRtcp((packet) => this.post({ t: "rtcp", packet })) : undefined;
        return;
      case "closeChannel":
        this.mixers.get(m.channel)?.close();
        this.mixers.delete(m.channel);
        return;
      case "clientJoin":
        void this.joinClient(m);
        return;
      case "clientLeave": {
        if (this.answering.has(m.client)) return void this.answering.set(m.client, true);
        this.clients.get(m.client)?.client.close();
        return;
      }
      case "clientTone":
        this.clients.get(m.client)?.client.playTone(m.tone);
        return;
      case "exit":
        clearInterval(this.timer);
        for (const { client } of [...this.clients.values()]) client.close();
        for (const hosted of this.legs.values()) hosted.path.close();
        this.legs.clear();
        for (const session of this.spares.values()) session.close();
        this.spares.clear();
        for (const mixer of this.mixers.values()) mixer.close();
        this.mixers.clear();
        return;
    }
  }

  private async bind(m: Extract<ToHost, { t: "bind" }>): Promise<void> {
    const log = this.forwardingLog(m.leg, "rtp");
    const cname = `${m.participantId}@trunkline`;
    const pending = { closed: false, detach: false };
    this.binding.set(m.leg, pending);
    // One pair, the one the main thread reserved from the process's range.
    const session = m.spare
      ? this.takeSpare(m.port, cname, log)
      : await RtpSession.open({
          allocator: new RtpPortAllocator({ min: m.port, max: m.port + 1 }),
          bindAddress: m.host,
          cname,
          log,
          ...(m.carry ? { stream: m.carry.stream } : {}),
        });
    this.binding.delete(m.leg);
    if ("error" in session) return this.post({ t: "bindFailed", leg: m.leg, error: session.error });
    if (pending.closed) {
      session.close();
      return this.post({ t: "closed", leg: m.leg });
    }
    let path: LegMediaPath;
    try {
      path = new LegMediaPath(session, this.mixer(m.channel), { ...m.options, participantId: m.participantId, log: this.forwardingLog(m.leg, "media.leg") }, m.carry);
    } catch (error) {
      session.close();
      return this.post({ t: "bindFailed", leg: m.leg, error: error instanceof Error ? error.message : String(error) });
    }
    const hosted: HostedPath = { path, slot: m.slot, channel: m.channel };
    this.legs.set(m.leg, hosted);
    path.onDtmf = (e) => {
      this.write(hosted);
      this.post({ t: "dtmf", leg: m.leg, digit: e.digit, durationMs: e.durationMs });
    };
    path.onTimeout = () => this.post({ t: "timeout", leg: m.leg });
    // The first packet is visible at once (early media stops a ringback tone).
    const deliver = session.onPacket;
    session.onPacket = (packet, arrivalMs) => {
      session.onPacket = deliver;
      deliver(packet, arrivalMs);
      this.write(hosted);
    };
    this.write(hosted);
    // A spare's leg was answered already: the main thread hears only of a failure.
    if (!m.spare) this.post({ t: "bound", leg: m.leg });
    if (pending.detach) this.detach(m.leg);
  }

  private takeSpare(port: number, cname: string, log: Logger): RtpSession | { error: string } {
    const session = this.spares.get(port);
    if (!session) return { error: `no spare RTP port pair at ${port}` };
    this.spares.delete(port);
    session.assign({ cname, log });
    return session;
  }

  private async spare(m: Extract<ToHost, { t: "spare" }>): Promise<void> {
    const session = await RtpSession.open({ allocator: new RtpPortAllocator({ min: m.port, max: m.port + 1 }), bindAddress: m.host });
    if ("error" in session) return this.post({ t: "spareFailed", port: m.port, error: session.error });
    this.spares.set(m.port, session);
    this.post({ t: "spared", port: m.port });
  }

  private async joinClient(m: Extract<ToHost, { t: "clientJoin" }>): Promise<void> {
    if (!clientHandler) return this.post({ t: "clientRefused", client: m.client, message: "this media host has no client handler" });
    this.answering.set(m.client, false);
    let answer: Awaited<ReturnType<ClientHandler["answer"]>>;
    try {
      answer = await clientHandler.answer(m.offer, m.options);
    } catch (error) {
      answer = { ok: false, message: error instanceof Error ? error.message : String(error) };
    }
    const leftMeanwhile = this.answering.get(m.client);
    this.answering.delete(m.client);
    if (!answer.ok) return this.post({ t: "clientRefused", client: m.client, message: answer.message });
    const { client } = answer;
    if (leftMeanwhile) {
      client.close();
      return this.post({ t: "clientClosed", client: m.client, reason: "left" });
    }
    client.onClosed = (reason) => {
      if (!this.clients.delete(m.client)) return;
      this.releaseIfEmpty(m.channel);
      this.post({ t: "clientClosed", client: m.client, reason });
    };
    this.clients.set(m.client, { client, channel: m.channel });
    client.attach(this.mixer(m.channel), m.participantId);
    this.post({ t: "clientAnswer", client: m.client, sdp: answer.sdp, codec: answer.codec });
  }

  private detach(leg: number): void {
    const hosted = this.legs.get(leg);
    if (!hosted) return this.post({ t: "closed", leg });
    this.write(hosted);
    this.legs.delete(leg);
    this.post({ t: "detached", leg, carry: hosted.path.detach() });
    this.releaseIfEmpty(hosted.channel);
  }

  /**
   * Closes a mixer nobody is in any more and nothing taps (its ticker subscription goes with it):
   * what a channel that moved away leaves behind. The next participant opens it again.
   */
  private releaseIfEmpty(channel: string): void {
    const mixer = this.mixers.get(channel);
    if (!mixer || mixer.size > 0) return;
    for (const tap of this.taps.values()) if (tap.channel === channel) return;
    mixer.close();
    this.mixers.delete(channel);
  }

  private write(hosted: HostedPath): void {
    const stats = this.stats;
    if (!stats) return;
    const c = this.counters;
    hosted.path.readCounters(c);
    const at = slotOffset(hosted.slot);
    for (let i = 0; i < LEG_STAT_FIELDS.length; i++) stats[at + i] = c[LEG_STAT_FIELDS[i]!];
  }

  private writeAll(): void {
    for (const hosted of this.legs.values()) this.write(hosted);
    const stats = this.stats;
    if (!stats || !this.ownTotals) return;
    const ticker = tickerTotals();
    stats[totalIndex.ticks] = ticker.ticks;
    stats[totalIndex.lateTicks] = ticker.lateTicks;
    stats[totalIndex.skippedTicks] = ticker.skippedTicks;
    stats[totalIndex.strangerRtp] = strangerTotals.rtp;
    stats[totalIndex.strangerRtcp] = strangerTotals.rtcp;
    stats[totalIndex.levelFrames] = mixerTotals.levelFrames;
    stats[totalIndex.relayedPackets] = relayTotals.packets;
    stats[totalIndex.rtpSent] = rtpPacketTotals.sent;
    stats[totalIndex.rtpReceived] = rtpPacketTotals.received;
    stats[totalIndex.srtpAuth] = srtpDropTotals.auth;
    stats[totalIndex.srtpReplay] = srtpDropTotals.replay;
  }

  /** A leg's log lines go to the main thread, which writes them with the call's fields. */
  private forwardingLog(leg: number, component: string): Logger {
    const emit = (level: LogLevel) => (msg: string, fields?: Record<string, unknown>) =>
      this.post({ t: "log", leg, level, component, msg, ...(fields ? { fields: plain(fields) } : {}) });
    return {
      debug: emit("debug"),
      info: emit("info"),
      warn: emit("warn"),
      error: emit("error"),
      child: (_fields, childComponent) => this.forwardingLog(leg, childComponent ?? component),
    };
  }
}

/** Log fields as they survive a structured clone (an Error becomes its message). */
function plain(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) out[k] = v instanceof Error ? v.message : v;
  return out;
}
