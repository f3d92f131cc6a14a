// One call, inbound or outbound, from its first message to its record's end: the record written
// at each state change, the events, the phone leg in the channel's mixer, and the dialog's
// in-dialog requests (BYE, re-INVITE/UPDATE for hold/resume/new address/codec, INFO DTMF,
// RFC 4028 session refreshes). The flows (inbound.ts, outbound.ts) drive it through its life:
//
//   from              method                 to           on the wire (the call's part)
//   trying            ringing(status)        ringing      -
//   trying, ringing   connect(dialog)        connecting   - (the 2xx is sent or received: the dialog exists)
//   connecting        answered(codec)        answered     - (the SDP answer is settled: in the 2xx, or the ACK)
//   trying, ringing   end(reason we decide)  cancelling   outbound with an INVITE out: CANCEL (RFC 3261 §9.1)
//   trying, ringing   end(reason we decide)  ended        inbound: 480 (§21.4.18); outbound before the INVITE: nothing
//   trying, ringing   end(flow's outcome)    ended        - (the flow already answered or got the final response)
//   cancelling        end(flow's outcome)    ended        - (the INVITE's final response: recorded as we cancelled it)
//   cancelling        end(shutdown)          ended        - (the CANCEL is out; no waiting for its answer)
//   cancelling        connect(dialog)        ended        BYE (a 2xx crossed our CANCEL, §15)
//   connecting,
//   answered          end(any)               ended        BYE, with a Reason header (RFC 3326) when a cause is given,
//                                                         unless the peer ended the dialog (BYE, no ACK)
//   answered          end(max_duration)      ended        BYE with Reason: SIP;cause=200;text="max duration" (maxDuration.ts)
//
// `end(reason)` is the one way a call ends, whatever ends it: our hang-up (`local_hangup`), the
// peer's BYE, CANCEL or final response, a failure, the ring timeout, shutdown. Reasons "we decide"
// (DECIDED_BY_US) are the ones that must still act on the wire; the others report what happened.
import type { ChannelMember, ChannelRegistry } from "../channels/registry.ts";
import { emitEvent, type CallEventBase } from "../events.ts";
import { createContextLogger, type ContextLogger, type Logger } from "../log.ts";
import { metrics } from "../metrics.ts";
import type { Dialog } from "../sip/dialog.ts";
import type { MediaEncryption } from "../media/sdp.ts";
import { formatNameAddr, formatUri, type SipRequest, type SipUri } from "../sip/message.ts";
import type { SipStack } from "../sip/stack.ts";
import type { ClientTransaction, ServerTransaction } from "../sip/transaction.ts";
import type { CallDirection, CallStore, CallUpdate, RedirectHop } from "../store/calls.ts";
import { parseDtmfInfo } from "./dtmfInfo.ts";
import { MAX_DURATION_CAUSE } from "./maxDuration.ts";
import type { CallMedia, MediaFactory } from "./media.ts";
import { SessionTimer, type SessionTimerSettings } from "./sessionTimer.ts";
import { BlindTransfer, notifyReferProgress, referTarget, type TransferOutcome } from "./transfer.ts";
import { ALLOW_METHODS } from "./types.ts";

export interface CallEnvironment {
  store: CallStore;
  media: MediaFactory;
  registry: ChannelRegistry;
  stack: Pick<SipStack, "contactFor" | "sendStateless">;
  /** Removes the call from the manager's tables once it has ended. */
  release(call: Call): void;
  /** The longest the call may last from its answer (its trunk's, application's and the global limit); 0: unlimited. */
  maxDurationSec(identity: Readonly<CallIdentity>): number;
  /** The call's trunk's referPolicy: how a REFER from it is answered (RFC 3515 §2.4.2). */
  referPolicy(identity: Readonly<CallIdentity>): "decline" | "accept";
  /**
   * We are the transferee: a new outbound call to `referTo` through `from`'s trunk, into its channel
   * as the same participant. Refused (with the SIP status to answer the REFER) when the target is
   * not the trunk's or no call can be placed now.
   */
  placeReferredCall(from: Call, referTo: SipUri): Promise<{ call: Call } | { status: number; reason: string }>;
}

