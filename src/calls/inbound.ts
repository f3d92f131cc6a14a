// An INVITE from a trunk, until it is answered or turned away:
//   source check (the stack's screen already dropped strangers; 403 for a trunk removed since) → limits (503) → 100 Trying (the stack, unless the 180 comes within 100 ms) → routing: static map, then
//   the inbound webhook (404 / 5xx saying why), or a redirecting node's ticket → the channel's home:
//   here, or 302 to the node that homes it (homing.ts) → SDP answer (or our offer for a delayed-offer
//   INVITE), for which the caller joins the channel's mixer with its userId → optional 180 (reliable,
//   and PRACKed before the 200, when the caller requires or supports 100rel: RFC 3262) → 200,
//   retransmitted until the ACK (the dialog).
// CANCEL at any point before the 200: the stack sends 200 + 487; the call ends as `cancelled`
// (which aborts the routing webhook in flight) and the inbound-cancel webhook hears the INVITE's headers.
import type { TrunkInput } from "../config/entities.ts";
import { notifyInboundCancel, routeInbound, type InboundRouteSource, type InboundWebhookSettings } from "../routing/inbound.ts";
import { redactSdesKeys } from "../media/sdes.ts";
import { Dialog, type DialogHost, type DialogTermination } from "../sip/dialog.ts";
import { formatUri, type NameAddr, type SipRequest } from "../sip/message.ts";
import { ReliableProvisionals, wantsReliableProvisionals } from "../sip/reliable.ts";
import type { ServerTransaction } from "../sip/transaction.ts";
import type { InboundContext } from "../sip/transport.ts";
import type { Call, CallInit } from "./call.ts";
import { attributesFromHeaders } from "./headers.ts";
import type { InboundHoming } from "./homing.ts";
import { callEncryption } from "./mediaEncryption.ts";
import { ALLOW_METHODS } from "./types.ts";
import { negotiateInbound } from "./sessionTimer.ts";

/** What the inbound flow uses (CallManager provides it). */
export interface InboundFlowContext {
  stack: DialogHost;
  /** The enabled trunk an inbound request's source address belongs to. */
  trunkForSource(address: string): TrunkInput | undefined;
  /** Under the total concurrent-call limit. */
  hasCapacity(): boolean;
  /** Creates the call and its record (state `trying`). */
  createCall(init: Omit<CallInit, "id">): Call;
  /** Counts the call on its trunk; false when the trunk is at its limit. */
  takeTrunkSlot(call: Call, trunkId: string): boolean;
  routes: InboundRouteSource;
  /** Where a routed call's channel lives: here, or a 302 to its home node (homing.ts). */
  homing: InboundHoming;
  webhooks(): InboundWebhookSettings;
  settings(): { sendRinging: boolean; sessionTimerSec: number; headersToAttributes: Record<string, string> };
}

