// A call from a channel to a phone: trunk choice (outbound webhook or first available) → caller ID
// from the channel's templates → INVITE (delayed offer by default, early offer per trunk) through
// the trunk's resolved targets (failover before any provisional, RFC 3263 §4.3) → digest retry on
// 401/407 (same Call-ID, CSeq + 1, RFC 3261 §22.2) → 180/183 ringing (early media into the channel
// when an answer came with it) → 2xx: ACK (carrying our answer for a delayed offer) and media; any
// other final response fails the call with its status. The ring timeout and a hang-up end the call,
// which sends CANCEL (call.ts).
import type { TrunkInput } from "../config/entities.ts";
import { chooseTrunk, type OutboundWebhookSettings, type TrunkChoiceCandidate } from "../routing/outbound.ts";
import { Dialog, type DialogHost } from "../sip/dialog.ts";
import { authorize, DigestState } from "../sip/digest.ts";
import { formatUri, type SipRequest, type SipResponse } from "../sip/message.ts";
import { isFailoverStatus, isIpLiteral, type ResolvedTarget, type Resolver } from "../sip/resolver.ts";
import type { SipStack } from "../sip/stack.ts";
import type { ClientTransaction } from "../sip/transaction.ts";
import type { Call } from "./call.ts";
import { fromHeader, renderCallerId, type CallerIdTemplates } from "./callerId.ts";
import { requestUriFor, type DialTarget } from "./dialTarget.ts";
import { fromInvite2xx } from "./sessionTimer.ts";
import { ALLOW_METHODS, type DialRequest } from "./types.ts";

/** 401 then 407 (or the reverse) is the most a trunk asks in one call (RFC 3261 §22). */
const MAX_CHALLENGES = 2;

/** What the outbound flow uses (CallManager provides it). */
export interface OutboundFlowContext {
  stack: DialogHost & Pick<SipStack, "createOutOfDialogRequest" | "sendRequest">;
  resolver: Resolver;
  /** Trunks for the outbound chooser, with availability. */
  trunkCandidates(): TrunkChoiceCandidate[];
  trunk(id: string): TrunkInput | undefined;
  /** Counts the call on its trunk; false when the trunk is unavailable or at its limit. */
  takeTrunkSlot(call: Call, trunkId: string): boolean;
  callerId(applicationId: string, channelId: string): CallerIdTemplates | undefined;
  webhooks(): OutboundWebhookSettings;
  ringTimeoutSec(): number;
}

export async function placeOutboundCall(ctx: OutboundFlowContext, call: Call, request: DialRequest, target: DialTarget): Promise<void> {
  const candidates = ctx.trunkCandidates();
  const origin = {
    applicationId: request.applicationId,
    channelId: request.channelId,
    clientId: request.client.id,
    ...(request.client.userId ? { userId: request.client.userId } : {}),
  };
  const choice = await chooseTrunk(origin, candidates, ctx.webhooks(), call.signal);
  if (!call.isLive) return;
  if (!choice.ok) {
    call.log.warn("no trunk for the call", { reason: choice.reason, detail: choice.message });
    return call.end(choice.reason);
  }
  const trunk = ctx.trunk(choice.trunkId);
  if (!trunk || !ctx.takeTrunkSlot(call, trunk.id)) {
    call.log.warn("chosen trunk refused the call", { trunkId: choice.trunkId });
    return call.end("trunk_unavailable");
  }

  const callerId = renderCallerId(ctx.callerId(request.applicationId, request.channelId), request.client, trunk.username);
  const from = fromHeader(callerId, trunk.domain);
  const requestUri = requestUriFor(target, trunk);
  // Our INVITE goes over the trunk's transport, which its schema (sdesSignallingRule) already
  // requires to be TLS for SRTP unless the trunk allows keys in the clear.
  call.trunkChosen({ trunkId: trunk.id, mediaEncryption: trunk.mediaEncryption, from: formatUri(from.uri), to: formatUri(requestUri) });

  let targets: ResolvedTarget[];
  try {
    targets = await ctx.resolver.resolve(trunk.domain, trunk.transport, trunk.port);
  } catch (error) {
    call.log.warn("trunk domain does not resolve", { trunkId: trunk.id, error });
    return call.end("transport_error");
  }
  // Early offer needs the phone leg (and so the channel) now; a delayed offer only at the 2xx.
  let offer: string | undefined;
  if (trunk.earlyOffer) {
    const media = await call.joinChannel();
    if (!call.isLive) return;
    if ("error" in media) return call.end("media_error");
    offer = media.offer();
  }
  if (!call.isLive) return;

  let invite = ctx.stack.createOutOfDialogRequest({
    method: "INVITE",
    uri: requestUri,
    from,
    to: { uri: requestUri, params: new Map() },
    transport: trunk.transport,
    contactUser: callerId.username,
    headers: [["Allow", ALLOW_METHODS], ["Supported", "timer"]],
    ...(offer ? { body: offer, contentType: "application/sdp" } : {}),
  });

  const attempt = new InviteAttempt(ctx, call, trunk, offer !== undefined);
  const ringTimer = setTimeout(() => call.end("no_answer"), ctx.ringTimeoutSec() * 1000);
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
      invite = retryWithCredentials(ctx, invite, auth.header, auth.value, trunk);
    }
  } finally {
    clearTimeout(ringTimer);
  }
}

