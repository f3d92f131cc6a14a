// The long parser fuzz run (test/sip/parser-fuzz.test.ts runs a few thousand cases in `make test`).
// FUZZ_SECONDS (default 20) bounds the run; FUZZ_SEED picks the sequence. Sets a failing exit code
// and prints each failing input (base64) on a property violation.
import { bestTimeMs, createMutator, fuzzSeeds, runFuzz } from "../test/sip/fuzz.ts";

export async function run(): Promise<void> {
  const seconds = Number(process.env.FUZZ_SECONDS ?? 20);
  const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
  const deadline = performance.now() + seconds * 1000;
  const outcome = runFuzz(createMutator(seed, fuzzSeeds()), (cases) => cases % 1000 !== 0 || performance.now() < deadline, 10);
  // the slowest case timed again: a stall of the machine does not repeat, a parser hang does
  const slowestAgainMs = bestTimeMs(outcome.slowestInput);
  if (slowestAgainMs > 1000) {
    outcome.failures.push(`hang: ${slowestAgainMs.toFixed(0)} ms\n  input (base64): ${Buffer.from(outcome.slowestInput).toString("base64")}`);
  }
  console.log(
    `parser fuzz: seed ${seed}, ${outcome.cases.toLocaleString("en-US")} cases in ${seconds} s, slowest case ` +
      `${outcome.slowestMs.toFixed(1)} ms (${slowestAgainMs.toFixed(2)} ms timed again), ${outcome.failures.length} failures`,
  );
  for (const f of outcome.failures) console.log(f);
  if (outcome.failures.length > 0) process.exitCode = 1;
}

if (import.meta.main) await run();
