// The OpenAPI 3.1 document, assembled from the same schemas that validate requests (router.ts
// registers every route here as it mounts it), so the documentation cannot drift from the code.
import type { JsonSchema, Schema } from "../config/schema.ts";
import { errorSchema } from "./errors.ts";

export interface OperationDoc {
  method: string;
  path: string;
  summary: string;
  tag: string;
  auth: "admin" | "public" | "client";
  body?: Schema<unknown>;
  /** Schemas of path parameters; parameters without one are documented as plain strings. */
  params?: Record<string, Schema<string>>;
  response?: { status: number; description: string; schema?: Schema<unknown>; contentType?: string };
  errors: number[];
}

const errorDescriptions: Record<number, string> = {
  400: "Invalid request (the error names the field)",
  401: "Missing or invalid bearer token",
  403: "Forbidden",
  404: "Unknown id",
  409: "Conflict (e.g. the object is managed by the YAML config)",
  413: "Body too large",
  429: "Too many failed authentications from this address (Retry-After says when to try again)",
  503: "Not ready",
};

export class OpenApiRegistry {
  private readonly operations: OperationDoc[] = [];

  add(op: OperationDoc): void {
    this.operations.push(op);
  }

  document(version: string): JsonSchema {
    const paths: Record<string, Record<string, unknown>> = {};
    for (const op of this.operations) {
      const path = op.path.replace(/:([A-Za-z0-9_]+)/g, "{$1}");
      const parameters = [...op.path.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => ({
        name: m[1],
        in: "path",
        required: true,
        schema: op.params?.[m[1]!]?.toJsonSchema() ?? { type: "string" },
      }));
      const responses: Record<string, unknown> = {};
      const ok = op.response ?? { status: 200, description: "OK" };
      responses[String(ok.status)] = {
        description: ok.description,
        ...(ok.schema || ok.contentType
          ? { content: { [ok.contentType ?? "application/json"]: ok.schema ? { schema: ok.schema.toJsonSchema() } : {} } }
          : {}),
      };
      const errors = new Set(op.errors);
      if (op.auth !== "public") {
        errors.add(401);
        errors.add(429);
      }
      if (op.body) errors.add(400);
      for (const status of [...errors].sort()) {
        responses[String(status)] = {
          description: errorDescriptions[status] ?? "Error",
          content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
        };
      }
      (paths[path] ??= {})[op.method] = {
        summary: op.summary,
        tags: [op.tag],
        operationId: `${op.method}${path.replace(/[{}]/g, "").replace(/[/-](\w)/g, (_m, c: string) => c.toUpperCase())}`,
        ...(parameters.length ? { parameters } : {}),
        ...(op.body ? { requestBody: { required: true, content: { "application/json": { schema: op.body.toJsonSchema() } } } } : {}),
        responses,
        security: op.auth === "admin" ? [{ adminToken: [] }] : op.auth === "client" ? [{ clientToken: [] }] : [],
      };
    }
    return {
      openapi: "3.1.0",
      jsonSchemaDialect: "https://spec.openapis.org/oas/3.1/dialect/base",
      info: {
        title: "Trunkline API",
        version,
        description: "Admin API of Trunkline, a self-hosted SIP connector. Secrets are write-only: accepted, never returned.",
      },
      components: {
        securitySchemes: {
          adminToken: { type: "http", scheme: "bearer", description: "The admin token (adminToken or TRUNKLINE_ADMIN_TOKEN)." },
          clientToken: { type: "http", scheme: "bearer", bearerFormat: "JWT", description: "A client token signed with the application's sharedSecret." },
        },
        schemas: { Error: errorSchema.toJsonSchema() },
      },
      paths,
    };
  }
}
