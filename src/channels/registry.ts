// Channels: the audio rooms of an application. One Mixer per (applicationId, channelId), created
// when the first participant joins and closed when the last one leaves. SIP legs (calls layer) and
// WebRTC clients join through here alike, so the channel knows who is in it and participant
// events are emitted in one place.
//
// Each channel's media runs where the media plane (src/media/media-plane.ts) places it when it opens
// (a media worker, or this thread without workers) and stays there: phone legs and WebRTC clients alike.
//
//   const joined = await registry.joinWhenReady({ applicationId, channelId, id, kind: "sip", userId, callId },
//     async (channel) => { const leg = await HostedLeg.create({ channel, participantId: id, ... }); return () => leg.close(); });
//   member.leave("hangup");   // detaches from the mixer, emits participant.left
//   member.setMuted(true);    // the channel stops hearing this participant (it still hears the channel)
//   const moved = registry.move(member, "room-2", (channel) => leg.moveTo(channel));   // same media, another channel
// participant.joined fires once the participant is in the mixer, never before.
import { emitEvent } from "../events.ts";
import type { Logger } from "../log.ts";
import type { MixTap } from "../media/mix-tap.ts";
import { MediaPlane, type ChannelMedia } from "../media/media-plane.ts";

export interface ParticipantInfo {
  applicationId: string;
  channelId: string;
  /** Mixer participant id: the call id for a SIP leg, the client id for a WebRTC client. Unique per channel. */
  id: string;
  kind: "sip" | "webrtc";
  userId: string;
  userAlias?: string;
  callId?: string;
  clientId?: string;
  /** The phone number or SIP address of a phone leg, for participant lists. */
  address?: string;
  /** A phone leg's attributes from its INVITE's headers (calls.headersToAttributes). */
  attributes?: Record<string, string>;
  joinedAt: string;
  /** Muted by an operator: the channel does not hear this participant. */
  muted: boolean;
}

/** Who joins: the registry adds when (joinedAt) and the mute state. */
export type JoiningParticipant = Omit<ParticipantInfo, "joinedAt" | "muted">;

export interface ChannelMember {
  readonly info: ParticipantInfo;
  /** Removes the participant from the mixer and emits participant.left; later calls do nothing. */
  leave(reason?: string): void;
  /** While muted, the participant's audio is read (jitter buffers keep draining) and discarded. */
  setMuted(muted: boolean): void;
}

export type ChannelListener = (participants: ParticipantInfo[]) => void;

/** A channel's mixer opened (first participant) or closed (last one left). */
export type ChannelLifecycleListener = (change: "opened" | "closed", channel: { applicationId: string; channelId: string }) => void;

interface Channel {
  media: ChannelMedia;
  members: Map<string, ChannelMember>;
  /** Participants whose media is still being set up: the channel stays open for them. */
  arriving: number;
}

export class ChannelRegistry {
  /** Without a plane (setMediaPlane) every channel runs on this thread. */
  private plane = new MediaPlane({ workers: 0 });
  private readonly channels = new Map<string, Channel>();
  private readonly watchers = new Map<string, Set<ChannelListener>>();
  private readonly lifecycle = new Set<ChannelLifecycleListener>();
  /** What move() needs of an admitted member: whether it is still here, and how to take it out without its media. */
  private readonly placements = new WeakMap<
    ChannelMember,
    { isPresent(): boolean; depart(reason?: string): void; detach: (reason?: string) => void; log: Logger | undefined }
  >();

  /** Where channels opened from now on run (the calls service sets it from the config). */
  setMediaPlane(plane: MediaPlane): void {
    this.plane = plane;
  }

  /**
   * Joins a participant whose media takes a while to set up (a phone leg binds its RTP ports, a
   * WebRTC peer is created in the channel's worker): the channel stays open meanwhile, and the participant is admitted (participant.joined) only once
   * `attach` resolved. On `{ error }` nobody joined and the channel closes if it is empty.
   */
  async joinWhenReady(
    info: JoiningParticipant,
    attach: (channel: ChannelMedia) => Promise<((reason?: string) => void) | { error: string }>,
    /** The participant's own logger (a call's), whose fields its events' lines carry. */
    log?: Logger,
  ): Promise<ChannelMember | { error: string }> {
    const key = channelKey(info.applicationId, info.channelId);
    this.channels.get(key)?.members.get(info.id)?.leave("replaced");
    const channel = this.channels.get(key) ?? this.open(key, info);
    channel.arriving++;
    let detach: ((reason?: string) => void) | { error: string } | undefined;
    try {
      detach = await attach(channel.media);
    } finally {
      channel.arriving--;
      if (typeof detach !== "function") this.closeIfEmpty(key, channel, info);
    }
    return typeof detach === "function" ? this.admit(key, channel, info, detach, log) : detach;
  }

  private admit(key: string, channel: Channel, info: JoiningParticipant, detach: (reason?: string) => void, log: Logger | undefined): ChannelMember {
    const full: ParticipantInfo = { ...info, joinedAt: new Date().toISOString(), muted: false };
    let present = true;
    /** Out of this channel (participant.left); the media is the caller's business. */
    const depart = (reason?: string): void => {
      present = false;
      channel.members.delete(info.id);
      this.closeIfEmpty(key, channel, info);
      emitEvent("participant.left", { ...eventData(full), ...(reason ? { reason } : {}) }, log);
      this.notify(key);
    };
    const member: ChannelMember = {
      info: full,
      leave: (reason) => {
        if (!present) return;
        // Gone before detaching: a detach that ends in leave() again (a peer closing) does nothing twice.
        present = false;
        detach(reason);
        depart(reason);
      },
      setMuted: (muted) => {
        if (!present || full.muted === muted) return;
        full.muted = muted;
        channel.media.setMuted(info.id, muted);
        this.notify(key);
      },
    };
    channel.members.set(info.id, member);
    this.placements.set(member, { isPresent: () => present, depart, detach, log });
    emitEvent("participant.joined", eventData(full), log);
    this.notify(key);
    return member;
  }

