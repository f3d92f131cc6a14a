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
// Bounds: a channel has at most `maxStreamsPerChannel()` streams (more close with 4429); sockets
// still waiting for their auth message are limited per source address and in total (more close
// with 1013, "try again later"), so unauthenticated sockets cannot pile up.
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
  /** Read at each new stream (config webrtc.maxEventStreamsPerChannel). */
  maxEventStreamsPerChannel: () => number;
}

const AUTH_TIMEOUT_MS = 5000;
const CLOSE_UNAUTHORIZED = 4401;
const CLOSE_CHANNEL_FULL = 4429;
/** RFC 6455 §7.4.1 (IANA registry): "Try Again Later". */
const CLOSE_TRY_AGAIN_LATER = 1013;
export const MAX_UNAUTHENTICATED_PER_SOURCE = 8;
export const MAX_UNAUTHENTICATED = 1024;

/** Sockets waiting for their auth message, per source (entries go at 0, so at most MAX_UNAUTHENTICATED). */
export class UnauthenticatedSockets {
  private readonly bySource = new Map<string, number>();
  private total = 0;

  /** Takes a place for `source`, or false when its share or the total is used up. */
  take(source: string): boolean {
    const mine = this.bySource.get(source) ?? 0;
    if (mine >= MAX_UNAUTHENTICATED_PER_SOURCE || this.total >= MAX_UNAUTHENTICATED) return false;
    this.bySource.set(source, mine + 1);
    this.total++;
    return true;
  }

  release(source: string): void {
    const mine = (this.bySource.get(source) ?? 1) - 1;
    if (mine === 0) this.bySource.delete(source);
    else this.bySource.set(source, mine);
    this.total--;
  }

  /** Sources with a socket waiting (none linger at 0). */
  get sources(): number {
    return this.bySource.size;
  }
}

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
  const waiting = new UnauthenticatedSockets();
  const upgrade = upgradeWebSocket((c) => channelStream({ deps, headerAuth: requestAuth(c), guard, source: sourceKey(c), waiting }));
  api.route(
    { method: "get", path: "/client/events", tag: "client", auth: "client", middleware: [refuseBadToken, upgrade],
      summary: "WebSocket: the channel's participants and call events", response: { status: 101, description: "Switching Protocols" } },
    () => {
      throw new ApiError(400, "websocket_required", "this endpoint only accepts a WebSocket upgrade");
    },
  );
}

interface StreamContext {
  deps: ClientEventsDeps;
  headerAuth: ClientAuthResult | undefined;
  guard: AuthGuard;
  source: string;
  waiting: UnauthenticatedSockets;
}

/** The WebSocket's life: authenticate (header or first message), then stream until closed. */
function channelStream({ deps, headerAuth, guard, source, waiting }: StreamContext) {
  const stops: (() => void)[] = [];
  let authTimer: ReturnType<typeof setTimeout> | undefined;
  let streaming = false;
  let open = true;
  let waitingPlace = false;
  const leaveWaiting = () => {
    clearTimeout(authTimer);
    if (waitingPlace) waiting.release(source);
    waitingPlace = false;
  };

  const start = (ws: WSContext, claims: ClientClaims) => {
    leaveWaiting();
    const { applicationId, channelId } = claims;
    if (deps.registry.watcherCount(applicationId, channelId) >= deps.maxEventStreamsPerChannel())
      return ws.close(CLOSE_CHANNEL_FULL, "too many event streams on this channel");
    streaming = true;
    const send = (message: object) => {
      if (open) ws.send(JSON.stringify(message));
    };
    send({ type: "participants", participants: deps.registry.participants(applicationId, channelId) });
    stops.push(deps.registry.watch(applicationId, channelId, (participants) => send({ type: "participants", participants })));
    stops.push(
      subscribeEvents((event) => {
        const data = event.data as { applicationId?: string; channelId?: string };
        if (data.applicationId === applicationId && data.channelId === channelId) send({ type: "event", event });
      }),
    );
  };
  const refuse = (ws: WSContext, message: string) => {
    leaveWaiting();
    ws.close(CLOSE_UNAUTHORIZED, message.slice(0, 120));
  };

  return {
    onOpen(_event: Event, ws: WSContext) {
      if (headerAuth?.ok) return start(ws, headerAuth.claims);
      if (!waiting.take(source)) return ws.close(CLOSE_TRY_AGAIN_LATER, "too many sockets waiting for authentication");
      waitingPlace = true;
      authTimer = setTimeout(() => refuse(ws, "no auth message"), AUTH_TIMEOUT_MS);
    },
    onMessage(event: MessageEvent, ws: WSContext) {
      if (streaming || !waitingPlace) return;
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
      leaveWaiting();
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
