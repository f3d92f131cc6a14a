// /api/v1/applications/:appId/channels/:channelId/caller-id — outbound caller-ID templates.
// Templates are checked on save: an unknown {variable} is a 400 naming the field.
// GET /applications/:appId/caller-ids lists them all.
import { callerIdSchema, channelIdSchema, idSchema } from "../../config/entities.ts";
import { s } from "../../config/schema.ts";
import type { CallerIdConfig } from "../../store/index.ts";
import { notFound } from "../errors.ts";
import type { ApiModule } from "../router.ts";
import { findApplication, writableApplication } from "./applications.ts";

export const callerIdView = callerIdSchema
  .extend({ applicationId: idSchema, channelId: channelIdSchema, updatedAt: s.string() })
  .describe("Caller-ID config");

const viewCallerId = (config: CallerIdConfig): object => config;

export const callerIdRoutes: ApiModule = (api, store) => {
  const tag = "caller ID";
  const path = "/applications/:appId/channels/:channelId/caller-id";
  const params = { appId: idSchema, channelId: channelIdSchema };

  api.route(
    {
      method: "get",
      path: "/applications/:appId/caller-ids",
      params: { appId: idSchema },
      summary: "List an application's caller-ID templates, one per channel",
      tag,
      response: { status: 200, description: "The templates", schema: s.array(callerIdView) },
      errors: [404],
    },
    (c, _body, { appId }) => c.json(store.callerIds.listByApplication(findApplication(store, appId).id).map(viewCallerId)),
  );

  api.route(
    {
      method: "get",
      path,
      params,
      summary: "Get a channel's caller-ID templates",
      tag,
      response: { status: 200, description: "The templates", schema: callerIdView },
      errors: [404],
    },
    (c, _body, { appId, channelId }) => {
      const config = store.callerIds.get(findApplication(store, appId).id, channelId);
      if (!config) throw notFound("caller-ID config for channel", channelId);
      return c.json(viewCallerId(config));
    },
  );

  api.route(
    {
      method: "put",
      path,
      params,
      summary: "Set a channel's caller-ID templates",
      tag,
      body: callerIdSchema,
      response: { status: 200, description: "The saved templates", schema: callerIdView },
      errors: [404, 409],
    },
    async (c, body, { appId, channelId }) => {
      return c.json(viewCallerId(await store.callerIds.put(writableApplication(store, appId).id, channelId, body)));
    },
  );

  api.route(
    {
      method: "delete",
      path,
      params,
      summary: "Remove a channel's caller-ID templates",
      tag,
      response: { status: 204, description: "Deleted" },
      errors: [404, 409],
    },
    async (c, _body, { appId, channelId }) => {
      if (!(await store.callerIds.delete(writableApplication(store, appId).id, channelId))) throw notFound("caller-ID config for channel", channelId);
      return c.body(null, 204);
    },
  );
};
