// The cluster as this node sees it: its own node id and every node of the shared database with its
// health (dead: no heartbeat for cluster.deadAfterMs, by the database's clock) and load.
//   GET /api/v1/cluster → { nodeId, deadAfterMs, nodes: NodeStatus[] }
import { s } from "../../config/schema.ts";
import type { NodeStore } from "../../store/nodes.ts";
import type { ApiRouter } from "../router.ts";

export interface ClusterView {
  nodeId: string;
  deadAfterMs: number;
  nodes: NodeStore;
}

const nodeView = s
  .object({
    nodeId: s.string({ minLength: 1 }),
    sipAddress: s.string().describe("The node's SIP address (cluster.sipAddress)."),
    httpUrl: s.string().describe("The node's HTTP base URL (cluster.httpUrl)."),
    startedAt: s.string().describe("When the node started (ISO 8601, database clock)."),
    lastHeartbeatAt: s.string().describe("The node's last heartbeat (ISO 8601, database clock)."),
    lastHeartbeatAgeMs: s.integer({ min: 0 }).describe("Milliseconds since the last heartbeat, by the database's clock."),
    health: s.enum(["alive", "dead"]).describe("dead: no heartbeat for deadAfterMs."),
    load: s.object({
      activeCalls: s.integer({ min: 0 }),
      mediaLegs: s.integer({ min: 0 }).describe("Participants in this node's channel mixers (phone legs and WebRTC clients)."),
      cpuPercent: s.integer({ min: 0 }).describe("The process's CPU time (every thread) over the last heartbeat interval, whole percent of one core."),
    }),
  })
  .describe("A node and its heartbeat");

const clusterView = s.object({
  nodeId: s.string({ minLength: 1 }).describe("The node that answered (cluster.nodeId)."),
  deadAfterMs: s.integer({ min: 0 }).describe("The heartbeat age beyond which a node is dead (cluster.deadAfterMs)."),
  nodes: s.array(nodeView).describe("Every node that ever wrote a heartbeat to this database, by node id."),
});

export function clusterRoutes(api: ApiRouter, cluster: ClusterView): void {
  api.route(
    {
      method: "get",
      path: "/cluster",
      summary: "Nodes sharing this database, their health and load",
      tag: "cluster",
      response: { status: 200, description: "This node and every node's heartbeat", schema: clusterView },
    },
    async (c) => c.json({ nodeId: cluster.nodeId, deadAfterMs: cluster.deadAfterMs, nodes: await cluster.nodes.list(cluster.deadAfterMs) }),
  );
}
