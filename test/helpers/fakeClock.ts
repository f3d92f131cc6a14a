// A fake clock for every test of the file that calls `fakeClockPerTest()` (jest.useFakeTimers:
// setTimeout, Date.now and performance.now), so timer edges are checked at exact times.
import { afterEach, beforeEach, jest } from "bun:test";

export function fakeClockPerTest(): void {
  beforeEach(() => {
    jest.useFakeTimers();
  });
  afterEach(() => {
    jest.useRealTimers();
  });
}

/** Moves the fake clock on, firing every timer that falls due on the way. */
export const advance = (ms: number) => jest.advanceTimersByTime(ms);

/** An error callback for code that must report none. */
export const rethrow = (error: unknown) => {
  throw error;
};
