// The admin console at /console/: static files imported as text so `bun build --compile` embeds
// them in the binary. The page talks to the public admin API only, with the admin token the operator
// types (kept in sessionStorage, never in a URL). The caller-ID template rules are the server's own
// module (src/channels/callerIdTemplate.ts), transpiled for the browser at build time, so the form validates
// as typed exactly as the API does on save (see consoleModules.ts).
import type { Hono } from "hono";
import { callerIdTemplateModule } from "./consoleModules.ts" with { type: "macro" };
import consoleCss from "./console/console.css" with { type: "text" };
import consoleJs from "./console/console.js" with { type: "text" };
import indexHtml from "./console/index.html" with { type: "text" };

const templateModuleJs = callerIdTemplateModule();
// TypeScript types .html imports as Bun HTML bundles; with `type: "text"` they are strings.
const page = indexHtml as unknown as string;

const headers = {
  "cache-control": "no-cache",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};
const javascript = { ...headers, "content-type": "text/javascript; charset=utf-8" };

export function mountConsole(hono: Hono): void {
  hono.get("/console", (c) => c.redirect("/console/", 301));
  hono.get("/console/", (c) =>
    c.html(page, 200, { ...headers, "content-security-policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'none'" }),
  );
  hono.get("/console/console.js", (c) => c.body(consoleJs, 200, javascript));
  hono.get("/console/callerIdTemplate.js", (c) => c.body(templateModuleJs, 200, javascript));
  hono.get("/console/console.css", (c) => c.body(consoleCss, 200, { ...headers, "content-type": "text/css; charset=utf-8" }));
}