  /**
   * Moves a participant to another channel of its application with its media kept: `reattach`
   * hands the media from the old channel to the new one synchronously (between two ticks when both
   * run on the same thread, re-homed when not: see media-plane.ts), then the old channel emits participant.left
   * (reason `moved`) and the new one participant.joined. Returns the member in its new channel (the
   * old one is spent); throws what `reattach` threw, the participant then staying where it was.
   */
  move(member: ChannelMember, channelId: string, reattach: (channel: ChannelMedia) => void): ChannelMember {
    const placed = this.placements.get(member);
    if (!placed?.isPresent()) throw new Error(`participant ${member.info.id} is not in a channel`);
    const { joinedAt: _, muted, ...info } = member.info;
    if (info.channelId === channelId) return member;
    const moved = { ...info, channelId };
    const key = channelKey(info.applicationId, channelId);
    const target = this.channels.get(key) ?? this.open(key, moved);
    try {
      reattach(target.media);
    } catch (error) {
      this.closeIfEmpty(key, target, moved);
      throw error;
    }
    placed.depart("moved");
    const arrived = this.admit(key, target, moved, placed.detach, placed.log);
    // An operator's mute follows the participant.
    if (muted) arrived.setMuted(true);
    return arrived;
  }

  /** Whether the channel's mixer is open here (it has participants). */
  isOpen(applicationId: string, channelId: string): boolean {
    return this.channels.has(channelKey(applicationId, channelId));
  }

  /** Calls `listener` when a channel's mixer opens or closes. Returns the unsubscribe function. */
  onLifecycle(listener: ChannelLifecycleListener): () => void {
    this.lifecycle.add(listener);
    return () => this.lifecycle.delete(listener);
  }

  /** Participants of every channel: the media legs in this process's mixers. */
  participantCount(): number {
    let n = 0;
    for (const channel of this.channels.values()) n += channel.members.size;
    return n;
  }

  participants(applicationId: string, channelId: string): ParticipantInfo[] {
    const channel = this.channels.get(channelKey(applicationId, channelId));
    return channel ? [...channel.members.values()].map((m) => m.info) : [];
  }

  member(applicationId: string, channelId: string, participantId: string): ChannelMember | undefined {
    return this.channels.get(channelKey(applicationId, channelId))?.members.get(participantId);
  }

  /**
   * Hands the channel's full mix to `tap` every tick (recordings); undefined when the channel has
   * nobody in it. Returns the function that removes the tap, which resolves once every frame mixed
   * before it was handed over.
   */
  addMixTap(applicationId: string, channelId: string, tap: MixTap): (() => Promise<void>) | undefined {
    return this.channels.get(channelKey(applicationId, channelId))?.media.addTap(tap);
  }

  /** Calls `listener` with the full participant list whenever it changes. Returns the unsubscribe function. */
  watch(applicationId: string, channelId: string, listener: ChannelListener): () => void {
    const key = channelKey(applicationId, channelId);
    let set = this.watchers.get(key);
    if (!set) this.watchers.set(key, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.watchers.delete(key);
    };
  }

  /** How many listeners watch the channel (its client event streams). */
  watcherCount(applicationId: string, channelId: string): number {
    return this.watchers.get(channelKey(applicationId, channelId))?.size ?? 0;
  }

  /** Every open channel with its participant count (metrics, admin views). */
  list(): { applicationId: string; channelId: string; participants: number }[] {
    return [...this.channels.values()].flatMap((c) => {
      const first = c.members.values().next().value;
      return first ? [{ applicationId: first.info.applicationId, channelId: first.info.channelId, participants: c.members.size }] : [];
    });
  }

  /** Removes everyone (shutdown). */
  closeAll(reason = "shutdown"): void {
    for (const channel of [...this.channels.values()]) for (const member of [...channel.members.values()]) member.leave(reason);
  }

  private open(key: string, info: { applicationId: string; channelId: string }): Channel {
    const channel: Channel = { media: this.plane.open(key), members: new Map(), arriving: 0 };
    this.channels.set(key, channel);
    for (const listener of this.lifecycle) listener("opened", { applicationId: info.applicationId, channelId: info.channelId });
    return channel;
  }

  private closeIfEmpty(key: string, channel: Channel, info: { applicationId: string; channelId: string }): void {
    if (channel.members.size > 0 || channel.arriving > 0 || this.channels.get(key) !== channel) return;
    channel.media.close();
    this.channels.delete(key);
    for (const listener of this.lifecycle) listener("closed", { applicationId: info.applicationId, channelId: info.channelId });
  }

  private notify(key: string): void {
    const listeners = this.watchers.get(key);
    if (!listeners) return;
    const channel = this.channels.get(key);
    const list = channel ? [...channel.members.values()].map((m) => m.info) : [];
    for (const listener of listeners) listener(list);
  }
}

function channelKey(applicationId: string, channelId: string): string {
  return JSON.stringify([applicationId, channelId]);
}

function eventData(info: ParticipantInfo) {
  return {
    applicationId: info.applicationId,
    channelId: info.channelId,
    participantId: info.id,
    userId: info.userId,
    kind: info.kind,
    ...(info.callId ? { callId: info.callId } : {}),
    ...(info.clientId ? { clientId: info.clientId } : {}),
    ...(info.attributes ? { attributes: info.attributes } : {}),
  };
}
