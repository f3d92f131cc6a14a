// Trunkline as its own process (`bun main.ts serve`), as an operator runs it: a YAML file in a temp
// directory, HTTP on a free port (read back from the start-up log line), SIP where the YAML says.
//
//   const tl = await startTrunkline(yaml);            // the YAML may use ${DIR} for the temp directory
//   await fetch(`${tl.url}/metrics`); tl.lines;       // JSON log lines so far
//   await tl.stop();                                  // SIGTERM, waits for the exit, removes the directory
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";

const repo = resolve(import.meta.dir, "../..");

export interface TrunklineProcess {
  url: string;
  dir: string;
  lines: string[];
  proc: Subprocess<"ignore", "pipe", "inherit">;
  stop(): Promise<number>;
}

/**
 * `bunArgs`: Bun's own options before main.ts (a bench's `--preload` probe). `onLine`: each log line
 * as it is read, from the first (a test acting while the app starts).
 */
export async function startTrunkline(
  yaml: string,
  o: { env?: Record<string, string>; bunArgs?: string[]; onLine?: (line: string, starting: { proc: Subprocess; configPath: string }) => void } = {},
): Promise<TrunklineProcess> {
  const dir = mkdtempSync(join(tmpdir(), "trunkline-proc-"));
  const configPath = join(dir, "config.yaml");
  writeFileSync(configPath, yaml.replaceAll("${DIR}", dir));
  const proc = Bun.spawn([process.execPath, ...(o.bunArgs ?? []), join(repo, "main.ts"), "serve", "--config", configPath, "--log-level", "info"], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? "", ...o.env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "inherit",
  });
  const lines: string[] = [];
  const url = await new Promise<string>((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`no start-up line within 20 s:\n${lines.join("\n")}`)), 20_000);
    void (async () => {
      const decoder = new TextDecoder();
      let buffered = "";
      // Keeps reading after start-up so the pipe never fills.
      for await (const chunk of proc.stdout) {
        buffered += decoder.decode(chunk, { stream: true });
        let newline;
        while ((newline = buffered.indexOf("\n")) >= 0) {
          const line = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          lines.push(line);
          o.onLine?.(line, { proc, configPath });
          const started = /"msg":"trunkline started".*"http":"[^"]*:(\d+)"/.exec(line);
          if (started) {
            clearTimeout(timer);
            resolveUrl(`http://127.0.0.1:${started[1]}`);
          }
        }
      }
      clearTimeout(timer);
      reject(new Error(`trunkline exited (${await proc.exited}) before starting:\n${lines.join("\n")}`));
    })();
  }).catch((err: unknown) => {
    proc.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
    throw err;
  });
  return {
    url,
    dir,
    lines,
    proc,
    async stop() {
      proc.kill("SIGTERM");
      const code = await proc.exited;
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}
