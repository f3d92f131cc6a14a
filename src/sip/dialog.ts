// RFC 3261 §12 dialogs created by INVITE: identifiers, route set, remote target, CSeq spaces;
// in-dialog request creation (§12.2.1.1) and dispatch (§12.2.2); the UAS retransmits its 2xx until
// the ACK (§13.3.1.4) and the UAC ACKs every 2xx (§13.2.2.4).
//
//   UAS: Dialog.answer(stack, invite, tx, ctx, { contact, body, contentType })  → sends the 2xx
//   UAC: Dialog.fromInvite2xx(stack, invite, response, tx, dest, { ack })       → sends the ACK
//        (Dialog.uacEarly(...) for a reliable 1xx; fromInvite2xx(..., { early }) confirms it)
//   (`stack` is a SipStack, or anything with what DialogHost names; `log` in the options: the
//   owner's logger, whose fields the dialog's lines carry, else they carry the sipCallId)
//   both: dialog.createRequest("INFO", {...}) / dialog.sendRequest(req) / dialog.bye()
//         re-INVITE: tx = dialog.sendRequest(dialog.createRequest("INVITE", {...})); on 2xx
//         dialog.acknowledge(reinvite, tx, ack?)  (UAC side); dialog.respond2xx(req, tx, {...}) (UAS side)
//         dialog.on("request", (req, tx, ctx) => ...)  every in-dialog request but BYE and ACK
//         dialog.on("ack", (ack) => ...)               UAS: the ACK of our 2xx (may carry SDP)
//         dialog.on("terminated", (reason) => ...)     "bye" (peer hung up), "local", "ackTimeout"
//
// In-dialog requests go to the first Route (loose routing) or the remote target. When that URI's
// host is an IP literal it is used; otherwise (a host name needing RFC 3263) the dialog's peer
// endpoint, the one the INVITE transaction used, stands in.
import { createLogger, type Logger } from "../log.ts";
import { Emitter } from "./emitter.ts";
import {
  createRequest,
  createResponse,
  formatNameAddr,
  formatUri,
  isIPv4,
  isIPv6,
  type NameAddr,
  parseNameAddr,
  serializeMessage,
  type SipRequest,
  type SipResponse,
  type SipUri,
  type TransportName,
  type Via,
} from "./message.ts";
import { dialogId, type DialogRegistry } from "./dialogs.ts";
import type { ClientOutcome, ClientTransaction, RespondOptions, ServerTransaction, TimerConfig, Wire } from "./transaction.ts";
import { defaultPort, type Endpoint, type InboundContext } from "./transport.ts";

const moduleLog = createLogger("sip.dialog");

/** What a dialog needs from its stack (SipStack provides it). */
export interface DialogHost {
  /** Where established dialogs are listed, so in-dialog requests find them. */
  readonly dialogs: DialogRegistry;
  readonly transactions: { readonly timers: TimerConfig };
  wireTo(dest: Endpoint): Wire;
  sendRequest(req: SipRequest, dest: Endpoint): ClientTransaction;
  viaFor(transport: TransportName): Via;
  contactFor(user: string | undefined, transport: TransportName): NameAddr;
}

/**
 * Other forks' 2xx answered per INVITE (§13.2.2.4: each is ACKed and ended with BYE); more are
 * ignored, so a peer inventing To tags cannot make us open transactions without end.
 */
export const MAX_FORKS = 8;

export type DialogTermination = "bye" | "local" | "ackTimeout";

export type DialogEvents = {
  request: (req: SipRequest, tx: ServerTransaction, ctx: InboundContext) => void;
  ack: (ack: SipRequest) => void;
  terminated: (reason: DialogTermination) => void;
};

export interface AnswerOptions extends RespondOptions {
  /** 2xx status (default 200). */
  status?: number;
  reason?: string;
  /** Our Contact (the remote target the peer will use): stack.contactFor(user, transport). */
  contact: NameAddr;
}

/** Whose dialog this is: its lines go through `log` (the caller's logger: a call's carries the call's fields). */
export interface DialogLogging {
  log?: Logger;
}

