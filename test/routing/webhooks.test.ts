import { afterAll, describe, expect, test } from "bun:test";
import { postWebhook, signWebhook, SIGNATURE_HEADER, TIMESTAMP_HEADER, verifyWebhookSignature } from "../../src/routing/webhooks.ts";
import { metricSample } from "../helpers/metricSample.ts";
import { startWebhookServer } from "../helpers/webhookServer.ts";

const server = startWebhookServer();
afterAll(() => server.stop());

const parseName = (json: unknown) => {
  const name = (json as { name?: unknown })?.name;
  return typeof name === "string" ? { value: name } : { invalid: "name missing" };
};

describe("webhook signing", () => {
  test("the signature is HMAC-SHA256 over `${timestamp}.${body}` and verifies at the receiver", async () => {
    server.handle("/signed", () => Response.json({ name: "x" }));
    const result = await postWebhook(server.url("/signed"), { a: 1 }, { webhook: "events", secret: "s3cret", timeoutMs: 10_000 }, parseName);
    expect(result).toEqual({ ok: true, status: 200, value: "x" });
    const req = await server.waitFor("/signed");
    const timestamp = req.headers.get(TIMESTAMP_HEADER);
    const signature = req.headers.get(SIGNATURE_HEADER);
    expect(req.headers.get("content-type")).toBe("application/json");
    expect(req.body).toBe('{"a":1}');
    const expected = new Bun.CryptoHasher("sha256", "s3cret").update(`${timestamp}.${req.body}`).digest("hex");
    expect(signature).toBe(`v1=${expected}`);
    expect(verifyWebhookSignature({ secret: "s3cret", body: req.body, timestamp, signature })).toBe(true);
    expect(verifyWebhookSignature({ secret: "other", body: req.body, timestamp, signature })).toBe(false);
    expect(verifyWebhookSignature({ secret: "s3cret", body: req.body + " ", timestamp, signature })).toBe(false);
  });

  test("a stale timestamp fails verification even with a correct MAC", () => {
    const signature = signWebhook("k", 1000, "{}");
    expect(verifyWebhookSignature({ secret: "k", body: "{}", timestamp: "1000", signature, nowSeconds: 1000 + 301 })).toBe(false);
    expect(verifyWebhookSignature({ secret: "k", body: "{}", timestamp: "1000", signature, nowSeconds: 1000 + 299 })).toBe(true);
  });

  test("without a secret no signature header is sent", async () => {
    await postWebhook(server.url("/unsigned"), {}, { webhook: "events", timeoutMs: 10_000 });
    const req = await server.waitFor("/unsigned");
    expect(req.headers.get(SIGNATURE_HEADER)).toBeNull();
    expect(req.headers.get(TIMESTAMP_HEADER)).toMatch(/^\d+$/);
  });
});

describe("webhook results", () => {
  test("a slow receiver yields a timeout within the limit", async () => {
    server.hold("/slow"); // never answers (until the server stops)
    const started = performance.now();
    const result = await postWebhook(server.url("/slow"), {}, { webhook: "events", timeoutMs: 150 }, parseName);
    const elapsed = performance.now() - started;
    expect(result.ok ? "ok" : result.kind).toBe("timeout");
    // Not before the limit (1 ms for timer rounding); after it, only as late as a loaded machine makes it.
    expect(elapsed).toBeGreaterThanOrEqual(149);
    expect(elapsed).toBeLessThan(150 + 5000);
  });

  test("an abort signal abandons the request", async () => {
    server.hold("/slow");
    const controller = new AbortController();
    const pending = postWebhook(server.url("/slow"), {}, { webhook: "events", timeoutMs: 30_000, signal: controller.signal }, parseName);
    setTimeout(() => controller.abort(), 50);
    const result = await pending;
    expect(result.ok ? "ok" : result.kind).toBe("aborted");
  });

  test("a non-2xx status is an http failure with the status", async () => {
    server.handle("/broken", () => new Response("oops", { status: 502 }));
    const result = await postWebhook(server.url("/broken"), {}, { webhook: "events", timeoutMs: 10_000 }, parseName);
    expect(result).toEqual({ ok: false, kind: "http", status: 502, message: "HTTP 502" });
  });

  test("non-JSON and wrongly shaped answers are malformed", async () => {
    server.handle("/text", () => new Response("hello"));
    server.handle("/shape", () => Response.json({ other: 1 }));
    const text = await postWebhook(server.url("/text"), {}, { webhook: "events", timeoutMs: 10_000 }, parseName);
    const shape = await postWebhook(server.url("/shape"), {}, { webhook: "events", timeoutMs: 10_000 }, parseName);
    expect(text).toMatchObject({ ok: false, kind: "malformed", message: "answer is not JSON" });
    expect(shape).toMatchObject({ ok: false, kind: "malformed", message: "name missing" });
  });

  test("an oversized answer is malformed, not buffered without bound", async () => {
    server.handle("/huge", () => new Response("x".repeat(200_000)));
    const result = await postWebhook(server.url("/huge"), {}, { webhook: "events", timeoutMs: 10_000 }, parseName);
    expect(result).toMatchObject({ ok: false, kind: "malformed" });
  });

  test("nothing listening is a network failure", async () => {
    const probe = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
    const port = probe.port;
    await probe.stop(true);
    const result = await postWebhook(`http://127.0.0.1:${port}/`, {}, { webhook: "events", timeoutMs: 10_000 });
    expect(result.ok ? "ok" : result.kind).toBe("network");
  });
});

describe("webhook metrics", () => {
  const sample = metricSample;

  test("every request is counted by webhook and outcome, and timed; every series exists before its first request", async () => {
    expect(sample('trunkline_webhook_requests_total{webhook="inbound_cancel",outcome="malformed"}')).toBe(0);
    const okBefore = sample('trunkline_webhook_requests_total{webhook="outbound",outcome="ok"}')!;
    const httpBefore = sample('trunkline_webhook_requests_total{webhook="outbound",outcome="http"}')!;
    const timedBefore = sample('trunkline_webhook_request_duration_seconds_count{webhook="outbound"}') ?? 0;
    server.handle("/counted-ok", () => Response.json({ name: "x" }));
    server.handle("/counted-502", () => new Response("oops", { status: 502 }));
    await postWebhook(server.url("/counted-ok"), {}, { webhook: "outbound", timeoutMs: 10_000 }, parseName);
    await postWebhook(server.url("/counted-502"), {}, { webhook: "outbound", timeoutMs: 10_000 }, parseName);
    await postWebhook(server.url("/counted-502"), {}, { webhook: "outbound", timeoutMs: 10_000 }, parseName);
    expect(sample('trunkline_webhook_requests_total{webhook="outbound",outcome="ok"}')).toBe(okBefore + 1);
    expect(sample('trunkline_webhook_requests_total{webhook="outbound",outcome="http"}')).toBe(httpBefore + 2);
    expect(sample('trunkline_webhook_request_duration_seconds_count{webhook="outbound"}')).toBe(timedBefore + 3);
  });
});