/** How a call turned out: answered, or ended before that (with the final status that ended it, if any). */
export type CallSettlement = { answered: true } | { answered: false; reason: EndReason; sipStatus?: number };

/** Why a call ended, as recorded in `endReason` and the call.ended event. */
export type EndReason =
  | "remote_bye"
  | "local_hangup"
  | "cancelled"
  | "rejected"
  /** Answered 302: the channel is homed on another node (homing.ts). */
  | "redirected"
  /** Outbound 301/302 whose Contacts the trunk's redirect policy forbids (redirects.ts). */
  | "redirect_forbidden"
  /** Outbound 301/302 back to a target already tried. */
  | "redirect_loop"
  /** Outbound 301/302 beyond calls.maxRedirects. */
  | "too_many_redirects"
  | "no_answer"
  | "no_ack"
  | "timeout"
  | "transport_error"
  | "media_timeout"
  | "session_expired"
  /** calls.maxDurationSec passed since the answer. */
  | "max_duration"
  | "media_error"
  | "no_trunk"
  | "unknown_trunk"
  | "trunk_unavailable"
  | "webhook_timeout"
  | "webhook_error"
  | "webhook_malformed"
  /** The far end took a blind transfer (REFER, transfer.ts): our leg is no longer needed. */
  | "transferred"
  | "shutdown";

/** Ends decided here rather than reported by the flow: before the answer they still act on the wire (CANCEL, 480). */
/**
 * The reason every call's `signal` is aborted with (its listeners only read `aborted`): without one,
 * abort() makes a DOMException, whose stack capture deep inside the SIP stack cost ≈ 2 % of the main
 * thread's CPU per call (bun --cpu-prof at 400 calls/s).
 */
const CALL_STOPPED = new Error("the call stopped going forward");

const DECIDED_BY_US: ReadonlySet<EndReason> = new Set(["local_hangup", "no_answer", "shutdown", "media_timeout", "session_expired"]);

export type CallPhase = "trying" | "ringing" | "connecting" | "answered" | "cancelling" | "ended";

/** The table above, as the transition methods check it. */
const TRANSITIONS: Record<CallPhase, readonly CallPhase[]> = {
  trying: ["ringing", "connecting", "cancelling", "ended"],
  ringing: ["connecting", "cancelling", "ended"],
  connecting: ["answered", "ended"],
  answered: ["ended"],
  cancelling: ["ended"],
  ended: [],
};

/** Who the call is for and where it goes; learned as the flow goes (routing, trunk choice). */
export interface CallIdentity {
  from: string;
  to: string;
  applicationId?: string;
  channelId?: string;
  userId?: string;
  clientId?: string;
  trunkId?: string;
  /** Inbound: attributes from the INVITE's headers (calls.headersToAttributes). */
  attributes?: Record<string, string>;
}

export interface CallInit extends CallIdentity {
  id: string;
  direction: CallDirection;
  sipCallId?: string;
  /** The SRTP policy of its phone leg (inbound: known from the trunk at once; outbound: see trunkChosen). */
  mediaEncryption?: MediaEncryption;
  /** Inbound: the INVITE's transaction, which our hang-up before the answer answers with 480. */
  invite?: ServerTransaction;
}

export interface EndDetail {
  /** The SIP status that ended it (a final response), for the record. */
  sipStatus?: number;
  /** Said in the BYE's Reason header (RFC 3326). */
  cause?: { status: number; text: string };
}

const endedCalls = metrics.counter("trunkline_calls_ended_total", "Calls ended, by direction and end reason.", ["direction", "reason"]);

