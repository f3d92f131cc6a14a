// The API routes of the running services, as route-only services the composition root adds
// (src/services.ts). The API layer depends on the services it exposes, never the reverse.
//
//   [sip, trunks, calls, webrtc, trunkStatusApi(trunks), callsApi(calls, ctx), channelsApi(registry), webrtcApi(webrtc, ctx, ...)]
import type { AppContext, Service } from "../../app.ts";
import type { CallService } from "../../calls/service.ts";
import type { ChannelRegistry } from "../../channels/registry.ts";
import type { RecordingService } from "../../recordings/service.ts";
import type { TrunkService } from "../../trunks/service.ts";
import type { WebRtcService } from "../../webrtc/service.ts";
import { mountUi } from "../../webrtc/ui.ts";
import { callRoutes } from "./calls.ts";
import { channelRoutes } from "./channels.ts";
import { recordingRoutes } from "./recordings.ts";
import { type ClientCallControl, mountClientRoutes } from "./client.ts";
import { mountClientTokenRoutes } from "./clientTokens.ts";
import { trunkStatusRoutes } from "./trunk-status.ts";

/** GET /trunks/status and /trunks/:id/status. */
export function trunkStatusApi(trunks: TrunkService): Service {
  return { name: "trunks.api", routes: (api) => trunkStatusRoutes(api, trunks.manager) };
}

/** /calls and /applications/:appId/channels/:channelId/calls. */
export function callsApi(calls: CallService, ctx: AppContext): Service {
  return { name: "calls.api", routes: (api) => callRoutes(calls.manager)(api, ctx.store) };
}

/** Recordings of channels: start, stop, metadata, audio. */
export function recordingsApi(recordings: RecordingService): Service {
  return { name: "recordings.api", routes: (api) => recordingRoutes(api, recordings) };
}

/** GET /channels and operator control of participants (mute, remove). */
export function channelsApi(registry: ChannelRegistry): Service {
  return { name: "channels.api", routes: (api) => channelRoutes(api, registry) };
}

/** The client API (join, events, dialling), the admin token route and the /ui/ page. */
export function webrtcApi(webrtc: WebRtcService, ctx: AppContext, calls?: () => ClientCallControl | undefined): Service {
  return {
    name: "webrtc.api",
    routes: (api) => {
      const applicationSecret = (id: string) => ctx.store.applications.get(id)?.sharedSecret;
      mountClientRoutes(api, {
        sessions: webrtc.sessions,
        registry: webrtc.registry,
        applicationSecret,
        ...(calls ? { calls } : {}),
        dialRole: () => ctx.config.webrtc.dialRole,
        maxEventStreamsPerChannel: () => ctx.config.webrtc.maxEventStreamsPerChannel,
      });
      mountClientTokenRoutes(api, { applicationSecret, defaultTtlSec: () => ctx.config.webrtc.tokenTtlSec });
      mountUi(api.hono, () => ctx.homes.peerUrls());
    },
  };
}
