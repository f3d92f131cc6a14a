// The WebRTC clients connected right now. A join goes to the channel's media host (a media
// worker, or this thread without workers), whose client handler (client-host.ts) answers the
// client's offer with a werift peer and puts it in the channel's mixer: the peer, its Opus
// decoding and encoding run beside the channel's phone legs. What crosses: the offer and the join
// options out, the answer SDP back; a leave or a call-progress tone (playTone: cadence and
// duration as data; a stop condition stays here and is checked every 20 ms) out; the peer's
// close (ice-failed, connect-timeout, media-timeout, closed) back.
// A client leaves by DELETE, by closing its peer connection, or by going silent/unreachable.
import type { ChannelMember, ChannelRegistry, JoiningParticipant } from "../channels/registry.ts";
import { createLogger } from "../log.ts";
import { hostClientsHere } from "../media/media-engine.ts";
import type { ChannelClient } from "../media/media-plane.ts";
import { metrics } from "../metrics.ts";
import type { ToneRequest } from "../media/tones.ts";
import { webrtcClientHandler, type ClientJoinOptions } from "./client-host.ts";
import type { PeerNetworkOptions, PeerTimeouts } from "./peer.ts";
import { newClientId, type ClientClaims } from "./tokens.ts";

export interface ClientSession {
  readonly clientId: string;
  readonly claims: ClientClaims;
  /** The codec the client is sent. */
  readonly codec: string;
  readonly member: ChannelMember;
}

export type JoinResult =
  | { ok: true; clientId: string; sdp: string; codec: string }
  | { ok: false; status: 400 | 409 | 503; code: string; message: string };

export interface ClientSessionsOptions {
  registry: ChannelRegistry;
  /** Read at each join, so a config reload applies to the next one. */
  network: () => PeerNetworkOptions;
  timeouts: PeerTimeouts;
  /** Read at each join, so a config reload applies to the next one. */
  maxParticipantsPerChannel?: () => number;
}

const log = createLogger("webrtc");
/** How often a tone's stop condition is checked: once per 20 ms frame, as the tone is played. */
const TONE_STOP_CHECK_MS = 20;
const connectedClients = metrics.gauge("trunkline_webrtc_clients", "WebRTC clients in channels.");
const joins = metrics.counter("trunkline_webrtc_joins_total", "WebRTC join requests by outcome.", ["outcome"]);
const leaves = metrics.counter("trunkline_webrtc_leaves_total", "WebRTC clients gone by reason (left, media-timeout, ice-failed, ...).", ["reason"]);

interface LiveSession extends ClientSession {
  readonly client: ChannelClient;
  /** polls the playing tone's stop condition */
  toneStop: ReturnType<typeof setInterval> | undefined;
}

export class ClientSessions {
  private readonly sessions = new Map<string, LiveSession>();
  /** Joins awaiting their SDP answer, per channel (entries go when their count drops to 0). */
  private readonly joining = new Map<string, number>();

  constructor(private readonly options: ClientSessionsOptions) {
    // Without media workers, channels (and so their clients) run on this thread.
    hostClientsHere(webrtcClientHandler);
  }

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

    const key = sessionKey(claims.applicationId, clientId);
    const info: JoiningParticipant = {
      applicationId: claims.applicationId,
      channelId: claims.channelId,
      id: clientId,
      kind: "webrtc",
      userId: claims.userId ?? clientId,
      clientId,
      ...(claims.userAlias ? { userAlias: claims.userAlias } : {}),
    };
    const options: ClientJoinOptions = { network: network(), timeouts };
    let joined: { client: ChannelClient; sdp: string } | undefined;
    let unavailable = false;
    this.joining.set(channel, pending + 1);
    let member: ChannelMember | { error: string };
    try {
      member = await registry.joinWhenReady(info, async (media) => {
        const answer = await media.joinClient(clientId, offerSdp, options);
        if (!answer.ok) {
          unavailable = answer.unavailable ?? false;
          return { error: answer.message };
        }
        const { client } = answer;
        joined = { client, sdp: answer.sdp };
        connectedClients.inc();
        return (reason = "left") => {
          connectedClients.dec();
          leaves.inc({ reason });
          client.leave();
          const session = this.sessions.get(key);
          if (session?.client === client) {
            clearInterval(session.toneStop);
            this.sessions.delete(key);
          }
        };
      });
    } finally {
      const left = (this.joining.get(channel) ?? 1) - 1;
      if (left === 0) this.joining.delete(channel);
      else this.joining.set(channel, left);
    }
    if ("error" in member || !joined) {
      const message = "error" in member ? member.error : "the offer was not answered";
      return unavailable ? refused(503, "media_unavailable", message) : refused(400, "bad_sdp", message);
    }
    const { client, sdp } = joined;
    const admitted = member;
    // The same client joining another channel replaces its session there (the registry replaces it in the same channel).
    const previous = this.sessions.get(key);
    if (previous && previous.client !== client) previous.member.leave("replaced");
    const session: LiveSession = { clientId, claims: { ...claims, clientId }, codec: client.codec, member: admitted, client, toneStop: undefined };
    this.sessions.set(key, session);
    client.onClosed = (reason) => {
      log.info("client peer closed", { applicationId: claims.applicationId, channelId: claims.channelId, clientId, reason });
      admitted.leave(reason);
    };
    joins.inc({ outcome: "joined" });
    log.info("client joined", { applicationId: claims.applicationId, channelId: claims.channelId, clientId, codec: client.codec });
    return { ok: true, clientId, sdp, codec: client.codec };
  }

  get(applicationId: string, clientId: string): ClientSession | undefined {
    return this.sessions.get(sessionKey(applicationId, clientId));
  }

  /** Plays `tone` to the client alone (replacing any other; undefined stops it). False when it is not connected here. */
  playTone(applicationId: string, clientId: string, tone: ToneRequest | undefined): boolean {
    const session = this.sessions.get(sessionKey(applicationId, clientId));
    if (!session) return false;
    clearInterval(session.toneStop);
    session.toneStop = undefined;
    const { client } = session;
    client.playTone(tone && { cadence: tone.cadence, ...(tone.durationMs !== undefined ? { durationMs: tone.durationMs } : {}) });
    const stopWhen = tone?.stopWhen;
    if (stopWhen) {
      const toneStop = setInterval(() => {
        if (!stopWhen()) return;
        clearInterval(toneStop);
        if (session.toneStop === toneStop) session.toneStop = undefined;
        client.playTone(undefined);
      }, TONE_STOP_CHECK_MS);
      session.toneStop = toneStop;
    }
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

function refused(status: 400 | 409 | 503, code: string, message: string): JoinResult {
  joins.inc({ outcome: code });
  return { ok: false, status, code, message };
}

function sessionKey(applicationId: string, clientId: string): string {
  return JSON.stringify([applicationId, clientId]);
}

function channelKey(applicationId: string, channelId: string): string {
  return JSON.stringify([applicationId, channelId]);
}
