// The cluster as this node sees it: its own node id, every node of the shared database with its
// health (dead: no heartbeat for cluster.deadAfterMs, by the database's clock) and load, and which
// node homes which channel.
//   GET /api/v1/cluster → { nodeId, deadAfterMs, nodes: NodeStatus[], channels: ChannelHome[] }
// And the HTTP side of "one channel, one mixer": a WebRTC join or a dial for a channel homed on
// another node answers 307 to the same path and query on that node's httpUrl (homeRedirects);
//   GET /api/v1/client/home (client token) → { nodeId, url }: where a page should talk to.
import type { Context, MiddlewareHandler } from "hono";
import type { ChannelHomes } from "../../cluster/homes.ts";
import { s } from "../../config/schema.ts";
import type { NodeStore } from "../../store/nodes.ts";
import { authenticateBearer, type ClientClaims } from "../../webrtc/tokens.ts";
import { bearerToken, isTokenGuess, sourceKey, tokensMatch } from "../auth.ts";
import { ApiError } from "../errors.ts";
import { API_PREFIX, type ApiRouter } from "../router.ts";

export interface ClusterView {
  nodeId: string;
  deadAfterMs: number;
  nodes: NodeStore;
  homes: ChannelHomes;
  /** For homeRedirects: who may learn where a channel lives. */
  adminToken: () => string | undefined;
  applicationSecret: (applicationId: string) => string | undefined;
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

const channelHomeView = s
  .object({
    applicationId: s.string(),
    channelId: s.string(),
    nodeId: s.string().describe("The node whose mixer the channel lives on (its home)."),
    claimedAt: s.string().describe("When that node claimed it (ISO 8601, database clock)."),
    leaseExpiresInMs: s.integer().describe("Milliseconds left on the lease, renewed with each heartbeat of the home; negative once expired."),
  })
  .describe("A channel's home");

const homeView = s.object({
  nodeId: s.string().describe("The node that homes the channel."),
  url: s.string().describe("Its HTTP base URL: send the client API requests (join, calls, events) there."),
});
const HOME_CLAIMS = "homeClaims";

const clusterView = s.object({
  nodeId: s.string({ minLength: 1 }).describe("The node that answered (cluster.nodeId)."),
  deadAfterMs: s.integer({ min: 0 }).describe("The heartbeat age beyond which a node is dead (cluster.deadAfterMs)."),
  nodes: s.array(nodeView).describe("Every node that ever wrote a heartbeat to this database, by node id."),
  channels: s.array(channelHomeView).describe("Every channel with a home, by application and channel."),
});

export function clusterRoutes(api: ApiRouter, cluster: ClusterView): void {
  api.route(
    {
      method: "get",
      path: "/cluster",
      summary: "Nodes sharing this database, their health and load, and which node homes which channel",
      tag: "cluster",
      response: { status: 200, description: "This node, every node's heartbeat, every channel's home", schema: clusterView },
    },
    async (c) => {
      const [nodes, channels] = await Promise.all([cluster.nodes.list(cluster.deadAfterMs), cluster.homes.list()]);
      return c.json({ nodeId: cluster.nodeId, deadAfterMs: cluster.deadAfterMs, nodes, channels });
    },
  );
  homeRedirects(api, cluster);
}

/**
 * Before the routes that join a channel or dial into one: a channel homed on another node answers
 * 307 (method and body kept) to the same path and query on that node. Only for a caller that would
 * be let in (a valid client token for the channel, or the admin token); anyone else goes on to the
 * route, which refuses them as it always does.
 */
function homeRedirects(api: ApiRouter, cluster: ClusterView): void {
  const redirectIfElsewhere = async (c: Context, channel: { applicationId: string; channelId: string } | undefined) => {
    if (!channel) return undefined;
    const placed = await placeOr503(cluster.homes, channel);
    if (placed.here) return undefined;
    const url = new URL(c.req.url);
    const location = `${placed.home.httpUrl.replace(/\/+$/, "")}${url.pathname}${url.search}`;
    // The redirect itself must pass the browser's CORS check (the client API is open to any origin).
    return c.json(
      { error: { code: "channel_homed_elsewhere", message: `channel ${JSON.stringify(channel.channelId)} lives on node ${placed.home.nodeId}`, location } },
      307,
      { Location: location, "Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "Location" },
    );
  };
  const clientChannel: MiddlewareHandler = async (c, next) => {
    const auth = authenticateBearer(c.req.header("authorization"), cluster.applicationSecret);
    return (await redirectIfElsewhere(c, auth.ok ? auth.claims : undefined)) ?? next();
  };
  const adminChannel: MiddlewareHandler = async (c, next) => {
    const expected = cluster.adminToken();
    const presented = bearerToken(c.req.header("authorization"));
    const admitted = expected !== undefined && presented !== undefined && tokensMatch(presented, expected);
    const applicationId = c.req.param("appId");
    const channelId = c.req.param("channelId");
    const channel = admitted && applicationId && channelId ? { applicationId, channelId } : undefined;
    return (await redirectIfElsewhere(c, channel)) ?? next();
  };
  api.hono.on("POST", [`${API_PREFIX}/client/join`, `${API_PREFIX}/client/calls`], clientChannel);
  api.hono.on("POST", `${API_PREFIX}/applications/:appId/channels/:channelId/calls`, adminChannel);

  // Browsers do not carry a client's Authorization header across a redirect to another origin, so
  // a page asks first where its channel lives and talks to that node from then on.
  const clientAuth: MiddlewareHandler = async (c, next) => {
    const source = sourceKey(c);
    api.authGuard.admit(c, source, "client");
    const auth = authenticateBearer(c.req.header("authorization"), cluster.applicationSecret);
    if (!auth.ok) {
      if (isTokenGuess(auth.code)) api.authGuard.failed(source, "client");
      throw new ApiError(401, auth.code, auth.message);
    }
    c.set(HOME_CLAIMS, auth.claims);
    await next();
  };
  api.route(
    {
      method: "get",
      path: "/client/home",
      summary: "Where the token's channel lives: the node to join it on",
      tag: "client",
      auth: "client",
      middleware: [clientAuth],
      response: { status: 200, description: "The channel's home node (this one when the channel is homed nowhere yet)", schema: homeView },
      errors: [503],
    },
    async (c) => {
      const claims = c.get(HOME_CLAIMS) as ClientClaims;
      const placed = await placeOr503(cluster.homes, claims);
      return c.json(placed.here ? { nodeId: cluster.nodeId, url: new URL(c.req.url).origin } : { nodeId: placed.home.nodeId, url: placed.home.httpUrl.replace(/\/+$/, "") });
    },
  );
}

async function placeOr503(homes: ChannelHomes, channel: { applicationId: string; channelId: string }) {
  try {
    return await homes.place(channel);
  } catch {
    throw new ApiError(503, "unavailable", "the channel's home could not be determined (database unavailable)");
  }
}
