import { describe, expect, test } from "bun:test";
import { SessionTimer } from "../../src/calls/sessionTimer.ts";
import { parseDtmfInfo } from "../../src/calls/dtmfInfo.ts";
import { SipResponse } from "../../src/sip/message.ts";

describe("RFC 4028 session timer", () => {
  test("the refresher refreshes at half the interval, again and again", async () => {
    let refreshes = 0;
    let expired = false;
    const timer = new SessionTimer({ intervalSec: 0.1, weRefresh: true, peerSupportsTimer: true }, { refresh: () => refreshes++, expire: () => (expired = true) });
    await Bun.sleep(130);
    timer.stop();
    expect(refreshes).toBe(2);
    expect(expired).toBe(false);
  });

  test("without the peer's refresh the session expires before the interval; a refresh postpones it", async () => {
    let expiredAt = 0;
    const started = Date.now();
    const timer = new SessionTimer({ intervalSec: 0.15, weRefresh: false, peerSupportsTimer: true }, { refresh: () => {}, expire: () => (expiredAt = Date.now()) });
    await Bun.sleep(60);
    timer.refreshedBy(new SipResponse(200, "OK"));
    await Bun.sleep(200);
    timer.stop();
    // §10: expiry at interval − min(32 s, interval/3) = 100 ms after the last refresh (at 60 ms).
    expect(expiredAt - started).toBeGreaterThanOrEqual(150);
    expect(expiredAt - started).toBeLessThan(220);
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
