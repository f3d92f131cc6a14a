// A call from a channel to a phone: trunk choice (outbound webhook or first available) → caller ID
// from the channel's templates → INVITE (delayed offer by default, early offer per trunk) through
// the trunk's resolved targets (failover before any provisional, RFC 3263 §4.3) → digest retry on
// 401/407 (same Call-ID, CSeq + 1, RFC 3261 §22.2) → 180/183 ringing (early media into the channel
// when an answer came with it) → 2xx: ACK (carrying our answer for a delayed offer) and media; any
// other final response fails the call with its status. The ring timeout and a hang-up send CANCEL.
import type { TrunkInput } from "../config/entities.ts";
import { chooseTrunk } from "../routing/outbound.ts";
import { Dialog } from "../sip/dialog.ts";
import { authorize, DigestState } from "../sip/digest.ts";
import { formatUri, type NameAddr, type SipRequest, type SipResponse } from "../sip/message.ts";
import { isFailoverStatus, isIpLiteral, type ResolvedTarget } from "../sip/resolver.ts";
import type { ClientTransaction } from "../sip/transaction.ts";
import type { Call } from "./call.ts";
import { renderCallerId } from "./callerId.ts";
import { requestUriFor, type DialTarget } from "./dialTarget.ts";
import type { CallManager } from "./manager.ts";
import { fromInvite2xx } from "./sessionTimer.ts";
import { ALLOW_METHODS, type DialRequest } from "./types.ts";

/** 401 then 407 (or the reverse) is the most a trunk asks in one call (RFC 3261 §22). */
const MAX_CHALLENGES = 2;

export async function placeOutboundCall(manager: CallManager, call: Call, request: DialRequest, target: DialTarget): Promise<void> {
  const { deps } = manager;
  const stop = new AbortController();
  call.abandon = () => {
    stop.abort();
    call.end("cancelled");
  };

  const candidates = deps.trunks.candidates();
  const origin = {
    applicationId: request.applicationId,
    channelId: request.channelId,
    clientId: request.client.id,
    ...(request.client.userId ? { userId: request.client.userId } : {}),
  };
  const choice = await chooseTrunk(origin, candidates, deps.webhooks(), stop.signal);
  if (call.isEnded) return;
  if (!choice.ok) {
    call.log.warn("no trunk for the call", { reason: choice.reason, detail: choice.message });
    return call.end(choice.reason);
  }
  const trunk = manager.trunk(choice.trunkId);
  if (!trunk || !manager.takeTrunkSlot(call, trunk.id, { outbound: true })) {
    call.log.warn("chosen trunk refused the call", { trunkId: choice.trunkId });
    return call.end("trunk_unavailable");
  }

  // Our INVITE goes over the trunk's transport, which its schema (sdesSignallingRule) already
  // requires to be TLS for SRTP unless the trunk allows keys in the clear.
  call.mediaEncryption = trunk.mediaEncryption;

  const callerId = renderCallerId(deps.callerId(request.applicationId, request.channelId), request.client, trunk.username);
  const from: NameAddr = {
    ...(callerId.displayName ? { displayName: callerId.displayName } : {}),
    uri: { scheme: "sip", user: callerId.username, host: trunk.domain, params: new Map(), headers: new Map() },
    params: new Map(),
  };
  const requestUri = requestUriFor(target, trunk);
  call.from = formatUri(from.uri);
  call.to = formatUri(requestUri);
  call.record({ trunkId: trunk.id, from: call.from, to: call.to });

  let targets: ResolvedTarget[];
  try {
    targets = await deps.resolver.resolve(trunk.domain, trunk.transport, trunk.port);
  } catch (error) {
    call.log.warn("trunk domain does not resolve", { trunkId: trunk.id, error });
    return call.end("transport_error");
  }
  // Early offer needs the phone leg (and so the channel) now; a delayed offer only at the 2xx.
  let offer: string | undefined;
  if (trunk.earlyOffer) {
    const media = await call.joinChannel();
    if ("error" in media) return call.end("media_error");
    offer = media.offer();
  }
  if (call.isEnded) return;

  let invite = deps.stack.createOutOfDialogRequest({
    method: "INVITE",
    uri: requestUri,
    from,
    to: { uri: requestUri, params: new Map() },
    transport: trunk.transport,
    contactUser: callerId.username,
    headers: [["Allow", ALLOW_METHODS], ["Supported", "timer"]],
    ...(offer ? { body: offer, contentType: "application/sdp" } : {}),
  });
  call.record({ sipCallId: invite.callId });

  const attempt = new InviteAttempt(manager, call, trunk, offer !== undefined);
  call.abandon = () => attempt.cancel("cancelled");
  const ringTimer = setTimeout(() => attempt.cancel("no_answer"), deps.settings().ringTimeoutSec * 1000);
  try {
    const digest = new DigestState();
    let challenges = 0;
    for (let i = 0; i < targets.length; ) {
      const destination = targets[i]!;
      const result = await attempt.send(invite, destination);
      if (result.kind === "failover" && i + 1 < targets.length) {
        i++;
        continue;
      }
      if (result.kind !== "challenge" || challenges >= MAX_CHALLENGES) return attempt.finish(result, invite, destination);
      const auth = authorize(result.response, invite, { username: trunk.username, password: trunk.password, ...(trunk.authId ? { authId: trunk.authId } : {}) }, digest);
      if ("error" in auth) {
        call.log.warn("trunk rejected our credentials", { trunkId: trunk.id, reason: auth.error });
        return attempt.finish({ kind: "final", response: result.response }, invite, destination);
      }
      challenges++;
      invite = retryWithCredentials(manager, invite, auth.header, auth.value, trunk);
    }
  } finally {
    clearTimeout(ringTimer);
  }
}

