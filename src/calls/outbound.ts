// A call from a channel to a phone: trunk choice (outbound webhook or first available) → caller ID
// from the channel's templates → INVITE (delayed offer by default, early offer per trunk) through
// the trunk's resolved targets (failover before any provisional, RFC 3263 §4.3) → digest retry on
// 401/407 (same Call-ID, CSeq + 1, RFC 3261 §22.2) → 180/183 ringing (early media into the channel
// when an answer came with it; a reliable 1xx, RFC 3262, is PRACKed, with our answer when it carried
// the offer) → 2xx: ACK (carrying our answer for a delayed offer) and media; a 301/302 sends the
// INVITE on to its Contacts as far as the trunk's redirect policy allows (redirects.ts, RFC 3261
// §8.1.3.4); any other final response fails the call with its status. The ring timeout and a
// hang-up end the call, which sends CANCEL (call.ts).
import type { TrunkInput } from "../config/entities.ts";
import { chooseTrunk, type OutboundWebhookSettings, type TrunkChoiceCandidate } from "../routing/outbound.ts";
import { Dialog, type DialogHost } from "../sip/dialog.ts";
import { authorize, DigestState } from "../sip/digest.ts";
import { formatUri, NO_PARAMS, type SipRequest, type SipResponse, type SipUri } from "../sip/message.ts";
import { ProvisionalAcknowledgements, type ProvisionalVerdict } from "../sip/reliable.ts";
import { isFailoverStatus, isIpLiteral, type ResolvedTarget, type Resolver } from "../sip/resolver.ts";
import type { SipStack } from "../sip/stack.ts";
import type { ClientTransaction } from "../sip/transaction.ts";
import type { Call } from "./call.ts";
import { fromHeader, renderCallerId, type CallerIdTemplates } from "./callerId.ts";
import { requestUriFor, type DialTarget } from "./dialTarget.ts";
import { outboundHeaders } from "./headers.ts";
import { RedirectFollower } from "./redirects.ts";
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
  /** The most 3xx redirects one call follows (calls.maxRedirects). */
  maxRedirects(): number;
  /** Whether the address is the trunk's: its domain's resolved addresses or its allowedAddresses. */
  isTrunkAddress(trunk: TrunkInput, address: string): boolean;
}

/**
 * `via`: the trunk and destinations are already decided (a transfer the trunk asked for, call.ts
 * onRefer): no trunk choice, and the INVITE goes where the target resolved rather than to the trunk's domain.
 */
export async function placeOutboundCall(
  ctx: OutboundFlowContext,
  call: Call,
  request: DialRequest,
  target: DialTarget,
  via?: { trunkId: string; destinations: ResolvedTarget[] },
): Promise<void> {
  let trunkId = via?.trunkId;
  if (trunkId === undefined) {
    const origin = {
      applicationId: request.applicationId,
      channelId: request.channelId,
      clientId: request.client.id,
      ...(request.client.userId ? { userId: request.client.userId } : {}),
    };
    const choice = await chooseTrunk(origin, ctx.trunkCandidates(), ctx.webhooks(), call.signal);
    if (!call.isLive) return;
    if (!choice.ok) {
      call.log.warn("no trunk for the call", { reason: choice.reason, detail: choice.message });
      return call.end(choice.reason);
    }
    trunkId = choice.trunkId;
  }
  const trunk = ctx.trunk(trunkId);
  if (!trunk || !ctx.takeTrunkSlot(call, trunk.id)) {
    call.log.warn("chosen trunk refused the call", { trunkId });
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
    targets = via?.destinations ?? (await ctx.resolver.resolve(trunk.domain, trunk.transport, trunk.port));
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
    to: { uri: requestUri, params: NO_PARAMS },
    transport: trunk.transport,
    contactUser: callerId.username,
    headers: [["Allow", ALLOW_METHODS], ...optionTagHeaders(trunk.prack), ...outboundHeaders(callerId.headers, request.headers)],
    ...(offer ? { body: offer, contentType: "application/sdp" } : {}),
  });

  const attempt = new InviteAttempt(ctx, call, trunk, offer !== undefined);
  const redirects = new RedirectFollower(
    {
      policy: trunk.redirects,
      maxHops: ctx.maxRedirects(),
      transport: trunk.transport,
      trunkDomain: trunk.domain,
      isTrunkAddress: (address) => ctx.isTrunkAddress(trunk, address),
      resolver: ctx.resolver,
    },
    requestUri,
  );
  const ringTimer = setTimeout(() => call.end("no_answer"), ctx.ringTimeoutSec() * 1000);
  try {
    let recordedHops = 0;
    for (;;) {
      const tried = await tryTarget(ctx, attempt, invite, targets, trunk);
      invite = tried.invite;
      const step = tried.result.kind === "final" && call.isLive ? await redirects.afterFinal(tried.result.response) : undefined;
      if (redirects.hopsSeen.length > recordedHops) {
        recordedHops = redirects.hopsSeen.length;
        call.redirected(redirects.hopsSeen);
      }
      if (step === undefined || !call.isLive) return attempt.finish(tried.result, tried.invite, tried.destination);
      if ("end" in step) {
        call.log.warn("redirect not followed", { reason: step.end, sipStatus: step.sipStatus });
        return call.end(step.end, { sipStatus: step.sipStatus });
      }
      call.log.info("following a redirect", { to: formatUri(step.next.uri) });
      invite = nextRequest(ctx, invite, trunk, { uri: step.next.uri });
      targets = step.next.destinations;
    }
  } finally {
    clearTimeout(ringTimer);
  }
}

