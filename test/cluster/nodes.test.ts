// Nodes and heartbeats: GET /api/v1/cluster on a single SQLite node, and two nodes on one PostgreSQL
// seeing each other, one turning dead once its heartbeat stops and its open call record closed by
// the survivor.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { ComposeServices } from "../../src/app.ts";
import { parseFront } from "../../src/cluster/front.ts";
import { parseConfigText } from "../../src/config/load.ts";
import type { NodeStatus } from "../../src/store/nodes.ts";
import { startHarness, type Harness } from "../api/harness.ts";
import { createDatabase, startPostgres, type Postgres } from "../helpers/postgres.ts";
import { until } from "../helpers/until.ts";


async function clusterOf(node: Harness): Promise<{ nodeId: string; deadAfterMs: number; nodes: NodeStatus[] }> {
  const res = await node.call("GET", "/api/v1/cluster");
  expect(res.status).toBe(200);
  return res.json;
}

describe("a single node on SQLite", () => {
  let node: Harness | undefined;
  // A service reporting load, as the call service does with its calls and mixer participants.
  let load = { activeCalls: 2, mediaLegs: 3 };
  const compose: ComposeServices = () => [{ name: "load", load: () => load }];

  beforeAll(async () => {
    node = await startHarness("cluster: { heartbeatMs: 100, deadAfterMs: 500 }", compose);
  });
  afterAll(async () => {
    await node?.close();
  });

  test("GET /api/v1/cluster shows this one node, alive, with its load and addresses", async () => {
    const cluster = await clusterOf(node!);
    expect(cluster.nodeId).toMatch(/^[A-Za-z0-9._-]{1,64}$/);
    expect(cluster.deadAfterMs).toBe(500);
    expect(cluster.nodes).toHaveLength(1);
    const [self] = cluster.nodes;
    expect(self).toMatchObject({ nodeId: cluster.nodeId, health: "alive", httpUrl: node!.app.url, sipAddress: "0.0.0.0:5060" });
    expect(self!.load).toMatchObject({ activeCalls: 2, mediaLegs: 3 });
    expect(self!.load.cpuPercent).toBeGreaterThanOrEqual(0);
    expect(Date.parse(self!.startedAt)).toBeLessThanOrEqual(Date.parse(self!.lastHeartbeatAt));
  });

  test("the heartbeat carries the load as it changes", async () => {
    load = { activeCalls: 7, mediaLegs: 9 };
    await until(async () => (await clusterOf(node!)).nodes[0]?.load.activeCalls === 7);
    expect((await clusterOf(node!)).nodes[0]!.load.mediaLegs).toBe(9);
  });

  test("the admin token is required", async () => {
    const res = await node!.call("GET", "/api/v1/cluster", undefined, { authorization: "Bearer wrong-token-0123456789" });
    expect(res.status).toBe(401);
  });

  test("the route is in the OpenAPI document", async () => {
    const doc = (await node!.call("GET", "/api/v1/openapi.json")).json;
    expect(doc.paths["/api/v1/cluster"].get.summary).toContain("Nodes");
  });
});

describe("cluster config", () => {
  test("a node id is a plain name, and deadAfterMs must exceed heartbeatMs", () => {
    const errorsOf = (yaml: string) => {
      const result = parseConfigText(yaml, "c.yaml");
      return result.ok ? "" : result.errors.join("\n");
    };
    expect(errorsOf("cluster:\n  nodeId: 'node 1'\n")).toContain("c.yaml:2:11: cluster.nodeId: must be letters, digits");
    expect(errorsOf("cluster:\n  heartbeatMs: 2000\n  deadAfterMs: 1000\n")).toContain("cluster.deadAfterMs: must be above heartbeatMs (2000)");
    expect(errorsOf("cluster:\n  nodeId: node-1\n  heartbeatMs: 100\n  deadAfterMs: 500\n")).toBe("");
  });

  test("the front is sip:IP[:PORT]: a host name (nodes do not resolve it) or a bad port is refused with its line", () => {
    const errorsOf = (yaml: string) => {
      const result = parseConfigText(yaml, "c.yaml");
      return result.ok ? "" : result.errors.join("\n");
    };
    expect(errorsOf("cluster:\n  front: sip:front.example:5060\n")).toContain('c.yaml:2:10: cluster.front: the front\'s host must be an IP address');
    expect(errorsOf("cluster:\n  front: sip:10.0.0.1:70000\n")).toContain("cluster.front: port 70000 is out of range");
    expect(errorsOf("cluster:\n  front: sip:10.0.0.1;lr\n")).toContain("cluster.front: \"sip:10.0.0.1;lr\" is not sip:HOST[:PORT]");
    expect(parseFront("sip:10.0.0.1")).toEqual({ address: "10.0.0.1", port: 5060 });
    expect(parseFront("[::1]:5070")).toEqual({ address: "::1", port: 5070 });
    expect(errorsOf("cluster:\n  front: sip:127.0.0.1:5060\n")).toBe("");
  });
});

