// `make bench`: runs every bench/*.bench.ts (or those named on the command line) one after another,
// so their ratios are measured side by side on the same machine in one run.
import { Glob } from "bun";
import { cpus } from "node:os";
import { goalTable } from "./goals.ts";

const only = process.argv.slice(2);
const files = [...new Glob("*.bench.ts").scanSync(import.meta.dir)]
  .sort()
  .filter((f) => only.length === 0 || only.some((name) => f.startsWith(name)));

console.log(`# Trunkline benchmarks — ${cpus()[0]?.model ?? "unknown CPU"}, ${cpus().length} cores, Bun ${Bun.version}`);
// A bench that fails is reported and the run goes on, so one broken bench costs only its own figures.
const failed: string[] = [];
for (const file of files) {
  console.log(`\n## ${file}`);
  try {
    const module = (await import(`./${file}`)) as { run?: () => Promise<void> };
    if (typeof module.run !== "function") throw new Error(`${file} does not export run()`);
    await module.run();
  } catch (error) {
    failed.push(file);
    console.log(`FAILED: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  }
}

console.log(`\n## Goals of this run\n\n${goalTable()}`);
if (failed.length > 0) {
  console.log(`\nbenchmarks that failed: ${failed.join(", ")}`);
  process.exitCode = 1;
}
