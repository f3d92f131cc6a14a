// One call, inbound or outbound, from its first message to its record's end: the record written
// at each state change, the events, the phone leg in the channel's mixer, and the dialog's
// in-dialog requests (BYE, re-INVITE/UPDATE for hold/resume/new address/codec, INFO DTMF,
// RFC 4028 session refreshes).
import type { ChannelMember, ChannelRegistry } from "../channels/registry.ts";
import { emitEvent, type CallEventBase } from "../events.ts";
import { createLogger, type Logger } from "../log.ts";
import { metrics } from "../metrics.ts";
import type { Dialog } from "../sip/dialog.ts";
import type { MediaEncryption } from "../media/sdp.ts";
import { formatNameAddr, type SipRequest } from "../sip/message.ts";
import type { SipStack } from "../sip/stack.ts";
import type { ServerTransaction } from "../sip/transaction.ts";
import type { CallDirection, CallState, CallStore, CallUpdate } from "../store/calls.ts";
import { parseDtmfInfo } from "./dtmfInfo.ts";
import type { CallMedia, MediaFactory } from "./media.ts";
import { SessionTimer, type SessionTimerSettings } from "./sessionTimer.ts";
import { ALLOW_METHODS } from "./types.ts";

export interface CallEnvironment {
  store: CallStore;
  media: MediaFactory;
  registry: ChannelRegistry;
  stack: SipStack;
  /** Removes the call from the manager's tables once it has ended. */
  release(call: Call): void;
}

/** Why a call ended, as recorded in `endReason` and the call.ended event. */
export type EndReason =
  | "remote_bye"
  | "local_hangup"
  | "cancelled"
  | "rejected"
  /** Answered 302: the channel is homed on another node (homing.ts). */
  | "redirected"
  | "no_answer"
  | "no_ack"
  | "timeout"
  | "transport_error"
  | "media_timeout"
  | "session_expired"
  | "media_error"
  | "no_trunk"
  | "unknown_trunk"
  | "trunk_unavailable"
  | "webhook_timeout"
  | "webhook_error"
  | "webhook_malformed"
  | "shutdown";


const endedCalls = metrics.counter("trunkline_calls_ended_total", "Calls ended, by direction and end reason.", ["direction", "reason"]);

export class Call {
  state: CallState = "trying";
  applicationId?: string;
  channelId?: string;
  userId?: string;
  clientId?: string;
  trunkId?: string;
  codec?: string;
  dialog?: Dialog;
  media?: CallMedia;
  /** The SRTP policy its phone leg gets (set by the flows from the trunk before joining the channel). */
  mediaEncryption: MediaEncryption = "none";
  /** Before the answer: how DELETE /calls/:id stops this call (CANCEL out, 480 in). */
  abandon?: () => void;
  readonly log: Logger;
  private member?: ChannelMember;
  private sessionTimer?: SessionTimer;
  /** A re-INVITE without SDP: our offer went in the 2xx, the answer comes in the ACK. */
  private awaitingAnswerInAck = false;
  private ended = false;
  private readonly createdAt = Date.now();

  constructor(
    readonly id: string,
    readonly direction: CallDirection,
    public from: string,
    public to: string,
    private readonly env: CallEnvironment,
  ) {
    this.log = createLogger("calls", { callId: id, direction });
  }

  get isEnded(): boolean {
    return this.ended;
  }

  eventBase(): CallEventBase {
    return {
      callId: this.id,
      direction: this.direction,
      ...(this.applicationId ? { applicationId: this.applicationId } : {}),
      ...(this.channelId ? { channelId: this.channelId } : {}),
      ...(this.trunkId ? { trunkId: this.trunkId } : {}),
      from: this.from,
      to: this.to,
      ...(this.userId ? { userId: this.userId } : {}),
      ...(this.clientId ? { clientId: this.clientId } : {}),
    };
  }

  /** Writes a change of the record (one committed statement). */
  record(change: CallUpdate): void {
    if (this.ended) return;
    this.env.store.update(this.id, change);
  }

  ringing(sipStatus: number): void {
    if (this.ended || this.state !== "trying") return;
    this.state = "ringing";
    this.record({ state: "ringing", sipStatus });
    emitEvent("call.ringing", { ...this.eventBase(), sipStatus });
  }

  answered(codec: string): void {
    if (this.ended || this.state === "answered") return;
    this.state = "answered";
    this.codec = codec;
    this.abandon = undefined;
    this.record({ state: "answered", sipStatus: 200, codec });
    emitEvent("call.answered", { ...this.eventBase(), codec });
  }