describe("two nodes on one PostgreSQL", () => {
  let pg: Postgres | undefined;
  let node1: Harness | undefined;
  let node2: Harness | undefined;

  beforeAll(async () => {
    pg = await startPostgres();
    const databaseUrl = await createDatabase(pg, "cluster_nodes");
    const cluster = (id: string) =>
      `cluster: { nodeId: ${id}, sipAddress: "127.0.0.${id.slice(-1)}:5060", heartbeatMs: 100, deadAfterMs: 500 }`;
    node1 = await startHarness(cluster("node-1"), undefined, "warn", { databaseUrl });
    node2 = await startHarness(cluster("node-2"), undefined, "warn", { databaseUrl });
  }, 60_000);
  afterAll(async () => {
    await node1?.close();
    await node2?.close();
    await pg?.stop();
  });

  test("each node sees both, alive, and names itself", async () => {
    for (const [node, id] of [[node1!, "node-1"], [node2!, "node-2"]] as const) {
      const cluster = await clusterOf(node);
      expect(cluster.nodeId).toBe(id);
      expect(cluster.nodes.map((n) => [n.nodeId, n.health, n.sipAddress])).toEqual([
        ["node-1", "alive", "127.0.0.1:5060"],
        ["node-2", "alive", "127.0.0.2:5060"],
      ]);
    }
    const view = (await clusterOf(node1!)).nodes.find((n) => n.nodeId === "node-2")!;
    expect(view.httpUrl).toBe(node2!.app.url);
  });

  test("heartbeats keep coming: a node's last heartbeat moves on", async () => {
    const first = (await clusterOf(node1!)).nodes.find((n) => n.nodeId === "node-2")!.lastHeartbeatAt;
    await until(async () => (await clusterOf(node1!)).nodes.find((n) => n.nodeId === "node-2")!.lastHeartbeatAt > first);
  });

  test("a stopped node turns dead after deadAfterMs; a survivor closes its open call record, its own stays open", async () => {
    // Records as the nodes' call layers write them: one live call on each node, shared through PostgreSQL.
    node1!.app.ctx.store.calls.create({ id: "on-node-1", direction: "inbound", from: "sip:a@x", to: "sip:100@y" });
    const onNode2 = node2!.app.ctx.store.calls;
    onNode2.create({ id: "on-node-2", direction: "inbound", from: "sip:b@x", to: "sip:100@y" });
    onNode2.update("on-node-2", { state: "answered" });
    await onNode2.flush();
    expect((await node1!.app.ctx.store.calls.get("on-node-2"))).toMatchObject({ state: "answered" });

    // A record stays open while its node is alive (both beat every 100 ms, each sweeping after its beat).
    const beatAfter = async (at: string) =>
      until(async () => (await clusterOf(node1!)).nodes.every((n) => n.lastHeartbeatAt > at));
    await beatAfter((await clusterOf(node1!)).nodes.map((n) => n.lastHeartbeatAt).sort().at(-1)!);
    expect((await node1!.app.ctx.store.calls.get("on-node-2"))).toMatchObject({ state: "answered" });

    // Stopped without closing its calls' records, as a crash leaves them.
    await node2!.app.stop();
    await until(async () => (await clusterOf(node1!)).nodes.find((n) => n.nodeId === "node-2")?.health === "dead");
    const cluster = await clusterOf(node1!);
    const dead = cluster.nodes.find((n) => n.nodeId === "node-2")!;
    expect(dead.lastHeartbeatAgeMs).toBeGreaterThan(500);
    expect(cluster.nodes.find((n) => n.nodeId === "node-1")!.health).toBe("alive");

    await until(async () => (await node1!.app.ctx.store.calls.get("on-node-2"))?.endReason === "interrupted");
    expect((await node1!.app.ctx.store.calls.get("on-node-2"))).toMatchObject({ state: "ended", endReason: "interrupted" });
    expect((await node1!.app.ctx.store.calls.get("on-node-1"))).toMatchObject({ state: "trying" });
  });
});
