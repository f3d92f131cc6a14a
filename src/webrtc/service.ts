// The WebRTC service: client sessions in the channels' mixers. Its API (client join, events,
// dialling, tokens, the /ui/ page): src/api/routes/services.ts.
//
//   const registry = new ChannelRegistry();                       // shared with the calls service
//   const webrtc = new WebRtcService(ctx, registry);
import { isIP } from "node:net";
import type { AppContext, Service } from "../app.ts";
import type { ChannelRegistry } from "../channels/registry.ts";
import type { Config } from "../config/config.ts";
import { ClientSessions } from "./clients.ts";
import type { PeerNetworkOptions, PeerTimeouts } from "./peer.ts";
import { createLogger } from "../log.ts";

const log = createLogger("webrtc");

/** ICE + DTLS must be up this long after the answer, and client RTP may pause at most this long. */
export const CLIENT_TIMEOUTS: PeerTimeouts = { connectMs: 15_000, mediaMs: 5_000 };

export class WebRtcService implements Service {
  readonly name = "webrtc";
  readonly sessions: ClientSessions;
  private readonly unsubscribe: () => void;
  private networkFor: { config: Config; network: PeerNetworkOptions } | undefined;

  constructor(
    private readonly ctx: AppContext,
    readonly registry: ChannelRegistry,
  ) {
    this.sessions = new ClientSessions({
      registry,
      network: () => this.network(),
      timeouts: CLIENT_TIMEOUTS,
      maxParticipantsPerChannel: () => ctx.config.limits.maxParticipantsPerChannel,
    });
    this.unsubscribe = ctx.store.changes.subscribe((change) => {
      if (change.entity === "application" && change.action === "deleted") this.sessions.closeApplication(change.id, "application-deleted");
    });
  }

  /** The ICE addresses of the current config (recomputed after a reload). */
  private network(): PeerNetworkOptions {
    const { config } = this.ctx;
    if (this.networkFor?.config !== config) {
      const network = peerNetwork(config);
      if (config.webrtc.publicAddress !== undefined && network.publicAddress !== config.webrtc.publicAddress)
        log.warn("webrtc.publicAddress is not an IP address; ICE candidates need one, so it is not offered", { publicAddress: config.webrtc.publicAddress });
      this.networkFor = { config, network };
    }
    return this.networkFor.network;
  }

  stop(): void {
    this.unsubscribe();
    this.sessions.closeAll("shutdown");
  }
}

/**
 * Host candidates: the HTTP listen address when it is one interface's IP (clients reach us there
 * already), otherwise every interface address plus loopback. The public address (webrtc.publicAddress,
 * else sip.advertised.host) is offered too, for a 1:1 NAT — when it is an IP address: ICE candidates
 * cannot name hosts.
 */
export function peerNetwork(config: Config): PeerNetworkOptions {
  const { host } = config.http;
  const oneInterface = isIP(host) !== 0 && host !== "0.0.0.0" && host !== "::";
  const publicAddress = [config.webrtc.publicAddress, config.sip.advertised?.host].find((a) => a !== undefined && isIP(a) !== 0);
  return {
    hostAddresses: oneInterface ? [host] : [],
    ...(publicAddress ? { publicAddress } : {}),
    ...(config.webrtc.portMin !== undefined && config.webrtc.portMax !== undefined ? { portRange: [config.webrtc.portMin, config.webrtc.portMax] as [number, number] } : {}),
    iceServers: config.webrtc.iceServers,
  };
}
