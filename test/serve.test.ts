// `bun main.ts serve` as its own process: it re-executes itself once with the server's allocator
// settings (src/allocator.ts), so the same process (PID) serves with them in its environment unless
// the operator set them; and a stop signal (or a SIGHUP) that comes while it starts is handled once up.
import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { SERVER_ALLOCATOR_ENV } from "../src/allocator.ts";
import { startTrunkline } from "./helpers/trunklineProcess.ts";
import { until } from "./helpers/until.ts";

const TOKEN = "serve-test-token-0123456789";
const yaml = `http: { host: 127.0.0.1, port: 0 }\nsip: { listen: [{ transport: udp, host: 127.0.0.1, port: 0 }] }\nadminToken: ${TOKEN}\ndatabase: { path: \${DIR}/t.db }\n`;

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

describe("serve's signals while it starts", () => {
  // The store's first line comes from inside the start: the rest of it (media workers, HTTP, SIP,
  // the heartbeat) takes far longer than a signal sent on that line takes to arrive.
  test("SIGTERM: it comes up, then drains and exits 0", async () => {
    let signalled = false;
    const tl = await startTrunkline(yaml, {
      onLine: (_line, { proc }) => {
        if (signalled) return;
        signalled = true;
        proc.kill("SIGTERM");
      },
    });
    expect(await tl.proc.exited).toBe(0);
    // The pipe's last lines may still be on their way to the reader.
    await until(() => tl.lines.some((l) => l.includes('"msg":"signal received"') && l.includes('"processSignal":"SIGTERM"')), { what: () => tl.lines.slice(-5) });
    expect(await tl.stop()).toBe(0);
  }, 60_000);

  test("SIGHUP: once up, it reloads the file as it is now", async () => {
    let signalled = false;
    const tl = await startTrunkline(yaml, {
      onLine: (_line, { proc, configPath }) => {
        if (signalled) return;
        signalled = true;
        // Changed after the start read the file, before it is up.
        writeFileSync(configPath, `${readFileSync(configPath, "utf8")}trunks: [{ id: after-start, domain: sip.example.com }]\n`);
        proc.kill("SIGHUP");
      },
    });
    try {
      const trunk = () => fetch(`${tl.url}/api/v1/trunks/after-start`, { headers: { authorization: `Bearer ${TOKEN}` } }).then((r) => r.status);
      await until(async () => (await trunk()) === 200, { what: () => ({ "the trunk added before the SIGHUP never appeared": tl.lines.slice(-5) }) });
    } finally {
      expect(await tl.stop()).toBe(0);
    }
  }, 60_000);
});
