// Composition root: config → store → services → HTTP server, plus reload (SIGHUP) and a bounded
// graceful stop (SIGTERM). Capabilities plug in as `Service`s built by a compose function
// (src/services.ts for the real process; tests pass their own):
//
//   const compose: ComposeServices = (ctx) => {
//     const sip = new SipService(ctx);            // start(): bind sockets; ready(): sockets bound
//     const trunks = new TrunkService(ctx, sip);  // reacts to ctx.store.changes; trunkStatusApi(trunks) adds its routes
//     return [sip, trunks];                       // started in order, stopped in reverse
//   };
import type { Server } from "bun";
import { websocket } from "hono/bun";
import { hostname } from "node:os";
import { ApiRouter } from "./api/router.ts";
import { clusterRoutes } from "./api/routes/cluster.ts";
import { createHttpApp, type ReadinessCheck } from "./api/server.ts";
import { NodeHeartbeat } from "./cluster/heartbeat.ts";
import { ChannelHomes } from "./cluster/homes.ts";
import { applyConfigToStore } from "./config/apply.ts";
import { listenPort, type Config } from "./config/config.ts";
import { loadConfigFile } from "./config/load.ts";
import { applyOverrides, type CliOverrides } from "./config/overrides.ts";
import { createLogger, setLogLevel } from "./log.ts";
import { applyMediaSettings } from "./media/media-settings.ts";
import type { OpusComplexity } from "./media/opus.ts";
import { metrics, type MetricsRegistry } from "./metrics.ts";
import { openPostgresStore, openStore, type NodeLoad, type Store } from "./store/index.ts";
import { CallRecordRetention } from "./store/retention.ts";
import { VERSION } from "./version.ts";

export interface Service {
  readonly name: string;
  start?(): Promise<void> | void;
  /** Refuse new work at once (SIGTERM), before any service stops: the SIP front sees a draining node. */
  drain?(): void;
  /** Stop taking new work, let in-flight work finish before `deadline` (epoch ms), release resources. */
  stop?(deadline: number): Promise<void> | void;
  /** Contributes to GET /readyz (e.g. "SIP sockets bound"). */
  ready?(): ReadinessCheck;
  /** Adds API routes (admin by default; see ApiRouter). */
  routes?(api: ApiRouter): void;
  /** The config file was reloaded; the store already holds the new YAML objects. */
  reload?(config: Config): Promise<void> | void;
  /** This service's share of the node's load, written with each heartbeat. */
  load?(): Partial<Omit<NodeLoad, "cpuPercent">>;
  /** Runs after each heartbeat, in its background work (leases renewed with the heartbeat). */
  afterBeat?(): Promise<void>;
}

export interface AppContext {
  /** The current config (replaced on reload). */
  readonly config: Config;
  readonly configPath: string;
  /** This node's name in the cluster (cluster.nodeId, else derived from the host name). */
  readonly nodeId: string;
  readonly store: Store;
  readonly metrics: MetricsRegistry;
  /** Which node homes which channel: place() before a first join (src/cluster/homes.ts). */
  readonly homes: ChannelHomes;
}

export type ComposeServices = (ctx: AppContext) => Service[] | Promise<Service[]>;

export interface AppOptions {
  configPath: string;
  overrides?: CliOverrides;
  env?: Record<string, string | undefined>;
  compose?: ComposeServices;
}

export interface App {
  readonly ctx: AppContext;
  /** The bound HTTP port (useful with http.port 0). */
  readonly httpPort: number;
  readonly url: string;
  /** Re-reads the config file; on errors keeps the running config and returns them. */
  reload(): Promise<{ ok: true } | { ok: false; errors: string[] }>;
  /**
   * SIGTERM: refuses new work at once (SIP 503, /readyz not ready), lets live calls go on until
   * they end or cluster.drainGraceSec passes, then stop() ends the rest (BYE with a Reason).
   */
  drainAndStop(): Promise<void>;
  /** Stops now: live calls are ended at once. */
  stop(): Promise<void>;
}

export class ConfigError extends Error {
  constructor(readonly errors: string[]) {
    super(`invalid configuration:\n${errors.join("\n")}`);
  }
}

const log = createLogger("app");

async function loadEffectiveConfig(options: AppOptions): Promise<Config> {
  const loaded = await loadConfigFile(options.configPath, { env: options.env ?? process.env });
  if (!loaded.ok) throw new ConfigError(loaded.errors);
  return applyOverrides(loaded.config, options.overrides ?? {}, options.env ?? process.env);
}

/** Media settings apply, here and in every media worker, to mixers and encoders created from now on (a reload leaves running ones alone). */
function applyMediaConfig(media: Config["media"]): void {
  applyMediaSettings({ maxSpeakers: media.maxSpeakers, opusComplexity: media.opusComplexity as OpusComplexity, opusApplication: media.opusApplication, relayPairs: media.relayPairs });
}

