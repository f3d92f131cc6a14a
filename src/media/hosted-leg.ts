// A phone leg whose media runs on a media host (media-plane.ts): the negotiation (LegNegotiator:
// SDP, SRTP master keys) stays on this thread and stays synchronous; each completed negotiation,
// DTMF to send, a move and the close go to the host as messages; DTMF received, the media timeout
// and the leg's log lines come back as messages; statistics are read from the host's shared slot.
//
//   const leg = await createHostedLeg({ channel, allocator, advertisedAddress, participantId, ... });
//   leg.answer(offer) / leg.offer() / leg.applyAnswer(answer)    // as PhoneLeg (leg.ts)
//   leg.moveTo(otherChannel);      // same host: between two ticks; another host: re-homed
//   leg.stats(); leg.close();
import type { Logger } from "../log.ts";
import { digitToEvent } from "./dtmf.ts";
import { countPhoneLegs, LegNegotiator, type AnswerSdpResult, type ApplyResult, type DtmfEvent, type MediaPathCarry, type NegotiationOptions } from "./leg.ts";
import { LEG_STAT_FIELDS, type LegStatField, type PathOptions, type ToHost } from "./media-protocol.ts";
import type { ChannelMedia, HostedLegEvents, HostedMember, MediaHost } from "./media-plane.ts";
import type { RtpPortAllocator } from "./ports.ts";
import type { NegotiatedMedia } from "./sdp.ts";

export interface HostedLegOptions extends NegotiationOptions, PathOptions {
  channel: ChannelMedia;
  allocator: RtpPortAllocator;
  /** local address to bind RTP on (default 0.0.0.0) */
  bindAddress?: string;
  participantId: string;
  log: Logger;
}

const MAX_BIND_ATTEMPTS = 32;
let nextLegId = 0;

export type HostedLegStats = Record<LegStatField, number> & { dtmfSent: number };

type Pending = { resolve: (outcome: { ok: true } | { ok: false; error: string }) => void };

export class HostedLeg implements HostedMember {
  onDtmf: (event: DtmfEvent) => void = () => {};
  onTimeout: () => void = () => {};
  /** The leg's media is gone for good (its worker died, or it could not be re-homed). */
  onLost: (error: string) => void = () => {};
  readonly id = ++nextLegId;
  private readonly negotiator: LegNegotiator;
  private host: MediaHost;
  private slot: number;
  private dtmfSent = 0;
  private closed = false;
  private lostReported = false;
  /** while re-homing: what to tell the new host once it has bound, in order */
  private queued: ToHost[] | undefined;
  /** statistics while no slot is live (re-homing, closed) */
  private frozen: Record<LegStatField, number> | undefined;
  private pending: Pending | undefined;
  /** what the sessions of earlier hosts counted (a re-homed leg) */
  private readonly base: Partial<Record<LegStatField, number>> = {};

  private constructor(
    private readonly o: HostedLegOptions,
    private channel: ChannelMedia,
    readonly localPort: number,
    host: MediaHost,
    slot: number,
  ) {
    this.host = host;
    this.slot = slot;
    this.negotiator = new LegNegotiator(o, localPort, (media) => this.configure(media));
  }

  get participantId(): string {
    return this.o.participantId;
  }

  get codec(): string | undefined {
    return this.negotiator.codec;
  }

  get srtp(): boolean {
    return this.negotiator.srtp;
  }

  static async create(o: HostedLegOptions): Promise<HostedLeg | { error: string }> {
    const { channel, allocator } = o;
    let lastError = "";
    const attempts = Math.min(MAX_BIND_ATTEMPTS, allocator.capacity);
    for (let i = 0; i < attempts; i++) {
      if (channel.closed) return { error: "mixer is closed" };
      if (channel.members.has(o.participantId)) return { error: `participant ${o.participantId} already in this mixer` };
      const host = channel.host;
      const spare = host.takeSparePort(allocator, o.bindAddress ?? "0.0.0.0");
      const port = spare ?? allocator.reserve();
      if (port === undefined) return { error: `RTP port range ${allocator.min}-${allocator.max} exhausted` };
      const slot = host.takeSlot();
      if (slot === undefined) {
        allocator.release(port);
        if (spare !== undefined) host.send({ t: "unspare", port });
        return { error: `media host ${host.name} holds no more legs` };
      }
      const leg = new HostedLeg(o, channel, port, host, slot);
      const outcome = await leg.bind(undefined, spare !== undefined);
      if (outcome.ok) {
        countPhoneLegs(1);
        return leg;
      }
      // EADDRINUSE from another process: the pair cools down like any released one.
      allocator.release(port);
      lastError = outcome.error;
    }
    return { error: `no bindable RTP port pair in ${allocator.min}-${allocator.max} after ${attempts} attempts (${lastError})` };
  }

