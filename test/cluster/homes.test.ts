// Channel homes: the lease rows on both drivers (claim, lose to a live home, renew, release, take
// over from a dead node or an expired lease; PostgreSQL's notices), the in-memory placement on two
// nodes of one PostgreSQL (a known home answered without the database, released when the channel's
// mixer closes, taken over once its node is dead), a single SQLite node homing everything, and the
// signed route ticket of a 302.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ChannelHomes, type OpenChannels } from "../../src/cluster/homes.ts";
import { HOME_TICKET_TTL_MS, signHomeTicket, verifyHomeTicket } from "../../src/cluster/homeTicket.ts";
import type { ChannelKey, HomeNotice } from "../../src/store/channelHomes.ts";
import { openPostgresStore, openStore, type Store } from "../../src/store/index.ts";
import { createDatabase, startPostgres, type Postgres } from "../helpers/postgres.ts";
import { until } from "../helpers/until.ts";

let pg: Postgres | undefined;
let databases = 0;
const dirs: string[] = [];
const stores: Store[] = [];

beforeAll(async () => {
  pg = await startPostgres();
}, 60_000);
afterAll(async () => {
  await pg?.stop();
});
afterEach(async () => {
  for (const store of stores.splice(0)) await store.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function postgresPair(): Promise<[Store, Store]> {
  const url = await createDatabase(pg!, `homes_${++databases}`);
  const a = await openPostgresStore({ url, nodeId: "node-1" });
  const b = await openPostgresStore({ url, nodeId: "node-2" });
  stores.push(a, b);
  return [a, b];
}

function sqliteStore(): Store {
  const dir = mkdtempSync(join(tmpdir(), "trunkline-homes-"));
  dirs.push(dir);
  const store = openStore(join(dir, "t.db"), undefined, { nodeId: "single" });
  stores.push(store);
  return store;
}

const beat = (store: Store, nodeId: string, host: string) =>
  store.nodes.beat({ nodeId, sipAddress: `${host}:5060`, httpUrl: `http://${host}:8080`, load: { activeCalls: 0, mediaLegs: 0, cpuPercent: 0 } }, { starting: false });

const lobby: ChannelKey = { applicationId: "app1", channelId: "lobby" };
const LONG = { leaseMs: 60_000, deadAfterMs: 60_000 };

describe.each(["sqlite", "postgres"] as const)("lease rows on %s", (driver) => {
  const stores2 = async (): Promise<[Store, Store]> => {
    if (driver === "postgres") return postgresPair();
    const one = sqliteStore();
    return [one, one];
  };

  test("the first claim wins; another node's loses and learns the home's addresses; the holder's own claim renews it", async () => {
    const [a, b] = await stores2();
    await beat(a, "node-1", "127.0.0.2");
    await beat(b, "node-2", "127.0.0.3");
    expect(await a.homes.claim(lobby, "node-1", LONG)).toEqual({ won: true });
    expect(await b.homes.claim(lobby, "node-2", LONG)).toEqual({ won: false, home: { nodeId: "node-1", sipAddress: "127.0.0.2:5060", httpUrl: "http://127.0.0.2:8080" } });
    expect(await a.homes.claim(lobby, "node-1", LONG)).toEqual({ won: true });
    const [row] = await b.homes.list();
    expect(row).toMatchObject({ ...lobby, nodeId: "node-1" });
    expect(row!.leaseExpiresInMs).toBeGreaterThan(50_000);
  });

  test("renew extends only the node's own leases; release frees the channel for another node", async () => {
    const [a, b] = await stores2();
    await beat(a, "node-1", "127.0.0.2");
    await beat(b, "node-2", "127.0.0.3");
    const other = { applicationId: "app1", channelId: "other" };
    await a.homes.claim(lobby, "node-1", { leaseMs: 1000, deadAfterMs: 60_000 });
    await b.homes.claim(other, "node-2", LONG);
    expect(await a.homes.renew("node-1", 60_000)).toEqual([lobby]);
    expect((await a.homes.list()).find((h) => h.channelId === "lobby")!.leaseExpiresInMs).toBeGreaterThan(50_000);
    await b.homes.release(lobby, "node-2"); // not its lease: nothing happens
    expect((await a.homes.list()).map((h) => [h.channelId, h.nodeId])).toEqual([["lobby", "node-1"], ["other", "node-2"]]);
    await a.homes.release(lobby, "node-1");
    expect(await b.homes.claim(lobby, "node-2", LONG)).toEqual({ won: true });
  });

  test("a channel is taken over once its lease expired, or once its node is dead, and not before", async () => {
    const [a, b] = await stores2();
    await beat(a, "node-1", "127.0.0.2");
    await beat(b, "node-2", "127.0.0.3");
    // Lease: node 1 stays alive (deadAfterMs of a minute) but its 50 ms lease is not renewed.
    await a.homes.claim(lobby, "node-1", { leaseMs: 50, deadAfterMs: 60_000 });
    expect((await b.homes.claim(lobby, "node-2", { leaseMs: 60_000, deadAfterMs: 60_000 })).won).toBe(false);
    await until(async () => (await b.homes.claim(lobby, "node-2", { leaseMs: 60_000, deadAfterMs: 60_000 })).won);
    // Node: node 2's lease is long, but node 2 stops beating; counted dead after 50 ms, node 1 takes over.
    expect((await a.homes.claim(lobby, "node-1", { leaseMs: 60_000, deadAfterMs: 60_000 })).won).toBe(false);
    await until(async () => (await a.homes.claim(lobby, "node-1", { leaseMs: 60_000, deadAfterMs: 50 })).won);
    expect((await a.homes.list())[0]!.nodeId).toBe("node-1");
  });

  test("a starting node releases every lease of its previous run", async () => {
    const [a] = await stores2();
    await a.homes.claim(lobby, "node-1", LONG);
    await a.homes.claim({ applicationId: "app1", channelId: "b" }, "node-1", LONG);
    await a.homes.claim({ applicationId: "app1", channelId: "c" }, "node-9", LONG);
    expect(await a.homes.releaseAll("node-1")).toBe(2);
    expect((await a.homes.list()).map((h) => h.nodeId)).toEqual(["node-9"]);
  });
});

test("PostgreSQL: the other nodes hear every won claim and every release, never a lost claim", async () => {
  const [a, b] = await postgresPair();
  await beat(a, "node-1", "127.0.0.2");
  const heard: HomeNotice[] = [];
  b.homes.onNotice((n) => heard.push(n));
  await a.homes.claim(lobby, "node-1", LONG);
  await b.homes.claim(lobby, "node-2", LONG); // lost: no notice
  await a.homes.release(lobby, "node-1");
  await until(() => heard.length === 2, { what: () => heard });
  expect(heard).toEqual([
    { action: "claimed", nodeId: "node-1", ...lobby },
    { action: "released", nodeId: "node-1", ...lobby },
  ]);
});

/** A node's mixers as the channel registry shows them, driven by the test. */
function fakeChannels(): OpenChannels & { open(c: ChannelKey): void; close(c: ChannelKey): void } {
  const open = new Set<string>();
  const listeners = new Set<(change: "opened" | "closed", c: ChannelKey) => void>();
  const key = (c: ChannelKey) => `${c.applicationId}/${c.channelId}`;
  return {
    isOpen: (applicationId, channelId) => open.has(key({ applicationId, channelId })),
    onLifecycle(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    open(c) {
      open.add(key(c));
      for (const l of listeners) l("opened", c);
    },
    close(c) {
      open.delete(key(c));
      for (const l of listeners) l("closed", c);
    },
  };
}

describe("placement on two nodes of one PostgreSQL", () => {
  test("one claim homes the channel; the other node learns it and then answers without the database", async () => {
    const [a, b] = await postgresPair();
    await beat(a, "node-1", "127.0.0.2");
    await beat(b, "node-2", "127.0.0.3");
    const node1 = new ChannelHomes({ store: a.homes, nodes: a.nodes, nodeId: "node-1", deadAfterMs: 60_000 });
    const node2 = new ChannelHomes({ store: b.homes, nodes: b.nodes, nodeId: "node-2", deadAfterMs: 60_000 });
    await node1.start();
    await node2.start();
    let claims = 0;
    const claim = b.homes.claim.bind(b.homes);
    b.homes.claim = (...args) => (claims++, claim(...args));

    expect(await node1.place(lobby)).toEqual({ here: true });
    // Node 2 hears node 1's claim: its placement reads only memory.
    await until(async () => {
      const placed = await node2.place(lobby);
      return !placed.here && placed.home.nodeId === "node-1";
    });
    const before = claims;
    expect(await node2.place(lobby)).toEqual({ here: false, home: { nodeId: "node-1", sipAddress: "127.0.0.2:5060", httpUrl: "http://127.0.0.2:8080" } });
    expect(claims).toBe(before);
    // Node 1 answers from memory too (its own lease).
    expect(await node1.place(lobby)).toEqual({ here: true });
    await node1.stop();
    await node2.stop();
  });

  test("the home releases the channel when its mixer closes; the other node then claims it", async () => {
    const [a, b] = await postgresPair();
    await beat(a, "node-1", "127.0.0.2");
    await beat(b, "node-2", "127.0.0.3");
    const node1 = new ChannelHomes({ store: a.homes, nodes: a.nodes, nodeId: "node-1", deadAfterMs: 60_000 });
    const node2 = new ChannelHomes({ store: b.homes, nodes: b.nodes, nodeId: "node-2", deadAfterMs: 60_000 });
    await node1.start();
    await node2.start();
    const mixers1 = fakeChannels();
    node1.follow(mixers1);
    // A mixer opened without a placement (a path that joined directly) is claimed all the same.
    mixers1.open(lobby);
    await until(async () => (await a.homes.list()).some((h) => h.nodeId === "node-1"));
    expect((await node2.place(lobby)).here).toBe(false);
    mixers1.close(lobby);
    await until(async () => (await a.homes.list()).length === 0);
    await until(async () => (await node2.place(lobby)).here);
    expect((await b.homes.list()).map((h) => h.nodeId)).toEqual(["node-2"]);
    await node1.stop();
    await node2.stop();
  });

  test("a dead home's channel is taken over at the next join; the lease is renewed while the home beats", async () => {
    const [a, b] = await postgresPair();
    const deadAfterMs = 300;
    await beat(a, "node-1", "127.0.0.2");
    await beat(b, "node-2", "127.0.0.3");
    const node1 = new ChannelHomes({ store: a.homes, nodes: a.nodes, nodeId: "node-1", deadAfterMs });
    const node2 = new ChannelHomes({ store: b.homes, nodes: b.nodes, nodeId: "node-2", deadAfterMs });
    await node1.start();
    await node2.start();
    const mixers1 = fakeChannels();
    node1.follow(mixers1);
    expect(await node1.place(lobby)).toEqual({ here: true });
    mixers1.open(lobby);
    // Node 1 beats (and renews) past several lease lengths: node 2 never gets the channel.
    const renewedUntil = Date.now() + 4 * deadAfterMs;
    while (Date.now() < renewedUntil) {
      await beat(a, "node-1", "127.0.0.2");
      await node1.afterBeat();
      await beat(b, "node-2", "127.0.0.3");
      await node2.afterBeat();
      expect((await node2.place(lobby)).here).toBe(false);
      await Bun.sleep(50);
    }
    // The window passed by the database's clock: the claim is older than several leases, yet live.
    const [held] = await a.homes.list();
    expect(Date.now() - Date.parse(held!.claimedAt)).toBeGreaterThan(3 * deadAfterMs);
    expect(held).toMatchObject({ nodeId: "node-1" });
    expect(held!.leaseExpiresInMs).toBeGreaterThan(0);
    // Node 1 goes silent (a kill -9): once node 2's view says it is dead, node 2 homes the channel.
    await until(
      async () => {
        await beat(b, "node-2", "127.0.0.3");
        await node2.afterBeat();
        return (await node2.place(lobby)).here;
      },
      { pollMs: 50 },
    );
    expect((await b.homes.list()).map((h) => h.nodeId)).toEqual(["node-2"]);
    await node1.stop();
    await node2.stop();
  });
});

test("a single SQLite node homes every channel it opens, and GET-style listing shows it", async () => {
  const store = sqliteStore();
  const homes = new ChannelHomes({ store: store.homes, nodes: store.nodes, nodeId: "single", deadAfterMs: 6000 });
  await homes.start();
  expect(await homes.place(lobby)).toEqual({ here: true });
  expect(await homes.place({ applicationId: "app2", channelId: "x" })).toEqual({ here: true });
  expect((await homes.list()).map((h) => [h.applicationId, h.channelId, h.nodeId])).toEqual([
    ["app1", "lobby", "single"],
    ["app2", "x", "single"],
  ]);
  await homes.stop();
});

describe("the route ticket of a 302", () => {
  const route = { applicationId: "app1", channelId: "lobby", userId: "sip:+1555@carrier", source: "webhook" as const };
  const secret = "cluster-secret-0123456789";
  const ticket = signHomeTicket({ route, homeNodeId: "node-2", sipCallId: "abc@x" }, secret, 1_000_000);
  const expected = { nodeId: "node-2", sipCallId: "abc@x" };

  test("opens that call on that node until it expires", () => {
    expect(verifyHomeTicket(ticket, secret, expected, 1_000_000)).toEqual({ ok: true, route });
    expect(verifyHomeTicket(ticket, secret, expected, 1_000_000 + HOME_TICKET_TTL_MS + 1)).toEqual({ ok: false, reason: "Home Ticket Expired" });
  });

  test("refuses another secret, another node, another call, a changed payload, garbage", () => {
    const at = 1_000_000;
    expect(verifyHomeTicket(ticket, "another-secret-0123456789", expected, at)).toEqual({ ok: false, reason: "Bad Home Ticket Signature" });
    expect(verifyHomeTicket(ticket, secret, { ...expected, nodeId: "node-3" }, at)).toEqual({ ok: false, reason: "Home Ticket For Another Node" });
    expect(verifyHomeTicket(ticket, secret, { ...expected, sipCallId: "other@x" }, at)).toEqual({ ok: false, reason: "Home Ticket For Another Call" });
    const [payload, signature] = ticket.split(".");
    const forged = Buffer.from(Buffer.from(payload!, "base64url").toString().replace("lobby", "vault!")).toString("base64url");
    expect(verifyHomeTicket(`${forged}.${signature}`, secret, expected, at)).toEqual({ ok: false, reason: "Bad Home Ticket Signature" });
    for (const junk of ["", "abc", "a.b.c", "x".repeat(5000)]) expect(verifyHomeTicket(junk, secret, expected, at).ok).toBe(false);
  });
});
