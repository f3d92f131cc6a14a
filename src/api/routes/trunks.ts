// /api/v1/trunks — SIP trunks. The password is write-only: views carry `passwordSet` instead.
import { idSchema, trunkFieldsSchema, trunkSchema } from "../../config/entities.ts";
import { s, validate } from "../../config/schema.ts";
import type { Trunk } from "../../store/index.ts";
import { ApiError, notFound, validationError, yamlManaged } from "../errors.ts";
import type { ApiModule } from "../router.ts";

export const trunkView = trunkFieldsSchema
  .omit("password")
  .extend({
    passwordSet: s.boolean().describe("Whether a password is stored (it is never returned)."),
    source: s.enum(["yaml", "api"]).describe("yaml: declared in the config file and read-only here; api: made through the API."),
    createdAt: s.string(),
    updatedAt: s.string(),
  })
  .describe("Trunk");

export function viewTrunk(trunk: Trunk): object {
  const { password, ...rest } = trunk;
  return { ...rest, passwordSet: password !== "" };
}

const trunkPatch = trunkFieldsSchema.omit("id").partial();

export const trunkRoutes: ApiModule = (api, store) => {
  const tag = "trunks";
  const existing = (id: string) => {
    const trunk = store.trunks.get(id);
    if (!trunk) throw notFound("trunk", id);
    return trunk;
  };
  const writable = (id: string) => {
    const trunk = existing(id);
    if (trunk.source === "yaml") throw yamlManaged("trunk", id);
    return trunk;
  };

  api.route(
    { method: "get", path: "/trunks", summary: "List trunks", tag, response: { status: 200, description: "All trunks", schema: s.array(trunkView) } },
    (c) => c.json(store.trunks.list().map(viewTrunk)),
  );

  api.route(
    {
      method: "post",
      path: "/trunks",
      summary: "Create a trunk",
      tag,
      body: trunkSchema,
      response: { status: 201, description: "Created", schema: trunkView },
      errors: [409],
    },
    async (c, body) => {
      const current = store.trunks.get(body.id);
      if (current?.source === "yaml") throw yamlManaged("trunk", body.id);
      if (current) throw new ApiError(409, "already_exists", `trunk ${JSON.stringify(body.id)} already exists`, "id");
      return c.json(viewTrunk(await store.trunks.put(body, "api")), 201);
    },
  );

  api.route(
    {
      method: "get",
      path: "/trunks/:id",
      params: { id: idSchema },
      summary: "Get a trunk",
      tag,
      response: { status: 200, description: "The trunk", schema: trunkView },
      errors: [404],
    },
    (c, _body, { id }) => c.json(viewTrunk(existing(id))),
  );

  api.route(
    {
      method: "patch",
      path: "/trunks/:id",
      params: { id: idSchema },
      summary: "Change some fields of a trunk",
      tag,
      body: trunkPatch,
      response: { status: 200, description: "The updated trunk", schema: trunkView },
      errors: [404, 409],
    },
    async (c, patch, { id }) => {
      const { source: _source, createdAt: _createdAt, updatedAt: _updatedAt, ...current } = writable(id);
      const merged = validate(trunkSchema, { ...current, ...patch });
      if (!merged.ok) throw validationError(merged.issues);
      return c.json(viewTrunk(await store.trunks.put(merged.value, "api")));
    },
  );

  api.route(
    {
      method: "delete",
      path: "/trunks/:id",
      params: { id: idSchema },
      summary: "Delete a trunk",
      tag,
      response: { status: 204, description: "Deleted" },
      errors: [404, 409],
    },
    async (c, _body, { id }) => {
      await store.trunks.delete(writable(id).id);
      return c.body(null, 204);
    },
  );
};
