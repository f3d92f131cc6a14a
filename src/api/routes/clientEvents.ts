// GET /api/v1/client/events — a WebSocket streaming the channel of a client token.
//
// Authentication, the client token given one of three ways:
// - `Authorization: Bearer <token>` on the upgrade request (SDKs);
// - a first message `{ "type": "auth", "token": "<token>" }` within 5 seconds (browsers, which cannot
//   set headers on a WebSocket) — failure closes with code 4401;
// - `?token=<token>` in the URL, for clients that can do neither (URLs end up in proxy logs).
// A bad header or query token is refused with 401 JSON before the upgrade. Bad tokens count
// towards the address's limit of failed authentications (429 past it; 4401 for a first message).
//
// Server → client messages (JSON text frames):
//   { "type": "participants", "participants": [ParticipantInfo...] }  on start and on every change
//   { "type": "event", "event": { id, type, time, data } }            the channel's call.*,
//                                                                      participant.* and dtmf.* events
import type { Context, MiddlewareHandler } from "hono";
import { upgradeWebSocket } from "hono/bun";
import type { WSContext } from "hono/ws";
import type { ChannelRegistry } from "../../channels/registry.ts";
import { subscribeEvents } from "../../events.ts";
import { authenticateBearer, authenticateClientToken, type ClientAuthResult, type ClientClaims } from "../../webrtc/tokens.ts";
import { isTokenGuess, sourceKey, type AuthGuard } from "../auth.ts";
import { ApiError } from "../errors.ts";
import type { ApiRouter } from "../router.ts";

export interface ClientEventsDeps {
  registry: ChannelRegistry;
  applicationSecret(applicationId: string): string | undefined;
}

const AUTH_TIMEOUT_MS = 5000;
const CLOSE_UNAUTHORIZED = 4401;

export function mountClientEvents(api: ApiRouter, deps: ClientEventsDeps): void {
  const requestAuth = (c: Context): ClientAuthResult | undefined => {
    const header = c.req.header("authorization");
    if (header !== undefined) return authenticateBearer(header, deps.applicationSecret);
    const token = c.req.query("token");
    return token !== undefined ? authenticateClientToken(token, deps.applicationSecret) : undefined;
  };
  const guard = api.authGuard;
  const refuseBadToken: MiddlewareHandler = async (c, next) => {
    const source = sourceKey(c);
    guard.admit(c, source, "client");
    const auth = requestAuth(c);
    if (auth && !auth.ok) {
      if (isTokenGuess(auth.code)) guard.failed(source, "client");
      throw new ApiError(401, auth.code, auth.message);
    }
    await next();
  };
  const upgrade = upgradeWebSocket((c) => channelStream(deps, requestAuth(c), guard, sourceKey(c)));
  api.route(
    { method: "get", path: "/client/events", tag: "client", auth: "client", middleware: [refuseBadToken, upgrade],
      summary: "WebSocket: the channel's participants and call events", response: { status: 101, description: "Switching Protocols" } },
    () => {
      throw new ApiError(400, "websocket_required", "this endpoint only accepts a WebSocket upgrade");
    },
  );
}

/** The WebSocket's life: authenticate (header or first message), then stream until closed. */
function channelStream(deps: ClientEventsDeps, headerAuth: ClientAuthResult | undefined, guard: AuthGuard, source: string) {
  const stops: (() => void)[] = [];
  let authTimer: ReturnType<typeof setTimeout> | undefined;
  let streaming = false;
  let open = true;

  const start = (ws: WSContext, claims: ClientClaims) => {
    streaming = true;
    clearTimeout(authTimer);
    const send = (message: object) => {
      if (open) ws.send(JSON.stringify(message));
    };
    send({ type: "participants", participants: deps.registry.participants(claims.applicationId, claims.channelId) });
    stops.push(deps.registry.watch(claims.applicationId, claims.channelId, (participants) => send({ type: "participants", participants })));
    stops.push(
      subscribeEvents((event) => {
        const data = event.data as { applicationId?: string; channelId?: string };
        if (data.applicationId === claims.applicationId && data.channelId === claims.channelId) send({ type: "event", event });
      }),
    );
  };
  const refuse = (ws: WSContext, message: string) => ws.close(CLOSE_UNAUTHORIZED, message.slice(0, 120));

  return {
    onOpen(_event: Event, ws: WSContext) {
      if (headerAuth?.ok) return start(ws, headerAuth.claims);
      authTimer = setTimeout(() => refuse(ws, "no auth message"), AUTH_TIMEOUT_MS);
    },
    onMessage(event: MessageEvent, ws: WSContext) {
      if (streaming) return;
      const token = authMessageToken(event.data);
      if (token === undefined) return refuse(ws, 'the first message must be {"type":"auth","token":"..."}');
      if (!guard.admits(source, "client")) return refuse(ws, "too many failed authentications from this address");
      const auth = authenticateClientToken(token, deps.applicationSecret);
      if (!auth.ok) {
        if (isTokenGuess(auth.code)) guard.failed(source, "client");
        return refuse(ws, auth.message);
      }
      start(ws, auth.claims);
    },
    onClose() {
      open = false;
      clearTimeout(authTimer);
      for (const stop of stops.splice(0)) stop();
    },
  };
}

function authMessageToken(data: unknown): string | undefined {
  if (typeof data !== "string" || data.length > 16384) return undefined;
  try {
    const message: unknown = JSON.parse(data);
    if (typeof message !== "object" || message === null) return undefined;
    const { type, token } = message as { type?: unknown; token?: unknown };
    return type === "auth" && typeof token === "string" ? token : undefined;
  } catch {
    return undefined;
  }
}