export class Call {
  readonly id: string;
  readonly direction: CallDirection;
  /** Every line about the call carries callId and sipCallId (once known): flows, media and dialog log through it. */
  readonly log: Logger;
  private readonly logFields: ContextLogger;
  private current: CallPhase = "trying";
  private readonly identity: CallIdentity;
  private mediaEncryption: MediaEncryption;
  private codec?: string;
  private dialog?: Dialog;
  private callMedia?: CallMedia;
  private member?: ChannelMember;
  private sessionTimer?: SessionTimer;
  private maxDurationTimer?: ReturnType<typeof setTimeout>;
  /** The blind transfer (REFER) in progress. */
  private transfer?: BlindTransfer;
  /** A REFER from the trunk being acted on (we are the transferee). */
  private referred = false;
  private settle: (settlement: CallSettlement) => void = () => undefined;
  /** Resolves at the answer, or at the end of a call never answered (once that end is committed). */
  readonly settled = new Promise<CallSettlement>((resolve) => (this.settle = resolve));
  private endWasRecorded: () => void = () => undefined;
  /** Resolves once the record's end is committed and call.ended emitted: a hang-up answers after it. */
  readonly endRecorded = new Promise<void>((resolve) => (this.endWasRecorded = resolve));
  /** A re-INVITE (or INVITE) without SDP: our offer went in the 2xx, the answer comes in the ACK. */
  private awaitingAnswerInAck = false;
  /** Inbound before the answer: the INVITE we answer 480 should we hang up. */
  private readonly inboundInvite?: ServerTransaction;
  private sipCallId?: string;
  /** Outbound: the INVITE transaction in progress, which our hang-up cancels. */
  private outboundInvite?: ClientTransaction;
  /** While cancelling: what the record will say (cancelled, no_answer, ...). */
  private cancelReason?: EndReason;
  /** Aborted once the call stops going forward (ended or cancelling): the flows' webhooks and lookups listen. */
  private readonly stopping = new AbortController();
  private readonly createdAt = Date.now();

  constructor(
    init: CallInit,
    private readonly env: CallEnvironment,
  ) {
    this.id = init.id;
    this.direction = init.direction;
    this.identity = pickIdentity(init);
    this.mediaEncryption = init.mediaEncryption ?? "none";
    this.inboundInvite = init.invite;
    this.sipCallId = init.sipCallId;
    this.log = this.logFields = createContextLogger("calls", { callId: init.id, ...(init.sipCallId ? { sipCallId: init.sipCallId } : {}), direction: init.direction });
    if (init.invite) init.invite.log = this.log.child({}, "sip.transaction");
  }

  get phase(): CallPhase {
    return this.current;
  }

  get isEnded(): boolean {
    return this.phase === "ended";
  }

  /** Whether the flow should go on: not ended, not being cancelled. */
  get isLive(): boolean {
    return this.phase !== "ended" && this.phase !== "cancelling";
  }

  get info(): Readonly<CallIdentity> {
    return this.identity;
  }

  get media(): CallMedia | undefined {
    return this.callMedia;
  }

  /** Aborted once the call ends or is being cancelled. */
  get signal(): AbortSignal {
    return this.stopping.signal;
  }

  private moveTo(next: CallPhase): boolean {
    if (!TRANSITIONS[this.current].includes(next)) return false;
    this.current = next;
    return true;
  }

  // ---------------------------------------------------------------------------------------------
  // What the flows learn before the answer (no change of phase)

  /** Inbound: routing chose the channel and the caller's userId. */
  routed(route: { applicationId: string; channelId: string; userId?: string }): void {
    if (!this.isLive) return;
    this.identity.applicationId = route.applicationId;
    this.identity.channelId = route.channelId;
    if (route.userId) this.identity.userId = route.userId;
    this.record({ applicationId: route.applicationId, channelId: route.channelId, ...(route.userId ? { userId: route.userId } : {}) });
  }

  /** Outbound: the trunk took the call; caller ID and request URI are rendered for it. */
  trunkChosen(o: { trunkId: string; mediaEncryption: MediaEncryption; from: string; to: string }): void {
    if (!this.isLive) return;
    this.identity.trunkId = o.trunkId;
    this.identity.from = o.from;
    this.identity.to = o.to;
    this.mediaEncryption = o.mediaEncryption;
    this.record({ trunkId: o.trunkId, from: o.from, to: o.to });
  }

  /** Outbound: an INVITE (first, retry with credentials, or next target) went out as `tx` (none: it could not be sent). */
  inviting(invite: SipRequest, tx: ClientTransaction | undefined): void {
    if (this.sipCallId !== invite.callId) {
      this.record({ sipCallId: invite.callId });
      this.logFields.assign({ sipCallId: invite.callId });
    }
    this.sipCallId = invite.callId;
    this.outboundInvite = tx;
  }

