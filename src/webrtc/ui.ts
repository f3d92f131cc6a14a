// The /ui/ page: static files imported as text so `bun build --compile` embeds them in the binary.
import type { Hono } from "hono";
import appJs from "./ui/app.js" with { type: "text" };
import indexHtml from "./ui/index.html" with { type: "text" };

// TypeScript types .html imports as Bun HTML bundles; with `type: "text"` they are strings.
const page = indexHtml as unknown as string;
const headers = { "cache-control": "no-cache", "x-content-type-options": "nosniff" };

export function mountUi(hono: Hono): void {
  hono.get("/ui", (c) => c.redirect("/ui/", 301));
  hono.get("/ui/", (c) => c.html(page, 200, { ...headers, "content-security-policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; media-src 'self' blob: mediastream:" }));
  hono.get("/ui/app.js", (c) => c.body(appJs, 200, { ...headers, "content-type": "text/javascript; charset=utf-8" }));
}
