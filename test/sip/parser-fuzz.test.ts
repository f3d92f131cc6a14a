// A few thousand fuzzed inputs with a fixed seed; the long run is bench/parser-fuzz.bench.ts.
import { expect, test } from "bun:test";
import { checkInput, createMutator, fuzzSeeds } from "./fuzz.ts";

test("mutated corpus messages and random bytes: a value or a typed error, never a throw or a hang", () => {
  const next = createMutator(20261126, fuzzSeeds());
  const failures: string[] = [];
  let slowest = 0;
  for (let i = 0; i < 3000; i++) {
    const input = next();
    const start = performance.now();
    let problem: string | undefined;
    try {
      problem = checkInput(input);
    } catch (e) {
      problem = `threw ${e instanceof Error ? e.stack : String(e)}`;
    }
    slowest = Math.max(slowest, performance.now() - start);
    if (problem && failures.length < 5) failures.push(`${problem}\n  input: ${JSON.stringify(new TextDecoder("latin1").decode(input).slice(0, 400))}`);
  }
  expect(failures).toEqual([]);
  expect(slowest).toBeLessThan(250); // generous: the machine may be busy; a hang would be seconds
});
