// The HTTP application: health, readiness, metrics, the OpenAPI document, the admin resources and
// whatever routes the running services add. JSON errors everywhere, one log line per API request.
import { Hono } from "hono";
import { routePath } from "hono/route";
import { s, type Schema } from "../config/schema.ts";
import { createLogger } from "../log.ts";
import { httpDuration, httpRequests, metrics } from "../metrics.ts";
import type { Store } from "../store/index.ts";
import { adminAuth, AuthGuard } from "./auth.ts";
import { AuthThrottle, type AuthThrottleOptions } from "./authThrottle.ts";
import { mountConsole } from "./console.ts";
import { ApiError } from "./errors.ts";
import { OpenApiRegistry } from "./openapi.ts";
import { API_PREFIX, ApiRouter, type ApiModule } from "./router.ts";
import { applicationRoutes } from "./routes/applications.ts";
import { callerIdRoutes } from "./routes/callerIds.ts";
import { inboundRouteRoutes } from "./routes/inboundRoutes.ts";
import { trunkRoutes } from "./routes/trunks.ts";
import { webhookRoutes } from "./routes/webhooks.ts";

const log = createLogger("http");

export const adminModules: ApiModule[] = [trunkRoutes, applicationRoutes, inboundRouteRoutes, callerIdRoutes, webhookRoutes];

export interface ReadinessCheck {
  ok: boolean;
  detail?: string;
}

const readinessSchema = s.object({
  status: s.enum(["ready", "not_ready"]),
  checks: s.record(s.string(), s.object({ ok: s.boolean(), detail: s.string().optional() })),
});

export interface HttpAppOptions {
  store: Store;
  version: string;
  adminToken: () => string | undefined;
  maxBodyBytes: () => number;
  /** Failed authentications allowed per source address (config http.authFailures). */
  authFailures: AuthThrottleOptions;
  readiness: () => Promise<Record<string, ReadinessCheck>>;
  /** Routes of the running services; mounted before the admin resources so their static paths win. */
  extraRoutes: ((api: ApiRouter) => void)[];
}

export function createHttpApp(options: HttpAppOptions): { hono: Hono; api: ApiRouter } {
  const hono = new Hono();
  const docs = new OpenApiRegistry();
  const guard = new AuthGuard(new AuthThrottle(options.authFailures));
  const api = new ApiRouter(hono, docs, adminAuth(options.adminToken, guard), options.maxBodyBytes, guard);

  hono.use("*", async (c, next) => {
    const started = performance.now();
    await next();
    const seconds = (performance.now() - started) / 1000;
    const route = c.res.status === 404 && routePath(c, -1) === "*" ? "unmatched" : routePath(c, -1);
    httpRequests.inc({ method: c.req.method, route, status: String(c.res.status) });
    httpDuration.observe({ method: c.req.method, route }, seconds);
    if (c.req.path.startsWith(API_PREFIX)) {
      log.info("request", { method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round(seconds * 10000) / 10 });
    }
  });

  hono.get("/healthz", (c) => c.json({ status: "ok" }));
  hono.get("/readyz", async (c) => {
    const checks = await options.readiness();
    const ready = Object.values(checks).every((check) => check.ok);
    return c.json({ status: ready ? "ready" : "not_ready", checks }, ready ? 200 : 503);
  });
  hono.get("/metrics", (c) => c.text(metrics.render(), 200, { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" }));
  hono.get(`${API_PREFIX}/openapi.json`, (c) => c.json(docs.document(options.version)));
  const operational: [string, string, { schema?: Schema<unknown>; contentType?: string }][] = [
    ["/healthz", "Liveness: the process answers", { schema: s.object({ status: s.enum(["ok"]) }) }],
    ["/readyz", "Readiness: database open and every service ready (503 otherwise)", { schema: readinessSchema }],
    ["/metrics", "Prometheus metrics", { contentType: "text/plain" }],
    [`${API_PREFIX}/openapi.json`, "This document", { contentType: "application/json" }],
  ];
  for (const [path, summary, content] of operational) {
    docs.add({ method: "get", path, summary, tag: "operations", auth: "public", response: { status: 200, description: summary, ...content }, errors: [] });
  }

  mountConsole(hono);
  for (const extend of options.extraRoutes) extend(api);
  for (const mount of adminModules) mount(api, options.store);

  hono.notFound(() => {
    throw new ApiError(404, "not_found", "no such route");
  });
  hono.onError((err, c) => {
    if (err instanceof ApiError) return c.json(err.toJSON(), err.status);
    log.error("request failed", { method: c.req.method, path: c.req.path, err });
    return c.json(new ApiError(500, "internal", "internal error").toJSON(), 500);
  });
  return { hono, api };
}