  /** Outbound: 3xx responses were looked at; the record keeps their Contacts and what became of each. */
  redirected(chain: readonly RedirectHop[]): void {
    this.record({ redirects: [...chain] });
  }

  // ---------------------------------------------------------------------------------------------
  // Transitions

  /** trying → ringing: a 180/183 sent (inbound) or received (outbound). */
  ringing(sipStatus: number): void {
    if (!this.moveTo("ringing")) return;
    this.record({ state: "ringing", sipStatus });
    emitEvent("call.ringing", { ...this.eventBase(), sipStatus }, this.log);
  }

  /**
   * trying/ringing → connecting: the 2xx is sent or received, the call takes over the dialog
   * (in-dialog requests, the ACK, its end, the session timer). `answerInAck`: our offer went in the
   * 2xx, so the answer comes in the ACK. Returns false when the call does not go on: a 2xx that
   * crossed our CANCEL, or came after the end, is ended with BYE (RFC 3261 §15).
   */
  connect(dialog: Dialog, o: { sessionTimer?: SessionTimerSettings; answerInAck?: boolean } = {}): boolean {
    if (this.phase === "cancelling" || this.phase === "ended") {
      dialog.bye().catch(() => undefined);
      if (this.phase === "cancelling") this.finish("local_hangup", {});
      return false;
    }
    if (!this.moveTo("connecting")) return false;
    this.dialog = dialog;
    this.awaitingAnswerInAck = o.answerInAck ?? false;
    this.callMedia?.setSignallingAddress(dialog.peer.address);
    dialog.on("request", (req, tx) => this.onInDialogRequest(req, tx));
    dialog.on("ack", (ack) => this.onAck(ack));
    dialog.on("terminated", (reason) => {
      if (reason === "bye") this.end("remote_bye");
      else if (reason === "ackTimeout") this.end("no_ack");
    });
    if (o.sessionTimer) {
      this.sessionTimer = new SessionTimer(o.sessionTimer, {
        refresh: () => this.refreshSession(),
        expire: () => this.end("session_expired", { cause: { status: 408, text: "session timer expired" } }),
      });
    }
    return true;
  }

  /** connecting → answered: the SDP answer is settled, media flows with `codec`. */
  answered(codec: string): void {
    if (!this.moveTo("answered")) return;
    this.codec = codec;
    this.record({ state: "answered", sipStatus: 200, codec });
    emitEvent("call.answered", { ...this.eventBase(), codec }, this.log);
    this.settle({ answered: true });
    const maxDurationSec = this.env.maxDurationSec(this.identity);
    if (maxDurationSec > 0) this.maxDurationTimer = setTimeout(() => this.end("max_duration", { cause: MAX_DURATION_CAUSE }), maxDurationSec * 1000);
  }

  /** The one way a call ends, whatever ends it (see the table at the top). Later calls do nothing. */
  end(reason: EndReason, detail: EndDetail = {}): void {
    switch (this.phase) {
      case "ended":
        return;
      case "cancelling":
        // Already stopping: only the INVITE's answer (a flow outcome) or shutdown ends it now.
        if (reason === "shutdown") return this.finish(reason, detail);
        if (DECIDED_BY_US.has(reason)) return;
        return this.finish(this.cancelReason ?? reason, detail);
      case "connecting":
      case "answered":
        this.sendBye(detail.cause);
        return this.finish(reason, detail);
      case "trying":
      case "ringing":
        return DECIDED_BY_US.has(reason) ? this.stopBeforeAnswer(reason, detail) : this.finish(reason, detail);
    }
  }

