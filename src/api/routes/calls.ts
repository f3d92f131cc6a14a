// /api/v1/calls and outbound dialling from a channel.
//   POST   /applications/:appId/channels/:channelId/calls  { to, client, headers? }  → 201 call (placed asynchronously)
//   GET    /calls?state=active|ended&limit=&cursor=                         → { calls, nextCursor? }
//   GET    /calls/:id                                                       → call
//   DELETE /calls/:id                                                       → 204 (CANCEL before answer, BYE after)
//   POST   /calls/:id/dtmf  { digits }                                      → 204
//   POST   /calls/:id/transfer  { to }                                      → 202 (blind REFER; the outcome is an event)
//   POST   /calls/:id/move  { channelId }                                   → 204 (another channel of the application, no SIP)
import type { CallManager } from "../../calls/manager.ts";
import { dialHeaderNameError, headerValueError, MAX_DIAL_HEADERS } from "../../calls/headers.ts";
import type { CommandFailure } from "../../calls/types.ts";
import { channelIdSchema, idSchema } from "../../config/entities.ts";
import { s, validate } from "../../config/schema.ts";
import { isValidCursor } from "../../store/calls.ts";
import { ApiError, notFound, validationError } from "../errors.ts";
import { pathParam, type ApiModule } from "../router.ts";

const optionalText = s.string({ maxLength: 256 }).optional();

export const dialBody = s.object({
  to: s.string({ minLength: 1, maxLength: 256 }).describe("E.164 number (+15551234567) or SIP URI to call."),
  client: s
    .object({
      id: s.string({ minLength: 1, maxLength: 256 }).describe("The calling client's id ({id}, clientId in the outbound webhook)."),
      userId: optionalText,
      userAlias: optionalText,
      deviceId: optionalText,
      deviceAlias: optionalText,
      tag: optionalText,
      roles: s.array(s.string({ maxLength: 256 }), { maxItems: 64 }).optional(),
      region: optionalText,
    })
    .describe("The client the call is placed for: caller-ID template variables and webhook fields."),
  headers: s
    .record(s.string().refine(dialHeaderNameError), s.string().refine(headerValueError))
    .refine((headers) => (Object.keys(headers).length > MAX_DIAL_HEADERS ? `must have at most ${MAX_DIAL_HEADERS} headers` : undefined))
    .optional()
    .describe(
      "SIP headers added to the INVITE: X-* names, P-Asserted-Identity, Privacy and Diversion only (they replace the caller ID's " +
        `P-Asserted-Identity / Privacy); values without CR/LF, at most 512 characters; at most ${MAX_DIAL_HEADERS} headers.`,
    ),
});

