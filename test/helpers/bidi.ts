// Drives Debian's stock Firefox ESR over WebDriver BiDi (https://w3c.github.io/webdriver-bidi/),
// which it speaks natively: playwright-core cannot drive a stock Firefox, and no other client is a
// dependency. Firefox runs headless with a fresh profile (prefs in its user.js) and listens on a
// port of its choosing, which it prints to stderr; every command is a JSON message with an id.
//
//   const ff = await launchFirefox({ prefs: { "media.navigator.streams.fake": true } });
//   try {
//     await ff.navigate(`${url}/ui/`);
//     const title = await ff.call(() => document.title);
//     await ff.screenshot("test-artifacts/page.png");
//   } finally {
//     await ff.close(); // always: the browser process dies even when the test failed
//   }
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { until } from "./until.ts";

export type Pref = string | number | boolean;

export interface FirefoxOptions {
  /** user.js prefs, on top of the ones that keep a test browser off the network (QUIET_PREFS). */
  prefs?: Record<string, Pref>;
  viewport?: { width: number; height: number };
  executable?: string;
  /** Extra environment, e.g. PULSE_SERVER (see pulseaudio.ts). */
  env?: Record<string, string>;
  /** How long to wait for Firefox to start listening (default 20 s). */
  startTimeoutMs?: number;
}

export interface LogEntry {
  level: string;
  text: string;
}

export interface Firefox {
  /** The top-level browsing context (tab) commands go to. */
  readonly context: string;
  /** Console messages and uncaught page errors so far (log.entryAdded), for assertion messages. */
  readonly log: LogEntry[];
  /** One BiDi command; rejects with the protocol's error and message. */
  send<T = Record<string, unknown>>(method: string, params: Record<string, unknown>): Promise<T>;
  /** Calls `handler` with the params of every event named `method` (subscribe to it first). */
  on(method: string, handler: (params: Record<string, unknown>) => void): void;
  navigate(url: string): Promise<void>;
  /** Runs `fn` in the page with JSON-like `args` and returns its (awaited) result. */
  call<A extends Primitive[], R>(fn: (...args: A) => R, ...args: A): Promise<Awaited<R>>;
  /** Polls `fn` in the page until it returns a truthy value; throws after 10 s, naming `what`. */
  waitFor<A extends Primitive[]>(what: string, fn: (...args: A) => unknown, ...args: A): Promise<void>;
  /** Saves a PNG of the whole page. */
  screenshot(path: string): Promise<void>;
  /** Closes the browser (killing it if it does not exit at once) and deletes its profile. */
  close(): Promise<void>;
  /** Firefox's stderr so far (bounded), for assertion messages. */
  stderr(): string;
}

type Primitive = string | number | boolean | null | undefined;

/** Prefs that keep a test Firefox quiet: no update, telemetry, safebrowsing or captive-portal traffic. */
export const QUIET_PREFS: Record<string, Pref> = {
  "app.update.enabled": false,
  "app.update.auto": false,
  "browser.shell.checkDefaultBrowser": false,
  "browser.startup.homepage_override.mstone": "ignore",
  "browser.aboutwelcome.enabled": false,
  "datareporting.policy.dataSubmissionEnabled": false,
  "datareporting.healthreport.uploadEnabled": false,
  "toolkit.telemetry.enabled": false,
  "toolkit.telemetry.unified": false,
  "network.connectivity-service.enabled": false,
  "network.captive-portal-service.enabled": false,
  "network.dns.disablePrefetch": true,
  "network.prefetch-next": false,
  "browser.safebrowsing.malware.enabled": false,
  "browser.safebrowsing.phishing.enabled": false,
  "browser.safebrowsing.downloads.enabled": false,
  "browser.safebrowsing.downloads.remote.enabled": false,
  "browser.safebrowsing.blockedURIs.enabled": false,
  "browser.safebrowsing.provider.google4.updateURL": "",
  "browser.safebrowsing.provider.google.updateURL": "",
  "browser.safebrowsing.provider.mozilla.updateURL": "",
  "extensions.update.enabled": false,
  "extensions.getAddons.cache.enabled": false,
  "extensions.blocklist.enabled": false,
  "services.settings.server": "http://127.0.0.1:9/",
  "browser.newtabpage.enabled": false,
  "browser.startup.page": 0,
  "browser.topsites.contile.enabled": false,
  "browser.ping-centre.telemetry": false,
  "media.gmp-manager.updateEnabled": false,
  "media.gmp-gmpopenh264.enabled": false,
  "network.trr.mode": 5,
  "browser.region.network.url": "",
  "browser.region.update.enabled": false,
  "geo.provider.network.url": "",
  "identity.fxaccounts.enabled": false,
};