  /** Our end before the answer: the peer is told (480 in, CANCEL out); a hang-up is recorded as the refusal or cancellation it is. */
  private stopBeforeAnswer(reason: EndReason, detail: EndDetail): void {
    if (this.inboundInvite) {
      this.inboundInvite.respond(480, "Temporarily Unavailable");
      return this.finish(reason === "local_hangup" ? "rejected" : reason, { sipStatus: 480 });
    }
    const recorded = reason === "local_hangup" ? "cancelled" : reason;
    this.outboundInvite?.cancel();
    // The INVITE's final response (487, or a 2xx that crossed the CANCEL) ends it, unless we stop now.
    if (this.outboundInvite && reason !== "shutdown" && this.moveTo("cancelling")) {
      this.cancelReason = recorded;
      this.stopping.abort(CALL_STOPPED);
      return;
    }
    this.finish(recorded, detail);
  }

  private sendBye(cause: EndDetail["cause"]): void {
    const dialog = this.dialog;
    if (!dialog || dialog.state === "terminated") return;
    const header = cause ? `SIP;cause=${cause.status};text="${cause.text.replace(/["\\\r\n]/g, "'")}"` : undefined;
    dialog.sendRequest(dialog.createRequest("BYE", header ? { headers: [["Reason", header]] } : {}));
    dialog.terminate();
  }

  /** → ended: records the end, leaves the channel, frees the media. */
  private finish(reason: EndReason, detail: EndDetail): void {
    const { sipStatus } = detail;
    const stats = this.callMedia?.stats();
    this.env.store.update(this.id, {
      state: "ended",
      endReason: reason,
      ...(sipStatus !== undefined ? { sipStatus } : {}),
      ...(stats ? { mediaStats: roundStats(stats) } : {}),
    });
    this.moveTo("ended");
    this.stopping.abort(CALL_STOPPED);
    this.sessionTimer?.stop();
    clearTimeout(this.maxDurationTimer);
    this.transfer?.stop();
    this.member?.leave(reason);
    this.callMedia?.close();
    if (this.dialog && this.dialog.state !== "terminated") this.dialog.terminate();
    endedCalls.inc({ direction: this.direction, reason });
    const durationMs = Date.now() - this.createdAt;
    // Nobody outside hears of the end before the record says so: a kill -9 loses nothing they were told.
    void this.env.store.committed(this.id).then(() => {
      this.settle({ answered: false, reason, ...(sipStatus !== undefined ? { sipStatus } : {}) });
      emitEvent("call.ended", { ...this.eventBase(), reason, ...(sipStatus !== undefined ? { sipStatus } : {}), durationMs }, this.log);
      this.endWasRecorded();
    });
    this.env.release(this);
  }

  // ---------------------------------------------------------------------------------------------
  // Media

  /**
   * Joins the channel as participant `callId` with the call's userId: the phone leg is created in
   * the channel's mixer (RTP ports bound), then the participant is admitted (participant.joined).
   * Leaving the channel closes the leg.
   */
  async joinChannel(): Promise<CallMedia | { error: string }> {
    if (this.callMedia) return this.callMedia;
    const { applicationId, channelId, userId, from, to, attributes } = this.identity;
    if (!applicationId || !channelId) return { error: "the call has no channel" };
    let media: CallMedia | undefined;
    const member = await this.env.registry.joinWhenReady(
      {
        applicationId,
        channelId,
        id: this.id,
        kind: "sip",
        userId: userId ?? from,
        callId: this.id,
        address: this.direction === "inbound" ? from : to,
        ...(attributes ? { attributes } : {}),
      },
      async (mixer) => {
        const created = await this.env.media({ callId: this.id, mixer, encryption: this.mediaEncryption, log: this.log });
        if ("error" in created) return created;
        media = created;
        return () => created.close();
      },
      this.log,
    );
    if ("error" in member) return member;
    if (this.isEnded || !media) {
      member.leave("ended");
      return { error: "the call ended" };
    }
    this.member = member;
    this.callMedia = media;
    media.onDtmf((digit, durationMs) => this.dtmfReceived(digit, durationMs, "rfc4733"));
    media.onTimeout(() => this.end("media_timeout", { cause: { status: 408, text: "RTP timeout" } }));
    media.onLost((error) => this.end("media_error", { cause: { status: 500, text: error } }));
    return media;
  }

