// Channels: the audio rooms of an application. One Mixer per (applicationId, channelId), created
// when the first participant joins and closed when the last one leaves. SIP legs (calls layer) and
// WebRTC clients join through here alike, so the channel knows who is in it and participant
// events are emitted in one place.
//
//   const member = registry.join({ applicationId, channelId, id, kind: "sip", userId, callId },
//     (mixer) => { const leg = createPhoneLeg({ mixer, participantId: id, ... }); return () => leg.close(); });
//   member.leave("hangup");   // detaches from the mixer, emits participant.left
//   member.setMuted(true);    // the channel stops hearing this participant (it still hears the channel)
import { emitEvent } from "../events.ts";
import { Mixer, type JoinOptions, type MixedFrame, type MixerParticipant } from "../media/mixer.ts";

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
  joinedAt: string;
  /** Muted by an operator: the channel does not hear this participant. */
  muted: boolean;
}

/** Who joins: the registry adds when (joinedAt) and the mute state. */
export type JoiningParticipant = Omit<ParticipantInfo, "joinedAt" | "muted">;

/** Joins the channel's mixer and returns how to leave it (told why). */
export type Attach = (mixer: Mixer) => (reason?: string) => void;

export interface ChannelMember {
  readonly info: ParticipantInfo;
  /** Removes the participant from the mixer and emits participant.left; later calls do nothing. */
  leave(reason?: string): void;
  /** While muted, the participant's audio is read (jitter buffers keep draining) and discarded. */
  setMuted(muted: boolean): void;
}

export type ChannelListener = (participants: ParticipantInfo[]) => void;

interface Channel {
  mixer: Mixer;
  members: Map<string, ChannelMember>;
}

export class ChannelRegistry {
  private readonly channels = new Map<string, Channel>();
  private readonly watchers = new Map<string, Set<ChannelListener>>();

  join(info: JoiningParticipant, attach: Attach): ChannelMember {
    const key = channelKey(info.applicationId, info.channelId);
    const channel = this.channels.get(key) ?? this.open(key);
    channel.members.get(info.id)?.leave("replaced");
    const full: ParticipantInfo = { ...info, joinedAt: new Date().toISOString(), muted: false };
    let detach: (reason?: string) => void;
    try {
      detach = attach(mutingMixer(channel.mixer, () => full.muted));
    } catch (error) {
      if (channel.members.size === 0) this.closeChannel(key, channel);
      throw error;
    }
    let present = true;
    const member: ChannelMember = {
      info: full,
      leave: (reason) => {
        if (!present) return;
        present = false;
        detach(reason);
        channel.members.delete(info.id);
        if (channel.members.size === 0) this.closeChannel(key, channel);
        emitEvent("participant.left", { ...eventData(full), ...(reason ? { reason } : {}) });
        this.notify(key);
      },
      setMuted: (muted) => {
        if (!present || full.muted === muted) return;
        full.muted = muted;
        this.notify(key);
      },
    };
    channel.members.set(info.id, member);
    emitEvent("participant.joined", eventData(full));
    this.notify(key);
    return member;
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

  private open(key: string): Channel {
    const channel: Channel = { mixer: new Mixer(), members: new Map() };
    this.channels.set(key, channel);
    return channel;
  }

  private closeChannel(key: string, channel: Channel): void {
    channel.mixer.close();
    this.channels.delete(key);
  }

  private notify(key: string): void {
    const listeners = this.watchers.get(key);
    if (!listeners) return;
    const channel = this.channels.get(key);
    const list = channel ? [...channel.members.values()].map((m) => m.info) : [];
    for (const listener of listeners) listener(list);
  }
}

/**
 * The channel's mixer as one participant's attach sees it: whatever that participant joins with is
 * silenced while `muted()`. Its input is still read every tick, so a muted phone's jitter buffer does
 * not fill up and unmuting resumes at once.
 */
function mutingMixer(mixer: Mixer, muted: () => boolean): Mixer {
  const join = (id: string, onFrame: (frame: MixedFrame) => void, o: JoinOptions = {}): MixerParticipant => {
    const { pull } = o;
    const participant = mixer.join(id, onFrame, pull ? { ...o, pull: () => { const frame = pull(); return muted() ? undefined : frame; } } : o);
    return new Proxy(participant, {
      get: (target, prop) => {
        if (prop === "write") return (pcm: Int16Array) => { if (!muted()) target.write(pcm); };
        const value = Reflect.get(target, prop, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  };
  return new Proxy(mixer, {
    get: (target, prop) => {
      if (prop === "join") return join;
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
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
  };
}
