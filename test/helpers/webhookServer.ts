// A webhook receiver for tests: records every request (body text, parsed JSON, headers) and answers
// with whatever the test's handler returns (default: 200 with an empty JSON object).
export interface ReceivedWebhook {
  path: string;
  headers: Headers;
  body: string;
  json: unknown;
  receivedAt: number;
}

export type WebhookHandler = (request: ReceivedWebhook) => Response | Promise<Response>;

export interface WebhookServer {
  url(path?: string): string;
  received: ReceivedWebhook[];
  /** Resolves with the first request on `path` (now or later); rejects after `timeoutMs`. */
  waitFor(path: string, timeoutMs?: number): Promise<ReceivedWebhook>;
  handle(path: string, handler: WebhookHandler): void;
  stop(): Promise<void>;
}

export function startWebhookServer(): WebhookServer {
  const handlers = new Map<string, WebhookHandler>();
  const received: ReceivedWebhook[] = [];
  const waiters: { path: string; resolve: (r: ReceivedWebhook) => void }[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const path = new URL(req.url).pathname;
      const body = await req.text();
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
      const record: ReceivedWebhook = { path, headers: req.headers, body, json, receivedAt: Date.now() };
      received.push(record);
      for (const waiter of waiters.filter((w) => w.path === path)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(record);
      }
      const handler = handlers.get(path);
      return handler ? handler(record) : Response.json({});
    },
  });
  return {
    url: (path = "/") => `http://127.0.0.1:${server.port}${path}`,
    received,
    handle: (path, handler) => void handlers.set(path, handler),
    waitFor(path, timeoutMs = 5000) {
      const already = received.find((r) => r.path === path);
      if (already) return Promise.resolve(already);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no webhook on ${path} within ${timeoutMs} ms`)), timeoutMs);
        waiters.push({ path, resolve: (r) => { clearTimeout(timer); resolve(r); } });
      });
    },
    stop: () => server.stop(true),
  };
}
