import { afterEach, describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { subscribeEvents, type AnyEvent } from "../../src/events.ts";
import { metrics } from "../../src/metrics.ts";
import type { ClientCallControl } from "../../src/api/routes/client.ts";
import { verifyClientToken } from "../../src/webrtc/tokens.ts";
import { clientHears } from "../helpers/hearing.ts";
import { until } from "../helpers/until.ts";
import { createTestClient, type TestClient } from "../helpers/weriftClient.ts";
import { ADMIN_TOKEN, APP, startHarness, type Harness } from "./harness.ts";

let h: Harness | undefined;
const clients: TestClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await h?.stop();
  h = undefined;
});

function harness(o: Parameters<typeof startHarness>[0] = {}): Harness {
  h = startHarness(o);
  return h;
}

async function joined(hx: Harness, clientId: string): Promise<TestClient> {
  const client = createTestClient("opus");
  clients.push(client);
  const res = await hx.join(hx.token({ clientId }), await client.offer());
  expect(res.status).toBe(200);
  await client.accept(((await res.json()) as { sdp: string }).sdp);
  await client.connected();
  return client;
}

/** The next event of `type`, with the Date.now() at which it was emitted; fails after `timeoutMs`. */
function nextEvent(type: AnyEvent["type"], timeoutMs = 10_000): Promise<{ event: AnyEvent; at: number }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`no ${type} event within ${timeoutMs} ms`));
    }, timeoutMs);
    const stop = subscribeEvents((e) => {
      if (e.type === type) {
        stop();
        clearTimeout(timer);
        resolve({ event: e, at: Date.now() });
      }
    });
  });
}

const openFds = () => readdirSync("/proc/self/fd").length;

