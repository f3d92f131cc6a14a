// The WebRTC clients connected right now. A join answers the client's offer, puts the client into
// its channel's mixer, and wires the two directions: the mixer pulls the client's audio from its
// jitter buffer each tick, and each mixed frame (N−1) is encoded for the client — identical mixes
// once per codec (participant.encode), silence as a constant Opus frame. A call-progress tone
// (playTone) is added to one client's mix and encoded for that client alone (tones.ts).
// A client leaves by DELETE, by closing its peer connection, or by going silent/unreachable.
import type { ChannelMember, ChannelRegistry, JoiningParticipant } from "../channels/registry.ts";
import { createLogger } from "../log.ts";
import { metrics } from "../metrics.ts";
import { ToneOverlay, type ToneGenerator } from "../media/tones.ts";
import { answerClientOffer, type ClientPeer, type PeerNetworkOptions, type PeerTimeouts } from "./peer.ts";
import { newClientId, type ClientClaims } from "./tokens.ts";

export interface ClientSession {
  readonly clientId: string;
  readonly claims: ClientClaims;
  readonly peer: ClientPeer;
  readonly member: ChannelMember;
  /** A call-progress tone only this client hears, over the channel's mix, until it finishes. */
  readonly tone: { overlay: ToneOverlay | undefined };
}

export type JoinResult =
  | { ok: true; clientId: string; sdp: string; codec: string }
  | { ok: false; status: 400 | 409; code: string; message: string };

export interface ClientSessionsOptions {
  registry: ChannelRegistry;
  /** Read at each join, so a config reload applies to the next one. */
  network: () => PeerNetworkOptions;
  timeouts: PeerTimeouts;
  /** Read at each join, so a config reload applies to the next one. */
  maxParticipantsPerChannel?: () => number;
}

const log = createLogger("webrtc");
/**
 * One 20 ms Opus frame of silence (RFC 6716 §3.1 TOC 0xF8: CELT fullband, 20 ms, mono, one frame),
 * sent when nobody else is talking. Encoding all-zero input is libopus's slowest case here (measured
 * ~1.7× a speech frame), and a constant frame that decodes to silence needs no encoder at all.
 */
const OPUS_SILENCE = Uint8Array.of(0xf8, 0xff, 0xfe);
const connectedClients = metrics.gauge("trunkline_webrtc_clients", "WebRTC clients in channels.");
const joins = metrics.counter("trunkline_webrtc_joins_total", "WebRTC join requests by outcome.", ["outcome"]);
const leaves = metrics.counter("trunkline_webrtc_leaves_total", "WebRTC clients gone by reason (left, media-timeout, ice-failed, ...).", ["reason"]);

export class ClientSessions {
  private readonly sessions = new Map<string, ClientSession>();
  /** Joins awaiting their SDP answer, per channel (entries go when their count drops to 0). */
  private readonly joining = new Map<string, number>();

  constructor(private readonly options: ClientSessionsOptions) {}

