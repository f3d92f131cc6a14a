// Command-line flags and environment variables that take precedence over the config file.
import { createLogger, type LogLevel } from "../log.ts";
import type { Config } from "./config.ts";

export interface CliOverrides {
  httpPort?: number;
  sipPort?: number;
  dbPath?: string;
  logLevel?: LogLevel;
}

const log = createLogger("config");

/**
 * --sip-port N moves the udp and tcp listeners to N and tls listeners to N+1 (5060/5061 style);
 * --sip-port 0 gives every listener a free port.
 */
export function applyOverrides(config: Config, overrides: CliOverrides, env: Record<string, string | undefined>): Config {
  const out = structuredClone(config);
  if (overrides.httpPort !== undefined) out.http.port = overrides.httpPort;
  if (overrides.sipPort !== undefined) {
    const port = overrides.sipPort;
    out.sip.listen = out.sip.listen.map((l) => ({ ...l, port: port === 0 ? 0 : l.transport === "tls" ? port + 1 : port }));
  }
  if (overrides.dbPath !== undefined) out.database.path = overrides.dbPath;
  if (overrides.logLevel !== undefined) out.logLevel = overrides.logLevel;
  const token = env.TRUNKLINE_ADMIN_TOKEN;
  if (token !== undefined && token !== "") {
    if (token.length < 16) log.warn("TRUNKLINE_ADMIN_TOKEN is shorter than 16 characters");
    out.adminToken = token;
  }
  return out;
}