// RFC 3261 §22.2 / §8.1.3.5: the retry keeps Call-ID, From tag and To, with CSeq + 1 and a new branch.
function retryWithCredentials(ctx: OutboundFlowContext, invite: SipRequest, header: string, value: string, trunk: TrunkInput): SipRequest {
  const headers: [string, string][] = invite.headerFields
    .filter((f) => !["via", "from", "to", "call-id", "cseq", "contact", "max-forwards", "content-type", "content-length", header.toLowerCase()].includes(f.name.toLowerCase()))
    .map((f) => [f.name, f.value]);
  const retry = ctx.stack.createOutOfDialogRequest({
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

/** One INVITE client transaction at a time, with its provisional responses; the call cancels it (call.ts). */
class InviteAttempt {
  /** Early media: an 18x answered our early offer with this SDP, giving this codec. */
  private early: { sdp: string; codec: string } | undefined;

  constructor(
    private readonly ctx: OutboundFlowContext,
    private readonly call: Call,
    private readonly trunk: TrunkInput,
    private readonly earlyOffer: boolean,
  ) {}

  async send(invite: SipRequest, destination: ResolvedTarget): Promise<AttemptResult> {
    if (!this.call.isLive) return { kind: "cancelled" };
    const serverName = isIpLiteral(this.trunk.domain) ? undefined : this.trunk.domain;
    let tx: ClientTransaction;
    try {
      tx = this.ctx.stack.sendRequest(invite, destination, { verify: this.trunk.tlsVerify, ...(serverName ? { serverName } : {}) });
    } catch (error) {
      this.call.inviting(invite, undefined);
      this.call.log.warn("INVITE could not be sent", { error });
      return { kind: "failover", reason: "transport_error" };
    }
    this.call.inviting(invite, tx);
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
    // A call being cancelled neither fails over nor answers challenges: its INVITE's answer ends it.
    const live = this.call.isLive;
    if (outcome.kind !== "final") {
      if (!provisional && live) return { kind: "failover", reason: outcome.kind === "timeout" ? "timeout" : "transport_error" };
      return outcome.kind === "timeout" ? { kind: "timeout" } : { kind: "transport_error" };
    }
    const res = outcome.response;
    if ((res.status === 401 || res.status === 407) && live) return { kind: "challenge", response: res };
    if (!provisional && live && isFailoverStatus(res.status) && res.status >= 500) return { kind: "failover", reason: "unavailable", response: res };
    return { kind: "final", response: res, tx };
  }

  /** Ends the call with the attempt's outcome (a cancelled call records it as cancelled), or answers it. */
  finish(result: AttemptResult, invite: SipRequest, destination: ResolvedTarget): void | Promise<void> {
    const call = this.call;
    if (call.isEnded) return;
    if (result.kind === "timeout" || (result.kind === "failover" && result.reason === "timeout")) return call.end("timeout", { sipStatus: 408 });
    if (result.kind === "transport_error" || result.kind === "failover") {
      if (result.kind === "failover" && result.response) return call.end("rejected", { sipStatus: result.response.status });
      return call.end("transport_error");
    }
    if (result.kind === "cancelled") return call.end("cancelled");
    const res = result.response;
    if (res.status >= 300) {
      call.log.info("call failed", { sipStatus: res.status, reason: res.reason });
      return call.end("rejected", { sipStatus: res.status });
    }
    if (result.kind === "final" && result.tx) return this.answered(invite, res, result.tx, destination);
    call.end("rejected", { sipStatus: res.status });
  }

  private async answered(invite: SipRequest, res: SipResponse, tx: ClientTransaction, destination: ResolvedTarget): Promise<void> {
    const { call } = this;
    const stack = this.ctx.stack;
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
    const sessionTimer = fromInvite2xx(res);
    // A 2xx that crossed our CANCEL is ended with BYE by the call.
    if (!call.connect(dialog, sessionTimer ? { sessionTimer } : {})) return;
    if (failure !== undefined || codec === undefined) {
      call.log.warn("answer unusable, hanging up", { reason: failure });
      return call.end("media_error", { cause: { status: 488, text: failure ?? "no codec" } });
    }
    call.answered(codec);
  }
}