  async join(claims: ClientClaims, offerSdp: string): Promise<JoinResult> {
    const { registry, network, timeouts, maxParticipantsPerChannel } = this.options;
    const clientId = claims.clientId ?? newClientId();
    const present = registry.participants(claims.applicationId, claims.channelId);
    const rejoining = present.some((p) => p.id === clientId);
    const channel = channelKey(claims.applicationId, claims.channelId);
    // Joins still negotiating hold a place too, so concurrent joins cannot overfill the channel.
    const pending = this.joining.get(channel) ?? 0;
    if (maxParticipantsPerChannel !== undefined && !rejoining && present.length + pending >= maxParticipantsPerChannel())
      return refused(409, "channel_full", `the channel already has ${present.length} participants${pending ? ` and ${pending} joining` : ""}`);

    this.joining.set(channel, pending + 1);
    let answer: Awaited<ReturnType<typeof answerClientOffer>>;
    try {
      answer = await answerClientOffer(offerSdp, network(), timeouts);
    } finally {
      const left = (this.joining.get(channel) ?? 1) - 1;
      if (left === 0) this.joining.delete(channel);
      else this.joining.set(channel, left);
    }
    if (!answer.ok) return refused(400, "bad_sdp", answer.message);
    const { peer } = answer;

    const key = sessionKey(claims.applicationId, clientId);
    this.sessions.get(key)?.member.leave("replaced");
    const info: JoiningParticipant = {
      applicationId: claims.applicationId,
      channelId: claims.channelId,
      id: clientId,
      kind: "webrtc",
      userId: claims.userId ?? clientId,
      clientId,
      ...(claims.userAlias ? { userAlias: claims.userAlias } : {}),
    };
    const tone: ClientSession["tone"] = { overlay: undefined };
    const member = registry.join(info, (mixer) => {
      const participant = mixer.join(
        clientId,
        (frame) => {
          if (!peer.isConnected) return;
          if (tone.overlay) {
            const payload = tone.overlay.encode(frame.pcm, frame.sampleRate);
            if (payload) return peer.sendEncoded(payload);
            tone.overlay = undefined;
          }
          const opusSilence = frame.silent && peer.sendCodec.name === "opus";
          peer.sendEncoded(opusSilence ? OPUS_SILENCE : participant.encode(frame, peer.sendCodec));
        },
        // The channel mixes at 48 kHz only while someone hears Opus; PCMU clients leave it at 8 kHz.
        { pull: () => peer.pull(), sampleRate: peer.sendCodec.sampleRate },
      );
      connectedClients.inc();
      return (reason = "left") => {
        connectedClients.dec();
        leaves.inc({ reason });
        participant.leave();
        peer.close();
        if (this.sessions.get(key)?.member === member) this.sessions.delete(key);
      };
    });
    const session: ClientSession = { clientId, claims: { ...claims, clientId }, peer, member, tone };
    this.sessions.set(key, session);
    peer.onClosed = (reason) => {
      log.info("client peer closed", { applicationId: claims.applicationId, channelId: claims.channelId, clientId, reason });
      member.leave(reason);
    };
    joins.inc({ outcome: "joined" });
    log.info("client joined", { applicationId: claims.applicationId, channelId: claims.channelId, clientId, codec: peer.sendCodec.name });
    return { ok: true, clientId, sdp: answer.sdp, codec: peer.sendCodec.name };
  }

  get(applicationId: string, clientId: string): ClientSession | undefined {
    return this.sessions.get(sessionKey(applicationId, clientId));
  }

  /** Plays `tone` to the client alone (replacing any other; undefined stops it). False when it is not connected here. */
  playTone(applicationId: string, clientId: string, tone: ToneGenerator | undefined): boolean {
    const session = this.sessions.get(sessionKey(applicationId, clientId));
    if (!session) return false;
    session.tone.overlay = tone ? new ToneOverlay(tone, session.peer.sendCodec) : undefined;
    return true;
  }

  leave(applicationId: string, clientId: string, reason = "left"): boolean {
    const session = this.sessions.get(sessionKey(applicationId, clientId));
    if (!session) return false;
    session.member.leave(reason);
    return true;
  }

  get size(): number {
    return this.sessions.size;
  }

  /** Channels with joins awaiting their answer (0 when idle: the per-channel counts do not linger). */
  get joiningChannels(): number {
    return this.joining.size;
  }

  closeAll(reason = "shutdown"): void {
    for (const session of [...this.sessions.values()]) session.member.leave(reason);
  }

  /** Disconnects every client of an application (it was deleted). */
  closeApplication(applicationId: string, reason: string): void {
    for (const session of [...this.sessions.values()]) if (session.claims.applicationId === applicationId) session.member.leave(reason);
  }
}

function refused(status: 400 | 409, code: string, message: string): JoinResult {
  joins.inc({ outcome: code });
  return { ok: false, status, code, message };
}

function sessionKey(applicationId: string, clientId: string): string {
  return JSON.stringify([applicationId, clientId]);
}

function channelKey(applicationId: string, channelId: string): string {
  return JSON.stringify([applicationId, channelId]);
}