const LISTENING = /WebDriver BiDi listening on (ws:\/\/\S+)/;
const STDERR_LIMIT = 64 * 1024;

function userJs(prefs: Record<string, Pref>): string {
  return Object.entries(prefs)
    .map(([name, value]) => `user_pref(${JSON.stringify(name)}, ${JSON.stringify(value)});\n`)
    .join("");
}

/** A BiDi RemoteValue (script.evaluate/callFunction result) as a plain JS value. */
function fromRemote(v: { type: string; value?: unknown }): unknown {
  switch (v.type) {
    case "undefined":
      return undefined;
    case "null":
      return null;
    case "number":
      // Non-finite numbers and -0 arrive as strings (BiDi §7.3 SpecialNumber).
      return typeof v.value === "string" ? Number(v.value) : v.value;
    case "string":
    case "boolean":
      return v.value;
    case "bigint":
      return BigInt(v.value as string);
    case "array":
      return ((v.value ?? []) as { type: string }[]).map(fromRemote);
    case "object":
      return Object.fromEntries(((v.value ?? []) as [string, { type: string }][]).map(([k, x]) => [k, fromRemote(x)]));
    default:
      return { type: v.type };
  }
}

/** A JS primitive as a BiDi LocalValue (script.callFunction argument). */
function toLocal(v: Primitive): Record<string, unknown> {
  if (v === undefined) return { type: "undefined" };
  if (v === null) return { type: "null" };
  if (typeof v === "number") return { type: "number", value: Number.isFinite(v) && !Object.is(v, -0) ? v : String(v) };
  return { type: typeof v, value: v };
}

