// The routing decision a node passes to a channel's home with its 302: base64url(JSON payload) "."
// base64url(HMAC-SHA256(cluster.secret, payload)). It names the home node, the INVITE's Call-ID
// and an expiry, so it opens only that call, on that node, for a short while; the home routes the
// call by it without asking the webhook again. Expiry is the signer's wall clock: nodes need clocks
// within a few seconds of each other (NTP).
//   const ticket = signHomeTicket({ route, homeNodeId: "node-2", sipCallId }, secret);
//   verifyHomeTicket(ticket, secret, { nodeId: "node-2", sipCallId })  → { ok, route } | { ok: false, reason }
import { createHmac, timingSafeEqual } from "node:crypto";

export interface TicketRoute {
  applicationId: string;
  channelId: string;
  userId: string;
  source: "static" | "webhook";
}

/** How long a redirected INVITE may take to reach its home. */
export const HOME_TICKET_TTL_MS = 30_000;
/** Longest ticket accepted: a hostile one costs one bounded parse. */
const MAX_TICKET_LENGTH = 4096;

interface TicketPayload {
  route: TicketRoute;
  /** The home node's id. */
  node: string;
  callId: string;
  /** Expiry, epoch ms. */
  exp: number;
}

export function signHomeTicket(o: { route: TicketRoute; homeNodeId: string; sipCallId: string }, secret: string, nowMs = Date.now()): string {
  const payload: TicketPayload = { route: o.route, node: o.homeNodeId, callId: o.sipCallId, exp: nowMs + HOME_TICKET_TTL_MS };
  const encoded = Buffer.from(JSON.stringify(payload)).toString("base64url");
  return `${encoded}.${mac(encoded, secret).toString("base64url")}`;
}

export type TicketCheck = { ok: true; route: TicketRoute } | { ok: false; reason: string };

export function verifyHomeTicket(ticket: string, secret: string, expected: { nodeId: string; sipCallId: string }, nowMs = Date.now()): TicketCheck {
  const [encoded, signature, extra] = ticket.length <= MAX_TICKET_LENGTH ? ticket.split(".") : [];
  if (!encoded || !signature || extra !== undefined) return { ok: false, reason: "Malformed Home Ticket" };
  const given = Buffer.from(signature, "base64url");
  const wanted = mac(encoded, secret);
  if (given.length !== wanted.length || !timingSafeEqual(given, wanted)) return { ok: false, reason: "Bad Home Ticket Signature" };
  let payload: TicketPayload;
  try {
    payload = JSON.parse(Buffer.from(encoded, "base64url").toString("utf8")) as TicketPayload;
  } catch {
    return { ok: false, reason: "Malformed Home Ticket" };
  }
  if (typeof payload.exp !== "number" || payload.exp < nowMs) return { ok: false, reason: "Home Ticket Expired" };
  if (payload.node !== expected.nodeId) return { ok: false, reason: "Home Ticket For Another Node" };
  if (payload.callId !== expected.sipCallId) return { ok: false, reason: "Home Ticket For Another Call" };
  return { ok: true, route: payload.route };
}

function mac(encoded: string, secret: string): Buffer {
  return createHmac("sha256", secret).update(encoded).digest();
}
