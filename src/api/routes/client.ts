// The client API, authenticated with a client token (`Authorization: Bearer <token>`), not the
// admin token. Paths under /api/v1/client:
//
//   POST   /join                      { sdp, channelId? }  → 200 { clientId, sdp, codec }
//   DELETE /connections/:clientId                        → 204
//   POST   /calls                     { to, clientId? }   → 201 { id, to }        (role webrtc.dialRole)
//   DELETE /calls/:id                                     → 204
//   POST   /calls/:id/dtmf            { digits }          → 204
//   GET    /events                    WebSocket (clientEvents.ts)
import type { Context, MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import { s } from "../../config/schema.ts";
import type { ChannelRegistry } from "../../channels/registry.ts";
import type { ClientSessions } from "../../webrtc/clients.ts";
import { authenticateBearer, type ClientClaims } from "../../webrtc/tokens.ts";
import { isTokenGuess, sourceKey } from "../auth.ts";
import { ApiError } from "../errors.ts";
import { API_PREFIX, type ApiRouter } from "../router.ts";
import { mountClientEvents } from "./clientEvents.ts";

/** What the calls layer offers clients (CallManager.clientControl()): dialling from a channel, hanging up, DTMF. */
export interface ClientCallControl {
  dial(o: { claims: ClientClaims & { clientId: string }; to: string }): Promise<CallControlResult<{ callId: string }>>;
  hangUp(o: { claims: ClientClaims; callId: string }): Promise<CallControlResult>;
  sendDtmf(o: { claims: ClientClaims; callId: string; digits: string }): Promise<CallControlResult>;
}

export type CallControlResult<T extends object = object> =
  | ({ ok: true } & T)
  | { ok: false; status: 400 | 403 | 404 | 409 | 503; code: string; message: string; field?: string };

export interface ClientApiDeps {
  sessions: ClientSessions;
  registry: ChannelRegistry;
  /** The application's sharedSecret, or undefined for an unknown application. */
  applicationSecret(applicationId: string): string | undefined;
  /** The calls layer; without it the call routes answer 503. */
  calls?: () => ClientCallControl | undefined;
  /** The role a token needs to dial out (config webrtc.dialRole). */
  dialRole: () => string;
  /** Event streams one channel may have (config webrtc.maxEventStreamsPerChannel). */
  maxEventStreamsPerChannel: () => number;
}

const joinBody = s.object({
  sdp: s.string({ minLength: 1, maxLength: 65536 }).describe("The client's SDP offer, ICE candidates gathered (non-trickle)."),
  channelId: s.string({ minLength: 1 }).optional().describe("When present it must equal the token's channelId (403 otherwise)."),
});
const joinView = s.object({
  clientId: s.string().describe("This connection's id: the token's clientId, or a generated one."),
  sdp: s.string().describe("Trunkline's SDP answer."),
  codec: s.string().describe("The codec Trunkline sends: opus or PCMU."),
});
const dialBody = s.object({
  to: s.string({ minLength: 1, maxLength: 128 }).describe("Phone number or SIP user to call into the channel."),
  clientId: s.string({ minLength: 1 }).optional().describe("The dialling client's id (from join) when the token carries none."),
});
const dialView = s.object({ id: s.string().describe("Call id, for DELETE and DTMF."), to: s.string() });
const dtmfBody = s.object({
  digits: s
    .string({ minLength: 1, maxLength: 32 })
    .refine((d) => (/^[0-9*#A-Da-d]+$/.test(d) ? undefined : "digits may only contain 0-9, *, #, A-D")),
});

const CLAIMS = "clientClaims";

export function mountClientRoutes(api: ApiRouter, deps: ClientApiDeps): void {
  const clientAuth: MiddlewareHandler = async (c, next) => {
    const source = sourceKey(c);
    api.authGuard.admit(c, source, "client");
    const auth = authenticateBearer(c.req.header("authorization"), deps.applicationSecret);
    if (!auth.ok) {
      if (isTokenGuess(auth.code)) api.authGuard.failed(source, "client");
      throw new ApiError(401, auth.code, auth.message);
    }
    c.set(CLAIMS, auth.claims);
    await next();
  };
  const client = { tag: "client", auth: "client" as const, middleware: [clientAuth] };
  const callControl = (): ClientCallControl => {
    const calls = deps.calls?.();
    if (!calls) throw new ApiError(503, "unavailable", "outbound calling is not available");
    return calls;
  };

  // Web apps on other origins call this API from the browser. Authorization is a bearer token, never
  // a cookie, so any origin may: a page without a valid token gets nowhere.
  api.hono.use(
    `${API_PREFIX}/client/*`,
    cors({ origin: "*", allowMethods: ["GET", "POST", "DELETE"], allowHeaders: ["authorization", "content-type"], maxAge: 600 }),
  );
  mountClientEvents(api, deps);

  api.route(
    { ...client, method: "post", path: "/client/join", summary: "Join the token's channel with an SDP offer", body: joinBody,
      response: { status: 200, description: "The SDP answer", schema: joinView }, errors: [403, 409, 503] },
    async (c, body) => {
      const claims = claimsOf(c);
      if (body.channelId !== undefined && body.channelId !== claims.channelId)
        throw new ApiError(403, "wrong_channel", "the token is not valid for this channel", "channelId");
      const joined = await deps.sessions.join(claims, body.sdp);
      if (!joined.ok) throw new ApiError(joined.status, joined.code, joined.message, joined.code === "bad_sdp" ? "sdp" : undefined);
      return c.json({ clientId: joined.clientId, sdp: joined.sdp, codec: joined.codec });
    },
  );

  api.route(
    { ...client, method: "delete", path: "/client/connections/:clientId", summary: "Leave the channel",
      response: { status: 204, description: "Left" }, errors: [403, 404] },
    (c) => {
      const claims = claimsOf(c);
      const session = deps.sessions.get(claims.applicationId, c.req.param("clientId") ?? "");
      if (!session) throw new ApiError(404, "not_found", "no such connection");
      if (session.claims.channelId !== claims.channelId)
        throw new ApiError(403, "wrong_channel", "the token is not valid for this connection's channel");
      deps.sessions.leave(claims.applicationId, session.clientId, "left");
      return c.body(null, 204);
    },
  );

  api.route(
    { ...client, method: "post", path: "/client/calls", summary: "Dial a phone into the channel", body: dialBody,
      response: { status: 201, description: "Dialling", schema: dialView }, errors: [403, 404, 409, 503] },
    async (c, body) => {
      const claims = claimsOf(c);
      const role = deps.dialRole();
      if (!claims.roles.includes(role)) throw new ApiError(403, "forbidden", `dialling needs the "${role}" role in the token`);
      if (claims.clientId !== undefined && body.clientId !== undefined && body.clientId !== claims.clientId)
        throw new ApiError(403, "forbidden", "clientId differs from the token's clientId", "clientId");
      const clientId = claims.clientId ?? body.clientId;
      if (clientId === undefined) throw new ApiError(400, "invalid_body", "clientId is required when the token has none", "clientId");
      if (claims.clientId === undefined && deps.sessions.get(claims.applicationId, clientId)?.claims.channelId !== claims.channelId)
        throw new ApiError(403, "forbidden", "clientId is not a client connected to this channel", "clientId");
      const dialled = succeeded(await callControl().dial({ claims: { ...claims, clientId }, to: body.to }));
      return c.json({ id: dialled.callId, to: body.to }, 201);
    },
  );

  api.route(
    { ...client, method: "delete", path: "/client/calls/:id", summary: "Hang up a call of the channel",
      response: { status: 204, description: "Hung up" }, errors: [403, 404, 503] },
    async (c) => {
      succeeded(await callControl().hangUp({ claims: claimsOf(c), callId: c.req.param("id") ?? "" }));
      return c.body(null, 204);
    },
  );

  api.route(
    { ...client, method: "post", path: "/client/calls/:id/dtmf", summary: "Send DTMF digits on a call (RFC 4733)", body: dtmfBody,
      response: { status: 204, description: "Sent" }, errors: [403, 404, 503] },
    async (c, body) => {
      succeeded(await callControl().sendDtmf({ claims: claimsOf(c), callId: c.req.param("id") ?? "", digits: body.digits }));
      return c.body(null, 204);
    },
  );
}

function succeeded<T extends object>(result: CallControlResult<T>): { ok: true } & T {
  if (!result.ok) throw new ApiError(result.status, result.code, result.message, result.field);
  return result;
}

function claimsOf(c: Context): ClientClaims {
  return c.get(CLAIMS) as ClientClaims;
}