  /**
   * Moves the phone leg to another channel of its application (no SIP): the leg changes mixers
   * between two ticks, participant.left (`moved`) and participant.joined follow, the record says
   * the new channel.
   */
  moveToChannel(channelId: string): "moved" | "no_leg" {
    const { member, callMedia } = this;
    if (!member || !callMedia || this.isEnded) return "no_leg";
    this.member = this.env.registry.move(member, channelId, (mixer) => callMedia.moveTo(mixer));
    this.identity.channelId = channelId;
    this.record({ channelId });
    return "moved";
  }

  /**
   * Blind transfer (RFC 3515, transfer.ts): a REFER asks the far end to call `referTo`; the outcome
   * is a call.transferred event followed by our BYE (reason `transferred`), or call.transfer_failed
   * with the call going on.
   */
  startTransfer(referTo: SipUri): "started" | "not_answered" | "in_progress" {
    const dialog = this.dialog;
    if (this.phase !== "answered" || !dialog) return "not_answered";
    if (this.transfer || this.referred) return "in_progress";
    const contact = this.env.stack.contactFor(undefined, dialog.peer.transport);
    const to = formatUri(referTo);
    this.transfer = new BlindTransfer(dialog, { referTo, contact }, (outcome) => this.transferSettled(to, outcome));
    return "started";
  }

  private transferSettled(to: string, outcome: TransferOutcome): void {
    this.transfer = undefined;
    if (this.isEnded) return;
    if (!outcome.ok) {
      this.log.info("transfer failed", { to, reason: outcome.reason, sipStatus: outcome.sipStatus });
      emitEvent("call.transfer_failed", { ...this.eventBase(), referTo: to, reason: outcome.reason, ...(outcome.sipStatus !== undefined ? { sipStatus: outcome.sipStatus } : {}) });
      return;
    }
    emitEvent("call.transferred", { ...this.eventBase(), referTo: to, sipStatus: outcome.sipStatus });
    this.end("transferred");
  }

  /**
   * The trunk asks us to transfer (RFC 3515 §2.4.2): declined (603) unless its referPolicy accepts.
   * Accepted, we are the transferee (RFC 5589 §6): 202, NOTIFY "100 Trying", a new call to the
   * Refer-To through the same trunk into the same channel; its answer is NOTIFYed "200 OK", emits
   * call.transferred and ends this leg with BYE (`transferred`); its failure is NOTIFYed with its
   * status and this call goes on.
   */
  private async onRefer(req: SipRequest, tx: ServerTransaction): Promise<void> {
    if (this.env.referPolicy(this.identity) !== "accept") return void tx.respond(603, "Declined");
    const target = referTarget(req);
    if ("status" in target) return void tx.respond(target.status, target.reason);
    const dialog = this.dialog;
    // One transfer at a time, of an answered call (RFC 3261 §14.2's rule for overlapping requests).
    if (this.phase !== "answered" || !dialog || this.transfer || this.referred) return void tx.respond(491, "Request Pending");
    this.referred = true;
    const placed = await this.env.placeReferredCall(this, target.uri);
    if ("status" in placed) {
      this.referred = false;
      this.log.info("REFER from the trunk refused", { referTo: formatUri(target.uri), sipStatus: placed.status, reason: placed.reason });
      return void tx.respond(placed.status, placed.reason);
    }
    const referTo = formatUri(target.uri);
    const contact = this.env.stack.contactFor(undefined, dialog.peer.transport);
    tx.respond(202, "Accepted", { headers: [["Contact", formatNameAddr(contact)]] });
    this.log.info("transferring at the trunk's request", { referTo, newCallId: placed.call.id });
    // §2.4.4: the first NOTIFY follows the 202 at once. The transferor may hang up from the 202 on
    // (RFC 5589 §6.1): then there is nobody to notify, and the new call goes on regardless.
    const subscribed = dialog.state !== "terminated" && (await notifyReferProgress(dialog, { status: 100 }, contact));
    const settlement = await placed.call.settled;
    this.referred = false;
    const status = settlement.answered ? 200 : (settlement.sipStatus ?? (settlement.reason === "timeout" ? 408 : 503));
    if (subscribed && dialog.state !== "terminated") void notifyReferProgress(dialog, { status, final: true }, contact);
    if (!settlement.answered) {
      emitEvent("call.transfer_failed", { ...this.eventBase(), referTo, reason: "failed", sipStatus: status });
      return;
    }
    emitEvent("call.transferred", { ...this.eventBase(), referTo, sipStatus: 200 });
    this.end("transferred");
  }