export async function handleInboundInvite(ctx: InboundFlowContext, req: SipRequest, tx: ServerTransaction, inbound: InboundContext): Promise<void> {
  // The stack's screen (CallManager.start) already refused sources that belong to no trunk; a trunk
  // removed since then is refused here.
  // Behind a front, the trunk is the one the front says the request came from.
  const trunk = ctx.trunkForSource((inbound.origin ?? inbound.source).address);
  if (!trunk) {
    tx.respond(403, "Forbidden");
    return;
  }
  const overLimit = !ctx.hasCapacity();
  const encryption = callEncryption(trunk, inbound.local.transport);
  const call = ctx.createCall({
    direction: "inbound",
    from: formatUri(req.from.uri),
    to: formatUri(req.to.uri),
    sipCallId: req.callId,
    trunkId: trunk.id,
    attributes: attributesFromHeaders(req, ctx.settings().headersToAttributes),
    ...(encryption.ok ? { mediaEncryption: encryption.encryption } : {}),
    invite: tx,
  });
  const reject = (status: number, reason: string, headers: [string, string][] = []) => {
    tx.respond(status, reason, { headers });
    call.end("rejected", { sipStatus: status });
  };
  if (overLimit || !ctx.takeTrunkSlot(call, trunk.id)) return reject(503, "Too Many Calls", [["Retry-After", "30"]]);
  const timers = negotiateInbound(req, ctx.settings().sessionTimerSec);
  if (!timers.ok) return reject(timers.status, "Session Interval Too Small", timers.headers);
  if (!encryption.ok) {
    // RFC 3261 §20.43: 399, a warning for a human.
    const host = ctx.stack.contactFor(undefined, inbound.local.transport).uri.host;
    return reject(488, "Not Acceptable Here", [["Warning", `399 ${host} "${encryption.reason}"`]]);
  }

  const headers = headersRecord(req);
  const webhooks = ctx.webhooks();
  tx.on("cancel", () => {
    call.end("cancelled", { sipStatus: 487 });
    void notifyInboundCancel(headers, webhooks, call.log);
  });
  // Should this flow hang (a stuck webhook), the stack answers 500 after its deadline; the call ends with it.
  tx.on("unanswered", () => call.end("timeout", { sipStatus: 500 }));

  // A call another node routed and redirected here comes with its route (homing.ts).
  const routed =
    ctx.homing.ticketRoute(req) ??
    (await routeInbound(
      { toUser: req.to.uri.user, fromUri: call.info.from, headers, sdp: req.body.length > 0 ? redactSdesKeys(req.bodyText) : "" },
      ctx.routes,
      webhooks,
      call.signal,
    ));
  if (call.isEnded) return;
  if (!routed.ok) {
    call.log.warn("inbound call not routed", { status: routed.status, reason: routed.reason, detail: routed.detail });
    return reject(routed.status, routed.reason);
  }
  call.routed(routed.route);

  // One channel, one mixer: a channel homed on another node sends the caller there.
  const placed = await ctx.homing.place(routed.route, req, call.log);
  if (call.isEnded) return;
  if (!placed.here) {
    tx.respond(placed.status, placed.reason, { headers: placed.headers });
    return call.end(placed.status === 302 ? "redirected" : "rejected", { sipStatus: placed.status });
  }

  // The caller joins the channel now: its phone leg is needed for the SDP answer.
  const media = await call.joinChannel();
  if (call.isEnded) return;
  if ("error" in media) {
    call.log.error("no media for the call", { reason: media.error });
    return reject(503, "Media Unavailable");
  }

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
  const contact = ctx.stack.contactFor(undefined, inbound.local.transport);
  let early: Dialog | undefined;
  if (ctx.settings().sendRinging && wantsReliableProvisionals(req)) {
    early = await ringReliably(ctx, call, req, tx, inbound, contact);
    if (!early) return;
  } else if (ctx.settings().sendRinging) {
    tx.respond(180, "Ringing");
    call.ringing(180);
  }
  const answer = { contact, body, contentType: "application/sdp", headers: [["Allow", ALLOW_METHODS], ["Supported", "timer"], ...timers.headers] as [string, string][], log: call.log };
  const dialog = early ? early.accept(req, tx, answer) : Dialog.answer(ctx.stack, req, tx, inbound, answer);
  if (!call.connect(dialog, { ...(timers.settings ? { sessionTimer: timers.settings } : {}), answerInAck: codec === undefined })) return;
  if (codec !== undefined) call.answered(codec);
}

/**
 * RFC 3262 §3: a caller that requires or supports 100rel gets the 180 reliably (it creates the early
 * dialog), and our 2xx waits for its PRACK. The early dialog, or undefined when the call ended
 * meanwhile (CANCEL, a BYE in the early dialog, our hang-up) or no PRACK came (§3: 5xx).
 */
async function ringReliably(ctx: InboundFlowContext, call: Call, req: SipRequest, tx: ServerTransaction, inbound: InboundContext, contact: NameAddr): Promise<Dialog | undefined> {
  const early = Dialog.early(ctx.stack, req, tx, inbound, { log: call.log });
  const provisionals = new ReliableProvisionals(early, req, tx, ctx.stack.transactions.timers);
  // RFC 3261 §15: a BYE in the early dialog ends the call; the INVITE gets 487.
  const byeBeforeAnswer = (reason: DialogTermination) => {
    if (reason !== "bye") return;
    tx.respond(487, "Request Terminated");
    call.end("cancelled", { sipStatus: 487 });
  };
  early.on("terminated", byeBeforeAnswer);
  const acknowledged = provisionals.send(180, "Ringing", { contact });
  call.ringing(180);
  const outcome = await acknowledged;
  provisionals.close();
  early.off("terminated", byeBeforeAnswer);
  if (outcome === "acknowledged" && !call.isEnded) return early;
  early.terminate();
  if (!call.isEnded) {
    call.log.warn("no PRACK for the reliable 180", { outcome });
    tx.respond(500, "Reliable Provisional Response Not Acknowledged");
    call.end("timeout", { sipStatus: 500 });
  }
  return undefined;
}

/** The INVITE's headers as the webhooks get them: name → value, repeated headers joined with ", ". */
export function headersRecord(req: SipRequest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const { name, value } of req.headerFields) {
    out[name] = Object.hasOwn(out, name) ? `${out[name]}, ${value}` : value;
  }
  return out;
}
