// Declares an API route once: the Hono handler, its authentication, the body validation and its
// OpenAPI entry all come from one spec.
//   api.route({ method: "post", path: "/trunks", summary: "Create a trunk", tag: "trunks",
//     body: trunkSchema, response: { status: 201, description: "Created", schema: trunkView } },
//     async (c, body) => c.json(view(await store.trunks.put(body, "api")), 201));
//   api.route({ method: "get", path: "/trunks/:id", params: { id: idSchema }, ... }, (c, _body, { id }) => ...);
// Paths are relative to /api/v1. `auth` defaults to "admin"; routes with their own scheme (client
// tokens) pass "client" plus their middleware.
import type { Context, Hono, MiddlewareHandler } from "hono";
import { validate, type Schema } from "../config/schema.ts";
import type { AuthGuard } from "./auth.ts";
import { ApiError, validationError } from "./errors.ts";
import type { Store } from "../store/index.ts";
import type { OpenApiRegistry, OperationDoc } from "./openapi.ts";

export const API_PREFIX = "/api/v1";

export interface RouteSpec<B, P extends string = never> {
  method: "get" | "post" | "put" | "patch" | "delete";
  path: string;
  summary: string;
  tag: string;
  /** Path parameters, validated before the handler runs (400 naming the parameter) and documented. */
  params?: Record<P, Schema<string>>;
  auth?: OperationDoc["auth"];
  middleware?: MiddlewareHandler[];
  body?: Schema<B>;
  response?: OperationDoc["response"];
  /** Error statuses to document besides 400 (with a body) and 401 (when authenticated). */
  errors?: number[];
}

export type RouteHandler<B, P extends string = never> = (c: Context, body: B, params: Record<P, string>) => Response | Promise<Response>;

export class ApiRouter {
  constructor(
    readonly hono: Hono,
    private readonly docs: OpenApiRegistry,
    private readonly adminAuth: MiddlewareHandler,
    private readonly maxBodyBytes: () => number,
    /** Counts failed bearer secrets per source address; routes with their own scheme report to it too. */
    readonly authGuard: AuthGuard,
  ) {}

  route<B = undefined, P extends string = never>(spec: RouteSpec<B, P>, handler: RouteHandler<B, P>): void {
    const auth = spec.auth ?? "admin";
    const middleware = [...(auth === "admin" ? [this.adminAuth] : []), ...(spec.middleware ?? [])];
    const { body } = spec;
    const paramSchemas = Object.entries(spec.params ?? {}) as [P, Schema<string>][];
    const final: MiddlewareHandler = async (c) => {
      const params = {} as Record<P, string>;
      for (const [name, schema] of paramSchemas) params[name] = pathParam(c, name, schema);
      const parsed = body ? await readBody(c, body, this.maxBodyBytes()) : (undefined as B);
      return handler(c, parsed, params);
    };
    // Hono's typed overloads take fixed-length handler tuples; the chain here is built at run time.
    const on = this.hono.on.bind(this.hono) as (method: string, path: string, ...handlers: MiddlewareHandler[]) => unknown;
    on(spec.method.toUpperCase(), API_PREFIX + spec.path, ...middleware, final);
    this.docs.add({
      method: spec.method,
      path: API_PREFIX + spec.path,
      summary: spec.summary,
      tag: spec.tag,
      auth,
      body: spec.body as Schema<unknown> | undefined,
      params: Object.fromEntries(paramSchemas),
      response: spec.response,
      errors: spec.errors ?? [],
    });
  }
}

async function readBody<B>(c: Context, schema: Schema<B>, maxBytes: number): Promise<B> {
  const declared = Number(c.req.header("content-length") ?? "0");
  if (declared > maxBytes) throw new ApiError(413, "body_too_large", `request body exceeds ${maxBytes} bytes`);
  const type = c.req.header("content-type") ?? "";
  if (!/^application\/json\b/i.test(type)) {
    throw new ApiError(415, "unsupported_media_type", "the request body must be JSON (Content-Type: application/json)");
  }
  const text = await c.req.text();
  if (text.length > maxBytes) throw new ApiError(413, "body_too_large", `request body exceeds ${maxBytes} bytes`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ApiError(400, "invalid_json", "the request body is not valid JSON");
  }
  const result = validate(schema, json);
  if (!result.ok) throw validationError(result.issues);
  return result.value;
}

/** A resource module of the admin API: mounts its routes on the router. */
export type ApiModule = (api: ApiRouter, store: Store) => void;

/** Reads a path parameter and checks it against the schema of the matching body field. */
export function pathParam(c: Context, name: string, schema: Schema<string>): string {
  const value = c.req.param(name) ?? "";
  const result = validate(schema, value, [name]);
  if (!result.ok) throw validationError(result.issues);
  return result.value;
}
