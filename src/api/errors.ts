// JSON errors: { "error": { "code", "message", "field"? } }. Handlers throw ApiError; anything
// else becomes a 500 with a generic message (the details go to the log, never to the client).
import { formatPath, s, type Issue } from "../config/schema.ts";

export type ErrorStatus = 400 | 401 | 403 | 404 | 405 | 409 | 413 | 415 | 422 | 429 | 500 | 503;

export class ApiError extends Error {
  constructor(
    readonly status: ErrorStatus,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }

  toJSON(): { error: { code: string; message: string; field?: string } } {
    return { error: { code: this.code, message: this.message, ...(this.field !== undefined ? { field: this.field } : {}) } };
  }
}

export const notFound = (what: string, id: string) => new ApiError(404, "not_found", `${what} ${JSON.stringify(id)} not found`);

export function validationError(issues: Issue[]): ApiError {
  const first = issues[0];
  const field = first ? formatPath(first.path) : undefined;
  const message = issues.map((i) => (i.path.length ? `${formatPath(i.path)}: ${i.message}` : i.message)).join("; ");
  return new ApiError(400, "invalid_body", message || "invalid body", field || undefined);
}

/** Refusal to change an object that the YAML config declares. */
export function yamlManaged(what: string, id: string): ApiError {
  return new ApiError(
    409,
    "managed_by_config",
    `${what} ${JSON.stringify(id)} is declared in the YAML config and is read-only through the API; edit the config file and reload (SIGHUP)`,
  );
}

export const errorSchema = s
  .object({
    error: s.object({
      code: s.string().describe("Stable machine-readable code, e.g. invalid_body, not_found, managed_by_config."),
      message: s.string(),
      field: s.string().optional().describe("The request field at fault, e.g. \"port\" or \"allowedAddresses[1]\"."),
    }),
  })
  .describe("Error response");
