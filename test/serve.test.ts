// `bun main.ts serve` as its own process: it re-executes itself once with the server's allocator
// settings (src/allocator.ts), so the same process (PID) serves with them in its environment unless
// the operator set them; and a stop signal that comes while it starts stops it cleanly once up.
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { SERVER_ALLOCATOR_ENV } from "../src/allocator.ts";
import { startTrunkline } from "./helpers/trunklineProcess.ts";

const yaml = "http: { host: 127.0.0.1, port: 0 }\nsip: { listen: [{ transport: udp, host: 127.0.0.1, port: 0 }] }\nadminToken: allocator-test-token-0123456789\ndatabase: { path: ${DIR}/t.db }\n";

function environOf(pid: number): string[] {
  return readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
}

describe("serve's allocator settings", () => {
  test("the process that serves is the one started, with the settings added to its environment", async () => {
    expect(Object.keys(SERVER_ALLOCATOR_ENV)).toContain("MIMALLOC_PURGE_DELAY");
    const tl = await startTrunkline(yaml, { env: { TRUNKLINE_TEST_MARK: "kept" } });
    try {
      const environ = environOf(tl.proc.pid);
      for (const [name, value] of Object.entries(SERVER_ALLOCATOR_ENV)) expect(environ).toContain(`${name}=${value}`);
      expect(environ).toContain("TRUNKLINE_TEST_MARK=kept");
      expect(await (await fetch(`${tl.url}/healthz`)).json()).toEqual({ status: "ok" });
      // The re-executed process read the same arguments: the config file's database.
      expect(await Bun.file(`${tl.dir}/t.db`).exists()).toBe(true);
    } finally {
      expect(await tl.stop()).toBe(0);
    }
  }, 60_000);

  test("a value the operator set is kept", async () => {
    const tl = await startTrunkline(yaml, { env: { MIMALLOC_PURGE_DELAY: "250" } });
    try {
      expect(environOf(tl.proc.pid).filter((e) => e.startsWith("MIMALLOC_PURGE_DELAY="))).toEqual(["MIMALLOC_PURGE_DELAY=250"]);
    } finally {
      expect(await tl.stop()).toBe(0);
    }
  }, 60_000);
});

describe("serve's stop signals", () => {
  test("SIGTERM while the app is starting: it comes up, then drains and exits 0", async () => {
    const dir = mkdtempSync(join(tmpdir(), "trunkline-serve-"));
    try {
      writeFileSync(join(dir, "config.yaml"), yaml.replaceAll("${DIR}", dir));
      const proc = Bun.spawn([process.execPath, resolve(import.meta.dir, "../main.ts"), "serve", "--config", join(dir, "config.yaml")], {
        cwd: dir,
        env: { PATH: process.env.PATH ?? "" },
        stdin: "ignore",
        stdout: "pipe",
        stderr: "inherit",
      });
      const lines: string[] = [];
      const decoder = new TextDecoder();
      let signalled = false;
      let buffered = "";
      for await (const chunk of proc.stdout) {
        buffered += decoder.decode(chunk, { stream: true });
        lines.push(...buffered.split("\n").slice(0, -1));
        buffered = buffered.slice(buffered.lastIndexOf("\n") + 1);
        // The store's first line comes from inside the start: the rest of it (media workers, HTTP,
        // SIP, the heartbeat) takes far longer than this signal takes to arrive.
        if (!signalled && lines.length > 0) {
          proc.kill("SIGTERM");
          signalled = true;
        }
      }
      expect(await proc.exited).toBe(0);
      const messages = lines.map((l) => (JSON.parse(l) as { msg: string }).msg);
      expect(messages).toContain("signal received");
      expect(messages.indexOf("trunkline started")).toBeGreaterThan(-1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
