// trunkline [serve] --config FILE [--http-port N] [--sip-port N] [--db PATH] [--log-level L]
// trunkline check-config --config FILE
// trunkline calls [--state S] [--trunk ID] [--direction D] [--limit N]
// trunkline trunks
// trunkline --version
import { reexecWithServerAllocator } from "./src/allocator.ts";
import { ConfigError, startApp } from "./src/app.ts";
import { CLI_USAGE, runCliCommand } from "./src/cli/commands.ts";
import { loadConfigFile } from "./src/config/load.ts";
import type { CliOverrides } from "./src/config/overrides.ts";
import { createLogger, type LogLevel } from "./src/log.ts";
import { composeServices } from "./src/services.ts";
import { VERSION } from "./src/version.ts";

const usage = `Usage:
  trunkline [serve] --config FILE [--http-port N] [--sip-port N] [--db PATH] [--log-level debug|info|warn|error]
  trunkline check-config --config FILE
${CLI_USAGE}
  trunkline --version

Environment: TRUNKLINE_ADMIN_TOKEN overrides adminToken; \${NAME} in YAML string values reads NAME.
calls and trunks ask the admin API at TRUNKLINE_URL (default http://127.0.0.1:8080) with TRUNKLINE_ADMIN_TOKEN.
Signals: SIGHUP reloads the config file; SIGTERM/SIGINT refuse new calls, let live ones end
(cluster.drainGraceSec at most), then stop; a second SIGTERM/SIGINT exits at once.`;

type Command =
  | { name: "serve" | "check-config"; configPath: string; overrides: CliOverrides }
  | { name: "calls" | "trunks"; args: string[] }
  | { name: "version" }
  | { name: "help" };

function parseArgs(args: string[]): Command | { error: string } {
  if (args[0] === "calls" || args[0] === "trunks") {
    return args.includes("--help") || args.includes("-h") ? { name: "help" } : { name: args[0], args: args.slice(1) };
  }
  if (args.includes("--version") || args.includes("-v")) return { name: "version" };
  if (args.includes("--help") || args.includes("-h")) return { name: "help" };
  let name: "serve" | "check-config" = "serve";
  let rest = args;
  if (args[0] === "serve" || args[0] === "check-config") {
    name = args[0];
    rest = args.slice(1);
  }
  const overrides: CliOverrides = {};
  let configPath: string | undefined;
  for (let i = 0; i < rest.length; i++) {
    const flag = rest[i]!;
    const [key, inline] = flag.includes("=") ? [flag.slice(0, flag.indexOf("=")), flag.slice(flag.indexOf("=") + 1)] : [flag, undefined];
    const value = inline ?? rest[++i];
    if (value === undefined) return { error: `${key} needs a value` };
    switch (key) {
      case "--config":
        configPath = value;
        break;
      case "--http-port":
      case "--sip-port": {
        const port = Number(value);
        if (!/^\d+$/.test(value) || port > 65535) return { error: `${key} must be a port number (0-65535), got ${JSON.stringify(value)}` };
        if (key === "--http-port") overrides.httpPort = port;
        else overrides.sipPort = port;
        break;
      }
      case "--db":
        overrides.dbPath = value;
        break;
      case "--log-level":
        if (!["debug", "info", "warn", "error"].includes(value)) return { error: `--log-level must be debug, info, warn or error` };
        overrides.logLevel = value as LogLevel;
        break;
      default:
        return { error: `unknown argument ${JSON.stringify(flag)}` };
    }
  }
  if (configPath === undefined) return { error: "--config FILE is required" };
  if (name === "check-config" && Object.keys(overrides).length > 0) return { error: "check-config takes only --config" };
  return { name, configPath, overrides };
}

async function checkConfig(configPath: string): Promise<number> {
  const result = await loadConfigFile(configPath);
  if (result.ok) {
    console.log(`${configPath}: OK`);
    return 0;
  }
  for (const line of result.errors) console.error(line);
  return 1;
}

async function serve(configPath: string, overrides: CliOverrides): Promise<void> {
  reexecWithServerAllocator();
  const log = createLogger("main");
  let app: Awaited<ReturnType<typeof startApp>> | undefined;
  let stopping = false;
  const stop = (running: NonNullable<typeof app>) =>
    running.drainAndStop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error("shutdown failed", { err });
        process.exit(1);
      },
    );
  // Listened for before the start: a stop signal that comes while the app starts (or the moment it
  // says it has started) stops it once it is up, instead of killing it half-started; a SIGHUP then
  // reloads it once up.
  // Logged as processSignal: a field named "signal" is redacted (it carries DTMF in SIP INFO bodies).
  const shutdown = (signal: string) => {
    log.info("signal received", { processSignal: signal });
    if (stopping) {
      log.warn("second stop signal: exiting without waiting for in-flight work");
      process.exit(1);
    }
    stopping = true;
    if (app) void stop(app);
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
  let reloadWhenUp = false;
  process.on("SIGHUP", () => {
    log.info("signal received", { processSignal: "SIGHUP" });
    if (app) void app.reload();
    else reloadWhenUp = true; // the file may have changed after the start read it
  });
  try {
    app = await startApp({ configPath, overrides, compose: composeServices });
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const line of err.errors) console.error(line);
    } else {
      log.error("start-up failed", { err });
    }
    process.exit(1);
  }
  // A stray rejection or exception in one call must not take every other call down with the process.
  process.on("unhandledRejection", (reason) => log.error("unhandled rejection", { err: reason }));
  process.on("uncaughtException", (err) => log.error("uncaught exception", { err }));
  if (stopping) void stop(app);
  else if (reloadWhenUp) void app.reload();
}

const command = parseArgs(process.argv.slice(2));
if ("error" in command) {
  console.error(`trunkline: ${command.error}\n\n${usage}`);
  process.exit(2);
}
switch (command.name) {
  case "version":
    console.log(`trunkline ${VERSION}`);
    break;
  case "help":
    console.log(usage);
    break;
  case "check-config":
    process.exit(await checkConfig(command.configPath));
    break;
  case "serve":
    await serve(command.configPath, command.overrides);
    break;
  case "calls":
  case "trunks":
    process.exit(
      await runCliCommand(command.name, command.args, {
        env: process.env,
        out: (text) => Bun.write(Bun.stdout, text),
        err: (text) => Bun.write(Bun.stderr, text),
      }),
    );
}