export class Dialog extends Emitter<DialogEvents> {
  readonly id: string;
  readonly callId: string;
  readonly localTag: string;
  readonly remoteTag: string;
  readonly localUri: NameAddr;
  readonly remoteUri: NameAddr;
  readonly role: "uac" | "uas";
  remoteTarget: SipUri;
  /** Route header values, in the order requests carry them. */
  routeSet: string[];
  localSeq: number;
  remoteSeq: number | undefined;
  /** "early": created by a provisional response (RFC 3262 reliable 1xx), until its 2xx. */
  state: "early" | "confirmed" | "terminated" = "confirmed";
  /** The endpoint of the INVITE's transaction: next hop when the target is not an IP literal. */
  readonly peer: Endpoint;
  private retransmitTimer: ReturnType<typeof setTimeout> | undefined;
  private awaitingAckFor: number | undefined;
  private readonly log: Logger;

  private constructor(
    private readonly stack: DialogHost,
    o: {
      callId: string;
      localTag: string;
      remoteTag: string;
      localUri: NameAddr;
      remoteUri: NameAddr;
      role: "uac" | "uas";
      remoteTarget: SipUri;
      routeSet: string[];
      localSeq: number;
      remoteSeq: number | undefined;
      peer: Endpoint;
      log: Logger | undefined;
    },
  ) {
    super();
    this.log = o.log ? o.log.child({}, "sip.dialog") : moduleLog.child({ sipCallId: o.callId });
    this.callId = o.callId;
    this.localTag = o.localTag;
    this.remoteTag = o.remoteTag;
    this.localUri = o.localUri;
    this.remoteUri = o.remoteUri;
    this.role = o.role;
    this.remoteTarget = o.remoteTarget;
    this.routeSet = o.routeSet;
    this.localSeq = o.localSeq;
    this.remoteSeq = o.remoteSeq;
    this.peer = o.peer;
    this.id = dialogId(o.callId, o.localTag, o.remoteTag);
  }

  /**
   * UAS (§12.1.1): answers the INVITE with a 2xx carrying Record-Route and our Contact, creates the
   * dialog and retransmits the 2xx until the ACK arrives (§13.3.1.4); without ACK after 64*T1 the
   * dialog sends BYE and ends with "ackTimeout".
   */
  static answer(stack: DialogHost, invite: SipRequest, tx: ServerTransaction, ctx: InboundContext, o: AnswerOptions & DialogLogging): Dialog {
    return Dialog.early(stack, invite, tx, ctx, o).accept(invite, tx, o);
  }

  /**
   * UAS (§12.1.1): the early dialog a provisional response with a To tag creates; in-dialog requests
   * (PRACK, RFC 3262 §3) reach it from now on. `accept` answers the INVITE and confirms it.
   */
  static early(stack: DialogHost, invite: SipRequest, tx: ServerTransaction, ctx: InboundContext, o: DialogLogging = {}): Dialog {
    const dialog = new Dialog(stack, {
      callId: invite.callId,
      localTag: tx.toTag,
      remoteTag: invite.from.params.get("tag") ?? "",
      localUri: invite.to,
      remoteUri: invite.from,
      role: "uas",
      remoteTarget: invite.contacts[0]?.uri ?? invite.from.uri,
      routeSet: invite.getHeaders("Record-Route"),
      localSeq: 0,
      remoteSeq: invite.cseq.seq,
      peer: ctx.source,
      log: o.log,
    });
    dialog.state = "early";
    stack.dialogs.add(dialog);
    return dialog;
  }

  /** UAS: the 2xx to the INVITE confirms the early dialog (retransmitted until the ACK, see respond2xx). */
  accept(invite: SipRequest, tx: ServerTransaction, o: AnswerOptions): Dialog {
    if (this.state === "terminated") return this;
    this.state = "confirmed";
    // Too late (CANCELled, or answered already): the dialog ends before it began.
    if (!this.respond2xx(invite, tx, o)) this.end("local");
    return this;
  }