// RFC 3261 §22.2 / §8.1.3.5: the retry keeps Call-ID, From tag and To, with CSeq + 1 and a new branch.
function retryWithCredentials(manager: CallManager, invite: SipRequest, header: string, value: string, trunk: TrunkInput): SipRequest {
  const headers: [string, string][] = invite.headerFields
    .filter((f) => !["via", "from", "to", "call-id", "cseq", "contact", "max-forwards", "content-type", "content-length", header.toLowerCase()].includes(f.name.toLowerCase()))
    .map((f) => [f.name, f.value]);
  const retry = manager.deps.stack.createOutOfDialogRequest({
    method: "INVITE",
    uri: invite.uri,
    from: invite.from,
    to: invite.to,
    transport: trunk.transport,
    ...(invite.from.uri.user ? { contactUser: invite.from.uri.user } : {}),
    callId: invite.callId,
    cseq: invite.cseq.seq + 1,
    headers: [...headers, [header, value]],
    ...(invite.body.length > 0 ? { body: invite.body, contentType: invite.contentType ?? "application/sdp" } : {}),
  });
  return retry;
}

type AttemptResult =
  | { kind: "final"; response: SipResponse; tx?: ClientTransaction }
  | { kind: "cancelled" }
  | { kind: "challenge"; response: SipResponse }
  | { kind: "failover"; reason: "timeout" | "transport_error" | "unavailable"; response?: SipResponse }
  | { kind: "timeout" }
  | { kind: "transport_error" };

/** One INVITE client transaction at a time, with its provisional responses and cancellation. */
class InviteAttempt {
  private tx: ClientTransaction | undefined;
  private cancelled: "cancelled" | "no_answer" | undefined;
  /** Early media: an 18x answered our early offer with this SDP, giving this codec. */
  private early: { sdp: string; codec: string } | undefined;

  constructor(
    private readonly manager: CallManager,
    private readonly call: Call,
    private readonly trunk: TrunkInput,
    private readonly earlyOffer: boolean,
  ) {}

  /** RFC 3261 §9.1: CANCEL once a provisional arrived (the transaction waits for one otherwise). */
  cancel(reason: "cancelled" | "no_answer"): void {
    if (this.cancelled || this.call.isEnded) return;
    this.cancelled = reason;
    if (this.tx) this.tx.cancel();
    else this.call.end(reason);
  }