  sendDtmf(digits: string): boolean {
    if (this.phase !== "answered" || !this.callMedia) return false;
    this.callMedia.sendDtmf(digits);
    return true;
  }

  private eventBase(): CallEventBase {
    const { applicationId, channelId, trunkId, from, to, userId, clientId, attributes } = this.identity;
    return {
      callId: this.id,
      direction: this.direction,
      ...(applicationId ? { applicationId } : {}),
      ...(channelId ? { channelId } : {}),
      ...(trunkId ? { trunkId } : {}),
      from,
      to,
      ...(userId ? { userId } : {}),
      ...(clientId ? { clientId } : {}),
      ...(attributes ? { attributes } : {}),
    };
  }

  /** Queues a change of the record (committed within milliseconds, with other calls' changes). */
  private record(change: CallUpdate): void {
    if (this.phase === "ended") return;
    this.env.store.update(this.id, change);
  }

  // ---------------------------------------------------------------------------------------------
  // In the dialog

  private onAck(ack: SipRequest): void {
    if (!this.awaitingAnswerInAck) return;
    this.awaitingAnswerInAck = false;
    const sdp = ack.bodyText;
    const applied = sdp && this.media ? this.media.acceptAnswer(sdp) : { ok: false as const, reason: "ACK without the SDP answer" };
    if (!applied.ok) {
      this.log.warn("no usable answer in the ACK", { reason: applied.reason });
      this.end("media_error", { cause: { status: 488, text: applied.reason } });
      return;
    }
    if (this.phase !== "answered") this.answered(applied.codec);
    else this.codecChanged(applied.codec);
  }

  private onInDialogRequest(req: SipRequest, tx: ServerTransaction): void {
    switch (req.method) {
      case "INVITE":
        return this.onReinvite(req, tx);
      case "UPDATE":
        return this.onUpdate(req, tx);
      case "INFO":
        return this.onInfo(req, tx);
      case "NOTIFY":
        // RFC 6665 §4.1.3: a NOTIFY matching no subscription of ours.
        return this.transfer ? this.transfer.notify(req, tx) : void tx.respond(481, "Subscription Does Not Exist");
      case "REFER":
        return void this.onRefer(req, tx).catch((error: unknown) => this.log.error("REFER from the trunk failed", { error }));
      case "OPTIONS":
        tx.respond(200, "OK", { headers: [["Allow", ALLOW_METHODS]] });
        return;
      default:
        tx.respond(405, "Method Not Allowed", { headers: [["Allow", ALLOW_METHODS]] });
    }
  }

  // RFC 3261 §14.2 / RFC 3264 §8: a re-INVITE with an offer gets our answer; without one, our offer
  // goes in the 2xx and the answer comes in the ACK. RFC 4028 §9: it also refreshes the session.
  private onReinvite(req: SipRequest, tx: ServerTransaction): void {
    const { dialog, media } = this;
    if (!dialog || !media) return void tx.respond(500, "Server Internal Error");
    const contact = this.env.stack.contactFor(undefined, dialog.peer.transport);
    const timerHeaders = this.sessionTimer?.refreshed(req) ?? [];
    if (req.body.length === 0) {
      this.awaitingAnswerInAck = true;
      dialog.respond2xx(req, tx, { contact, body: media.offer(), contentType: "application/sdp", headers: timerHeaders });
      return;
    }
    const answer = media.answer(req.bodyText);
    if (!answer.ok) return void this.rejectOffer(tx, answer);
    this.codecChanged(answer.codec);
    dialog.respond2xx(req, tx, { contact, body: answer.sdp, contentType: "application/sdp", headers: timerHeaders });
  }

