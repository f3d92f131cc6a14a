// Starts the real app on a free port with a temp config and database, and talks to it.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startApp, type App, type ComposeServices } from "../../src/app.ts";
import { startPostgres } from "../helpers/postgres.ts";

export const ADMIN_TOKEN = "test-admin-token-0123456789";

export interface Harness {
  app: App;
  dir: string;
  configPath: string;
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; json: any; text: string; headers: Headers }>;
  writeConfig(yaml: string): void;
  restart(): Promise<void>;
  close(): Promise<void>;
}

/** `http` adds keys to the http mapping (e.g. "tls: { ... }"); `host` is http.host (default 127.0.0.1);
 * `databaseUrl` puts the store on that PostgreSQL (with TRUNKLINE_TEST_POSTGRES=1 and none given, on a
 * server started for this harness). */
export async function startHarness(
  yaml = "",
  compose?: ComposeServices,
  logLevel = "warn",
  o: { http?: string; host?: string; databaseUrl?: string } = {},
): Promise<Harness> {
  // TRUNKLINE_TEST_POSTGRES=1 runs suites written for SQLite on a PostgreSQL of the harness's own.
  const postgres = o.databaseUrl === undefined && process.env.TRUNKLINE_TEST_POSTGRES === "1" ? await startPostgres() : undefined;
  const databaseUrl = o.databaseUrl ?? postgres?.url;
  const dir = mkdtempSync(join(tmpdir(), "trunkline-api-"));
  const configPath = join(dir, "config.yaml");
  const http = `http: { host: ${o.host ?? "127.0.0.1"}, port: 0${o.http ? `, ${o.http}` : ""} }`;
  const writeConfig = (text: string) =>
    writeFileSync(configPath, `${http}\nadminToken: ${ADMIN_TOKEN}\ndatabase: { path: ${join(dir, "t.db")}${databaseUrl ? `, url: "${databaseUrl}"` : ""} }\nlogLevel: ${logLevel}\n${text}`);
  writeConfig(yaml);
  const boot = () => startApp({ configPath, env: {}, compose });
  let app: App;
  try {
    app = await boot();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    await postgres?.stop();
    throw err;
  }
  const harness: Harness = {
    app,
    dir,
    configPath,
    writeConfig,
    async call(method, path, body, headers = {}) {
      const res = await fetch(harness.app.url + path, {
        method,
        headers: {
          authorization: `Bearer ${ADMIN_TOKEN}`,
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
          ...headers,
        },
        body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
      });
      const text = await res.text();
      let json: unknown;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = undefined;
      }
      return { status: res.status, json, text, headers: res.headers };
    },
    async restart() {
      await harness.app.stop();
      harness.app = await boot();
    },
    async close() {
      await harness.app.stop();
      rmSync(dir, { recursive: true, force: true });
      await postgres?.stop();
    },
  };
  return harness;
}