export const dtmfBody = s.object({
  digits: s
    .string({ minLength: 1, maxLength: 64 })
    .refine((d) => (/^[0-9*#A-Da-d]+$/.test(d) ? undefined : "may only contain 0-9, *, #, A-D")),
});

export const transferBody = s.object({
  to: s
    .string({ minLength: 1, maxLength: 256 })
    .describe("Where the far end is sent: a number or user name at the call's trunk domain (+15557654321), or a full sip: URI."),
});

export const moveBody = s.object({
  channelId: channelIdSchema.describe("Another channel of the call's application."),
});

export const callView = s
  .object({
    id: s.string(),
    direction: s.enum(["inbound", "outbound"]),
    state: s.enum(["trying", "ringing", "answered", "ended"]),
    trunkId: s.string().optional(),
    from: s.string(),
    to: s.string(),
    applicationId: s.string().optional(),
    channelId: s.string().optional(),
    userId: s.string().optional(),
    clientId: s.string().optional(),
    sipCallId: s.string().optional(),
    createdAt: s.string(),
    ringingAt: s.string().optional(),
    answeredAt: s.string().optional(),
    endedAt: s.string().optional(),
    endReason: s.string().optional().describe("remote_bye, local_hangup, cancelled, rejected, no_answer, no_trunk, media_timeout, interrupted, redirect_forbidden, redirect_loop, too_many_redirects, ..."),
    sipStatus: s.integer().optional().describe("The final SIP status of the INVITE (e.g. 200, 486, 487)."),
    codec: s.string().optional(),
    mediaStats: s.record(s.string(), s.integer()).optional(),
    redirects: s
      .array(
        s.object({
          from: s.string().describe("The target that answered the 3xx."),
          status: s.integer(),
          to: s.string().describe("A Contact of that response."),
          outcome: s.enum(["followed", "forbidden", "loop", "unresolvable", "too_many_redirects"]),
        }),
      )
      .optional()
      .describe("Outbound: the 301/302 Contacts looked at, in q-order, and what became of each (the trunk's `redirects` policy, calls.maxRedirects)."),
    attributes: s
      .record(s.string(), s.string())
      .optional()
      .describe("Inbound: attributes from the INVITE's headers per calls.headersToAttributes (also on the caller's participant)."),
  })
  .describe("Call record");

const listQuery = s.object({
  state: s.enum(["active", "ended"]).optional(),
  limit: s.string({ pattern: /^\d{1,4}$/, patternHint: "a number from 1 to 500" }).optional(),
  cursor: s.string({ maxLength: 64 }).optional(),
});

function fail(result: CommandFailure): never {
  throw new ApiError(result.status, result.code, result.message, result.field);
}

export function callRoutes(calls: CallManager): ApiModule {
  return (api, store) => {
    const tag = "calls";

    api.route(
      {
        method: "post",
        path: "/applications/:appId/channels/:channelId/calls",
        summary: "Dial a phone number or SIP URI into a channel",
        tag,
        body: dialBody,
        response: { status: 201, description: "The call, placed asynchronously: follow it with GET /calls/:id or events", schema: callView },
        errors: [404, 503],
      },
      (c, body) => {
        const applicationId = pathParam(c, "appId", idSchema);
        const channelId = pathParam(c, "channelId", channelIdSchema);
        if (!store.applications.get(applicationId)) throw notFound("application", applicationId);
        const result = calls.dial({ applicationId, channelId, to: body.to, client: body.client, ...(body.headers ? { headers: body.headers } : {}) });
        if (!result.ok) fail(result);
        return c.json(result.call, 201);
      },
    );

    api.route(
      {
        method: "get",
        path: "/calls",
        summary: "List calls, newest first (?state=active|ended&limit=1..500&cursor=)",
        tag,
        response: { status: 200, description: "A page of calls", schema: s.object({ calls: s.array(callView), nextCursor: s.string().optional() }) },
      },
      async (c) => {
        const query = validate(listQuery, c.req.query());
        if (!query.ok) throw validationError(query.issues);
        const limit = query.value.limit === undefined ? 50 : Number(query.value.limit);
        if (limit < 1 || limit > 500) throw new ApiError(400, "invalid_query", "limit must be between 1 and 500", "limit");
        const { cursor, state } = query.value;
        if (cursor !== undefined && !isValidCursor(cursor)) throw new ApiError(400, "invalid_query", "cursor is not one this API returned", "cursor");
        return c.json(await calls.list({ limit, ...(state ? { state } : {}), ...(cursor ? { cursor } : {}) }));
      },
    );

    api.route(
      { method: "get", path: "/calls/:id", summary: "Get a call", tag, response: { status: 200, description: "The call", schema: callView }, errors: [404] },
      async (c) => {
        const id = c.req.param("id") ?? "";
        return c.json((await calls.get(id)) ?? fail({ ok: false, status: 404, code: "not_found", message: `call ${JSON.stringify(id)} not found` }));
      },
    );

    api.route(
      { method: "delete", path: "/calls/:id", summary: "Hang up a call (CANCEL before answer, BYE after)", tag, response: { status: 204, description: "Hanging up" }, errors: [404, 409] },
      async (c) => {
        const result = await calls.hangUp(c.req.param("id") ?? "");
        if (!result.ok) fail(result);
        return c.body(null, 204);
      },
    );

    api.route(
      {
        method: "post",
        path: "/calls/:id/transfer",
        summary: "Blind transfer (RFC 3515 REFER): the far end is asked to call `to`; call.transferred (then our BYE) or call.transfer_failed follows",
        tag,
        body: transferBody,
        response: { status: 202, description: "REFER sent; the outcome arrives as an event" },
        errors: [404, 409],
      },
      async (c, body) => {
        const result = await calls.transfer(c.req.param("id") ?? "", body.to);
        if (!result.ok) fail(result);
        return c.body(null, 202);
      },
    );

    api.route(
      {
        method: "post",
        path: "/calls/:id/move",
        summary: "Move the call's phone leg to another channel of its application (no SIP; participant.left and participant.joined follow)",
        tag,
        body: moveBody,
        response: { status: 204, description: "Moved" },
        errors: [404, 409],
      },
      async (c, body) => {
        const result = await calls.move(c.req.param("id") ?? "", body.channelId);
        if (!result.ok) fail(result);
        return c.body(null, 204);
      },
    );

    api.route(
      {
        method: "post",
        path: "/calls/:id/dtmf",
        summary: "Send DTMF digits on an answered call (RFC 4733, or in-band when the peer has no telephone-event)",
        tag,
        body: dtmfBody,
        response: { status: 204, description: "Digits queued" },
        errors: [404, 409],
      },
      async (c, body) => {
        const result = await calls.sendDtmf(c.req.param("id") ?? "", body.digits);
        if (!result.ok) fail(result);
        return c.body(null, 204);
      },
    );
  };
}
