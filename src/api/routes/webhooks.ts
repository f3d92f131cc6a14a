// /api/v1/settings/webhooks — deployment webhooks. The secret is write-only: a PUT without
// `secret` keeps the stored one, `"secret": ""` removes it.
//   POST /settings/webhooks/test → one "webhook.test" event sent to eventsUrl now, signed and with
//   the headers of every event delivery (one attempt, no retry); answers how it went.
import { randomUUID } from "node:crypto";
import { webhooksSchema, type WebhooksInput } from "../../config/entities.ts";
import { s, validate } from "../../config/schema.ts";
import type { WebhookSettings } from "../../store/index.ts";
import { postEvent } from "../../routing/eventDelivery.ts";
import { describeFailure } from "../../routing/webhooks.ts";
import { ApiError, yamlManaged } from "../errors.ts";
import type { ApiModule } from "../router.ts";

export const webhooksView = webhooksSchema
  .omit("secret")
  .extend({
    secretSet: s.boolean().describe("Whether a signing secret is stored (it is never returned)."),
    source: s.enum(["yaml", "api"]).describe("yaml: set in the config file and read-only here."),
    updatedAt: s.string().optional(),
  })
  .describe("Webhook settings");

const testOutcomeView = s
  .object({
    delivered: s.boolean().describe("The receiver answered 2xx."),
    url: s.string().describe("The eventsUrl the event went to."),
    eventId: s.string(),
    status: s.integer().optional().describe("The receiver's HTTP status, when it answered."),
    error: s.string().optional().describe("Why it was not delivered: timed out, HTTP 502, connection refused..."),
    durationMs: s.integer({ min: 0 }),
  })
  .describe("Test event outcome");

function viewWebhooks(settings: WebhookSettings | undefined): object {
  if (!settings) {
    const defaults = validate(webhooksSchema, {});
    return { ...(defaults.ok ? defaults.value : {}), secretSet: false, source: "api" };
  }
  const { secret, ...rest } = settings;
  return { ...rest, secretSet: Boolean(secret) };
}

export const webhookRoutes: ApiModule = (api, store) => {
  const tag = "settings";

  api.route(
    {
      method: "get",
      path: "/settings/webhooks",
      summary: "Get the webhook settings",
      tag,
      response: { status: 200, description: "The settings", schema: webhooksView },
    },
    (c) => c.json(viewWebhooks(store.settings.webhooks())),
  );

  api.route(
    {
      method: "put",
      path: "/settings/webhooks",
      summary: "Replace the webhook settings",
      tag,
      body: webhooksSchema,
      response: { status: 200, description: "The saved settings", schema: webhooksView },
      errors: [409],
    },
    async (c, body) => {
      const current = store.settings.webhooks();
      if (current?.source === "yaml") throw yamlManaged("setting", "webhooks");
      const next: WebhooksInput = { ...body };
      if (body.secret === undefined && current?.secret) next.secret = current.secret;
      if (next.secret === "") delete next.secret;
      return c.json(viewWebhooks(await store.settings.putWebhooks(next, "api")));
    },
  );

  api.route(
    {
      method: "post",
      path: "/settings/webhooks/test",
      summary: "Send a webhook.test event to eventsUrl now (one attempt) and report the outcome",
      tag,
      response: { status: 200, description: "What the receiver answered (delivered or not)", schema: testOutcomeView },
      errors: [409],
    },
    async (c) => {
      const settings = store.settings.webhooks();
      if (!settings?.eventsUrl) throw new ApiError(409, "no_events_url", "no eventsUrl is configured: set it first", "eventsUrl");
      const event = { id: `evt_test_${randomUUID()}`, type: "webhook.test", time: new Date().toISOString(), data: { message: "test event sent from the admin API" } };
      const started = performance.now();
      const result = await postEvent(settings.eventsUrl, settings, event);
      const durationMs = Math.round(performance.now() - started);
      const outcome = result.ok
        ? { delivered: true, status: result.status }
        : { delivered: false, ...("status" in result ? { status: result.status } : {}), error: describeFailure(result) };
      return c.json({ url: settings.eventsUrl, eventId: event.id, durationMs, ...outcome });
    },
  );
};