export async function startApp(options: AppOptions): Promise<App> {
  let config = await loadEffectiveConfig(options);
  setLogLevel(config.logLevel);
  applyMediaConfig(config.media);
  const { database } = config;
  const nodeId = config.cluster.nodeId ?? defaultNodeId();
  const callRecords = { windowMs: database.callRecordWindowMs };
  const store = database.url ? await openPostgresStore({ url: database.url, nodeId, callRecords }) : openStore(database.path, undefined, { nodeId, callRecords, backgroundCheckpoints: true });
  await applyConfigToStore(config, store);
  if (config.adminToken === undefined) log.warn("no adminToken configured: the admin API answers 401 until one is set");
  else if (/change-me/i.test(config.adminToken)) log.warn("adminToken is the example's placeholder: set a secret one before exposing the API");

  const homes = new ChannelHomes({ store: store.homes, nodes: store.nodes, nodeId, deadAfterMs: config.cluster.deadAfterMs });
  const ctx: AppContext = {
    get config() {
      return config;
    },
    configPath: options.configPath,
    nodeId,
    store,
    metrics,
    homes,
  };

  const retention = new CallRecordRetention({ records: store.calls, retentionDays: () => config.records.retentionDays });
  retention.start();

  const started: Service[] = [];
  let draining = false;
  let server: Server<unknown> | undefined;
  try {
    await homes.start();
    const services = options.compose ? await options.compose(ctx) : [];
    for (const service of services) {
      await service.start?.();
      started.push(service);
      log.info("service started", { service: service.name });
    }
    const { hono } = createHttpApp({
      store,
      version: VERSION,
      adminToken: () => config.adminToken,
      maxBodyBytes: () => config.limits.maxHttpBodyBytes,
      authFailures: config.http.authFailures,
      readiness: async () => ({
        ...(await readiness(store, started)),
        ...(draining ? { draining: { ok: false, detail: "draining: refusing new calls before stopping" } } : {}),
      }),
      extraRoutes: [
        (api: ApiRouter) => clusterRoutes(api, {
            nodeId: ctx.nodeId,
            deadAfterMs: config.cluster.deadAfterMs,
            nodes: store.nodes,
            homes,
            adminToken: () => config.adminToken,
            applicationSecret: (id) => store.applications.get(id)?.sharedSecret,
          }),
        ...started.filter((s) => s.routes).map((s) => (api: ApiRouter) => s.routes!(api)),
      ],
    });
    server = Bun.serve({
      hostname: config.http.host,
      port: config.http.port,
      fetch: hono.fetch,
      websocket,
      maxRequestBodySize: config.limits.maxHttpBodyBytes,
      ...(config.http.tls ? { tls: { cert: Bun.file(config.http.tls.certFile), key: Bun.file(config.http.tls.keyFile) } } : {}),
    });
  } catch (err) {
    await stopServices(started, Date.now() + 2000);
    await homes.stop();
    await retention.stop();
    await store.close();
    throw err;
  }

  const httpServer = server;
  const httpPort = httpServer.port ?? config.http.port;
  const scheme = config.http.tls ? "https" : "http";
  const url = `${scheme}://${config.http.host === "0.0.0.0" || config.http.host === "::" ? "127.0.0.1" : config.http.host}:${httpPort}`;
  const heartbeat = new NodeHeartbeat({
    nodes: store.nodes,
    identity: { nodeId: ctx.nodeId, sipAddress: config.cluster.sipAddress ?? sipAddressOf(config), httpUrl: config.cluster.httpUrl ?? url },
    intervalMs: config.cluster.heartbeatMs,
    load: () => nodeLoad(started),
    afterBeat: async () => {
      // Survivors close the call records dead nodes left open (only nodes sharing a database can die
      // unseen); channel homes and services renew what they hold. One failing does not hold back the others.
      const sweep = async () => {
        if (store.driver !== "postgres") return;
        const closed = await store.calls.closeCallsOfDeadNodes(config.cluster.deadAfterMs);
        if (closed > 0) log.warn("calls of dead nodes closed as interrupted", { count: closed });
      };
      const results = await Promise.allSettled([sweep(), homes.afterBeat(), ...started.map((service) => service.afterBeat?.())]);
      for (const result of results) if (result.status === "rejected") log.error("work after the heartbeat failed", { err: result.reason });
    },
  });
  await heartbeat.start();
  log.info("trunkline started", { version: VERSION, http: `${scheme}://${config.http.host}:${httpPort}`, database: config.database.url ? "postgres" : config.database.path });

  let reloading: Promise<unknown> = Promise.resolve();
  let stopping: Promise<void> | undefined;

  const reloadOnce = async (): Promise<{ ok: true } | { ok: false; errors: string[] }> => {
    let next: Config;
    try {
      next = await loadEffectiveConfig(options);
    } catch (err) {
      const errors = err instanceof ConfigError ? err.errors : [String(err)];
      log.error("reload rejected: config invalid, keeping the running config", { errors });
      return { ok: false, errors };
    }
    for (const key of ["http", "sip", "database", "cluster"] as const) {
      if (JSON.stringify(next[key]) !== JSON.stringify(config[key])) log.warn("config change needs a restart to take effect", { key });
    }
    // Keys read at start-up keep their running values so every part of the process agrees.
    next = { ...next, http: config.http, sip: config.sip, database: config.database, cluster: config.cluster };
    try {
      await applyConfigToStore(next, store);
    } catch (err) {
      log.error("reload rejected: writing the YAML objects failed, the previous ones stay", { err });
      return { ok: false, errors: [`applying the config to the database failed: ${(err as Error).message}`] };
    }
    config = next;
    setLogLevel(config.logLevel);
    applyMediaConfig(config.media);
    for (const service of started) {
      try {
        await service.reload?.(config);
      } catch (err) {
        log.error("service reload failed", { service: service.name, err });
      }
    }
    log.info("config reloaded");
    return { ok: true };
  };

  const drainThenStop = async (): Promise<void> => {
    draining = true;
    for (const service of started) service.drain?.();
    const graceSec = config.cluster.drainGraceSec;
    const liveCalls = () => nodeLoad(started).activeCalls;
    log.info("draining: new calls refused, live calls go on", { liveCalls: liveCalls(), graceSec });
    const left = await waitForNoCalls(liveCalls, Date.now() + graceSec * 1000);
    if (left > 0) log.warn("drain grace period over: ending the calls still up", { calls: left });
    else log.info("drained: no live calls");
  };

  let drainingThenStopping: Promise<void> | undefined;
  const app: App = {
    ctx,
    httpPort,
    url,
    reload() {
      const run = reloading.then(reloadOnce);
      reloading = run.catch(() => undefined);
      return run;
    },
    drainAndStop() {
      drainingThenStopping ??= drainThenStop().then(() => app.stop());
      return drainingThenStopping;
    },
    stop() {
      stopping ??= (async () => {
        const deadline = Date.now() + config.limits.shutdownGraceSec * 1000;
        log.info("stopping", { graceSec: config.limits.shutdownGraceSec });
        for (const service of started) service.drain?.();
        // Stop accepting connections first; in-flight requests get until the deadline.
        await withDeadline(httpServer.stop(false), deadline);
        await stopServices(started, deadline);
        await httpServer.stop(true);
        await heartbeat.stop();
        await homes.stop();
        await retention.stop();
        await store.close();
        log.info("stopped");
      })();
      return stopping;
    },
  };
  return app;
}

