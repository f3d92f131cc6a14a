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
for (const file of files) {
  console.log(`\n## ${file}`);
  const module = (await import(`./${file}`)) as { run?: () => Promise<void> };
  if (typeof module.run !== "function") throw new Error(`${file} does not export run()`);
  await module.run();
}

console.log(`\n## Goals of this run\n\n${goalTable()}`);