  async send(invite: SipRequest, destination: ResolvedTarget): Promise<AttemptResult> {
    if (this.cancelled) return { kind: "cancelled" };
    const serverName = isIpLiteral(this.trunk.domain) ? undefined : this.trunk.domain;
    let tx: ClientTransaction;
    try {
      tx = this.manager.deps.stack.sendRequest(invite, destination, { verify: this.trunk.tlsVerify, ...(serverName ? { serverName } : {}) });
    } catch (error) {
      this.call.log.warn("INVITE could not be sent", { error });
      return { kind: "failover", reason: "transport_error" };
    }
    this.tx = tx;
    let provisional = false;
    tx.on("provisional", (res) => {
      if (res.status === 100) return;
      provisional = true;
      this.call.ringing(res.status);
      // Early media (RFC 3960): with our offer in the INVITE, an 18x answer lets the ringback play.
      if (this.earlyOffer && this.early === undefined && res.body.length > 0) {
        this.call.media?.setSignallingAddress(destination.address);
        const applied = this.call.media?.acceptAnswer(res.bodyText);
        if (applied?.ok) this.early = { sdp: res.bodyText, codec: applied.codec };
      }
    });
    const outcome = await tx.outcome;
    if (outcome.kind !== "final") {
      if (!provisional && !this.cancelled) return { kind: "failover", reason: outcome.kind === "timeout" ? "timeout" : "transport_error" };
      return outcome.kind === "timeout" ? { kind: "timeout" } : { kind: "transport_error" };
    }
    const res = outcome.response;
    if ((res.status === 401 || res.status === 407) && !this.cancelled) return { kind: "challenge", response: res };
    if (!provisional && !this.cancelled && isFailoverStatus(res.status) && res.status >= 500) return { kind: "failover", reason: "unavailable", response: res };
    return { kind: "final", response: res, tx };
  }

  finish(result: AttemptResult, invite: SipRequest, destination: ResolvedTarget): void | Promise<void> {
    const call = this.call;
    if (call.isEnded) return;
    if (result.kind === "timeout" || (result.kind === "failover" && result.reason === "timeout")) return call.end(this.cancelled ?? "timeout", 408);
    if (result.kind === "transport_error" || result.kind === "failover") {
      if (result.kind === "failover" && result.response) return call.end("rejected", result.response.status);
      return call.end("transport_error");
    }
    if (result.kind === "cancelled") return call.end(this.cancelled ?? "cancelled");
    const res = result.response;
    if (res.status >= 300) {
      call.log.info("call failed", { sipStatus: res.status, reason: res.reason });
      return call.end(res.status === 487 && this.cancelled ? this.cancelled : "rejected", res.status);
    }
    if (result.kind === "final" && result.tx) return this.answered(invite, res, result.tx, destination);
    call.end("rejected", res.status);
  }

  private async answered(invite: SipRequest, res: SipResponse, tx: ClientTransaction, destination: ResolvedTarget): Promise<void> {
    const { call } = this;
    const stack = this.manager.deps.stack;
    const media = await call.joinChannel();
    let codec: string | undefined;
    let failure: string | undefined;
    let ack: { body: string; contentType: string } | undefined;
    if ("error" in media) {
      failure = media.error;
    } else if (this.earlyOffer) {
      // RFC 3264 §4: the 2xx repeats (or first carries) the answer to the INVITE's offer. An 18x
      // answer without 100rel is only a preview (RFC 3261 §13.2.1): a different one in the 2xx wins.
      if (this.early && (res.body.length === 0 || res.bodyText === this.early.sdp)) {
        codec = this.early.codec;
      } else if (res.body.length === 0) {
        failure = "2xx without an SDP answer";
      } else {
        // The leg took the 18x answer; re-arming our (unchanged) offer lets it take the final one.
        if (this.early) media.offer();
        const applied = media.acceptAnswer(res.bodyText);
        if (applied.ok) codec = applied.codec;
        else failure = applied.reason;
      }
    } else if (res.body.length === 0) {
      failure = "2xx to a delayed-offer INVITE without an SDP offer";
    } else {
      const answer = media.answer(res.bodyText);
      if (answer.ok) {
        codec = answer.codec;
        ack = { body: answer.sdp, contentType: "application/sdp" };
      } else failure = answer.reason;
    }
    // §13.2.2.4: every 2xx is ACKed, even one we are about to end with BYE.
    const dialog = Dialog.fromInvite2xx(stack, invite, res, tx, destination, ack ? { ack } : {});
    call.attachDialog(dialog, fromInvite2xx(res));
    if (failure !== undefined || codec === undefined) {
      call.log.warn("answer unusable, hanging up", { reason: failure });
      return call.hangUpWithReason("media_error", { status: 488, text: failure ?? "no codec" });
    }
    if (this.cancelled) return call.hangUpWithReason("local_hangup");
    call.answered(codec);
  }
}
