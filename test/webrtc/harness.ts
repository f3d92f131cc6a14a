// An HTTP server with only the client API (and the admin channel routes) mounted (on 127.0.0.1, a free port), a channel registry
// whose channels run in a media worker (as in production; `mediaWorkers: 0` runs them on this thread)
// and client sessions, for the WebRTC tests.
import { Hono } from "hono";
import { websocket } from "hono/bun";
import { ChannelRegistry } from "../../src/channels/registry.ts";
import { MediaPlane } from "../../src/media/media-plane.ts";
import { adminAuth, AuthGuard } from "../../src/api/auth.ts";
import { AuthThrottle } from "../../src/api/authThrottle.ts";
import { ApiError } from "../../src/api/errors.ts";
import { OpenApiRegistry } from "../../src/api/openapi.ts";
import { ApiRouter } from "../../src/api/router.ts";
import { mountClientRoutes, type ClientCallControl } from "../../src/api/routes/client.ts";
import { channelRoutes } from "../../src/api/routes/channels.ts";
import { mountClientTokenRoutes } from "../../src/api/routes/clientTokens.ts";
import { ClientSessions } from "../../src/webrtc/clients.ts";
import { mountUi } from "../../src/webrtc/ui.ts";
import type { PeerTimeouts } from "../../src/webrtc/peer.ts";
import { signClientToken, type ClientClaims } from "../../src/webrtc/tokens.ts";

export const ADMIN_TOKEN = "admin-token-for-webrtc-tests";
export const APP = { id: "app1", secret: "s3cret-app1" };

export interface Harness {
  url: string;
  registry: ChannelRegistry;
  sessions: ClientSessions;
  token(claims?: Partial<ClientClaims>, secret?: string): string;
  join(token: string, sdp: string, extra?: object): Promise<Response>;
  stop(): Promise<void>;
}

export function startHarness(
  o: {
    timeouts?: PeerTimeouts;
    calls?: ClientCallControl;
    portRange?: [number, number];
    authFailures?: { burst: number; perMinute: number };
    maxParticipantsPerChannel?: number;
    maxEventStreamsPerChannel?: number;
    mediaWorkers?: number;
  } = {},
): Harness {
  const registry = new ChannelRegistry();
  const plane = new MediaPlane({ workers: o.mediaWorkers ?? 1 });
  registry.setMediaPlane(plane);
  const sessions = new ClientSessions({
    registry,
    network: () => ({ hostAddresses: ["127.0.0.1"], ...(o.portRange ? { portRange: o.portRange } : {}) }),
    timeouts: o.timeouts ?? { connectMs: 10_000, mediaMs: 5_000 },
    ...(o.maxParticipantsPerChannel ? { maxParticipantsPerChannel: () => o.maxParticipantsPerChannel! } : {}),
  });
  const hono = new Hono();
  hono.onError((err, c) => (err instanceof ApiError ? c.json(err.toJSON(), err.status) : c.json({ error: { code: "internal", message: "internal error" } }, 500)));
  const guard = new AuthGuard(new AuthThrottle({ burst: 10, perMinute: 10, maxAddresses: 10_000, ...o.authFailures }));
  const api = new ApiRouter(hono, new OpenApiRegistry(), adminAuth(() => ADMIN_TOKEN, guard), () => 1 << 20, guard);
  const applicationSecret = (id: string) => (id === APP.id ? APP.secret : undefined);
  mountClientRoutes(api, { sessions, registry, applicationSecret, dialRole: () => "dial", calls: () => o.calls, maxEventStreamsPerChannel: () => o.maxEventStreamsPerChannel ?? 200 });
  mountClientTokenRoutes(api, { applicationSecret, defaultTtlSec: () => 3600 });
  channelRoutes(api, registry);
  mountUi(hono);
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: hono.fetch, websocket });
  const url = `http://127.0.0.1:${server.port}`;
  return {
    url,
    registry,
    sessions,
    token: (claims = {}, secret = APP.secret) =>
      signClientToken({ applicationId: APP.id, channelId: "room1", roles: ["dial"], exp: Math.floor(Date.now() / 1000) + 600, ...claims }, secret),
    join: (token, sdp, extra = {}) =>
      fetch(`${url}/api/v1/client/join`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ sdp, ...extra }),
      }),
    async stop() {
      sessions.closeAll();
      await server.stop(true);
      plane.close();
    },
  };
}
