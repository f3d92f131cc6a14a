// Runs Kamailio (5.6) as a real peer in tests: foreground (-DD), logging to stderr (-E), on a
// loopback UDP+TCP port, with a config from test/fixtures/kamailio/. The stderr lines are kept so
// tests can wait for what the config's xlog() prints.
//
//   const k = await startKamailio({ config: "test/fixtures/kamailio/registrar.cfg" });
//   ... register to 127.0.0.1:k.port ...
//   await k.waitFor(/TRUNKLINE saved aor=sip:alice@/);
//   await k.stop();
//
// `tls: true` adds a TLS listener on k.tlsPort with the test certificate (test/fixtures/tls/) and
// defines TLS_CONFIG for the config's tls module (see registrar-tls.cfg); `host: "::1"` puts every
// listener on IPv6 loopback instead; `defines` become `-A NAME=VALUE` (strings quoted), and `dir` is
// the run's temporary directory (for files the config names, such as a dispatcher list).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { freePort } from "./sipp.ts";
import { until } from "./until.ts";

export interface KamailioRun {
  port: number;
  /** The run's temporary directory, removed by stop(). */
  dir: string;
  /** The TLS listener's port when started with `tls: true`. */
  tlsPort?: number;
  /** Every stderr line so far. */
  readonly lines: string[];
  /** Resolves with the first line (already seen or future) matching `pattern`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  stop(): Promise<void>;
}

export async function startKamailio(o: {
  config: string;
  port?: number;
  readyTimeoutMs?: number;
  tls?: boolean;
  host?: "127.0.0.1" | "::1";
  /** Files written into the run directory before start, by name, each value built from that directory's path. */
  files?: Record<string, (dir: string) => string>;
  defines?: Record<string, string | number | ((dir: string) => string)>;
}): Promise<KamailioRun> {
  const host = o.host ?? "127.0.0.1";
  const port = o.port ?? (await freePort());
  const tlsPort = o.tls ? await freePort() : undefined;
  const listenHost = host.includes(":") ? `[${host}]` : host;
  const listeners = [`udp:${listenHost}:${port}`, `tcp:${listenHost}:${port}`, ...(tlsPort ? [`tls:${listenHost}:${tlsPort}`] : [])];
  const runDir = mkdtempSync(join(tmpdir(), "kamailio-"));
  const tlsDefine = tlsPort ? ["-A", `TLS_CONFIG="${writeTlsProfile(runDir)}"`] : [];
  for (const [name, content] of Object.entries(o.files ?? {})) writeFileSync(join(runDir, name), content(runDir));
  const defines = Object.entries(o.defines ?? {}).flatMap(([name, value]) => {
    const v = typeof value === "function" ? value(runDir) : value;
    return ["-A", typeof v === "number" ? `${name}=${v}` : `${name}="${v}"`];
  });
  const proc = Bun.spawn(
    ["kamailio", "-DD", "-E", "-f", resolve(o.config), ...tlsDefine, ...defines, ...listeners.flatMap((l) => ["-l", l]), "-Y", runDir, "-w", runDir],
    { stdout: "ignore", stderr: "pipe", stdin: "ignore" },
  );
  const lines: string[] = [];
  const waiters = new Set<{ pattern: RegExp; resolve: (line: string) => void }>();
  void (async () => {
    const decoder = new TextDecoder();
    let partial = "";
    for await (const chunk of proc.stderr) {
      partial += decoder.decode(chunk, { stream: true });
      const parts = partial.split("\n");
      partial = parts.pop() ?? "";
      for (const line of parts) {
        lines.push(line);
        for (const w of [...waiters]) if (w.pattern.test(line)) { waiters.delete(w); w.resolve(line); }
      }
    }
  })();

  const waitFor = (pattern: RegExp, timeoutMs = 10_000) => {
    const seen = lines.find((l) => pattern.test(l));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise<string>((resolveLine, reject) => {
      const waiter = { pattern, resolve: (line: string) => { clearTimeout(timer); resolveLine(line); } };
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(new Error(`kamailio never logged ${pattern}; last lines:\n${lines.slice(-15).join("\n")}`));
      }, timeoutMs);
      waiters.add(waiter);
    });
  };

  const stop = async () => {
    proc.kill("SIGTERM");
    const exited = await Promise.race([proc.exited.then(() => true), Bun.sleep(3000).then(() => false)]);
    if (!exited) proc.kill("SIGKILL");
    rmSync(runDir, { recursive: true, force: true });
  };

  // Ready once the TCP listener accepts (every listener is bound before the workers start).
  try {
    await until(
      async () => {
        if (proc.exitCode !== null) throw new Error(`kamailio exited with ${proc.exitCode}`);
        return Bun.connect({ hostname: host, port, socket: { data() {} } }).then((s) => { s.end(); return true; }, () => false);
      },
      { timeoutMs: o.readyTimeoutMs ?? 10_000, pollMs: 50, what: () => `kamailio not ready on ${port}` },
    );
  } catch (error) {
    await stop();
    throw new Error(`${(error as Error).message}:\n${lines.join("\n")}`);
  }
  return { port, dir: runDir, ...(tlsPort ? { tlsPort } : {}), lines, waitFor, stop };
}

/** The tls module's profile: the server side presents the test certificate, asks clients for none. */
function writeTlsProfile(runDir: string): string {
  const path = join(runDir, "tls.cfg");
  writeFileSync(
    path,
    [
      "[server:default]",
      "method = TLSv1.2+",
      "verify_certificate = no",
      "require_certificate = no",
      `certificate = ${resolve(import.meta.dir, "../fixtures/tls/cert.pem")}`,
      `private_key = ${resolve(import.meta.dir, "../fixtures/tls/key.pem")}`,
      "",
    ].join("\n"),
  );
  return path;
}
