// Inbound calls in a cluster: a routed INVITE whose channel is homed on another node is answered
// 302 with a Contact at that node's SIP address; the front follows it. The Contact's URI carries
// the routing decision as a signed ticket (`tl-home`, src/cluster/homeTicket.ts), so the home routes
// the call by it and does not ask the webhook again. A ticket that does not verify is a 403 whose
// reason says why. Without cluster.secret the 302 carries no ticket and the home routes again.
//   const routed = homing.ticketRoute(req) ?? (await routeInbound(...));
//   const placed = await homing.place(routed.route, req, call.log);   // { here: true } or the response to send
// (503 when the database cannot say where the channel lives: the front tries another node).
import type { ChannelHomes, Placement } from "../cluster/homes.ts";
import { signHomeTicket, verifyHomeTicket } from "../cluster/homeTicket.ts";
import type { InboundRoute, InboundRouting } from "../routing/inbound.ts";
import type { Logger } from "../log.ts";
import { formatUri, type SipRequest } from "../sip/message.ts";
import { parseUri } from "../sip/uri.ts";

/** The Request-URI parameter that carries the ticket. */
export const HOME_TICKET_PARAM = "tl-home";

export type InboundPlacement = { here: true } | { here: false; status: 302 | 480 | 503; reason: string; headers: [string, string][] };

export interface InboundHoming {
  /** A redirected INVITE's route, from its ticket (or why the ticket is refused); undefined without one. */
  ticketRoute(req: SipRequest): InboundRouting | undefined;
  /** Here (the channel's lease is this node's), or the response that sends the caller to the home; `log` is the call's. */
  place(route: InboundRoute, req: SipRequest, log: Logger): Promise<InboundPlacement>;
}

export function inboundHoming(homes: ChannelHomes, secret: () => string | undefined): InboundHoming {
  return {
    ticketRoute(req) {
      const ticket = req.uri.params.get(HOME_TICKET_PARAM);
      if (ticket === undefined) return undefined;
      const key = secret();
      const checked =
        ticket === null || key === undefined
          ? { ok: false as const, reason: key === undefined ? "No Cluster Secret" : "Malformed Home Ticket" }
          : verifyHomeTicket(ticket, key, { nodeId: homes.nodeId, sipCallId: req.callId });
      if (!checked.ok) return { ok: false, status: 403, reason: checked.reason, detail: `home ticket refused: ${checked.reason}` };
      return { ok: true, route: checked.route };
    },

    async place(route, req, log) {
      let placed: Placement;
      try {
        placed = await homes.place(route);
      } catch (err) {
        // The database is out of reach: a 5xx lets the front try another node.
        log.child({}, "calls.homing").error("the channel's home could not be determined", { applicationId: route.applicationId, channelId: route.channelId, err });
        return { here: false, status: 503, reason: "Channel Home Unavailable", headers: [] };
      }
      if (placed.here) return placed;
      // Sent here by another node already: a second hop would mean the home moved in between.
      if (req.uri.params.has(HOME_TICKET_PARAM)) return { here: false, status: 480, reason: "Channel Home Moved", headers: [] };
      const target = parseUri(`sip:${placed.home.sipAddress}`);
      if (!target) throw new Error(`node ${placed.home.nodeId} has no usable SIP address: ${placed.home.sipAddress}`);
      const params = new Map<string, string | null>();
      const key = secret();
      if (key !== undefined) params.set(HOME_TICKET_PARAM, signHomeTicket({ route, homeNodeId: placed.home.nodeId, sipCallId: req.callId }, key));
      const contact = { ...target, params, ...(req.uri.user !== undefined ? { user: req.uri.user } : {}) };
      // RFC 3261 §21.3.3: 302, the Contact names where to try.
      return { here: false, status: 302, reason: "Moved Temporarily", headers: [["Contact", `<${formatUri(contact)}>`]] };
    },
  };
}
