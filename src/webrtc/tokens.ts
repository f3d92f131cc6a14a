// Client tokens: compact JWTs (RFC 7519) signed with HMAC-SHA256 (RFC 7518 §3.2, "HS256") using the
// application's sharedSecret. Application servers mint them with any JWT library:
//
//   header  {"alg":"HS256","typ":"JWT"}
//   payload {"applicationId":"app1","channelId":"lobby","exp":1767225600,
//            "clientId"?,"userId"?,"userAlias"?,"deviceId"?,"deviceAlias"?,"tag"?,"roles"?:["dial"],"region"?}
//
// `exp` (seconds since the epoch) is required: a client token that never expires is a standing
// credential to a channel. `clientId` is generated at join when absent. Only HS256 is accepted —
// the algorithm is never taken from the token itself (no "none", no key confusion).
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

export interface ClientClaims {
  applicationId: string;
  channelId: string;
  clientId?: string;
  userId?: string;
  userAlias?: string;
  deviceId?: string;
  deviceAlias?: string;
  tag?: string;
  roles: string[];
  region?: string;
  /** Expiry, seconds since the epoch. */
  exp: number;
}

export type TokenErrorCode = "missing_token" | "malformed_token" | "bad_signature" | "token_expired" | "invalid_claims";

export type TokenResult<T> = { ok: true; value: T } | { ok: false; code: TokenErrorCode; message: string };

const optionalStringClaims = ["clientId", "userId", "userAlias", "deviceId", "deviceAlias", "tag", "region"] as const;
const BAD_SIGNATURE = "token signature does not verify with the application's secret";
const encodedHeader = base64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));

export function signClientToken(claims: ClientClaims, secret: string): string {
  const payload: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(claims)) if (value !== undefined) payload[key] = value;
  const signingInput = `${encodedHeader}.${base64url(JSON.stringify(payload))}`;
  return `${signingInput}.${signature(signingInput, secret)}`;
}

/** Reads the application id before verification, so the caller can look up the secret to verify with. */
export function peekApplicationId(token: string): TokenResult<string> {
  const parts = splitToken(token);
  if (!parts.ok) return parts;
  const payload = parts.value.payload;
  if (typeof payload.applicationId !== "string" || payload.applicationId === "")
    return fail("invalid_claims", "applicationId must be a non-empty string");
  return { ok: true, value: payload.applicationId };
}

export function verifyClientToken(token: string, secret: string, nowMs = Date.now()): TokenResult<ClientClaims> {
  const parts = splitToken(token);
  if (!parts.ok) return parts;
  const { header, payload, signingInput, signatureBytes } = parts.value;
  if (header.alg !== "HS256") return fail("malformed_token", "only HS256 tokens are accepted");
  const expected = createHmac("sha256", secret).update(signingInput).digest();
  if (signatureBytes.length !== expected.length || !timingSafeEqual(signatureBytes, expected))
    return fail("bad_signature", BAD_SIGNATURE);
  const claims = readClaims(payload);
  if (!claims.ok) return claims;
  if (claims.value.exp * 1000 <= nowMs) return fail("token_expired", "token has expired");
  return claims;
}

export function newClientId(): string {
  return `cl_${randomBytes(9).toString("base64url")}`;
}

function readClaims(p: Record<string, unknown>): TokenResult<ClientClaims> {
  for (const key of ["applicationId", "channelId"] as const)
    if (typeof p[key] !== "string" || p[key] === "") return fail("invalid_claims", `${key} must be a non-empty string`);
  if (typeof p.exp !== "number" || !Number.isFinite(p.exp)) return fail("invalid_claims", "exp must be a number (seconds since the epoch)");
  for (const key of optionalStringClaims)
    if (p[key] !== undefined && typeof p[key] !== "string") return fail("invalid_claims", `${key} must be a string`);
  const roles = p.roles ?? [];
  if (!Array.isArray(roles) || !roles.every((r) => typeof r === "string"))
    return fail("invalid_claims", "roles must be an array of strings");
  const claims: ClientClaims = {
    applicationId: p.applicationId as string,
    channelId: p.channelId as string,
    roles: roles as string[],
    exp: p.exp,
  };
  for (const key of optionalStringClaims) if (typeof p[key] === "string") claims[key] = p[key];
  return { ok: true, value: claims };
}

interface TokenParts {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
  signingInput: string;
  signatureBytes: Buffer;
}

function splitToken(token: string): TokenResult<TokenParts> {
  const segments = token.split(".");
  if (segments.length !== 3) return fail("malformed_token", "token must have three dot-separated parts");
  const [h, p, s] = segments as [string, string, string];
  const header = decodeJsonSegment(h);
  const payload = decodeJsonSegment(p);
  if (!header || !payload) return fail("malformed_token", "token header or payload is not base64url JSON");
  return { ok: true, value: { header, payload, signingInput: `${h}.${p}`, signatureBytes: Buffer.from(s, "base64url") } };
}

function decodeJsonSegment(segment: string): Record<string, unknown> | undefined {
  if (!/^[A-Za-z0-9_-]+$/.test(segment)) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, "base64url").toString("utf8"));
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function signature(signingInput: string, secret: string): string {
  return createHmac("sha256", secret).update(signingInput).digest("base64url");
}

function base64url(text: string): string {
  return Buffer.from(text, "utf8").toString("base64url");
}

function fail(code: TokenErrorCode, message: string): { ok: false; code: TokenErrorCode; message: string } {
  return { ok: false, code, message };
}

export type ClientAuthResult = { ok: true; claims: ClientClaims } | { ok: false; code: TokenErrorCode; message: string };

/**
 * Verifies a client token against the secret of the application it names. An unknown application
 * fails exactly like a wrong signature, so tokens cannot be used to probe for application ids.
 */
export function authenticateClientToken(token: string, secretFor: (applicationId: string) => string | undefined): ClientAuthResult {
  const applicationId = peekApplicationId(token);
  if (!applicationId.ok) return applicationId;
  const secret = secretFor(applicationId.value);
  if (secret === undefined) return fail("bad_signature", BAD_SIGNATURE);
  const verified = verifyClientToken(token, secret);
  return verified.ok ? { ok: true, claims: verified.value } : verified;
}

/** Authenticates an HTTP `Authorization: Bearer <client token>` header. */
export function authenticateBearer(header: string | undefined, secretFor: (applicationId: string) => string | undefined): ClientAuthResult {
  const token = /^Bearer\s+(\S+)$/i.exec(header ?? "")?.[1];
  if (!token) return fail("missing_token", "a client token is required (Authorization: Bearer <token>)");
  return authenticateClientToken(token, secretFor);
}
