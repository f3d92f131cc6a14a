// An INVITE from a trunk, until it is answered or turned away:
//   source check (the stack's screen already dropped strangers; 403 for a trunk removed since) → limits (503) → 100 Trying (the stack) → routing: static map, then
//   the inbound webhook (404 / 5xx saying why), or a redirecting node's ticket → the channel's home:
//   here, or 302 to the node that homes it (homing.ts) → SDP answer (or our offer for a delayed-offer
//   INVITE), for which the caller joins the channel's mixer with its userId → optional 180 → 200,
//   retransmitted until the ACK (the dialog).
// CANCEL at any point before the 200: the stack sends 200 + 487; we abandon the routing webhook,
// close the record as `cancelled` and tell the inbound-cancel webhook with the INVITE's headers.
import { notifyInboundCancel, routeInbound } from "../routing/inbound.ts";
import { redactSdesKeys } from "../media/sdes.ts";
import { Dialog } from "../sip/dialog.ts";
import { formatUri, type SipRequest } from "../sip/message.ts";
import type { ServerTransaction } from "../sip/transaction.ts";
import type { InboundContext } from "../sip/transport.ts";
import { newCallId, type CallManager } from "./manager.ts";
import { callEncryption } from "./mediaEncryption.ts";
import { ALLOW_METHODS } from "./types.ts";
import { negotiateInbound } from "./sessionTimer.ts";

export async function handleInboundInvite(manager: CallManager, req: SipRequest, tx: ServerTransaction, ctx: InboundContext): Promise<void> {
  // The stack's screen (CallManager.start) already refused sources that belong to no trunk; a trunk
  // removed since then is refused here.
  // Behind a front, the trunk is the one the front says the request came from.
  const trunk = manager.trunkForSource((ctx.origin ?? ctx.source).address);
  if (!trunk) {
    tx.respond(403, "Forbidden");
    return;
  }
  const { deps } = manager;
  const overLimit = !manager.hasCapacity();
  const call = manager.createCall({
    id: newCallId(),
    direction: "inbound",
    from: formatUri(req.from.uri),
    to: formatUri(req.to.uri),
    sipCallId: req.callId,
    trunkId: trunk.id,
  });
  const reject = (status: number, reason: string, headers: [string, string][] = []) => {
    tx.respond(status, reason, { headers });
    call.end("rejected", status);
  };
  if (overLimit || !manager.takeTrunkSlot(call, trunk.id)) return reject(503, "Too Many Calls", [["Retry-After", "30"]]);
  const timers = negotiateInbound(req, deps.settings().sessionTimerSec);
  if (!timers.ok) return reject(timers.status, "Session Interval Too Small", timers.headers);
  const encryption = callEncryption(trunk, ctx.local.transport);
  if (!encryption.ok) {
    // RFC 3261 §20.43: 399, a warning for a human.
    const host = deps.stack.contactFor(undefined, ctx.local.transport).uri.host;
    return reject(488, "Not Acceptable Here", [["Warning", `399 ${host} "${encryption.reason}"`]]);
  }
  call.mediaEncryption = encryption.encryption;

  const headers = headersRecord(req);
  const webhooks = deps.webhooks();
  const routing = new AbortController();
  tx.on("cancel", () => {
    routing.abort();
    call.end("cancelled", 487);
    void notifyInboundCancel(headers, webhooks);
  });
  // Should this flow hang (a stuck webhook), the stack answers 500 after its deadline; the call ends with it.
  tx.on("unanswered", () => {
    routing.abort();
    call.end("timeout", 500);
  });
  call.abandon = () => {
    routing.abort();
    reject(480, "Temporarily Unavailable");
  };

  // A call another node routed and redirected here comes with its route (homing.ts).
  const routed =
    deps.homing.ticketRoute(req) ??
    (await routeInbound(
      { toUser: req.to.uri.user, fromUri: call.from, headers, sdp: req.body.length > 0 ? redactSdesKeys(req.bodyText) : "" },
      deps.routes,
      webhooks,
      routing.signal,
    ));
  if (call.isEnded) return;
  if (!routed.ok) {
    call.log.warn("inbound call not routed", { status: routed.status, reason: routed.reason, detail: routed.detail });
    return reject(routed.status, routed.reason);
  }
  const { applicationId, channelId, userId } = routed.route;
  Object.assign(call, { applicationId, channelId, userId });
  call.record({ applicationId, channelId, userId });

  // One channel, one mixer: a channel homed on another node sends the caller there.
  const placed = await deps.homing.place(routed.route, req);
  if (call.isEnded) return;
  if (!placed.here) {
    tx.respond(placed.status, placed.reason, { headers: placed.headers });
    return call.end(placed.status === 302 ? "redirected" : "rejected", placed.status);
  }

  // The caller joins the channel now: its phone leg is needed for the SDP answer.
  const media = await call.joinChannel();
  if ("error" in media) {
    if (call.isEnded) return;
    call.log.error("no media for the call", { reason: media.error });
    return reject(503, "Media Unavailable");
  }
  if (call.isEnded) return;

  let body: string;
  let codec: string | undefined;
  if (req.body.length > 0) {
    const answer = media.answer(req.bodyText);
    if (!answer.ok) return reject(answer.status, answer.status === 400 ? "Bad SDP" : "Not Acceptable Here", answer.warning ? [["Warning", answer.warning]] : []);
    body = answer.sdp;
    codec = answer.codec;
  } else {
    // RFC 3264 §5 with RFC 3261 §13.2.1: no offer in the INVITE → ours goes in the 2xx, the answer in the ACK.
    body = media.offer();
  }
  if (deps.settings().sendRinging) {
    tx.respond(180, "Ringing");
    call.ringing(180);
  }
  const dialog = Dialog.answer(deps.stack, req, tx, ctx, {
    contact: deps.stack.contactFor(undefined, ctx.local.transport),
    body,
    contentType: "application/sdp",
    headers: [["Allow", ALLOW_METHODS], ["Supported", "timer"], ...timers.headers],
  });
  call.attachDialog(dialog, timers.settings);
  if (codec === undefined) {
    call.expectAnswerInAck();
    return;
  }
  call.answered(codec);
}

/** The INVITE's headers as the webhooks get them: name → value, repeated headers joined with ", ". */
export function headersRecord(req: SipRequest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const { name, value } of req.headerFields) {
    out[name] = Object.hasOwn(out, name) ? `${out[name]}, ${value}` : value;
  }
  return out;
}