  /**
   * UAC (§12.1.2): the dialog of a 2xx to our INVITE; sends the ACK (§13.2.2.4), with `ack.body`
   * when the 2xx carried the offer (delayed offer), and re-sends it for 2xx retransmissions.
   */
  static fromInvite2xx(
    stack: DialogHost,
    invite: SipRequest,
    response: SipResponse,
    tx: ClientTransaction,
    dest: Endpoint,
    o: { ack?: { body: Uint8Array | string; contentType: string }; early?: Dialog } & DialogLogging = {},
  ): Dialog {
    const dialog = o.early?.confirm(response) ?? Dialog.uac(stack, invite, response, dest, o.log);
    dialog.acknowledge(invite, tx, o.ack);
    // §13.2.2.4: a 2xx from another fork of the INVITE is ACKed too, and that unwanted dialog
    // is ended at once with BYE.
    const known = new Set([dialog.remoteTag]);
    const log = dialog.log;
    const onFork = (res: SipResponse) => {
      const tag = res.to.params.get("tag") ?? "";
      if (known.has(tag)) return;
      if (known.size > MAX_FORKS) {
        log.debug("2xx from one fork too many ignored");
        return;
      }
      known.add(tag);
      const fork = Dialog.uac(stack, invite, res, dest, o.log);
      fork.acknowledge(invite, tx);
      void fork.bye();
    };
    tx.on("extra2xx", onFork);
    // Accepted lasts 64*T1 after the 2xx (RFC 6026 Timer M): this listener would keep the INVITE
    // that long after a short call. A fork that answers after the call ended gets no ACK from us,
    // and its UAS ends it with BYE (§13.3.1.4); 2xx retransmissions of the call's own dialog and of
    // forks already seen are still ACKed (acknowledge).
    dialog.on("terminated", () => tx.off("extra2xx", onFork));
    return dialog;
  }

  /**
   * UAC (§12.1.2): the early dialog a provisional response with a To tag creates, for the requests
   * sent in it before the 2xx (PRACK, RFC 3262 §4); `fromInvite2xx({ early })` confirms it.
   */
  static uacEarly(stack: DialogHost, invite: SipRequest, provisional: SipResponse, dest: Endpoint, o: DialogLogging = {}): Dialog {
    const dialog = Dialog.uac(stack, invite, provisional, dest, o.log);
    dialog.state = "early";
    return dialog;
  }

  /**
   * UAC §13.2.2.4: a 2xx of this early dialog confirms it, the route set and remote target taken
   * anew from the 2xx; its local CSeq (the PRACKs sent in it) carries on. Undefined for another
   * dialog's 2xx.
   */
  confirm(response: SipResponse): Dialog | undefined {
    if (this.role !== "uac" || this.state !== "early" || (response.to.params.get("tag") ?? "") !== this.remoteTag) return undefined;
    this.state = "confirmed";
    this.routeSet = response.getHeaders("Record-Route").reverse();
    const contact = response.contacts[0];
    if (contact) this.remoteTarget = contact.uri;
    return this;
  }

  private static uac(stack: DialogHost, invite: SipRequest, response: SipResponse, dest: Endpoint, log: Logger | undefined): Dialog {
    const dialog = new Dialog(stack, {
      callId: invite.callId,
      localTag: invite.from.params.get("tag") ?? "",
      remoteTag: response.to.params.get("tag") ?? "",
      localUri: invite.from,
      remoteUri: response.to,
      role: "uac",
      remoteTarget: response.contacts[0]?.uri ?? invite.uri,
      routeSet: response.getHeaders("Record-Route").reverse(),
      localSeq: invite.cseq.seq,
      remoteSeq: undefined,
      peer: dest,
      log,
    });
    stack.dialogs.add(dialog);
    return dialog;
  }

