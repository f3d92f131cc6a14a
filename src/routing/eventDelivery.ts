// Delivery of bus events to the events webhook (`eventsUrl`). Events of one call (or one trunk, or
// one channel) are delivered strictly in order, one at a time; different calls proceed in parallel.
// A failed delivery is retried with exponential backoff and jitter, then dropped with a warning.
// Emitting never waits for any of this: the call path only appends to an in-memory queue.
import type { AnyEvent, EventBus } from "../events.ts";
import { createLogger } from "../log.ts";
import { metrics } from "../metrics.ts";
import { describeFailure, postWebhook, type WebhookFailure, type WebhookResult } from "./webhooks.ts";

export interface EventsWebhookSettings {
  eventsUrl?: string;
  secret?: string;
  timeoutMs: number;
}

export interface EventDeliveryOptions {
  /** Read on every attempt so a settings change applies to queued events. */
  settings: () => EventsWebhookSettings;
  /** Waits between attempts; the number of entries is the number of retries. */
  retryDelaysMs?: number[];
  /** Events waiting across all keys before new ones are dropped (protects memory if the receiver is down). */
  maxQueued?: number;
}

const log = createLogger("events.webhook");
const DEFAULT_RETRY_DELAYS_MS = [500, 1_000, 2_000, 4_000, 8_000, 16_000];
const dropped = metrics.counter("trunkline_events_webhook_dropped_total", "Events not queued for the events webhook: maxQueued were already waiting.");

/** The ordering key: events with the same key are delivered in emission order. */
export function orderingKey(event: AnyEvent): string {
  const data = event.data as { callId?: string; trunkId?: string; channelId?: string; applicationId?: string };
  if (data.callId) return `call:${data.callId}`;
  if (data.trunkId) return `trunk:${data.trunkId}`;
  return `channel:${data.applicationId ?? ""}/${data.channelId ?? ""}`;
}

export class EventDelivery {
  private readonly queues = new Map<string, AnyEvent[]>();
  private readonly running = new Map<string, Promise<void>>();
  private queued = 0;
  private stopped = false;
  private readonly stopController = new AbortController();
  private readonly retryDelaysMs: number[];
  private readonly maxQueued: number;

  constructor(private readonly options: EventDeliveryOptions) {
    this.retryDelaysMs = options.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
    this.maxQueued = options.maxQueued ?? 10_000;
  }

  /** Subscribes to the bus; returns the unsubscribe function. */
  attach(bus: EventBus): () => void {
    return bus.subscribe((event) => this.enqueue(event));
  }

  enqueue(event: AnyEvent): void {
    if (this.stopped || !this.options.settings().eventsUrl) return;
    if (this.queued >= this.maxQueued) {
      dropped.inc();
      log.warn("events webhook queue full, event dropped", { eventId: event.id, type: event.type });
      return;
    }
    const key = orderingKey(event);
    const queue = this.queues.get(key);
    this.queued++;
    if (queue) {
      queue.push(event);
      return;
    }
    this.queues.set(key, [event]);
    const worker = this.drain(key).finally(() => this.running.delete(key));
    this.running.set(key, worker);
  }

  /** Resolves when everything queued so far has been delivered or given up on. */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running.values()]);
  }

  /** Stops accepting events; waits up to `graceMs` for queued ones, then abandons the rest. */
  async stop(graceMs: number): Promise<void> {
    this.stopped = true;
    const timer = setTimeout(() => this.stopController.abort(), graceMs);
    await this.idle();
    clearTimeout(timer);
  }

  private async drain(key: string): Promise<void> {
    const queue = this.queues.get(key)!;
    while (queue.length > 0) {
      const event = queue[0]!;
      await this.deliver(event);
      queue.shift();
      this.queued--;
    }
    this.queues.delete(key);
  }

  private async deliver(event: AnyEvent): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const settings = this.options.settings();
      if (!settings.eventsUrl || this.stopController.signal.aborted) return;
      const result = await postEvent(settings.eventsUrl, settings, event, this.stopController.signal);
      if (result.ok) return;
      const delay = this.retryDelaysMs[attempt];
      if (delay === undefined || !isRetryable(result)) {
        log.warn("events webhook delivery given up", { eventId: event.id, type: event.type, attempts: attempt + 1, reason: describeFailure(result) });
        return;
      }
      log.debug("events webhook delivery failed, retrying", { eventId: event.id, attempt: attempt + 1, reason: describeFailure(result) });
      await sleep(delay * (0.75 + Math.random() * 0.5), this.stopController.signal);
    }
  }
}

/** One signed POST of an event to `url`: what every delivery attempt sends. */
export function postEvent(url: string, settings: EventsWebhookSettings, event: { id: string; type: string }, signal?: AbortSignal): Promise<WebhookResult<unknown>> {
  return postWebhook(url, event, {
    webhook: "events",
    secret: settings.secret,
    timeoutMs: settings.timeoutMs,
    ...(signal ? { signal } : {}),
    headers: { "X-Trunkline-Event-Id": event.id, "X-Trunkline-Event-Type": event.type },
  });
}

/** A 4xx other than 408/429 means the receiver rejects this event: retrying cannot help. */
function isRetryable(failure: WebhookFailure): boolean {
  if (failure.kind === "aborted") return false;
  if (failure.kind !== "http") return true;
  return failure.status >= 500 || failure.status === 408 || failure.status === 429;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}
