import { afterEach, beforeEach, describe, expect, jest, test } from "bun:test";
import { SessionTimer } from "../../src/calls/sessionTimer.ts";
import { parseDtmfInfo } from "../../src/calls/dtmfInfo.ts";
import { SipResponse } from "../../src/sip/message.ts";

describe("RFC 4028 session timer", () => {
  // A fake clock: the timer's deadlines are checked exactly, however loaded the machine is.
  beforeEach(() => {
    jest.useFakeTimers();
  });
  afterEach(() => {
    jest.useRealTimers();
  });

  test("the refresher refreshes at half the interval, again and again", () => {
    let refreshes = 0;
    let expired = false;
    const timer = new SessionTimer({ intervalSec: 0.1, weRefresh: true, peerSupportsTimer: true }, { refresh: () => refreshes++, expire: () => (expired = true) });
    jest.advanceTimersByTime(49);
    expect(refreshes).toBe(0);
    jest.advanceTimersByTime(81);
    timer.stop();
    expect(refreshes).toBe(2);
    expect(expired).toBe(false);
  });

  test("without the peer's refresh the session expires before the interval; a refresh postpones it", () => {
    let expiredAt = 0;
    const started = Date.now();
    const timer = new SessionTimer({ intervalSec: 0.15, weRefresh: false, peerSupportsTimer: true }, { refresh: () => {}, expire: () => (expiredAt = Date.now()) });
    jest.advanceTimersByTime(60);
    timer.refreshedBy(new SipResponse(200, "OK"));
    jest.advanceTimersByTime(200);
    timer.stop();
    // §10: expiry at interval − min(32 s, interval/3) = 100 ms after the last refresh (at 60 ms).
    expect(expiredAt - started).toBe(160);
  });
});

describe("DTMF in SIP INFO", () => {
  test("dtmf-relay and dtmf bodies give the digit and duration", () => {
    expect(parseDtmfInfo("application/dtmf-relay", "Signal=#\r\nDuration=250\r\n")).toEqual({ digit: "#", durationMs: 250 });
    expect(parseDtmfInfo("application/dtmf-relay", "Signal= 11\nDuration=100")).toEqual({ digit: "#", durationMs: 100 });
    expect(parseDtmfInfo("application/dtmf", "7")).toEqual({ digit: "7" });
  });

  test("garbage is malformed and other types are unsupported", () => {
    expect(parseDtmfInfo("application/dtmf-relay", "Signal=X")).toBeUndefined();
    expect(parseDtmfInfo("application/dtmf-relay", "Duration=100")).toBeUndefined();
    expect(parseDtmfInfo("text/plain", "1")).toBe("unsupported");
  });
});