  /**
   * UAC (§13.2.2.4): ACKs the 2xx of an INVITE sent in this dialog (the initial one, or a
   * re-INVITE sent with sendRequest) and ACKs its retransmissions again. The ACK carries the
   * INVITE's CSeq number and credentials, and `ack.body` when the 2xx carried the offer.
   */
  acknowledge(invite: SipRequest, tx: ClientTransaction, ack?: { body: Uint8Array | string; contentType: string }): void {
    const credentials = [
      ...invite.getHeaders("Authorization").map((v): [string, string] => ["Authorization", v]),
      ...invite.getHeaders("Proxy-Authorization").map((v): [string, string] => ["Proxy-Authorization", v]),
    ];
    const req = this.buildRequest("ACK", invite.cseq.seq, {
      headers: credentials,
      ...(ack ? { body: ack.body, contentType: ack.contentType } : {}),
    });
    // The transaction stays Accepted 64*T1 after the 2xx (RFC 6026 Timer M) and this listener with
    // it, also after the dialog ended: it holds the ACK's bytes and where they go, not the dialog
    // (and through it the call).
    const { stack, remoteTag, log } = this;
    const hop = this.nextHop();
    const callId = req.callId;
    const bytes = serializeMessage(req);
    const send = () =>
      stack
        .wireTo(hop)
        .send(bytes, callId)
        .catch((error: unknown) => log.warn("ACK could not be sent", { error }));
    send();
    tx.on("extra2xx", (res) => {
      if ((res.to.params.get("tag") ?? "") === remoteTag) send();
    });
  }

  /**
   * Sends a 2xx for an INVITE (initial or re-INVITE) and retransmits it until the ACK (§13.3.1.4);
   * undefined when the transaction can no longer respond.
   */
  respond2xx(invite: SipRequest, tx: ServerTransaction, o: AnswerOptions): SipResponse | undefined {
    if (!tx.pending) return undefined;
    const headers: [string, string][] = [
      // §12.1.1: the 2xx copies the Record-Route headers.
      ...invite.getHeaders("Record-Route").map((v): [string, string] => ["Record-Route", v]),
      ["Contact", formatNameAddr(o.contact)],
      ...(o.headers ?? []),
    ];
    const res = createResponse(invite, o.status ?? 200, o.reason, {
      toTag: this.localTag,
      headers,
      ...(o.body !== undefined ? { body: o.body } : {}),
      ...(o.contentType !== undefined ? { contentType: o.contentType } : {}),
    });
    tx.respondWith(res);
    this.awaitingAckFor = invite.cseq.seq;
    tx.on("ack", (ack) => this.receiveAck(ack));
    const { T1, T2 } = this.stack.transactions.timers;
    const giveUpAt = Date.now() + 64 * T1;
    const retransmit = (interval: number) => {
      this.retransmitTimer = setTimeout(() => {
        if (this.awaitingAckFor === undefined || this.state === "terminated") return;
        if (Date.now() >= giveUpAt) {
          this.log.warn("no ACK for our 2xx; ending the dialog");
          this.awaitingAckFor = undefined;
          void this.bye("ackTimeout");
          return;
        }
        tx.retransmit2xx();
        retransmit(Math.min(2 * interval, T2));
      }, interval);
    };
    retransmit(T1);
    return res;
  }

  /** The ACK of our 2xx: stops its retransmission; emitted once per INVITE. */
  receiveAck(ack: SipRequest): void {
    if (this.awaitingAckFor === undefined || ack.cseq.seq !== this.awaitingAckFor) return;
    this.awaitingAckFor = undefined;
    clearTimeout(this.retransmitTimer);
    this.emit("ack", ack);
  }

  /** §12.2.2: an in-dialog request (the stack routes it here by Call-ID and tags). */
  receiveRequest(req: SipRequest, tx: ServerTransaction, ctx: InboundContext): void {
    if (this.remoteSeq !== undefined && req.cseq.seq < this.remoteSeq) {
      tx.respond(500, "CSeq out of order");
      return;
    }
    this.remoteSeq = req.cseq.seq;
    // RFC 3262 §3: once confirmed, no reliable provisional response awaits a PRACK.
    if (req.method === "PRACK" && this.state === "confirmed") {
      tx.respond(481, "No Matching Reliable Provisional Response");
      return;
    }
    if (req.method === "BYE") {
      // §15.1.2: the session ends with the BYE.
      tx.respond(200);
      this.end("bye");
      return;
    }
    // §12.2.2: target refresh requests update the remote target.
    const contact = req.contacts[0];
    if ((req.method === "INVITE" || req.method === "UPDATE") && contact) this.remoteTarget = contact.uri;
    if (this.listenerCount("request") === 0) {
      if (req.method === "OPTIONS") tx.respond(200);
      else tx.respond(501);
      return;
    }
    this.emit("request", req, tx, ctx);
  }

