// `serve` re-executes itself once with the server's allocator settings (src/allocator.ts): the same
// process (PID) then serves, with the settings in its environment, unless the operator set them.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
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
