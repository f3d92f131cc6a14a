// A few thousand fuzzed inputs with a fixed seed; the long run is bench/parser-fuzz.bench.ts.
import { expect, test } from "bun:test";
import { adversarialInputs, checkInput, createMutator, fuzzSeeds, runFuzz } from "./fuzz.ts";

test("mutated corpus messages and random bytes: a value or a typed error, never a throw or a hang", () => {
  const outcome = runFuzz(createMutator(20261126, fuzzSeeds()), (cases) => cases < 3000);
  expect(outcome.failures).toEqual([]);
  expect(outcome.cases).toBe(3000);
  expect(outcome.slowestMs).toBeLessThan(250); // generous: the machine may be busy; a hang would be seconds
});

test("worst-case shapes near the size limits parse, serialize and re-parse", () => {
  for (const [name, input] of adversarialInputs()) {
    const start = performance.now();
    expect({ name, problem: checkInput(input) }).toEqual({ name, problem: undefined });
    expect(performance.now() - start).toBeLessThan(1000); // linear work: milliseconds, not seconds
  }
});
