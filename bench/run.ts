// `make bench`: runs every bench/*.bench.ts (or those named on the command line) one after another,
// so their ratios are measured side by side on the same machine in one run. Each file runs in a
// process of its own (this script again, with BENCH_FILE): benches that measure their process's CPU
// must not be charged for what earlier ones left behind (the SIP transaction bench alone leaves
// ≈ 100 MB of transactions in their wait states; the WebRTC bench, run last in one process, measured
// a quarter fewer participants per core than alone). Goals come back through a file (goals.ts) and
// are printed together at the end.
import { Glob } from "bun";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { SERVER_ALLOCATOR_ENV } from "../src/allocator.ts";
import { goalTable, readGoals } from "./goals.ts";

async function runOne(file: string): Promise<void> {
  const module = (await import(`./${file}`)) as { run?: () => Promise<void> };
  if (typeof module.run !== "function") throw new Error(`${file} does not export run()`);
  await module.run();
}

const single = process.env.BENCH_FILE;
if (single) {
  try {
    await runOne(single);
  } catch (error) {
    console.log(`FAILED: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exitCode = 1;
  }
  // A bench may leave sockets or workers open; its figures are out, so its process ends here.
  process.exit();
}

const only = process.argv.slice(2);
const files = [...new Glob("*.bench.ts").scanSync(import.meta.dir)]
  .sort()
  .filter((f) => only.length === 0 || only.some((name) => f.startsWith(name)));

console.log(`# Trunkline benchmarks — ${cpus()[0]?.model ?? "unknown CPU"}, ${cpus().length} cores, Bun ${Bun.version}`);
// A bench that fails is reported and the run goes on, so one broken bench costs only its own figures.
const failed: string[] = [];
const goalsDir = mkdtempSync(join(tmpdir(), "trunkline-bench-goals-"));
const goalsFile = join(goalsDir, "goals.jsonl");
try {
  for (const file of files) {
    console.log(`\n## ${file}`);
    const child = Bun.spawn([process.execPath, import.meta.path], {
      // The allocator settings `serve` runs with (src/allocator.ts), so in-process benches measure the
      // media path as the connector runs it; a value set in the environment wins.
      env: { ...SERVER_ALLOCATOR_ENV, ...process.env, BENCH_FILE: file, BENCH_GOALS_FILE: goalsFile },
      stdio: ["inherit", "inherit", "inherit"],
    });
    if ((await child.exited) !== 0) failed.push(file);
  }
  console.log(`\n## Goals of this run\n\n${goalTable(readGoals(goalsFile))}`);
} finally {
  rmSync(goalsDir, { recursive: true, force: true });
}
if (failed.length > 0) {
  console.log(`\nbenchmarks that failed: ${failed.join(", ")}`);
  process.exitCode = 1;
}