// RFC 3262 §4: the INVITE offers reliable provisionals (Supported) or insists on them (Require).
function optionTagHeaders(prack: TrunkInput["prack"]): [string, string][] {
  if (prack === "supported") return [["Supported", "timer, 100rel"]];
  if (prack === "required") return [["Supported", "timer"], ["Require", "100rel"]];
  return [["Supported", "timer"]];
}

/**
 * One target: its resolved destinations in order (failover before any provisional, RFC 3263 §4.3),
 * and digest retries on 401/407 (RFC 3261 §22.2). Returns the outcome with the INVITE that got it.
 */
async function tryTarget(
  ctx: OutboundFlowContext,
  attempt: InviteAttempt,
  first: SipRequest,
  destinations: ResolvedTarget[],
  trunk: TrunkInput,
): Promise<{ result: AttemptResult; invite: SipRequest; destination: ResolvedTarget }> {
  const digest = new DigestState();
  let challenges = 0;
  let invite = first;
  for (let i = 0; ; ) {
    const destination = destinations[i]!;
    const result = await attempt.send(invite, destination);
    if (result.kind === "failover" && i + 1 < destinations.length) {
      i++;
      continue;
    }
    if (result.kind !== "challenge" || challenges >= MAX_CHALLENGES) return { result, invite, destination };
    const auth = authorize(result.response, invite, { username: trunk.username, password: trunk.password, ...(trunk.authId ? { authId: trunk.authId } : {}) }, digest);
    if ("error" in auth) {
      attempt.log.warn("trunk rejected our credentials", { trunkId: trunk.id, reason: auth.error });
      return { result: { kind: "final", response: result.response }, invite, destination };
    }
    challenges++;
    invite = nextRequest(ctx, invite, trunk, { credentials: { header: auth.header, value: auth.value } });
  }
}

/**
 * The INVITE's next request in the same call: Call-ID, From tag and To kept, CSeq + 1, a new branch.
 * With credentials: the digest retry (RFC 3261 §22.2 / §8.1.3.5). With a URI: the same request to a
 * redirect's Contact (§8.1.3.4), whose credentials were for the previous target.
 */
function nextRequest(ctx: OutboundFlowContext, invite: SipRequest, trunk: TrunkInput, o: { credentials?: { header: string; value: string }; uri?: SipUri }): SipRequest {
  const dropped = ["via", "from", "to", "call-id", "cseq", "contact", "max-forwards", "content-type", "content-length"];
  if (o.credentials) dropped.push(o.credentials.header.toLowerCase());
  if (o.uri) dropped.push("authorization", "proxy-authorization");
  const headers: [string, string][] = invite.headerFields.filter((f) => !dropped.includes(f.name.toLowerCase())).map((f) => [f.name, f.value]);
  if (o.credentials) headers.push([o.credentials.header, o.credentials.value]);
  return ctx.stack.createOutOfDialogRequest({
    method: "INVITE",
    uri: o.uri ?? invite.uri,
    from: invite.from,
    to: invite.to,
    transport: trunk.transport,
    ...(invite.from.uri.user ? { contactUser: invite.from.uri.user } : {}),
    callId: invite.callId,
    cseq: invite.cseq.seq + 1,
    headers,
    ...(invite.body.length > 0 ? { body: invite.body, contentType: invite.contentType ?? "application/sdp" } : {}),
  });
}

type AttemptResult =
  | { kind: "final"; response: SipResponse; tx?: ClientTransaction; early?: Dialog }
  | { kind: "cancelled" }
  | { kind: "challenge"; response: SipResponse }
  | { kind: "failover"; reason: "timeout" | "transport_error" | "unavailable"; response?: SipResponse }
  | { kind: "timeout" }
  | { kind: "transport_error" };

