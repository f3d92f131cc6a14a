// Ids of rows written at call rate (src/store/ids.ts): the prefix and 32 hex digits of a UUIDv7,
// in the order they were made, so new keys land at the end of their indexes.
import { expect, test } from "bun:test";
import { timeOrderedId } from "../../src/store/ids.ts";

test("an id is the prefix and the 32 hex digits of a version 7 UUID", () => {
  const id = timeOrderedId("call");
  expect(id).toMatch(/^call_[0-9a-f]{12}7[0-9a-f]{3}[89ab][0-9a-f]{15}$/);
});

test("its first 48 bits are the time it was made, in milliseconds", () => {
  const before = Date.now();
  const id = timeOrderedId("rec");
  const after = Date.now();
  const millis = Number.parseInt(id.slice("rec_".length, "rec_".length + 12), 16);
  expect(millis).toBeGreaterThanOrEqual(before);
  expect(millis).toBeLessThanOrEqual(after);
});

test("ids made one after another sort in that order, within a millisecond too, and never repeat", () => {
  const ids = Array.from({ length: 20_000 }, () => timeOrderedId("call"));
  const sameMillisecond = ids.filter((id, i) => i > 0 && id.slice(0, 17) === ids[i - 1]!.slice(0, 17)).length;
  expect(sameMillisecond).toBeGreaterThan(0); // the loop made several in one millisecond
  for (let i = 1; i < ids.length; i++) expect(ids[i]! > ids[i - 1]!).toBe(true);
  expect(new Set(ids).size).toBe(ids.length);
});
