// Signed webhook client. Every request Trunkline sends to a webhook is a JSON POST carrying
//   X-Trunkline-Timestamp: <unix seconds>
//   X-Trunkline-Signature: v1=<hex HMAC-SHA256(secret, `${timestamp}.${body}`)>
// so a receiver can check it came from us and is fresh (see verifyWebhookSignature). A request
// never outlives its timeout: the result is typed, never a throw.
import { createHmac, timingSafeEqual } from "node:crypto";
import { metrics } from "../metrics.ts";

export const TIMESTAMP_HEADER = "X-Trunkline-Timestamp";
export const SIGNATURE_HEADER = "X-Trunkline-Signature";
const SIGNATURE_VERSION = "v1";
/** Webhook answers larger than this are treated as malformed (they are a few fields at most). */
const MAX_ANSWER_BYTES = 64 * 1024;

/** Which of the webhooks (settings `inboundUrl`, `inboundCancelUrl`, `outboundUrl`, `eventsUrl`) a request goes to. */
export type WebhookName = "inbound" | "inbound_cancel" | "outbound" | "events";
const WEBHOOK_NAMES: readonly WebhookName[] = ["inbound", "inbound_cancel", "outbound", "events"];
type Outcome = "ok" | WebhookFailure["kind"];
const OUTCOMES: readonly Outcome[] = ["ok", "timeout", "aborted", "network", "http", "malformed"];

// Every webhook × outcome series exists from the start at 0, so a failure ratio has data before the first failure.
const outcomes = new Map<string, number>(WEBHOOK_NAMES.flatMap((w) => OUTCOMES.map((o) => [`${w} ${o}`, 0] as const)));
metrics.counter(
  "trunkline_webhook_requests_total",
  "Webhook requests by webhook and outcome: ok, timeout, aborted (the call went away), network, http (non-2xx), malformed (unusable answer).",
  ["webhook", "outcome"],
  () => [...outcomes].map(([key, value]) => {
    const [webhook, outcome] = key.split(" ");
    return { labels: { webhook: webhook!, outcome: outcome! }, value };
  }),
);
const duration = metrics.histogram(
  "trunkline_webhook_request_duration_seconds",
  "Time from sending a webhook request to its outcome, by webhook.",
  ["webhook"],
  [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
);

export interface WebhookRequestOptions {
  webhook: WebhookName;
  /** Signs the request when set. */
  secret?: string;
  timeoutMs: number;
  /** Abandons the request early (for example when the caller hangs up). */
  signal?: AbortSignal;
  /** Extra headers, e.g. a delivery id. */
  headers?: Record<string, string>;
}

export type WebhookFailure =
  | { ok: false; kind: "timeout"; message: string }
  | { ok: false; kind: "aborted"; message: string }
  | { ok: false; kind: "network"; message: string }
  | { ok: false; kind: "http"; status: number; message: string }
  | { ok: false; kind: "malformed"; status: number; message: string };

export type WebhookResult<T> = { ok: true; status: number; value: T } | WebhookFailure;

/** Validates a decoded JSON answer: the value, or a message saying what is wrong with it. */
export type AnswerParser<T> = (json: unknown) => { value: T } | { invalid: string };

export function signWebhook(secret: string, timestamp: number, body: string): string {
  const mac = createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex");
  return `${SIGNATURE_VERSION}=${mac}`;
}

/**
 * For receivers (and our tests): true when `signature` is a valid v1 signature of `body` at
 * `timestamp` and the timestamp is within `toleranceSeconds` of now (replay protection).
 */
export function verifyWebhookSignature(o: {
  secret: string;
  body: string;
  timestamp: string | null;
  signature: string | null;
  toleranceSeconds?: number;
  nowSeconds?: number;
}): boolean {
  if (!o.timestamp || !o.signature || !/^\d+$/.test(o.timestamp)) return false;
  const timestamp = Number(o.timestamp);
  const now = o.nowSeconds ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - timestamp) > (o.toleranceSeconds ?? 300)) return false;
  const expected = Buffer.from(signWebhook(o.secret, timestamp, o.body));
  const given = Buffer.from(o.signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

/** POSTs `payload` as JSON and, when `parse` is given, validates the JSON answer with it. Counted and timed per webhook. */
export async function postWebhook<T = undefined>(
  url: string,
  payload: unknown,
  options: WebhookRequestOptions,
  parse?: AnswerParser<T>,
): Promise<WebhookResult<T>> {
  const started = performance.now();
  const result = await send(url, payload, options, parse);
  duration.observe({ webhook: options.webhook }, (performance.now() - started) / 1000);
  const key = `${options.webhook} ${result.ok ? "ok" : result.kind}`;
  outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
  return result;
}

async function send<T>(url: string, payload: unknown, options: WebhookRequestOptions, parse?: AnswerParser<T>): Promise<WebhookResult<T>> {
  const body = JSON.stringify(payload);
  const timestamp = Math.floor(Date.now() / 1000);
  const headers: Record<string, string> = {
    "Content-Type": "application/json",
    "User-Agent": "Trunkline",
    [TIMESTAMP_HEADER]: String(timestamp),
    ...options.headers,
  };
  if (options.secret) headers[SIGNATURE_HEADER] = signWebhook(options.secret, timestamp, body);

  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  const failed = (error: unknown): WebhookFailure => {
    if (options.signal?.aborted) return { ok: false, kind: "aborted", message: "abandoned" };
    if (timeout.aborted) return { ok: false, kind: "timeout", message: `no answer within ${options.timeoutMs} ms` };
    return { ok: false, kind: "network", message: error instanceof Error ? error.message : String(error) };
  };

  let response: Response;
  let text: string | undefined;
  try {
    response = await fetch(url, { method: "POST", headers, body, signal, redirect: "manual" });
    text = await readLimited(response, MAX_ANSWER_BYTES);
  } catch (error) {
    return failed(error);
  }
  if (response.status < 200 || response.status > 299) {
    return { ok: false, kind: "http", status: response.status, message: `HTTP ${response.status}` };
  }
  if (!parse) return { ok: true, status: response.status, value: undefined as T };
  if (text === undefined) {
    return { ok: false, kind: "malformed", status: response.status, message: `answer larger than ${MAX_ANSWER_BYTES} bytes` };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, kind: "malformed", status: response.status, message: "answer is not JSON" };
  }
  const parsed = parse(json);
  if ("invalid" in parsed) return { ok: false, kind: "malformed", status: response.status, message: parsed.invalid };
  return { ok: true, status: response.status, value: parsed.value };
}

/** The body as text, or undefined when it is larger than `limit` bytes. */
async function readLimited(response: Response, limit: number): Promise<string | undefined> {
  if (!response.body) return "";
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
  return new TextDecoder().decode(Buffer.concat(chunks));
}

/** The value as a plain JSON object, or undefined. */
export function objectOf(json: unknown): Record<string, unknown> | undefined {
  return typeof json === "object" && json !== null && !Array.isArray(json) ? (json as Record<string, unknown>) : undefined;
}

/** A short phrase for logs and SIP reason phrases: "timed out", "HTTP 502", ... */
export function describeFailure(failure: WebhookFailure): string {
  switch (failure.kind) {
    case "timeout":
      return "timed out";
    case "aborted":
      return "abandoned";
    case "network":
      return "unreachable";
    case "http":
      return `HTTP ${failure.status}`;
    case "malformed":
      return "malformed answer";
  }
}
