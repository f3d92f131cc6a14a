// Live trunk state (registration, keep-alive, calls, availability) from the trunk manager.
//   GET /api/v1/trunks/status       → TrunkStatus[] in trunk order
//   GET /api/v1/trunks/:id/status   → TrunkStatus (404 for an unknown trunk)
import { idSchema } from "../../config/entities.ts";
import { s } from "../../config/schema.ts";
import type { TrunkStatus } from "../../trunks/manager.ts";
import { notFound } from "../errors.ts";
import { pathParam, type ApiRouter } from "../router.ts";

export interface TrunkStatusSource {
  status(id: string): TrunkStatus | undefined;
  statuses(): TrunkStatus[];
}

const nullableText = (description: string) => s.string().optional().describe(`${description} (null when absent).`);

export const trunkStatusView = s
  .object({
    id: idSchema,
    registration: s.object({
      state: s.enum(["registered", "registering", "unregistered", "failed", "disabled"])
        .describe("unregistered: the trunk does not register (or is being stopped); failed: the last attempt failed, see lastError."),
      expiresAt: nullableText("When the current binding lapses (ISO 8601)"),
      lastError: nullableText("Why the last registration attempt failed: DNS, connection, TLS, timeout or the provider's answer"),
      lastStatusCode: s.integer().optional().describe("SIP status of the last REGISTER answer (null before any)."),
      nodeId: nullableText(
        "The node that registers the trunk: this node, or with cluster.front the node holding the trunk's registration lease, whose state this is",
      ),
    }),
    reachable: s.boolean().optional().describe("Last OPTIONS keep-alive answered (any response); null when not probed or not probed yet."),
    lastOptionsAt: nullableText("When the last OPTIONS probe completed (ISO 8601)"),
    lastOptionsError: nullableText("Why the last OPTIONS probe failed"),
    activeCalls: s.integer({ min: 0 }),
    maxConcurrentCalls: s.integer({ min: 1 }).optional().describe("The trunk's call limit (null: unlimited)."),
    available: s.boolean().describe("Enabled, can terminate, registered if it registers, reachable if probed, under its call limit."),
  })
  .describe("Trunk status");

export function trunkStatusRoutes(api: ApiRouter, trunks: TrunkStatusSource): void {
  const tag = "trunks";
  api.route(
    {
      method: "get",
      path: "/trunks/status",
      summary: "Live status of every trunk",
      tag,
      response: { status: 200, description: "Status of all trunks", schema: s.array(trunkStatusView) },
    },
    (c) => c.json(trunks.statuses()),
  );
  api.route(
    {
      method: "get",
      path: "/trunks/:id/status",
      summary: "Live status of a trunk",
      tag,
      response: { status: 200, description: "The trunk's status", schema: trunkStatusView },
      errors: [404],
    },
    (c) => {
      const id = pathParam(c, "id", idSchema);
      const status = trunks.status(id);
      if (!status) throw notFound("trunk", id);
      return c.json(status);
    },
  );
}
