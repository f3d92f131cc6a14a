// The admin API as a terminal command sees it: base URL and token from the environment, every
// failure turned into one sentence an operator can act on.
//
//   const client = adminClientFromEnv(process.env);   // { error } when TRUNKLINE_ADMIN_TOKEN is unset
//   const trunks = await client.get<unknown[]>("/api/v1/trunks");   // throws AdminApiError
export const DEFAULT_URL = "http://127.0.0.1:8080";
const TIMEOUT_MS = 10_000;

export class AdminApiError extends Error {}

export interface AdminClient {
  readonly baseUrl: string;
  get<T>(path: string): Promise<T>;
}

export function adminClientFromEnv(env: Record<string, string | undefined>): AdminClient | { error: string } {
  const baseUrl = (env.TRUNKLINE_URL || DEFAULT_URL).replace(/\/+$/, "");
  let parsed: URL;
  try {
    parsed = new URL(baseUrl);
  } catch {
    return { error: `TRUNKLINE_URL is not a URL: ${JSON.stringify(baseUrl)}` };
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return { error: `TRUNKLINE_URL must be http:// or https://, got ${JSON.stringify(baseUrl)}` };
  const token = env.TRUNKLINE_ADMIN_TOKEN;
  if (!token) return { error: `TRUNKLINE_ADMIN_TOKEN is not set: export the admin token of the Trunkline at ${baseUrl}` };
  return { baseUrl, get: (path) => get(baseUrl, token, path) };
}

async function get<T>(baseUrl: string, token: string, path: string): Promise<T> {
  let response: Response;
  try {
    response = await fetch(baseUrl + path, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(TIMEOUT_MS), redirect: "manual" });
  } catch (err) {
    throw new AdminApiError(`cannot reach Trunkline at ${baseUrl} (${unreachableReason(err)}); is it running, and is TRUNKLINE_URL right?`);
  }
  const text = await response.text();
  if (response.status === 401) throw new AdminApiError(`Trunkline at ${baseUrl} refused the admin token (401): check TRUNKLINE_ADMIN_TOKEN`);
  if (response.status === 429) throw new AdminApiError(`Trunkline at ${baseUrl} refuses this address for now after too many wrong tokens (429): check TRUNKLINE_ADMIN_TOKEN and retry later`);
  if (!response.ok) throw new AdminApiError(`GET ${path} failed: HTTP ${response.status}${apiMessage(text)}`);
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new AdminApiError(`GET ${path}: the answer from ${baseUrl} is not JSON; is TRUNKLINE_URL the admin API?`);
  }
}

function unreachableReason(err: unknown): string {
  if (err instanceof Error && err.name === "TimeoutError") return `no answer within ${TIMEOUT_MS / 1000} s`;
  const code = (err as { code?: unknown } | undefined)?.code;
  if (code === "ECONNREFUSED") return "connection refused";
  if (typeof code === "string") return code;
  return err instanceof Error ? err.message : String(err);
}

/** `: message` from the API's `{ error: { message } }`, when the body is one. */
function apiMessage(text: string): string {
  try {
    const message = (JSON.parse(text) as { error?: { message?: unknown } }).error?.message;
    return typeof message === "string" ? `: ${message}` : "";
  } catch {
    return "";
  }
}
