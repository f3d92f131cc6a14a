// /api/v1/settings/webhooks — deployment webhooks. The secret is write-only: a PUT without
// `secret` keeps the stored one, `"secret": ""` removes it.
import { webhooksSchema, type WebhooksInput } from "../../config/entities.ts";
import { s, validate } from "../../config/schema.ts";
import type { WebhookSettings } from "../../store/index.ts";
import { yamlManaged } from "../errors.ts";
import type { ApiModule } from "../router.ts";

export const webhooksView = webhooksSchema
  .omit("secret")
  .extend({
    secretSet: s.boolean().describe("Whether a signing secret is stored (it is never returned)."),
    source: s.enum(["yaml", "api"]).describe("yaml: set in the config file and read-only here."),
    updatedAt: s.string().optional(),
  })
  .describe("Webhook settings");

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
};