describe("client token errors", () => {
  test("missing, expired, wrongly signed and unknown-application tokens get 401 JSON", async () => {
    const hx = harness();
    const expired = hx.token({ exp: Math.floor(Date.now() / 1000) - 5 });
    const wrongKey = hx.token({}, "not-the-secret");
    const unknownApp = hx.token({ applicationId: "nope" });
    const cases: [string | undefined, string][] = [
      [undefined, "missing_token"],
      ["garbage", "malformed_token"],
      [expired, "token_expired"],
      [wrongKey, "bad_signature"],
      [unknownApp, "bad_signature"],
    ];
    for (const [token, code] of cases) {
      const res = await fetch(`${hx.url}/api/v1/client/join`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify({ sdp: "v=0\r\n" }),
      });
      expect(res.status).toBe(401);
      expect(res.headers.get("content-type")).toContain("application/json");
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
    }
  });

  test("a token for another channel gets 403 JSON", async () => {
    const hx = harness();
    const res = await hx.join(hx.token({ channelId: "room1" }), "v=0\r\n", { channelId: "room2" });
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({ error: { code: "wrong_channel", message: "the token is not valid for this channel", field: "channelId" } });
  });

  test("leaving another channel's connection is refused with 403", async () => {
    const hx = harness();
    await joined(hx, "alice");
    const res = await fetch(`${hx.url}/api/v1/client/connections/alice`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${hx.token({ channelId: "elsewhere" })}` },
    });
    expect(res.status).toBe(403);
    expect(hx.registry.participants(APP.id, "room1")).toHaveLength(1);
  });
});

describe("cross-origin use", () => {
  test("a page on another origin may call the client API (bearer tokens, no cookies)", async () => {
    const hx = harness();
    const preflight = await fetch(`${hx.url}/api/v1/client/join`, {
      method: "OPTIONS",
      headers: { origin: "https://app.example.com", "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe("*");
    expect(preflight.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("authorization");
    const refused = await fetch(`${hx.url}/api/v1/client/join`, { method: "POST", headers: { origin: "https://app.example.com" } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get("access-control-allow-origin")).toBe("*");
  });
});

describe("join", () => {
  test("malformed SDP gets 400 and leaves no participant, session or socket behind", async () => {
    const hx = harness();
    const offerer = createTestClient("opus");
    clients.push(offerer);
    const good = await offerer.offer();
    await hx.join(hx.token(), "v=0\r\n"); // opens the keep-alive HTTP connection before counting
    const before = openFds();
    const bad = [
      "hello",
      "v=0\r\nm=audio\r\n",
      "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n",
      good.replace(/a=fingerprint:.*\r\n/, ""),
      good.replace(/a=rtpmap:\d+ opus\/48000\/2/, "a=rtpmap:96 VP8/90000").replace(/m=audio (\d+) (\S+) \d+/, "m=audio $1 $2 96"),
    ];
    for (const sdp of bad) {
      const res = await hx.join(hx.token(), sdp);
      expect(res.status).toBe(400);
      const body = (await res.json()) as { error: { code: string; field?: string } };
      expect(body.error.field).toBe("sdp");
    }
    const missing = await hx.join(hx.token(), "");
    expect(missing.status).toBe(400);
    expect(hx.registry.participants(APP.id, "room1")).toEqual([]);
    expect(hx.sessions.size).toBe(0);
    // Sockets close asynchronously: wait for it (a loaded machine may need more than a moment).
    await until(() => openFds() <= before, { what: () => ({ before, now: openFds() }) });
  });

  test("a client without clientId in its token gets a generated one", async () => {
    const hx = harness();
    const client = createTestClient("opus");
    clients.push(client);
    const res = await hx.join(hx.token({ clientId: undefined, userId: "u9" }), await client.offer());
    const body = (await res.json()) as { clientId: string };
    expect(body.clientId).toMatch(/^cl_/);
    expect(hx.registry.participants(APP.id, "room1")).toMatchObject([{ id: body.clientId, userId: "u9", kind: "webrtc" }]);
  });
});

describe("leaving", () => {
  test("DELETE removes the client, emits participant.left with its userId and counts it", async () => {
    const hx = harness();
    const seen: AnyEvent[] = [];
    const stop = subscribeEvents((e) => seen.push(e));
    const metric = (line: RegExp) => Number(line.exec(metrics.render())?.[1] ?? 0);
    const leftBefore = metric(/^trunkline_webrtc_leaves_total\{reason="left"\} (\d+)$/m);
    const clientsBefore = metric(/^trunkline_webrtc_clients (-?\d+)$/m);
    try {
      await joined(hx, "bob");
      expect(metric(/^trunkline_webrtc_clients (-?\d+)$/m)).toBe(clientsBefore + 1);
      const res = await fetch(`${hx.url}/api/v1/client/connections/bob`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${hx.token()}` },
      });
      expect(res.status).toBe(204);
      expect(hx.registry.participants(APP.id, "room1")).toEqual([]);
      expect(metric(/^trunkline_webrtc_clients (-?\d+)$/m)).toBe(clientsBefore);
      expect(metric(/^trunkline_webrtc_leaves_total\{reason="left"\} (\d+)$/m)).toBe(leftBefore + 1);
      const kinds = seen.filter((e) => e.type.startsWith("participant.")).map((e) => [e.type, (e.data as { userId: string }).userId]);
      expect(kinds).toEqual([
        ["participant.joined", "bob"],
        ["participant.left", "bob"],
      ]);
    } finally {
      stop();
    }
  });

  test("a client that vanishes mid-call is removed within the media timeout", async () => {
    const mediaMs = 1500;
    const hx = harness({ timeouts: { connectMs: 5000, mediaMs } });
    const stay = await joined(hx, "stays");
    stay.startSending(500);
    const gone = await joined(hx, "vanishes");
    gone.startSending(700);
    // Mid-call: the one that stays hears the one about to vanish.
    await clientHears(stay, 700);
    const left = nextEvent("participant.left");
    // No goodbye (this test client sends no DTLS close_notify): nothing more on the wire, neither
    // RTP nor RTCP, as when a laptop lid closes.
    gone.stopSending();
    const lastSentAt = gone.lastSentAt!;
    await gone.close();
    const { event, at } = await left;
    expect(event.data).toMatchObject({ participantId: "vanishes", reason: "media-timeout" });
    // Not before the media timeout has passed since its last packet; then at the next liveness
    // check (every 500 ms), with seconds to spare for a loaded machine.
    expect(at - lastSentAt).toBeGreaterThanOrEqual(mediaMs);
    expect(at - lastSentAt).toBeLessThan(mediaMs + 5000);
    expect(hx.registry.participants(APP.id, "room1").map((p) => p.id)).toEqual(["stays"]);
    expect(hx.sessions.size).toBe(1);
  });

  test("a client that only listens (sends no RTP) stays: its RTCP reports show it is there", async () => {
    const mediaMs = 1500;
    const hx = harness({ timeouts: { connectMs: 5000, mediaMs } });
    const talker = await joined(hx, "talks");
    talker.startSending(500);
    const listener = await joined(hx, "listens");
    const left: unknown[] = [];
    const stop = subscribeEvents((e) => void (e.type === "participant.left" && left.push(e.data)));
    try {
      // Three media timeouts' worth of audio reached the listener: the window has passed.
      const from = listener.packetsReceived;
      await until(() => listener.packetsReceived - from >= (3 * mediaMs) / 20, { what: () => ({ received: listener.packetsReceived - from }) });
      expect(left).toEqual([]);
      expect(hx.registry.participants(APP.id, "room1").map((p) => p.id).sort()).toEqual(["listens", "talks"]);
    } finally {
      stop();
    }
  });

  test("a client that never completes ICE is removed after the connect timeout", async () => {
    const connectMs = 800;
    const hx = harness({ timeouts: { connectMs, mediaMs: 5000 } });
    const client = createTestClient("opus");
    clients.push(client);
    const offer = await client.offer();
    const left = nextEvent("participant.left");
    const joinSentAt = Date.now();
    const res = await hx.join(hx.token({ clientId: "ghost" }), offer);
    expect(res.status).toBe(200); // the answer is never applied, so ICE never starts
    expect(hx.registry.participants(APP.id, "room1")).toHaveLength(1);
    const { event, at } = await left;
    expect(event.data).toMatchObject({ participantId: "ghost", reason: "connect-timeout" });
    // Not before the connect timeout (counted from the join, which came after joinSentAt).
    expect(at - joinSentAt).toBeGreaterThanOrEqual(connectMs);
    expect(hx.registry.participants(APP.id, "room1")).toEqual([]);
  });
});

