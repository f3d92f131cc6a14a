// Admin authentication: `Authorization: Bearer <admin token>`, compared in constant time. Failed
// attempts of any bearer secret (admin or client token) are counted per source address
// (AuthThrottle): past the limit the address gets 429 with Retry-After and its tokens are not
// even looked at.
import { createHash, timingSafeEqual } from "node:crypto";
import type { Context, MiddlewareHandler } from "hono";
import { metrics } from "../metrics.ts";
import type { TokenErrorCode } from "../webrtc/tokens.ts";
import { throttleKey, type AuthThrottle } from "./authThrottle.ts";
import { ApiError } from "./errors.ts";

export type AuthScheme = "admin" | "client";

const authFailures = metrics.counter(
  "trunkline_http_auth_failures_total",
  "Refused authentications by scheme (admin, client) and outcome (rejected: bad or missing token; throttled: 429 without a look at the token).",
  ["scheme", "outcome"],
);

/** Hashing first gives equal-length inputs, so neither content nor length leaks through timing. */
export function tokensMatch(presented: string, expected: string): boolean {
  const a = createHash("sha256").update(presented).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}

export function bearerToken(header: string | undefined): string | undefined {
  const match = header ? /^Bearer[ \t]+(\S+)\s*$/i.exec(header) : null;
  return match?.[1];
}

/** The request's source address as the throttle counts it ("unknown" when served without a socket, e.g. in-process). */
export function sourceKey(c: Context): string {
  const server = c.env as { requestIP?(request: Request): { address: string } | null } | undefined;
  return throttleKey(server?.requestIP?.(c.req.raw)?.address ?? "unknown");
}

/** The brake on guessing bearer secrets, one per HTTP app, shared by every scheme. */
export class AuthGuard {
  constructor(private readonly throttle: AuthThrottle) {}

  /** Throws 429 (Retry-After) while `source` is throttled. */
  admit(c: Context, source: string, scheme: AuthScheme): void {
    const retryAfter = this.throttle.retryAfterSec(source);
    if (retryAfter === 0) return;
    authFailures.inc({ scheme, outcome: "throttled" });
    c.header("Retry-After", String(retryAfter));
    throw new ApiError(429, "too_many_auth_failures", `too many failed authentications from this address; retry in ${retryAfter} s`);
  }

  /** Whether `source` may try a token now (no response to write: e.g. a WebSocket message). */
  admits(source: string, scheme: AuthScheme): boolean {
    if (this.throttle.retryAfterSec(source) === 0) return true;
    authFailures.inc({ scheme, outcome: "throttled" });
    return false;
  }

  failed(source: string, scheme: AuthScheme): void {
    authFailures.inc({ scheme, outcome: "rejected" });
    this.throttle.failed(source);
  }

  /**
   * Only the admin token clears an address's failures: a client token is held by end users, and a
   * valid one must not buy its holder fresh guesses at the admin token.
   */
  adminSucceeded(source: string): void {
    this.throttle.forget(source);
  }
}

/** An expired client token was once genuine: every other failure counts as a guess. */
export function isTokenGuess(code: TokenErrorCode): boolean {
  return code !== "token_expired";
}

/** `adminToken()` is read per request so a reload can change it; undefined locks the admin API. */
export function adminAuth(adminToken: () => string | undefined, guard: AuthGuard): MiddlewareHandler {
  return async (c, next) => {
    const expected = adminToken();
    if (expected === undefined) {
      throw new ApiError(401, "unauthorized", "the admin API is disabled: no adminToken configured (set TRUNKLINE_ADMIN_TOKEN)");
    }
    const source = sourceKey(c);
    guard.admit(c, source, "admin");
    const presented = bearerToken(c.req.header("authorization"));
    if (presented === undefined || !tokensMatch(presented, expected)) {
      guard.failed(source, "admin");
      c.header("WWW-Authenticate", 'Bearer realm="trunkline"');
      throw new ApiError(401, "unauthorized", "missing or invalid admin bearer token");
    }
    guard.adminSucceeded(source);
    await next();
  };
}
