// Applies the YAML-declared objects to the store (at start-up and on SIGHUP). YAML is the source of
// truth for what it declares: those objects are upserted with source "yaml" (taking over an API-made
// object of the same id), and yaml-sourced objects no longer declared are removed. API-made objects
// are left alone. Only real differences produce store changes, so a reload of an unchanged file is
// invisible to the trunk and call services.
import { createLogger } from "../log.ts";
import type { Store } from "../store/index.ts";
import type { Config } from "./config.ts";

const log = createLogger("config");

export async function applyConfigToStore(config: Config, store: Store): Promise<void> {
  await store.transaction(async () => {
    await applyTrunks(config, store);
    await applyApplications(config, store);
    await applyWebhooks(config, store);
  });
}

async function applyTrunks(config: Config, store: Store): Promise<void> {
  const declared = new Set(config.trunks.map((t) => t.id));
  for (const trunk of store.trunks.list()) {
    if (trunk.source === "yaml" && !declared.has(trunk.id)) await store.trunks.delete(trunk.id);
  }
  for (const trunk of config.trunks) {
    if (store.trunks.get(trunk.id)?.source === "api") log.warn("YAML trunk replaces the API-made trunk of the same id", { id: trunk.id });
    await store.trunks.put(trunk, "yaml");
  }
  await store.trunks.setYamlOrder(config.trunks.map((t) => t.id));
}

async function applyApplications(config: Config, store: Store): Promise<void> {
  const declared = new Set(config.applications.map((a) => a.id));
  for (const app of store.applications.list()) {
    if (app.source === "yaml" && !declared.has(app.id)) await store.applications.delete(app.id);
  }
  for (const app of config.applications) {
    if (store.applications.get(app.id)?.source === "api") {
      log.warn("YAML application replaces the API-made application of the same id", { id: app.id });
    }
    await store.applications.put(
      { id: app.id, name: app.name, sharedSecret: app.sharedSecret, ...(app.maxDurationSec !== undefined ? { maxDurationSec: app.maxDurationSec } : {}) },
      "yaml",
    );

    const routes = new Set(app.inboundRoutes.map((r) => r.sipUsername));
    for (const route of store.inboundRoutes.listByApplication(app.id)) {
      if (!routes.has(route.sipUsername)) await store.inboundRoutes.delete(app.id, route.sipUsername);
    }
    for (const route of app.inboundRoutes) {
      const owner = store.inboundRoutes.find(route.sipUsername)?.applicationId;
      if (owner !== undefined && owner !== app.id) {
        log.warn("YAML inbound route takes the sipUsername over from another application", { sipUsername: route.sipUsername, from: owner, to: app.id });
      }
      await store.inboundRoutes.put(app.id, route);
    }

    for (const existing of store.callerIds.listByApplication(app.id)) {
      if (!app.channels[existing.channelId]?.callerId) await store.callerIds.delete(app.id, existing.channelId);
    }
    for (const [channelId, channel] of Object.entries(app.channels)) {
      if (channel.callerId) await store.callerIds.put(app.id, channelId, channel.callerId);
    }
  }
}

async function applyWebhooks(config: Config, store: Store): Promise<void> {
  if (config.webhooks) await store.settings.putWebhooks(config.webhooks, "yaml");
  else if (store.settings.webhooks()?.source === "yaml") await store.settings.deleteWebhooks();
}
