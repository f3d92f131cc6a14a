// The long parser fuzz run (test/sip/parser-fuzz.test.ts runs a few thousand cases in `make test`).
// FUZZ_SECONDS (default 20) bounds the run; FUZZ_SEED picks the sequence. Exits non-zero on a failure.
import { checkInput, createMutator, fuzzSeeds } from "../test/sip/fuzz.ts";

export async function run(): Promise<void> {
  const seconds = Number(process.env.FUZZ_SECONDS ?? 20);
  const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
  const next = createMutator(seed, fuzzSeeds());
  const deadline = performance.now() + seconds * 1000;
  let cases = 0;
  let slowest = 0;
  const failures: string[] = [];
  while (performance.now() < deadline && failures.length < 10) {
    for (let i = 0; i < 1000; i++) {
      const input = next();
      const start = performance.now();
      let problem: string | undefined;
      try {
        problem = checkInput(input);
      } catch (e) {
        problem = `threw ${e instanceof Error ? e.stack : String(e)}`;
      }
      slowest = Math.max(slowest, performance.now() - start);
      cases++;
      if (problem) failures.push(`${problem}\n  input (base64): ${Buffer.from(input).toString("base64")}`);
    }
  }
  console.log(`parser fuzz: seed ${seed}, ${cases.toLocaleString("en-US")} cases in ${seconds} s, slowest case ${slowest.toFixed(1)} ms, ${failures.length} failures`);
  for (const f of failures) console.log(f);
  if (failures.length > 0) process.exitCode = 1;
}

if (import.meta.main) await run();
