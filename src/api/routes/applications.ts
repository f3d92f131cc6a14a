// /api/v1/applications — tenants. The sharedSecret is write-only.
import { applicationSchema, idSchema } from "../../config/entities.ts";
import { s, validate } from "../../config/schema.ts";
import type { Application, Store } from "../../store/index.ts";
import { ApiError, notFound, validationError, yamlManaged } from "../errors.ts";
import type { ApiModule } from "../router.ts";

export const applicationView = applicationSchema
  .omit("sharedSecret")
  .extend({
    source: s.enum(["yaml", "api"]).describe("yaml: declared in the config file (with its routes and caller IDs) and read-only here."),
    createdAt: s.string(),
    updatedAt: s.string(),
  })
  .describe("Application");

export function viewApplication(app: Application): object {
  const { sharedSecret: _secret, ...rest } = app;
  return rest;
}

/** The application named by :appId, or a 404. */
export function findApplication(store: Store, appId: string): Application {
  const app = store.applications.get(appId);
  if (!app) throw notFound("application", appId);
  return app;
}

/** Like findApplication, but a YAML-declared application (and so everything inside it) is a 409. */
export function writableApplication(store: Store, appId: string): Application {
  const app = findApplication(store, appId);
  if (app.source === "yaml") throw yamlManaged("application", appId);
  return app;
}

export const applicationRoutes: ApiModule = (api, store) => {
  const tag = "applications";
  const params = { appId: idSchema };

  api.route(
    {
      method: "get",
      path: "/applications",
      summary: "List applications",
      tag,
      response: { status: 200, description: "All applications", schema: s.array(applicationView) },
    },
    (c) => c.json(store.applications.list().map(viewApplication)),
  );

  api.route(
    {
      method: "post",
      path: "/applications",
      summary: "Create an application",
      tag,
      body: applicationSchema,
      response: { status: 201, description: "Created", schema: applicationView },
      errors: [409],
    },
    async (c, body) => {
      const current = store.applications.get(body.id);
      if (current?.source === "yaml") throw yamlManaged("application", body.id);
      if (current) throw new ApiError(409, "already_exists", `application ${JSON.stringify(body.id)} already exists`, "id");
      return c.json(viewApplication(await store.applications.put(body, "api")), 201);
    },
  );

  api.route(
    {
      method: "get",
      path: "/applications/:appId",
      params,
      summary: "Get an application",
      tag,
      response: { status: 200, description: "The application", schema: applicationView },
      errors: [404],
    },
    (c, _body, { appId }) => c.json(viewApplication(findApplication(store, appId))),
  );

  api.route(
    {
      method: "patch",
      path: "/applications/:appId",
      params,
      summary: "Rename an application or rotate its shared secret",
      tag,
      body: applicationSchema.omit("id").partial(),
      response: { status: 200, description: "The updated application", schema: applicationView },
      errors: [404, 409],
    },
    async (c, patch, { appId }) => {
      const { source: _source, createdAt: _createdAt, updatedAt: _updatedAt, ...current } = writableApplication(store, appId);
      const merged = validate(applicationSchema, { ...current, ...patch });
      if (!merged.ok) throw validationError(merged.issues);
      return c.json(viewApplication(await store.applications.put(merged.value, "api")));
    },
  );

  api.route(
    {
      method: "delete",
      path: "/applications/:appId",
      params,
      summary: "Delete an application with its inbound routes and caller-ID configs",
      tag,
      response: { status: 204, description: "Deleted" },
      errors: [404, 409],
    },
    async (c, _body, { appId }) => {
      await store.applications.delete(writableApplication(store, appId).id);
      return c.body(null, 204);
    },
  );
};