/** How often a drain looks at the live call count: the process exits at most this long after the last call ends. */
const DRAIN_POLL_MS = 100;

/** Resolves with the calls still up once there are none or the deadline passes. */
async function waitForNoCalls(liveCalls: () => number, deadline: number): Promise<number> {
  for (;;) {
    const live = liveCalls();
    if (live === 0 || Date.now() >= deadline) return live;
    await Bun.sleep(Math.min(DRAIN_POLL_MS, deadline - Date.now()));
  }
}

/** The host name as a node id ("single" when it has no usable characters). */
function defaultNodeId(): string {
  return hostname().replace(/[^A-Za-z0-9._-]/g, "").slice(0, 64) || "single";
}

/** host:port of sip.advertised, else of the first listener. */
function sipAddressOf(config: Config): string {
  const { advertised, listen } = config.sip;
  if (advertised) return `${advertised.host}:${advertised.port ?? 5060}`;
  const first = listen[0]!;
  return `${first.host}:${listenPort(first)}`;
}

function nodeLoad(services: Service[]): Omit<NodeLoad, "cpuPercent"> {
  const load = { activeCalls: 0, mediaLegs: 0 };
  for (const service of services) {
    const share = service.load?.();
    load.activeCalls += share?.activeCalls ?? 0;
    load.mediaLegs += share?.mediaLegs ?? 0;
  }
  return load;
}

async function readiness(store: Store, services: Service[]): Promise<Record<string, ReadinessCheck>> {
  const checks: Record<string, ReadinessCheck> = {};
  try {
    checks.database = (await store.healthy()) ? { ok: true } : { ok: false, detail: store.isOpen() ? "not answering" : "closed" };
  } catch (err) {
    checks.database = { ok: false, detail: (err as Error).message };
  }
  for (const service of services) {
    if (service.ready) checks[service.name] = service.ready();
  }
  return checks;
}

async function stopServices(services: Service[], deadline: number): Promise<void> {
  for (const service of [...services].reverse()) {
    try {
      await withDeadline(Promise.resolve(service.stop?.(deadline)), deadline);
    } catch (err) {
      log.error("service stop failed", { service: service.name, err });
    }
  }
}

/** Waits for `work` but no later than the deadline (a little slack lets a service's own cut-off run). */
async function withDeadline(work: Promise<unknown>, deadline: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, Math.max(0, deadline - Date.now()) + 100);
  });
  await Promise.race([work, timeout]);
  clearTimeout(timer);
}
