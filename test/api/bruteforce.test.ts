// Guessing bearer secrets: failed authentications are counted per source address; past the limit
// the address gets 429 (JSON reason, Retry-After) while other addresses are unaffected. The state
// per address is bounded in number and forgotten once it means nothing.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import http from "node:http";
import { AuthThrottle, throttleKey } from "../../src/api/authThrottle.ts";
import { metrics } from "../../src/metrics.ts";
import { startHarness as startWebrtcHarness } from "../webrtc/harness.ts";
import { ADMIN_TOKEN, startHarness, type Harness } from "./harness.ts";

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  json: any;
}

/** An HTTP request sent from `localAddress` (any 127.0.0.0/8 address works on loopback). */
function requestFrom(localAddress: string, url: string, o: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: o.method ?? "GET", headers: o.headers ?? {}, localAddress }, (res) => {
      let text = "";
      res.on("data", (chunk) => (text += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, json: text ? JSON.parse(text) : undefined }));
    });
    req.on("error", reject);
    req.end(o.body);
  });
}

const failures = (scheme: string, outcome: string) => metrics.counter("trunkline_http_auth_failures_total", "", ["scheme", "outcome"]).get({ scheme, outcome });

describe("AuthThrottle", () => {
  test("an address may fail `burst` times, then `perMinute`; refused addresses are told when to retry", () => {
    let now = 1_000_000;
    const throttle = new AuthThrottle({ burst: 3, perMinute: 6, maxAddresses: 100, now: () => now });
    for (let i = 0; i < 3; i++) {
      expect(throttle.retryAfterSec("a")).toBe(0);
      throttle.failed("a");
    }
    expect(throttle.retryAfterSec("a")).toBe(10);
    expect(throttle.retryAfterSec("b")).toBe(0);
    now += 9_000;
    expect(throttle.retryAfterSec("a")).toBe(1);
    now += 1_000;
    expect(throttle.retryAfterSec("a")).toBe(0);
    throttle.failed("a");
    expect(throttle.retryAfterSec("a")).toBe(10);
    throttle.forget("a");
    expect(throttle.retryAfterSec("a")).toBe(0);
  });

  test("at most maxAddresses are tracked (the one quiet longest goes first); quiet entries expire after a full refill", () => {
    let now = 0;
    const throttle = new AuthThrottle({ burst: 1, perMinute: 60, maxAddresses: 100, now: () => now });
    for (let i = 0; i < 150; i++) throttle.failed(`10.0.${i >> 8}.${i & 255}`);
    expect(throttle.size).toBe(100);
    expect(throttle.retryAfterSec("10.0.0.0")).toBe(0);
    expect(throttle.retryAfterSec("10.0.0.149")).toBe(1);
    now += 999;
    throttle.failed("192.0.2.1");
    expect(throttle.size).toBe(100);
    now += 1;
    throttle.failed("192.0.2.2");
    expect(throttle.size).toBe(2);
  });

  test("addresses are counted as IPv4, IPv4-mapped IPv6 as IPv4, IPv6 per /64", () => {
    expect(throttleKey("192.0.2.7")).toBe("192.0.2.7");
    expect(throttleKey("::ffff:192.0.2.7")).toBe("192.0.2.7");
    expect(throttleKey("2001:db8:1:2:aaaa::1")).toBe("2001:db8:1:2::/64");
    expect(throttleKey("2001:db8:1:2:bbbb:cccc:dddd:eeee")).toBe("2001:db8:1:2::/64");
    expect(throttleKey("2001:db8::1")).toBe("2001:db8:0:0::/64");
    expect(throttleKey("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
    expect(throttleKey("::1")).toBe("0:0:0:0::/64");
  });
});

describe("admin API under a token-guessing attack", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness("", undefined, "warn", { http: "authFailures: { burst: 3, perMinute: 1 }" });
  });
  afterAll(() => h.close());

  test("bad tokens from one address turn into 429 with a reason and Retry-After; a good token from another address still works", async () => {
    const url = `${h.app.url}/api/v1/trunks`;
    const rejectedBefore = failures("admin", "rejected");
    const throttledBefore = failures("admin", "throttled");
    for (const authorization of ["Bearer guess-1", "Bearer guess-2", ""]) {
      expect((await requestFrom("127.0.0.2", url, { headers: { authorization } })).status).toBe(401);
    }
    const refused = await requestFrom("127.0.0.2", url, { headers: { authorization: "Bearer guess-4" } });
    expect(refused.status).toBe(429);
    expect(refused.json).toEqual({ error: { code: "too_many_auth_failures", message: expect.stringContaining("retry in 60 s") } });
    expect(refused.headers["retry-after"]).toBe("60");
    // The right token from the throttled address is not even looked at.
    expect((await requestFrom("127.0.0.2", url, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).status).toBe(429);

    expect((await requestFrom("127.0.0.3", url, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).status).toBe(200);
    expect(failures("admin", "rejected") - rejectedBefore).toBe(3);
    expect(failures("admin", "throttled") - throttledBefore).toBe(2);
    const exposition = await (await fetch(`${h.app.url}/metrics`)).text();
    expect(exposition).toContain('trunkline_http_auth_failures_total{scheme="admin",outcome="throttled"}');
  });

  test("the OpenAPI document lists 429 on authenticated routes only", async () => {
    const doc = (await h.call("GET", "/api/v1/openapi.json")).json;
    expect(doc.paths["/api/v1/trunks"].get.responses["429"].description).toContain("Retry-After");
    expect(doc.paths["/healthz"].get.responses["429"]).toBeUndefined();
  });

  test("the admin token clears an address's failures", async () => {
    const url = `${h.app.url}/api/v1/trunks`;
    for (let i = 0; i < 2; i++) expect((await requestFrom("127.0.0.4", url, { headers: { authorization: "Bearer typo" } })).status).toBe(401);
    expect((await requestFrom("127.0.0.4", url, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await requestFrom("127.0.0.4", url, { headers: { authorization: "Bearer typo" } })).status).toBe(401);
    expect((await requestFrom("127.0.0.4", url, { headers: { authorization: "Bearer typo" } })).status).toBe(429);
  });
});

describe("client API under a token-guessing attack", () => {
  const w = startWebrtcHarness({ authFailures: { burst: 2, perMinute: 1 } });
  afterAll(() => w.stop());

  test("forged client tokens count too; a genuine client token buys no fresh guesses; expired tokens are not guesses", async () => {
    const join = (from: string, token: string) =>
      requestFrom(from, `${w.url}/api/v1/client/join`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ sdp: "v=0" }),
      });
    const before = failures("client", "throttled");
    const expired = w.token({ exp: Math.floor(Date.now() / 1000) - 10 });
    for (let i = 0; i < 3; i++) expect((await join("127.0.0.5", expired)).json.error.code).toBe("token_expired");

    expect((await join("127.0.0.5", w.token({}, "forged-secret"))).status).toBe(401);
    // A genuine token (its bad SDP gets 400: it was let through) does not clear the failure.
    expect((await join("127.0.0.5", w.token())).status).toBe(400);
    expect((await join("127.0.0.5", w.token({}, "forged-secret"))).status).toBe(401);
    const refused = await join("127.0.0.5", w.token());
    expect(refused.status).toBe(429);
    expect(refused.json.error.code).toBe("too_many_auth_failures");
    expect(refused.headers["retry-after"]).toBe("60");
    const events = await requestFrom("127.0.0.5", `${w.url}/api/v1/client/events?token=${w.token()}`);
    expect(events.status).toBe(429);

    expect((await join("127.0.0.6", w.token())).status).toBe(400);
    expect(failures("client", "throttled") - before).toBe(2);
  });

  test("a WebSocket whose first message carries a forged token counts as a failure, on sockets opened before too", async () => {
    const forged = w.token({}, "forged-secret");
    const sockets = await Promise.all(
      [0, 1, 2].map(async () => {
        const ws = new WebSocket(`${w.url.replace("http", "ws")}/api/v1/client/events`);
        await new Promise((resolve) => (ws.onopen = resolve));
        return ws;
      }),
    );
    const closes: { code: number; reason: string }[] = [];
    for (const ws of sockets) {
      const closed = new Promise<CloseEvent>((resolve) => (ws.onclose = resolve));
      ws.send(JSON.stringify({ type: "auth", token: forged }));
      const { code, reason } = await closed;
      closes.push({ code, reason });
    }
    expect(closes.map((c) => c.code)).toEqual([4401, 4401, 4401]);
    expect(closes[1]!.reason).toContain("signature");
    expect(closes[2]!.reason).toContain("too many failed authentications");
    const upgrade = await fetch(`${w.url}/api/v1/client/events`, { headers: { upgrade: "websocket" } });
    expect(upgrade.status).toBe(429);
  });
});