  // RFC 3311: UPDATE carries an offer (answered in its 2xx) or only refreshes the session timer.
  private onUpdate(req: SipRequest, tx: ServerTransaction): void {
    const { dialog, media } = this;
    if (!dialog || !media) return void tx.respond(500, "Server Internal Error");
    const timerHeaders = this.sessionTimer?.refreshed(req) ?? [];
    const contact: [string, string] = ["Contact", formatNameAddr(this.env.stack.contactFor(undefined, dialog.peer.transport))];
    if (req.body.length === 0) return void tx.respond(200, "OK", { headers: [contact, ...timerHeaders] });
    const answer = media.answer(req.bodyText);
    if (!answer.ok) return void this.rejectOffer(tx, answer);
    this.codecChanged(answer.codec);
    tx.respond(200, "OK", { headers: [contact, ...timerHeaders], body: answer.sdp, contentType: "application/sdp" });
  }

  private rejectOffer(tx: ServerTransaction, answer: { status: 400 | 488; reason: string; warning?: string }): void {
    const headers: [string, string][] = answer.warning ? [["Warning", answer.warning]] : [];
    tx.respond(answer.status, answer.status === 400 ? "Bad SDP" : "Not Acceptable Here", { headers });
  }

  private codecChanged(codec: string): void {
    if (codec === this.codec) return;
    this.codec = codec;
    this.record({ codec });
  }

  private onInfo(req: SipRequest, tx: ServerTransaction): void {
    if (req.body.length === 0) return void tx.respond(200);
    const dtmf = parseDtmfInfo(req.contentType, req.bodyText);
    if (dtmf === "unsupported") return void tx.respond(415, "Unsupported Media Type", { headers: [["Accept", "application/dtmf-relay, application/dtmf"]] });
    if (dtmf === undefined) return void tx.respond(400, "Bad DTMF Body");
    tx.respond(200);
    this.dtmfReceived(dtmf.digit, dtmf.durationMs, "sip-info");
  }

  private dtmfReceived(digit: string, durationMs: number | undefined, method: "rfc4733" | "sip-info"): void {
    emitEvent("dtmf.received", { ...this.eventBase(), digit, ...(durationMs !== undefined ? { durationMs } : {}), method }, this.log);
  }

  // RFC 4028 §10: the refresher sends a re-INVITE (with a new offer) before the session expires.
  private async refreshSession(): Promise<void> {
    const { dialog, media } = this;
    if (!dialog || !media || this.isEnded) return;
    const req = dialog.createRequest("INVITE", { body: media.offer(), contentType: "application/sdp", headers: this.sessionTimer?.requestHeaders() ?? [] });
    const outcome = await dialog.sendRequest(req).outcome;
    if (outcome.kind !== "final") return void this.log.warn("session refresh got no answer", { outcome: outcome.kind });
    const res = outcome.response;
    if (res.status >= 200 && res.status < 300) {
      // §13.2.2.4: every 2xx to an INVITE is ACKed, in-dialog too.
      const ack = dialog.createRequest("ACK");
      await this.env.stack.sendStateless(ack, dialog.nextHop()).catch(() => undefined);
      if (res.body.length > 0) media.acceptAnswer(res.bodyText);
      this.sessionTimer?.refreshedBy(res);
    } else if (res.status === 408 || res.status === 481) {
      // RFC 3261 §12.2.1.2: the dialog is gone.
      this.end("session_expired", { cause: { status: 481, text: "session refresh failed" } });
    }
  }

}

/** The identity with only the optional fields that are set. */
export function pickIdentity(o: CallIdentity): CallIdentity {
  const { from, to, applicationId, channelId, userId, clientId, trunkId, attributes } = o;
  return {
    from,
    to,
    ...(applicationId ? { applicationId } : {}),
    ...(channelId ? { channelId } : {}),
    ...(userId ? { userId } : {}),
    ...(clientId ? { clientId } : {}),
    ...(trunkId ? { trunkId } : {}),
    ...(attributes && Object.keys(attributes).length > 0 ? { attributes } : {}),
  };
}

function roundStats(stats: Record<string, number>): Record<string, number> {
  const rounded: Record<string, number> = {};
  for (const key in stats) rounded[key] = Math.round(stats[key]!);
  return rounded;
}
