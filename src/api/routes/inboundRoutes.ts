// /api/v1/applications/:appId/inbound-routes — the static inbound map, sipUsername → channelId.
// A sipUsername routes to one channel across all applications, so taking one that another
// application holds is a 409.
import { idSchema, inboundRouteSchema, sipUsernameSchema } from "../../config/entities.ts";
import { s } from "../../config/schema.ts";
import type { InboundRoute, Store } from "../../store/index.ts";
import { ApiError, notFound } from "../errors.ts";
import type { ApiModule } from "../router.ts";
import { findApplication, writableApplication } from "./applications.ts";

export const inboundRouteView = inboundRouteSchema
  .extend({ applicationId: idSchema, createdAt: s.string(), updatedAt: s.string() })
  .describe("Inbound route");

const viewRoute = (route: InboundRoute): object => route;

function ensureFree(store: Store, appId: string, sipUsername: string): void {
  const owner = store.inboundRoutes.find(sipUsername)?.applicationId;
  if (owner !== undefined && owner !== appId) {
    throw new ApiError(409, "route_taken", `sipUsername ${JSON.stringify(sipUsername)} already routes into application ${JSON.stringify(owner)}`, "sipUsername");
  }
}

export const inboundRouteRoutes: ApiModule = (api, store) => {
  const tag = "inbound routes";
  const base = "/applications/:appId/inbound-routes";
  const appParams = { appId: idSchema };
  const routeParams = { appId: idSchema, sipUsername: sipUsernameSchema };
  const existing = (appId: string, sipUsername: string) => {
    const route = store.inboundRoutes.find(sipUsername);
    if (!route || route.applicationId !== appId) throw notFound("inbound route", sipUsername);
    return route;
  };

  api.route(
    {
      method: "get",
      path: base,
      params: appParams,
      summary: "List an application's inbound routes",
      tag,
      response: { status: 200, description: "The routes", schema: s.array(inboundRouteView) },
      errors: [404],
    },
    (c, _body, { appId }) => c.json(store.inboundRoutes.listByApplication(findApplication(store, appId).id).map(viewRoute)),
  );

  api.route(
    {
      method: "post",
      path: base,
      params: appParams,
      summary: "Add an inbound route",
      tag,
      body: inboundRouteSchema,
      response: { status: 201, description: "Created", schema: inboundRouteView },
      errors: [404, 409],
    },
    async (c, body, { appId }) => {
      const app = writableApplication(store, appId);
      ensureFree(store, app.id, body.sipUsername);
      if (store.inboundRoutes.find(body.sipUsername)) {
        throw new ApiError(409, "already_exists", `inbound route ${JSON.stringify(body.sipUsername)} already exists`, "sipUsername");
      }
      return c.json(viewRoute(await store.inboundRoutes.put(app.id, body)), 201);
    },
  );

  api.route(
    {
      method: "get",
      path: `${base}/:sipUsername`,
      params: routeParams,
      summary: "Get an inbound route",
      tag,
      response: { status: 200, description: "The route", schema: inboundRouteView },
      errors: [404],
    },
    (c, _body, { appId, sipUsername }) => c.json(viewRoute(existing(findApplication(store, appId).id, sipUsername))),
  );

  api.route(
    {
      method: "put",
      path: `${base}/:sipUsername`,
      params: routeParams,
      summary: "Create or replace an inbound route",
      tag,
      body: inboundRouteSchema.omit("sipUsername"),
      response: { status: 200, description: "The route (201 when created)", schema: inboundRouteView },
      errors: [404, 409],
    },
    async (c, body, { appId, sipUsername }) => {
      const app = writableApplication(store, appId);
      ensureFree(store, app.id, sipUsername);
      const created = !store.inboundRoutes.find(sipUsername);
      return c.json(viewRoute(await store.inboundRoutes.put(app.id, { sipUsername, channelId: body.channelId })), created ? 201 : 200);
    },
  );

  api.route(
    {
      method: "delete",
      path: `${base}/:sipUsername`,
      params: routeParams,
      summary: "Delete an inbound route",
      tag,
      response: { status: 204, description: "Deleted" },
      errors: [404, 409],
    },
    async (c, _body, { appId, sipUsername }) => {
      const app = writableApplication(store, appId);
      await store.inboundRoutes.delete(app.id, existing(app.id, sipUsername).sipUsername);
      return c.body(null, 204);
    },
  );
};