describe("operator control (admin API)", () => {
  test("GET /channels lists participants; PATCH mutes; DELETE removes a browser and refuses a phone (a call)", async () => {
    const hx = harness();
    const admin = (method: string, path: string, body?: unknown) =>
      fetch(`${hx.url}/api/v1${path}`, {
        method,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body ? { "content-type": "application/json" } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
    await joined(hx, "carol");
    const phone = await hx.registry.joinWhenReady({ applicationId: APP.id, channelId: "room1", id: "call_1", kind: "sip", userId: "+15550100", callId: "call_1" }, async () => () => {});
    if ("error" in phone) throw new Error(phone.error);
    const left: (string | undefined)[] = [];
    const stop = subscribeEvents((e) => {
      if (e.type === "participant.left" && e.data.participantId === "carol") left.push(e.data.reason);
    });
    try {
      const channels = (await (await admin("GET", "/channels")).json()) as { applicationId: string; channelId: string; participants: { id: string; kind: string; muted: boolean }[] }[];
      expect(channels.map((c) => [c.applicationId, c.channelId, c.participants.map((p) => [p.id, p.kind, p.muted])])).toEqual([
        [APP.id, "room1", [["carol", "webrtc", false], ["call_1", "sip", false]]],
      ]);

      const base = `/applications/${APP.id}/channels/room1/participants`;
      const muted = await admin("PATCH", `${base}/carol`, { muted: true });
      expect(muted.status).toBe(200);
      expect(await muted.json()).toMatchObject({ id: "carol", muted: true });
      expect(hx.registry.participants(APP.id, "room1").find((p) => p.id === "carol")?.muted).toBe(true);
      expect((await admin("PATCH", `${base}/nobody`, { muted: true })).status).toBe(404);
      expect((await admin("PATCH", `${base}/carol`, { muted: "yes" })).status).toBe(400);

      const refused = await admin("DELETE", `${base}/call_1`);
      expect(refused.status).toBe(409);
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("is_a_call");

      expect((await admin("DELETE", `${base}/carol`)).status).toBe(204);
      expect(hx.registry.participants(APP.id, "room1").map((p) => p.id)).toEqual(["call_1"]);
      expect(left).toEqual(["removed"]);
      expect((await admin("GET", "/channels", undefined)).status).toBe(200);
      expect((await fetch(`${hx.url}/api/v1/channels`)).status).toBe(401);
    } finally {
      stop();
      phone.leave();
    }
  });
});

describe("events WebSocket", () => {
  test("streams the participant list after a first-message auth, and refuses a bad token", async () => {
    const hx = harness();
    const ws = new WebSocket(`${hx.url.replace("http", "ws")}/api/v1/client/events`);
    const messages: { type: string; participants?: { id: string }[] }[] = [];
    ws.onmessage = (m) => messages.push(JSON.parse(String(m.data)));
    await new Promise((r) => (ws.onopen = r));
    ws.send(JSON.stringify({ type: "auth", token: hx.token({ clientId: "watcher" }) }));
    const lists = () => messages.filter((m) => m.type === "participants").map((m) => m.participants!.map((p) => p.id));
    // Authenticated: the first list (nobody yet) has come.
    await until(() => lists().length > 0, { what: () => messages });
    expect(lists()[0]).toEqual([]);
    await joined(hx, "carol");
    await until(() => JSON.stringify(lists().at(-1)) === '["carol"]' && messages.some((m) => m.type === "event"), { what: () => messages });
    ws.close();

    const refused = new WebSocket(`${hx.url.replace("http", "ws")}/api/v1/client/events`);
    await new Promise((r) => (refused.onopen = r));
    const closed = new Promise<CloseEvent>((r) => (refused.onclose = r));
    refused.send(JSON.stringify({ type: "auth", token: hx.token({}, "wrong-secret") }));
    expect((await closed).code).toBe(4401);
  });

  test("a bad Authorization header or token query on the upgrade gets 401 JSON", async () => {
    const hx = harness();
    const res = await fetch(`${hx.url}/api/v1/client/events`, { headers: { authorization: "Bearer x.y.z" } });
    expect(res.status).toBe(401);
    const query = await fetch(`${hx.url}/api/v1/client/events?token=${hx.token({}, "wrong-secret")}`);
    expect(query.status).toBe(401);
    expect(((await query.json()) as { error: { code: string } }).error.code).toBe("bad_signature");
  });

  test("a token in the URL streams at once", async () => {
    const hx = harness();
    const ws = new WebSocket(`${hx.url.replace("http", "ws")}/api/v1/client/events?token=${hx.token()}`);
    const first = await new Promise<{ type: string }>((resolve) => (ws.onmessage = (m) => resolve(JSON.parse(String(m.data)))));
    expect(first).toEqual({ type: "participants", participants: [] } as { type: string });
    ws.close();
  });
});

describe("dialling", () => {
  const calls: ClientCallControl & { dialled: string[] } = {
    dialled: [],
    async dial({ claims, to }) {
      calls.dialled.push(`${claims.clientId}->${to}`);
      return { ok: true, callId: "call-1" };
    },
    async hangUp({ callId }) {
      return callId === "call-1" ? { ok: true } : { ok: false, status: 404, code: "not_found", message: "no such call" };
    },
    async sendDtmf() {
      return { ok: true };
    },
  };
  const post = (hx: Harness, path: string, token: string, body: object) =>
    fetch(`${hx.url}/api/v1/client${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });

  test("needs the dial role; with it the calls layer dials and the call can be hung up", async () => {
    const hx = harness({ calls });
    expect((await post(hx, "/calls", hx.token({ clientId: "c1", roles: [] }), { to: "+15550100" })).status).toBe(403);
    const res = await post(hx, "/calls", hx.token({ clientId: "c1" }), { to: "+15550100" });
    expect(res.status).toBe(201);
    expect(await res.json()).toEqual({ id: "call-1", to: "+15550100" });
    expect(calls.dialled).toEqual(["c1->+15550100"]);
    expect((await post(hx, "/calls/call-1/dtmf", hx.token(), { digits: "12#" })).status).toBe(204);
    expect((await post(hx, "/calls/call-1/dtmf", hx.token(), { digits: "12x" })).status).toBe(400);
    const del = (id: string) => fetch(`${hx.url}/api/v1/client/calls/${id}`, { method: "DELETE", headers: { authorization: `Bearer ${hx.token()}` } });
    expect((await del("call-1")).status).toBe(204);
    expect((await del("other")).status).toBe(404);
  });

  test("a token without clientId may only dial as a client connected to its channel", async () => {
    const hx = harness({ calls });
    const token = hx.token({ clientId: undefined });
    expect((await post(hx, "/calls", token, { to: "100" })).status).toBe(400);
    expect((await post(hx, "/calls", token, { to: "100", clientId: "stranger" })).status).toBe(403);
  });

  test("without a calls layer dialling answers 503", async () => {
    const hx = harness();
    expect((await post(hx, "/calls", hx.token({ clientId: "c1" }), { to: "100" })).status).toBe(503);
  });
});

describe("admin token minting", () => {
  test("mints a verifiable token for an application, 404 for an unknown one, 401 without admin auth", async () => {
    const hx = harness();
    const mint = (app: string, auth: string, body: object) =>
      fetch(`${hx.url}/api/v1/applications/${app}/tokens`, {
        method: "POST",
        headers: { authorization: `Bearer ${auth}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const requestedAt = Date.now();
    const res = await mint(APP.id, ADMIN_TOKEN, { channelId: "lobby", userId: "u1", roles: ["dial"], ttlSec: 120 });
    const answeredAt = Date.now();
    expect(res.status).toBe(200);
    const { token, expiresAt } = (await res.json()) as { token: string; expiresAt: string };
    const verified = verifyClientToken(token, APP.secret);
    expect(verified).toMatchObject({ ok: true, value: { applicationId: APP.id, channelId: "lobby", userId: "u1", roles: ["dial"] } });
    // 120 s after the moment of minting (exp is in whole seconds).
    expect(Date.parse(expiresAt)).toBeGreaterThanOrEqual(requestedAt - 1000 + 120_000);
    expect(Date.parse(expiresAt)).toBeLessThanOrEqual(answeredAt + 120_000);
    expect((await mint("nope", ADMIN_TOKEN, { channelId: "lobby" })).status).toBe(404);
    expect((await mint(APP.id, "wrong", { channelId: "lobby" })).status).toBe(401);
    const invalid = await mint(APP.id, ADMIN_TOKEN, { channelId: "" });
    expect(invalid.status).toBe(400);
    expect(((await invalid.json()) as { error: { field: string } }).error.field).toBe("channelId");
  });
});
