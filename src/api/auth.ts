// Admin authentication: `Authorization: Bearer <admin token>`, compared in constant time.
import { createHash, timingSafeEqual } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import { ApiError } from "./errors.ts";

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

/** `adminToken()` is read per request so a reload can change it; undefined locks the admin API. */
export function adminAuth(adminToken: () => string | undefined): MiddlewareHandler {
  return async (c, next) => {
    const expected = adminToken();
    const presented = bearerToken(c.req.header("authorization"));
    if (expected === undefined) {
      throw new ApiError(401, "unauthorized", "the admin API is disabled: no adminToken configured (set TRUNKLINE_ADMIN_TOKEN)");
    }
    if (presented === undefined || !tokensMatch(presented, expected)) {
      c.header("WWW-Authenticate", 'Bearer realm="trunkline"');
      throw new ApiError(401, "unauthorized", "missing or invalid admin bearer token");
    }
    await next();
  };
}