  /** §12.2.1.1: a request within this dialog (BYE, re-INVITE, INFO, UPDATE, OPTIONS). */
  createRequest(
    method: string,
    o: { headers?: [string, string][]; body?: Uint8Array | string; contentType?: string; contact?: NameAddr } = {},
  ): SipRequest {
    if (method !== "ACK" && method !== "CANCEL") this.localSeq++;
    return this.buildRequest(method, this.localSeq, o);
  }

  private buildRequest(
    method: string,
    cseq: number,
    o: { headers?: [string, string][]; body?: Uint8Array | string; contentType?: string; contact?: NameAddr },
  ): SipRequest {
    const dest = this.nextHop();
    let uri = this.remoteTarget;
    let routes = this.routeSet;
    const first = this.routeSet[0];
    const firstUri = first ? routeUri(first) : undefined;
    if (firstUri && !firstUri.params.has("lr")) {
      // §12.2.1.1 strict routing: the first route becomes the Request-URI, the target the last route.
      uri = firstUri;
      routes = [...this.routeSet.slice(1), `<${formatUri(this.remoteTarget)}>`];
    }
    const contact =
      o.contact ?? (method === "INVITE" || method === "UPDATE" ? this.stack.contactFor(this.localUri.uri.user, dest.transport) : undefined);
    const from: NameAddr = { ...this.localUri, params: new Map(this.localUri.params).set("tag", this.localTag) };
    const to: NameAddr = this.remoteTag ? { ...this.remoteUri, params: new Map(this.remoteUri.params).set("tag", this.remoteTag) } : this.remoteUri;
    return createRequest({
      method,
      uri,
      from,
      to,
      callId: this.callId,
      cseq,
      via: [this.stack.viaFor(dest.transport)],
      ...(contact ? { contact } : {}),
      headers: [...routes.map((r): [string, string] => ["Route", r]), ...(o.headers ?? [])],
      ...(o.body !== undefined ? { body: o.body } : {}),
      ...(o.contentType !== undefined ? { contentType: o.contentType } : {}),
    });
  }

  /** Where in-dialog requests go: first Route or remote target when an IP literal, else the peer. */
  nextHop(): Endpoint {
    const first = this.routeSet[0];
    const uri = (first ? routeUri(first) : undefined) ?? this.remoteTarget;
    if (!isIPv4(uri.host) && !isIPv6(uri.host)) return this.peer;
    const param = uri.params.get("transport")?.toLowerCase();
    const transport: TransportName =
      param === "udp" || param === "tcp" || param === "tls"
        ? param
        : uri.scheme === "sips"
          ? "tls"
          : this.peer.transport;
    return { transport, address: uri.host, port: uri.port ?? defaultPort(transport) };
  }

  sendRequest(req: SipRequest): ClientTransaction {
    return this.stack.sendRequest(req, this.nextHop());
  }

  /** Ends the dialog with a BYE (§15.1.1); resolves with the BYE's outcome (undefined if already ended). */
  async bye(reason: DialogTermination = "local"): Promise<ClientOutcome | undefined> {
    if (this.state === "terminated") return undefined;
    const tx = this.sendRequest(this.createRequest("BYE"));
    this.end(reason);
    return tx.outcome;
  }

  /** Forgets the dialog without signalling (the peer already knows, or the stack stops). */
  terminate(): void {
    this.end("local");
  }

  private end(reason: DialogTermination): void {
    if (this.state === "terminated") return;
    this.state = "terminated";
    clearTimeout(this.retransmitTimer);
    this.awaitingAckFor = undefined;
    this.stack.dialogs.remove(this);
    this.emit("terminated", reason);
    // A terminated dialog emits nothing more; the INVITE transaction, which lingers (RFC 6026 Timer
    // L) with a listener on this dialog, must not keep its owner's call alive through it.
    this.release();
  }
}

function routeUri(route: string): SipUri | undefined {
  return parseNameAddr(route)?.uri;
}
