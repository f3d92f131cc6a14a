// install.sh into a temporary prefix: binary, config from the example, systemd unit; idempotent
// and never overwriting an existing config.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const repo = resolve(import.meta.dir, "../..");
let dir: string;
let binary: string;

// Copying a 100 MB executable twice can take seconds on a loaded machine.
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "trunkline-install-"));
  binary = join(dir, "trunkline");
  const built = Bun.spawnSync([process.execPath, "build", "--compile", "main.ts", "src/media-worker.ts", "--outfile", binary], { cwd: repo, stderr: "pipe" });
  if (built.exitCode !== 0) throw new Error(built.stderr.toString());
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function install(...args: string[]) {
  const run = Bun.spawnSync(["bash", join(repo, "install.sh"), "--prefix", join(dir, "prefix"), "--binary", binary, ...args], {
    stdout: "pipe",
    stderr: "pipe",
  });
  return { code: run.exitCode, out: run.stdout.toString() + run.stderr.toString() };
}

test("installs binary, config and unit; a second run keeps the edited config", () => {
  const units = join(dir, "units");
  const first = install("--unit-dir", units, "--data-dir", join(dir, "data"));
  expect(first.code).toBe(0);
  const installed = join(dir, "prefix", "bin", "trunkline");
  expect(Bun.spawnSync([installed, "--version"]).stdout.toString()).toStartWith("trunkline ");
  const config = join(dir, "prefix", "etc", "trunkline", "config.yaml");
  expect(readFileSync(config, "utf8")).toBe(readFileSync(join(repo, "config.example.yaml"), "utf8"));
  expect(statSync(config).mode & 0o777).toBe(0o640);
  const unit = readFileSync(join(units, "trunkline.service"), "utf8");
  expect(unit).toContain(`ExecStart=${installed} serve --config ${config} --db ${join(dir, "data")}/trunkline.db`);
  expect(unit).toContain("ExecReload=/bin/kill -HUP $MAINPID");

  writeFileSync(config, "# edited by the operator\n");
  const second = install("--unit-dir", units, "--data-dir", join(dir, "data"));
  expect(second.code).toBe(0);
  expect(second.out).toContain("kept existing");
  expect(readFileSync(config, "utf8")).toBe("# edited by the operator\n");
}, 30_000);

test("rejects unknown options and a missing binary", () => {
  expect(install("--frobnicate").code).toBe(1);
  const missing = Bun.spawnSync(["bash", join(repo, "install.sh"), "--prefix", join(dir, "p2"), "--binary", join(dir, "nope")], { stderr: "pipe" });
  expect(missing.exitCode).toBe(1);
  expect(missing.stderr.toString()).toContain("not found");
});