  /**
   * Binds the port on the current host (or takes the spare bound there: done at once, a failure
   * then loses the leg) and joins the channel there; listens to the host meanwhile.
   */
  private bind(carry: MediaPathCarry | undefined, spare = false): Promise<{ ok: true } | { ok: false; error: string }> {
    const { host, channel } = this;
    host.listen(this.id, this);
    host.legs++;
    return new Promise((resolve) => {
      host.send({
        t: "bind", leg: this.id, slot: this.slot, channel: channel.key, participantId: this.o.participantId,
        host: this.o.bindAddress ?? "0.0.0.0", port: this.localPort,
        options: { mediaTimeoutSec: this.o.mediaTimeoutSec, strictSource: this.o.strictSource, dtmfDurationMs: this.o.dtmfDurationMs },
        ...(carry ? { carry } : {}),
        ...(spare ? { spare: true } : {}),
      });
      if (spare) resolve({ ok: true });
      else this.pending = { resolve };
    }).then((outcome) => {
      const result = outcome as { ok: true } | { ok: false; error: string };
      if (result.ok) {
        channel.members.set(this.o.participantId, this);
        if (channel.isMuted(this.o.participantId)) host.send({ t: "mute", channel: channel.key, participantId: this.o.participantId, muted: true });
      } else {
        host.legs--;
        host.unlisten(this.id);
        host.freeSlot(this.slot);
      }
      return result;
    });
  }

  /** @internal host events */
  onMessage(m: Parameters<HostedLegEvents["onMessage"]>[0]): void {
    switch (m.t) {
      case "bound":
        this.pending?.resolve({ ok: true });
        this.pending = undefined;
        return;
      case "bindFailed":
        if (!this.pending) return this.reportLost(m.error);
        this.pending.resolve({ ok: false, error: m.error });
        this.pending = undefined;
        return;
      case "dtmf":
        if (!this.closed) this.onDtmf({ digit: m.digit, durationMs: m.durationMs });
        return;
      case "timeout":
        if (!this.closed) this.onTimeout();
        return;
      case "lost":
        this.reportLost(m.error);
        return;
      case "log":
        this.o.log.child({}, m.component)[m.level](m.msg, m.fields);
        return;
      case "closed":
      case "detached":
        // handled by the waiters below
        this.settled?.(m);
        return;
    }
  }

  private settled: ((m: { t: "closed" } | { t: "detached"; carry: MediaPathCarry }) => void) | undefined;

  answer(offerSdp: string | Uint8Array): AnswerSdpResult {
    return this.negotiator.answer(offerSdp);
  }

  offer(o: { hold?: boolean } = {}): string {
    return this.negotiator.offer(o);
  }

  applyAnswer(answerSdp: string | Uint8Array): ApplyResult {
    return this.negotiator.applyAnswer(answerSdp);
  }

  private configure(media: NegotiatedMedia): void {
    // The negotiated codec is one of codec.ts's objects (with functions): its name crosses.
    const { name, staticPayloadType, rtpClockRate, sdpChannels } = media.codec;
    const codec = { name, rtpClockRate, ...(staticPayloadType !== undefined ? { staticPayloadType } : {}), ...(sdpChannels !== undefined ? { sdpChannels } : {}) };
    this.send({ t: "configure", leg: this.id, media: { ...media, codec } });
  }

  setSignallingAddress(address: string): void {
    this.send({ t: "signalling", leg: this.id, address });
  }

  sendDtmf(digits: string): void {
    this.dtmfSent += [...digits].filter((d) => digitToEvent(d) !== undefined).length;
    this.send({ t: "dtmf", leg: this.id, digits });
  }

  /** Leaves its channel for `target`: between two ticks on the same host, re-homed onto another. Throws when `target` refuses. */
  moveTo(target: ChannelMedia): void {
    if (this.closed || target === this.channel) return;
    if (target.closed) throw new Error("mixer is closed");
    if (target.members.has(this.o.participantId)) throw new Error(`participant ${this.o.participantId} already in this mixer`);
    const from = this.channel;
    if (from.members.get(this.o.participantId) === this) from.members.delete(this.o.participantId);
    this.channel = target;
    if (target.host === this.host && !this.queued) {
      target.members.set(this.o.participantId, this);
      this.send({ t: "move", leg: this.id, channel: target.key });
      if (target.isMuted(this.o.participantId)) this.send({ t: "mute", channel: target.key, participantId: this.o.participantId, muted: true });
    } else this.rehome(target);
  }

