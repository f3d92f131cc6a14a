// The overload decision (src/sip/overload.ts); the stack's use of it is in edge.test.ts, a real
// peer's in test/interop/sipp-overload.test.ts.
import { expect, test } from "bun:test";
import { OverloadGuard, type OverloadLimits, overloadReason } from "../../src/sip/overload.ts";
import { until } from "../helpers/until.ts";

const limits: OverloadLimits = { maxUnansweredInvites: 10, maxEventLoopLagMs: 100, retryAfterSec: 2 };

test("an INVITE is refused at the unanswered-INVITE limit or above the lag limit, admitted below both", () => {
  expect(overloadReason(9, 100, limits)).toBeUndefined();
  expect(overloadReason(10, 0, limits)).toBe("unanswered_invites");
  expect(overloadReason(0, 101, limits)).toBe("event_loop_lag");
  expect(overloadReason(50, 500, limits)).toBe("unanswered_invites");
});

test("a limit of 0 is off", () => {
  const off: OverloadLimits = { maxUnansweredInvites: 0, maxEventLoopLagMs: 0, retryAfterSec: 1 };
  expect(overloadReason(1_000_000, 1_000_000, off)).toBeUndefined();
});

test("the guard counts each refusal by reason and carries the Retry-After value", () => {
  const guard = new OverloadGuard(limits, () => 0);
  expect(guard.shouldShed(3)).toBe(false);
  expect(guard.shouldShed(10)).toBe(true);
  expect(guard.shouldShed(11)).toBe(true);
  expect(guard.counters).toEqual({ unanswered_invites: 2, event_loop_lag: 0 });
  expect(guard.retryAfter).toBe("2");
});

test("the lag probe measures how late its timer fires", async () => {
  let clock = 0;
  const guard = new OverloadGuard(limits, () => clock);
  guard.start();
  try {
    // Each firing is read at a clock 300 ms past the one expected: the loop was held that long.
    const probe = setInterval(() => {
      clock += 325;
    }, 5);
    await until(() => guard.eventLoopLagMs > 0);
    clearInterval(probe);
    expect(guard.eventLoopLagMs).toBeGreaterThan(100);
    expect(guard.shouldShed(0)).toBe(true);
    expect(guard.counters.event_loop_lag).toBe(1);
  } finally {
    guard.stop();
  }
});
