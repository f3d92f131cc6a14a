// A few thousand fuzzed inputs with a fixed seed; the long run is bench/parser-fuzz.bench.ts.
import { expect, test } from "bun:test";
import { adversarialInputs, bestTimeMs, checkInput, createMutator, fuzzSeeds, runFuzz } from "./fuzz.ts";

// A hang shows up as seconds on every run of the input; the bound is loose because the machine is shared.
const HANG_MS = 250;

test("mutated corpus messages and random bytes: a value or a typed error, never a throw or a hang", () => {
  const outcome = runFuzz(createMutator(20261126, fuzzSeeds()), (cases) => cases < 3000);
  expect(outcome.failures).toEqual([]);
  expect(outcome.cases).toBe(3000);
  expect(bestTimeMs(outcome.slowestInput)).toBeLessThan(HANG_MS);
});

test("worst-case shapes near the size limits parse, serialize and re-parse in linear time", () => {
  for (const [name, input] of adversarialInputs()) {
    expect({ name, problem: checkInput(input) }).toEqual({ name, problem: undefined });
    expect({ name, ms: bestTimeMs(input) < HANG_MS }).toEqual({ name, ms: true });
  }
});
