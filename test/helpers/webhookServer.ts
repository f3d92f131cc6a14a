// A webhook receiver for tests: records every request (body text, parsed JSON, headers) and answers
// with whatever the test's handler returns (default: 200 with an empty JSON object), or holds the
// requests unanswered until the test releases them (`hold`).
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
  /**
   * Requests on `path` get no answer until the returned `release` is called (then `{}`) or the
   * server stops: a receiver slower than any timeout, whatever the machine's speed.
   */
  hold(path: string): () => void;
  stop(): Promise<void>;
}

export function startWebhookServer(): WebhookServer {
  const handlers = new Map<string, WebhookHandler>();
  const received: ReceivedWebhook[] = [];
  const waiters: { path: string; resolve: (r: ReceivedWebhook) => void }[] = [];
  const releases = new Set<() => void>();
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
    hold(path) {
      const gate = Promise.withResolvers<void>();
      releases.add(gate.resolve);
      handlers.set(path, () => gate.promise.then(() => Response.json({})));
      return gate.resolve;
    },
    waitFor(path, timeoutMs = 10_000) {
      const already = received.find((r) => r.path === path);
      if (already) return Promise.resolve(already);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no webhook on ${path} within ${timeoutMs} ms`)), timeoutMs);
        waiters.push({ path, resolve: (r) => { clearTimeout(timer); resolve(r); } });
      });
    },
    stop: () => {
      for (const release of releases) release();
      return server.stop(true);
    },
  };
}
