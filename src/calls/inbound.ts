// An INVITE from a trunk, until it is answered or turned away:
//   source check (the stack's screen already dropped strangers; 403 for a trunk removed since) → limits (503) → 100 Trying (the stack) → routing: static map, then
//   the inbound webhook (404 / 5xx saying why) → SDP answer (or our offer for a delayed-offer
//   INVITE), for which the caller joins the channel's mixer with its userId → optional 180 → 200,
//   retransmitted until the ACK (the dialog).
// CANCEL at any point before the 200: the stack sends 200 + 487; the call ends as `cancelled`
// (which aborts the routing webhook in flight) and the inbound-cancel webhook hears the INVITE's headers.
import type { TrunkInput } from "../config/entities.ts";
import { notifyInboundCancel, routeInbound, type InboundRouteSource, type InboundWebhookSettings } from "../routing/inbound.ts";
import { redactSdesKeys } from "../media/sdes.ts";
import { Dialog, type DialogHost } from "../sip/dialog.ts";
import { formatUri, type SipRequest } from "../sip/message.ts";
import type { ServerTransaction } from "../sip/transaction.ts";
import type { InboundContext } from "../sip/transport.ts";
import type { Call, CallInit } from "./call.ts";
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
  webhooks(): InboundWebhookSettings;
  settings(): { sendRinging: boolean; sessionTimerSec: number };
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
    void notifyInboundCancel(headers, webhooks);
  });
  // Should this flow hang (a stuck webhook), the stack answers 500 after its deadline; the call ends with it.
  tx.on("unanswered", () => call.end("timeout", { sipStatus: 500 }));

  const routed = await routeInbound(
    { toUser: req.to.uri.user, fromUri: call.info.from, headers, sdp: req.body.length > 0 ? redactSdesKeys(req.bodyText) : "" },
    ctx.routes,
    webhooks,
    call.signal,
  );
  if (call.isEnded) return;
  if (!routed.ok) {
    call.log.warn("inbound call not routed", { status: routed.status, reason: routed.reason, detail: routed.detail });
    return reject(routed.status, routed.reason);
  }
  call.routed(routed.route);

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
  if (ctx.settings().sendRinging) {
    tx.respond(180, "Ringing");
    call.ringing(180);
  }
  const dialog = Dialog.answer(ctx.stack, req, tx, inbound, {
    contact: ctx.stack.contactFor(undefined, inbound.local.transport),
    body,
    contentType: "application/sdp",
    headers: [["Allow", ALLOW_METHODS], ["Supported", "timer"], ...timers.headers],
  });
  if (!call.connect(dialog, { ...(timers.settings ? { sessionTimer: timers.settings } : {}), answerInAck: codec === undefined })) return;
  if (codec !== undefined) call.answered(codec);
}

/** The INVITE's headers as the webhooks get them: name → value, repeated headers joined with ", ". */
export function headersRecord(req: SipRequest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const { name, value } of req.headerFields) {
    out[name] = Object.hasOwn(out, name) ? `${out[name]}, ${value}` : value;
  }
  return out;
}