/** One INVITE client transaction at a time, with its provisional responses; the call cancels it (call.ts). */
class InviteAttempt {
  /**
   * Early media: an 18x answered our early offer with this SDP, giving this codec; `reliable`: the
   * 1xx was reliable (RFC 3262), its SDP the offer or answer for good, not a preview.
   */
  private early: { sdp: string; codec: string; reliable?: boolean } | undefined;

  constructor(
    private readonly ctx: OutboundFlowContext,
    private readonly call: Call,
    private readonly trunk: TrunkInput,
    private readonly earlyOffer: boolean,
  ) {}

  get log() {
    return this.call.log;
  }

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
    const pracks = this.trunk.prack === "off" ? undefined : new ProvisionalAcknowledgements(this.ctx.stack, invite, destination);
    let acknowledging: Promise<void> = Promise.resolve();
    tx.on("provisional", (res) => {
      if (res.status === 100) return;
      provisional = true;
      const verdict = pracks?.receive(res) ?? { kind: "unreliable" };
      if (verdict.kind === "discard") return;
      this.call.ringing(res.status);
      if (verdict.kind === "acknowledge") {
        acknowledging = acknowledging.then(() => this.acknowledge(pracks!, verdict, destination));
        return;
      }
      // Early media (RFC 3960): with our offer in the INVITE, an 18x answer lets the ringback play.
      if (this.earlyOffer && this.early === undefined && res.body.length > 0) {
        this.call.media?.setSignallingAddress(destination.address);
        const applied = this.call.media?.acceptAnswer(res.bodyText);
        if (applied?.ok) this.early = { sdp: res.bodyText, codec: applied.codec };
      }
    });
    const outcome = await tx.outcome;
    await acknowledging;
    const early = pracks?.finish(outcome.kind === "final" ? outcome.response : undefined);
    // A call being cancelled neither fails over nor answers challenges: its INVITE's answer ends it.
    const live = this.call.isLive;
    if (outcome.kind !== "final") {
      if (!provisional && live) return { kind: "failover", reason: outcome.kind === "timeout" ? "timeout" : "transport_error" };
      return outcome.kind === "timeout" ? { kind: "timeout" } : { kind: "transport_error" };
    }
    const res = outcome.response;
    if ((res.status === 401 || res.status === 407) && live) return { kind: "challenge", response: res };
    if (!provisional && live && isFailoverStatus(res.status) && res.status >= 500) return { kind: "failover", reason: "unavailable", response: res };
    return { kind: "final", response: res, tx, ...(early ? { early } : {}) };
  }

  /**
   * RFC 3262 §4: PRACKs a reliable 1xx. Its SDP is the answer to our early offer, or (our INVITE had
   * none) the offer, answered in the PRACK (§5); either way the early media plays into the channel.
   */
  private async acknowledge(pracks: ProvisionalAcknowledgements, verdict: Extract<ProvisionalVerdict, { kind: "acknowledge" }>, destination: ResolvedTarget): Promise<void> {
    const { call } = this;
    const res = verdict.response;
    let answer: { body: string; contentType: string } | undefined;
    if (res.body.length > 0 && this.early?.reliable !== true) {
      const media = this.earlyOffer ? call.media : await call.joinChannel();
      if (!call.isLive) return;
      if (!media || "error" in media) return call.end("media_error");
      media.setSignallingAddress(destination.address);
      if (this.earlyOffer) {
        if (this.early) media.offer(); // an unreliable 18x's answer was taken: re-arm our offer
        const applied = media.acceptAnswer(res.bodyText);
        if (!applied.ok) return call.end("media_error", { cause: { status: 488, text: applied.reason } });
        this.early = { sdp: res.bodyText, codec: applied.codec, reliable: true };
      } else {
        const answered = media.answer(res.bodyText);
        if (!answered.ok) return call.end("media_error", { cause: { status: 488, text: answered.reason } });
        this.early = { sdp: res.bodyText, codec: answered.codec, reliable: true };
        answer = { body: answered.sdp, contentType: "application/sdp" };
      }
    }
    void pracks.prack(verdict, answer);
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
    if (result.kind === "final" && result.tx) return this.answered(invite, res, result.tx, destination, result.early);
    call.end("rejected", { sipStatus: res.status });
  }

  private async answered(invite: SipRequest, res: SipResponse, tx: ClientTransaction, destination: ResolvedTarget, early?: Dialog): Promise<void> {
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
      if (this.early && (this.early.reliable || res.body.length === 0 || res.bodyText === this.early.sdp)) {
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
    } else if (this.early?.reliable) {
      // RFC 3262 §5: the offer came in a reliable 1xx and our answer in its PRACK; the 2xx adds none.
      codec = this.early.codec;
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
    const dialog = Dialog.fromInvite2xx(stack, invite, res, tx, destination, { log: call.log, ...(ack ? { ack } : {}), ...(early ? { early } : {}) });
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
