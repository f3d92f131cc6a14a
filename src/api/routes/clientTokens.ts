// POST /api/v1/applications/:appId/tokens (admin) — mints a client token signed with the
// application's sharedSecret, for trying things out; application servers normally mint their own
// (format documented in src/webrtc/tokens.ts).
//
//   { channelId, clientId?, userId?, userAlias?, deviceId?, deviceAlias?, tag?, roles?, region?, ttlSec? }
//   → 200 { token, expiresAt }
import { s } from "../../config/schema.ts";
import { signClientToken } from "../../webrtc/tokens.ts";
import { notFound } from "../errors.ts";
import type { ApiRouter } from "../router.ts";

export interface ClientTokenDeps {
  applicationSecret(applicationId: string): string | undefined;
  /** Lifetime when the request names none (config webrtc.tokenTtlSec). */
  defaultTtlSec: () => number;
}

const text = s.string({ minLength: 1, maxLength: 256 });

const mintBody = s.object({
  channelId: text.describe("The channel the token admits to."),
  clientId: text.optional().describe("Fixed client id; generated at join when absent."),
  userId: text.optional(),
  userAlias: text.optional(),
  deviceId: text.optional(),
  deviceAlias: text.optional(),
  tag: text.optional(),
  roles: s.array(text, { maxItems: 32 }).default([]).describe('"dial" (webrtc.dialRole) allows placing outbound calls.'),
  region: text.optional(),
  ttlSec: s.integer({ min: 60, max: 604800 }).optional().describe("Lifetime in seconds; default webrtc.tokenTtlSec."),
});
const mintView = s.object({
  token: s.string().describe("JWT (HS256) signed with the application's sharedSecret."),
  expiresAt: s.string().describe("ISO-8601 expiry (the exp claim)."),
});

export function mountClientTokenRoutes(api: ApiRouter, deps: ClientTokenDeps): void {
  api.route(
    { method: "post", path: "/applications/:appId/tokens", tag: "applications", summary: "Mint a client token for a channel",
      body: mintBody, response: { status: 200, description: "The token", schema: mintView }, errors: [404] },
    (c, body) => {
      const applicationId = c.req.param("appId") ?? "";
      const secret = deps.applicationSecret(applicationId);
      if (secret === undefined) throw notFound("application", applicationId);
      const { ttlSec, ...claims } = body;
      const exp = Math.floor(Date.now() / 1000) + (ttlSec ?? deps.defaultTtlSec());
      const token = signClientToken({ applicationId, ...claims, exp }, secret);
      return c.json({ token, expiresAt: new Date(exp * 1000).toISOString() });
    },
  );
}
