// State that client requests create is bounded: concurrent joins cannot overfill a channel, a
// channel has a bounded number of event streams, and sockets waiting for their auth message are
// limited per source address and in total.
import { afterEach, describe, expect, test } from "bun:test";
import { MAX_UNAUTHENTICATED, MAX_UNAUTHENTICATED_PER_SOURCE, UnauthenticatedSockets } from "../../src/api/routes/clientEvents.ts";
import { until } from "../helpers/until.ts";
import { createTestClient, type TestClient } from "../helpers/weriftClient.ts";
import { APP, startHarness, type Harness } from "./harness.ts";

let h: Harness | undefined;
const clients: TestClient[] = [];
const sockets: WebSocket[] = [];
afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.close();
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await h?.stop();
  h = undefined;
});

/** A WebSocket to the events endpoint, resolved once open or closed (whichever comes first). */
async function eventSocket(hx: Harness, token?: string): Promise<{ ws: WebSocket; closed: Promise<CloseEvent>; messages: { type: string }[]; opened: boolean }> {
  const ws = new WebSocket(`${hx.url.replace("http", "ws")}/api/v1/client/events${token ? `?token=${token}` : ""}`);
  sockets.push(ws);
  const messages: { type: string }[] = [];
  ws.onmessage = (m) => messages.push(JSON.parse(String(m.data)));
  const closed = new Promise<CloseEvent>((resolve) => (ws.onclose = resolve));
  const opened = await Promise.race([new Promise<boolean>((resolve) => (ws.onopen = () => resolve(true))), closed.then(() => false)]);
  return { ws, closed, messages, opened };
}

describe("bounded client state", () => {
  test("concurrent joins never put more clients into a channel than maxParticipantsPerChannel", async () => {
    const hx = (h = startHarness({ maxParticipantsPerChannel: 2 }));
    const offers = await Promise.all(
      [0, 1, 2, 3, 4].map(async () => {
        const client = createTestClient("opus");
        clients.push(client);
        return client.offer();
      }),
    );
    const answers = await Promise.all(offers.map(async (offer) => (await hx.join(hx.token(), offer)).status));
    expect(answers.sort()).toEqual([200, 200, 409, 409, 409]);
    expect(hx.registry.participants(APP.id, "room1")).toHaveLength(2);
    expect(hx.sessions.joiningChannels).toBe(0);
  });

  test("a channel has at most maxEventStreamsPerChannel event streams; a closed one frees its place", async () => {
    const hx = (h = startHarness({ maxEventStreamsPerChannel: 2 }));
    const first = await eventSocket(hx, hx.token());
    const second = await eventSocket(hx, hx.token());
    await until(() => first.messages.length > 0 && second.messages.length > 0);
    const third = await eventSocket(hx, hx.token());
    expect((await third.closed).code).toBe(4429);
    expect(third.messages).toEqual([]);
    expect(hx.registry.watcherCount(APP.id, "room1")).toBe(2);
    // Another channel is not affected.
    const elsewhere = await eventSocket(hx, hx.token({ channelId: "room2" }));
    await until(() => elsewhere.messages.length > 0);

    first.ws.close();
    await until(() => hx.registry.watcherCount(APP.id, "room1") === 1);
    const fourth = await eventSocket(hx, hx.token());
    await until(() => fourth.messages.some((m) => m.type === "participants"));
  });

  test("sockets waiting for their auth message are limited per source; a socket that authenticates frees its place", async () => {
    const hx = (h = startHarness());
    const waiting: Awaited<ReturnType<typeof eventSocket>>[] = [];
    for (let i = 0; i < MAX_UNAUTHENTICATED_PER_SOURCE; i++) waiting.push(await eventSocket(hx));
    expect(waiting.every((s) => s.opened)).toBe(true);
    const extra = await eventSocket(hx);
    expect((await extra.closed).code).toBe(1013);

    waiting[0]!.ws.send(JSON.stringify({ type: "auth", token: hx.token() }));
    await until(() => waiting[0]!.messages.length > 0);
    const next = await eventSocket(hx);
    next.ws.send(JSON.stringify({ type: "auth", token: hx.token() }));
    await until(() => next.messages.some((m) => m.type === "participants"));
  });

  test("the waiting-socket count is capped in total and keeps no entry for a source with none left", () => {
    const waiting = new UnauthenticatedSockets();
    const sources = Math.ceil(MAX_UNAUTHENTICATED / MAX_UNAUTHENTICATED_PER_SOURCE) + 1;
    let taken = 0;
    for (let s = 0; s < sources; s++) for (let i = 0; i < MAX_UNAUTHENTICATED_PER_SOURCE; i++) if (waiting.take(`10.0.0.${s}`)) taken++;
    expect(taken).toBe(MAX_UNAUTHENTICATED);
    expect(waiting.take("192.0.2.1")).toBe(false);
    for (let s = 0; s < sources; s++) for (let i = 0; i < MAX_UNAUTHENTICATED_PER_SOURCE; i++) if (s < sources - 1) waiting.release(`10.0.0.${s}`);
    expect(waiting.sources).toBe(0);
    expect(waiting.take("192.0.2.1")).toBe(true);
  });
});