  /**
   * Moves the leg's media to `channel`'s host: the old host closes the socket without a BYE and
   * hands over the stream; the new one binds the same port and carries it on. Messages meanwhile wait.
   */
  rehome(channel: ChannelMedia): void {
    this.channel = channel;
    if (this.queued) return; // already on its way; it binds where the channel is once detached
    this.queued = [];
    void this.relocate();
  }

  private async relocate(): Promise<void> {
    const from = this.host;
    const carry = await this.waitFor(from, { t: "detach", leg: this.id });
    this.freeze();
    from.unlisten(this.id);
    from.freeSlot(this.slot);
    from.legs--;
    if (this.closed || carry.t !== "detached") return this.released();
    const to = this.channel.host;
    const slot = to.takeSlot();
    if (slot === undefined) return this.lost(`media host ${to.name} holds no more legs`);
    this.host = to;
    this.slot = slot;
    const target = this.channel;
    const outcome = await this.bind(carry.carry);
    if (!outcome.ok) return this.lost(outcome.error);
    // The channel moved on again meanwhile: once more, with what is queued still waiting.
    if (this.channel.host !== to && !this.closed) return void this.relocate();
    // Or the leg was moved on to another channel of the same host: a plain move there.
    if (this.channel !== target && !this.closed) {
      if (target.members.get(this.o.participantId) === this) target.members.delete(this.o.participantId);
      this.channel.members.set(this.o.participantId, this);
      to.send({ t: "move", leg: this.id, channel: this.channel.key });
      if (this.channel.isMuted(this.o.participantId)) to.send({ t: "mute", channel: this.channel.key, participantId: this.o.participantId, muted: true });
    }
    this.frozen = undefined;
    const queued = this.queued ?? [];
    this.queued = undefined;
    for (const m of queued) to.send(m);
    if (this.closed) this.finishClose();
  }

  /** Keeps the old host's counts (the next session counts afresh) and shows them until the new one runs. */
  private freeze(): void {
    const counted = this.host.readSlot(this.slot);
    for (const f of LEG_STAT_FIELDS) if (carriedOver(f)) this.base[f] = (this.base[f] ?? 0) + counted[f];
    this.frozen = this.withBase(counted, false);
  }

  /** `counted` with what earlier sessions counted added (`addBase`), or as already added. */
  private withBase(counted: Record<LegStatField, number>, addBase: boolean): Record<LegStatField, number> {
    const out = { ...counted };
    for (const f of LEG_STAT_FIELDS) if (carriedOver(f)) out[f] = (addBase ? counted[f] : 0) + (this.base[f] ?? 0);
    return out;
  }

  private lost(error: string): void {
    this.o.log.error("phone leg lost its media while moving between media workers", { error });
    this.queued = undefined;
    this.released();
    this.reportLost(error);
  }

  /** Once: a worker that dies says so to a leg more than once. */
  private reportLost(error: string): void {
    if (this.closed || this.lostReported) return;
    this.lostReported = true;
    this.onLost(error);
  }

  private waitFor(host: MediaHost, m: ToHost): Promise<{ t: "closed" } | { t: "detached"; carry: MediaPathCarry }> {
    return new Promise((resolve) => {
      this.settled = (reply) => {
        this.settled = undefined;
        resolve(reply);
      };
      host.send(m);
    });
  }

  private send(m: ToHost): void {
    if (this.closed) return;
    if (this.queued) this.queued.push(m);
    else this.host.send(m);
  }

  stats(): HostedLegStats {
    const total = this.frozen ?? this.withBase(this.host.readSlot(this.slot), true);
    return { ...total, dtmfSent: this.dtmfSent };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    countPhoneLegs(-1);
    if (this.channel.members.get(this.o.participantId) === this) this.channel.members.delete(this.o.participantId);
    // A leg on its way between hosts is released when its old host has let go of it.
    if (!this.queued) this.finishClose();
  }

  private finishClose(): void {
    const host = this.host;
    this.freeze();
    void this.waitFor(host, { t: "close", leg: this.id }).then(() => {
      host.unlisten(this.id);
      host.freeSlot(this.slot);
      host.legs--;
      this.released();
    });
  }

  private released(): void {
    this.o.allocator.release(this.localPort);
  }
}


/** Counters a new session starts afresh (dtmfReceived travels with the stream; jitter is a level). */
function carriedOver(field: LegStatField): boolean {
  return field !== "jitterMs" && field !== "dtmfReceived";
}
