// The /ui/ page: static files imported as text so `bun build --compile` embeds them in the binary.
import type { Hono } from "hono";
import appJs from "./ui/app.js" with { type: "text" };
import indexHtml from "./ui/index.html" with { type: "text" };

// TypeScript types .html imports as Bun HTML bundles; with `type: "text"` they are strings.
const page = indexHtml as unknown as string;
const headers = { "cache-control": "no-cache", "x-content-type-options": "nosniff" };

/**
 * `peerOrigins`: the HTTP base URLs of the other nodes of a cluster, which the page may talk to (its
 * channel may live on one of them): they join 'self' in the policy's connect-src, with their ws: twins.
 */
export function mountUi(hono: Hono, peerOrigins: () => string[] = () => []): void {
  hono.get("/ui", (c) => c.redirect("/ui/", 301));
  hono.get("/ui/", (c) => {
    const connect = ["'self'", ...peerOrigins().flatMap(originAndSocket)].join(" ");
    const policy = `default-src 'self'; connect-src ${connect}; style-src 'self' 'unsafe-inline'; media-src 'self' blob: mediastream:`;
    return c.html(page, 200, { ...headers, "content-security-policy": policy });
  });
  hono.get("/ui/app.js", (c) => c.body(appJs, 200, { ...headers, "content-type": "text/javascript; charset=utf-8" }));
}

/** "http://10.0.0.2:8080/x" → its origin and the WebSocket origin beside it; nothing for a malformed URL. */
function originAndSocket(url: string): string[] {
  try {
    const { protocol, host } = new URL(url);
    if (protocol !== "http:" && protocol !== "https:") return [];
    return [`${protocol}//${host}`, `${protocol === "https:" ? "wss:" : "ws:"}//${host}`];
  } catch {
    return [];
  }
}