export async function launchFirefox(o: FirefoxOptions = {}): Promise<Firefox> {
  const profile = mkdtempSync(join(tmpdir(), "trunkline-firefox-"));
  writeFileSync(join(profile, "user.js"), userJs({ ...QUIET_PREFS, ...o.prefs }));
  const proc = Bun.spawn(
    [o.executable ?? "firefox-esr", "--headless", "--no-remote", "--remote-debugging-port=0", "--profile", profile, "about:blank"],
    {
      stdin: "ignore",
      stdout: "ignore",
      stderr: "pipe",
      env: { ...process.env, ...o.env, MOZ_HEADLESS: "1", MOZ_CRASHREPORTER_DISABLE: "1", MOZ_DISABLE_AUTO_SAFE_MODE: "1" },
    },
  );
  const killOnExit = () => proc.kill("SIGKILL");
  process.once("exit", killOnExit);
  let stderr = "";
  let closed = false;
  const cleanup = async () => {
    if (closed) return;
    closed = true;
    proc.kill("SIGKILL");
    await proc.exited;
    process.off("exit", killOnExit);
    rmSync(profile, { recursive: true, force: true });
  };

  try {
    const endpoint = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`Firefox did not start listening within ${o.startTimeoutMs ?? 20_000} ms:\n${stderr}`)), o.startTimeoutMs ?? 20_000);
      void (async () => {
        const decoder = new TextDecoder();
        for await (const chunk of proc.stderr) {
          stderr = (stderr + decoder.decode(chunk, { stream: true })).slice(-STDERR_LIMIT);
          const match = LISTENING.exec(stderr);
          if (match) {
            clearTimeout(timer);
            resolve(match[1]!);
          }
        }
        clearTimeout(timer);
        reject(new Error(`Firefox exited (${await proc.exited}) before listening:\n${stderr}`));
      })();
    });

    const ws = new WebSocket(`${endpoint}/session`);
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener("open", () => resolve(), { once: true });
      ws.addEventListener("error", () => reject(new Error(`cannot connect to ${endpoint}/session`)), { once: true });
    });
    let nextId = 1;
    const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void; method: string }>();
    const handlers = new Map<string, ((params: Record<string, unknown>) => void)[]>();
    ws.addEventListener("message", (message) => {
      const data = JSON.parse(String(message.data)) as {
        type: string;
        id?: number;
        result?: unknown;
        error?: string;
        message?: string;
        method?: string;
        params?: Record<string, unknown>;
      };
      if (data.type === "event") {
        for (const handler of handlers.get(data.method ?? "") ?? []) handler(data.params ?? {});
        return;
      }
      const waiter = data.id === undefined ? undefined : pending.get(data.id);
      if (!waiter) return;
      pending.delete(data.id!);
      if (data.type === "success") waiter.resolve(data.result);
      else waiter.reject(new Error(`${waiter.method}: ${data.error}: ${data.message}`));
    });
    ws.addEventListener("close", () => {
      for (const waiter of pending.values()) waiter.reject(new Error(`${waiter.method}: Firefox closed the connection`));
      pending.clear();
    });
    const send = <T>(method: string, params: Record<string, unknown>) =>
      new Promise<T>((resolve, reject) => {
        const id = nextId++;
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject, method });
        ws.send(JSON.stringify({ id, method, params }));
      });

    await send("session.new", { capabilities: {} });
    const tree = await send<{ contexts: { context: string }[] }>("browsingContext.getTree", { maxDepth: 0 });
    const context = tree.contexts[0]?.context;
    if (!context) throw new Error("Firefox has no browsing context");
    if (o.viewport) await send("browsingContext.setViewport", { context, viewport: o.viewport });
    const log: LogEntry[] = [];
    handlers.set("log.entryAdded", [(p) => log.push({ level: String(p.level), text: String(p.text) })]);
    await send("session.subscribe", { events: ["log.entryAdded"] });

    const firefox: Firefox = {
      context,
      log,
      send,
      on(method, handler) {
        handlers.set(method, [...(handlers.get(method) ?? []), handler]);
      },
      async navigate(url) {
        await send("browsingContext.navigate", { context, url, wait: "complete" });
      },
      async call(fn, ...args) {
        const result = await send<{ type: string; result?: { type: string }; exceptionDetails?: { text: string } }>("script.callFunction", {
          functionDeclaration: fn.toString(),
          arguments: args.map(toLocal),
          target: { context },
          awaitPromise: true,
          // Runs as if the user did it: the page may need a user activation (autoplay, media).
          userActivation: true,
        });
        if (result.type === "exception") throw new Error(`in the page: ${result.exceptionDetails?.text}`);
        return fromRemote(result.result!) as never;
      },
      async waitFor(what, fn, ...args) {
        await until(async () => Boolean(await firefox.call(fn, ...args)), { timeoutMs: 10_000, pollMs: 50, what: () => `in the page: ${what}` });
      },
      async screenshot(path) {
        const { data } = await send<{ data: string }>("browsingContext.captureScreenshot", { context, origin: "document" });
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, Buffer.from(data, "base64"));
      },
      async close() {
        if (closed) return;
        // A polite close first (Firefox flushes and ends its content processes), then the kill.
        await Promise.race([send("browser.close", {}).catch(() => undefined), Bun.sleep(2000)]);
        ws.close();
        await Promise.race([proc.exited, Bun.sleep(3000)]);
        await cleanup();
      },
      stderr: () => stderr,
    };
    return firefox;
  } catch (error) {
    await cleanup();
    throw error;
  }
}