  /**
   * Joins the channel as participant `callId` with the call's userId: the phone leg is created in
   * the channel's mixer (RTP ports bound). Leaving the channel closes the leg.
   */
  async joinChannel(): Promise<CallMedia | { error: string }> {
    if (this.media) return this.media;
    const { applicationId, channelId } = this;
    if (!applicationId || !channelId) return { error: "the call has no channel" };
    let created: Promise<CallMedia | { error: string }> | undefined;
    const member = this.env.registry.join(
      { applicationId, channelId, id: this.id, kind: "sip", userId: this.userId ?? this.from, callId: this.id, address: this.direction === "inbound" ? this.from : this.to },
      (mixer) => {
        created = this.env.media({ callId: this.id, mixer, encryption: this.mediaEncryption });
        return () => void created?.then((media) => ("error" in media ? undefined : media.close()));
      },
    );
    const media = await created!;
    if ("error" in media || this.ended) {
      member.leave("error" in media ? "media_error" : "ended");
      return "error" in media ? media : { error: "the call ended" };
    }
    this.member = member;
    this.media = media;
    media.onDtmf((digit, durationMs) => this.dtmfReceived(digit, durationMs, "rfc4733"));
    media.onTimeout(() => this.hangUpWithReason("media_timeout", { status: 408, text: "RTP timeout" }));
    return media;
  }

  /** Takes over the dialog: in-dialog requests, the ACK, its end, and the session timer. */
  attachDialog(dialog: Dialog, sessionTimer?: SessionTimerSettings): void {
    this.dialog = dialog;
    this.media?.setSignallingAddress(dialog.peer.address);
    dialog.on("request", (req, tx) => this.onInDialogRequest(req, tx));
    dialog.on("ack", (ack) => this.onAck(ack));
    dialog.on("terminated", (reason) => {
      if (reason === "bye") this.end("remote_bye");
      else if (reason === "ackTimeout") this.end("no_ack");
    });
    if (sessionTimer) {
      this.sessionTimer = new SessionTimer(sessionTimer, {
        refresh: () => this.refreshSession(),
        expire: () => this.hangUpWithReason("session_expired", { status: 408, text: "session timer expired" }),
      });
    }
  }

  /** Set by the inbound flow for a delayed-offer INVITE: the answer arrives in the ACK. */
  expectAnswerInAck(): void {
    this.awaitingAnswerInAck = true;
  }

  private onAck(ack: SipRequest): void {
    if (!this.awaitingAnswerInAck) return;
    this.awaitingAnswerInAck = false;
    const sdp = ack.bodyText;
    const applied = sdp && this.media ? this.media.acceptAnswer(sdp) : { ok: false as const, reason: "ACK without the SDP answer" };
    if (!applied.ok) {
      this.log.warn("no usable answer in the ACK", { reason: applied.reason });
      this.hangUpWithReason("media_error", { status: 488, text: applied.reason });
      return;
    }
    if (this.state !== "answered") this.answered(applied.codec);
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
    emitEvent("dtmf.received", { ...this.eventBase(), digit, ...(durationMs !== undefined ? { durationMs } : {}), method });
  }

  sendDtmf(digits: string): boolean {
    if (this.state !== "answered" || !this.media) return false;
    this.media.sendDtmf(digits);
    return true;
  }

  // RFC 4028 §10: the refresher sends a re-INVITE (with a new offer) before the session expires.
  private async refreshSession(): Promise<void> {
    const { dialog, media } = this;
    if (!dialog || !media || this.ended) return;
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
      this.hangUpWithReason("session_expired", { status: 481, text: "session refresh failed" });
    }
  }

  /** Ends an answered call with a BYE, saying why in a Reason header (RFC 3326) when `cause` is given. */
  hangUpWithReason(reason: EndReason, cause?: { status: number; text: string }): void {
    const dialog = this.dialog;
    if (this.ended) return;
    if (dialog && dialog.state !== "terminated") {
      const header = cause ? `SIP;cause=${cause.status};text="${cause.text.replace(/["\\\r\n]/g, "'")}"` : undefined;
      const bye = dialog.createRequest("BYE", header ? { headers: [["Reason", header]] } : {});
      dialog.sendRequest(bye);
      dialog.terminate();
    }
    this.end(reason);
  }

  /** DELETE /calls/:id: BYE when answered, CANCEL/480 before. */
  hangUp(): void {
    if (this.ended) return;
    if (this.dialog) return this.hangUpWithReason("local_hangup");
    if (this.abandon) return this.abandon();
    this.end("local_hangup");
  }

  /** Final: records the end, leaves the channel, frees the media; later calls do nothing. */
  end(reason: EndReason, sipStatus?: number): void {
    if (this.ended) return;
    const stats = this.media?.stats();
    this.env.store.update(this.id, {
      state: "ended",
      endReason: reason,
      ...(sipStatus !== undefined ? { sipStatus } : {}),
      ...(stats ? { mediaStats: roundStats(stats) } : {}),
    });
    this.ended = true;
    this.abandon = undefined;
    this.sessionTimer?.stop();
    this.member?.leave(reason);
    this.media?.close();
    if (this.dialog && this.dialog.state !== "terminated") this.dialog.terminate();
    endedCalls.inc({ direction: this.direction, reason });
    const durationMs = Date.now() - this.createdAt;
    emitEvent("call.ended", { ...this.eventBase(), reason, ...(sipStatus !== undefined ? { sipStatus } : {}), durationMs });
    this.env.release(this);
  }
}

function roundStats(stats: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(stats).map(([k, v]) => [k, Math.round(v)]));
}
