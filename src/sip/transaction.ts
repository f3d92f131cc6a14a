// RFC 3261 §17 transactions (with the RFC 6026 "Accepted" states for INVITE 2xx), their timers,
// and the matching rules of §17.1.3 / §17.2.3 (including RFC 2543 requests without z9hG4bK),
// CANCEL matching (§9.2) and merged-request detection (§8.2.2.2).
//
// Transactions speak to the network through a Wire the stack builds for each destination; they
// never see sockets. Timer values are injectable (`TimerConfig`) so tests can run them scaled down.
import { createLogger, type Logger } from "../log.ts";
import { Emitter } from "./emitter.ts";
import { newTag } from "./ids.ts";
import { LingerQueue } from "./linger-queue.ts";
import { createRequest, createResponse, unshared, type NameAddr, type SipRequest, type SipResponse } from "./message.ts";
import { serializeMessage } from "./serializer.ts";
import { COARSE_FROM_MS, TimerWheel, WheelTimer } from "./timer-wheel.ts";

const log = createLogger("sip.transaction");

export interface TimerConfig {
  /** RTT estimate (RFC 3261 §17.1.1.1), 500 ms. */
  T1: number;
  /** Maximum retransmit interval for non-INVITE requests and INVITE responses, 4 s. */
  T2: number;
  /** Maximum time a message stays in the network, 5 s. */
  T4: number;
}

export const DEFAULT_TIMERS: TimerConfig = { T1: 500, T2: 4_000, T4: 5_000 };

/** Where a transaction's messages go: built by the stack per destination / per inbound context. */
export interface Wire {
  /** Reliable transports switch off retransmissions and zero timers D, I, J, K (RFC 3261 §17). */
  readonly reliable: boolean;
  /** `callId`: the message's Call-ID, for the message tap (src/sip/tap.ts). */
  send(data: Uint8Array, callId?: string): Promise<void>;
}

export const MAGIC_COOKIE = "z9hG4bK";

/** Methods whose CSeq identifies the INVITE transaction they belong to (ACK for non-2xx, §17.2.3). */
function matchMethod(method: string): string {
  return method === "ACK" ? "INVITE" : method;
}

function sentBy(req: SipRequest): string {
  const via = req.vias[0];
  return via ? `${via.host.toLowerCase()}:${via.port ?? ""}` : "";
}

function branchOf(msg: SipRequest | SipResponse): string | undefined {
  const branch = msg.vias[0]?.params.get("branch");
  return branch ?? undefined;
}

/** RFC 3261 §17.1.3: a response matches the client transaction by top-Via branch and CSeq method. */
export function clientKey(branch: string, cseqMethod: string): string {
  return `${branch}|${cseqMethod}`;
}

/** How the key of a request matched by RFC 2543 rules (below) begins. */
const RFC2543_KEY = "2543|";

/** RFC 3261 §17.2.3 server transaction key; RFC 2543 style (no magic cookie) when the branch lacks it. */
export function serverKey(req: SipRequest, method: string = matchMethod(req.method)): string {
  const branch = branchOf(req);
  if (branch?.startsWith(MAGIC_COOKIE)) return `${branch}|${sentBy(req)}|${method}`;
  // RFC 3261 §17.2.3 (RFC 2543 compatibility): Request-URI, From tag, Call-ID, CSeq number,
  // top Via; the To tag is compared after lookup because the ACK carries the response's tag.
  const via = req.vias[0];
  const u = req.uri;
  const ruri = `${u.scheme}:${u.user ?? ""}@${u.host.toLowerCase()}:${u.port ?? ""}`;
  return `${RFC2543_KEY}${ruri}|${req.from.params.get("tag") ?? ""}|${req.callId}|${req.cseq.seq}|${method}|${
    via ? `${via.host.toLowerCase()}:${via.port ?? ""}|${via.params.get("branch") ?? ""}` : ""
  }`;
}

/** RFC 6026 §8.7: what an ACK for our 2xx shares with its INVITE: Call-ID, CSeq number and both tags. */
function ackKey(callId: string, seq: number, fromTag: string | null | undefined, toTag: string | null | undefined): string {
  return `${callId}|${seq}|${fromTag ?? ""}|${toTag ?? ""}`;
}

function isRfc2543(req: SipRequest): boolean {
  return !branchOf(req)?.startsWith(MAGIC_COOKIE);
}

/** RFC 3261 §8.2.2.2: From tag, Call-ID and CSeq of a request without To tag. */
function mergeKey(req: SipRequest): string {
  return `${req.from.params.get("tag") ?? ""}|${req.callId}|${req.cseq.seq}|${req.cseq.method}`;
}

/** A transaction's named timers: the long ones on the layer's shared wheel (timer-wheel.ts), the others exact. */
class Timers {
  private readonly handles = new Map<string, ReturnType<typeof setTimeout> | WheelTimer>();

  constructor(private readonly wheel: TimerWheel) {}

  start(name: string, ms: number, fire: () => void): void {
    this.stop(name);
    const run = () => {
      this.handles.delete(name);
      try {
        fire();
      } catch (error) {
        log.error("transaction timer failed", { timer: name, error });
      }
    };
    this.handles.set(name, ms >= COARSE_FROM_MS ? this.wheel.schedule(ms, run) : setTimeout(run, ms));
  }

  stop(name: string): void {
    const handle = this.handles.get(name);
    if (handle !== undefined) {
      cancel(handle);
      this.handles.delete(name);
    }
  }

  stopAll(): void {
    for (const handle of this.handles.values()) cancel(handle);
    this.handles.clear();
  }
}

function cancel(handle: ReturnType<typeof setTimeout> | WheelTimer): void {
  if (handle instanceof WheelTimer) handle.cancel();
  else clearTimeout(handle);
}

// ---------------------------------------------------------------------------------------------
// Client transactions (RFC 3261 §17.1)

export type ClientState = "calling" | "trying" | "proceeding" | "completed" | "accepted" | "terminated";

export type ClientOutcome =
  | { kind: "final"; response: SipResponse }
  | { kind: "timeout" }
  | { kind: "transportError"; error: Error };

export type ClientTransactionEvents = {
  /** 1xx responses (each one received, including retransmissions over UDP). */
  provisional: (response: SipResponse) => void;
  /** The first final response. */
  final: (response: SipResponse) => void;
  /** INVITE only: a further 2xx (retransmission or another fork) while Accepted (RFC 6026 §7.2);
   * the UAC must ACK it again (RFC 3261 §13.2.2.4). */
  extra2xx: (response: SipResponse) => void;
  /** Timer B or F fired without a final response (the TU treats it as 408, §8.1.3.1). */
  timeout: () => void;
  transportError: (error: Error) => void;
  terminated: () => void;
};

export class ClientTransaction extends Emitter<ClientTransactionEvents> {
  readonly key: string;
  readonly isInvite: boolean;
  state: ClientState;
  /** Resolves with the first final response, the timeout or the transport failure. */
  readonly outcome: Promise<ClientOutcome>;
  private resolveOutcome!: (o: ClientOutcome) => void;
  private readonly timers: Timers;
  /** The request and its bytes, held until the final response (for retransmission, ACK, CANCEL). */
  private req: SipRequest | undefined;
  private bytes: Uint8Array | undefined;
  private ackBytes: Uint8Array | undefined;
  private readonly callId: string;
  private cancelWanted = false;
  private hadProvisional = false;
  private cancelTx: ClientTransaction | undefined;

  constructor(
    request: SipRequest,
    private readonly wire: Wire,
    private readonly layer: TransactionLayer,
  ) {
    super();
    this.timers = new Timers(layer.wheel);
    this.req = request;
    const branch = branchOf(request);
    if (!branch) throw new Error("a client transaction needs a Via branch");
    this.key = clientKey(branch, request.method);
    this.isInvite = request.method === "INVITE";
    this.state = this.isInvite ? "calling" : "trying";
    this.bytes = serializeMessage(request);
    this.callId = request.callId;
    this.outcome = new Promise((resolve) => {
      this.resolveOutcome = resolve;
    });
  }

  /** The request, until a final response arrived. */
  get request(): SipRequest | undefined {
    return this.req;
  }

  /** Sends the request and arms timers A/B (INVITE, §17.1.1.2) or E/F (non-INVITE, §17.1.2.2). */
  start(): void {
    const { T1, T2 } = this.layer.timers;
    if (this.bytes) this.transmit(this.bytes);
    if (this.isInvite) {
      if (!this.wire.reliable) this.retransmitEvery("A", T1, Number.POSITIVE_INFINITY);
      this.timers.start("B", 64 * T1, () => this.timeOut());
    } else {
      if (!this.wire.reliable) this.retransmitEvery("E", T1, T2);
      this.timers.start("F", 64 * T1, () => this.timeOut());
    }
  }

  private retransmitEvery(timer: string, interval: number, cap: number): void {
    this.timers.start(timer, interval, () => {
      if (!this.bytes || (this.state !== "calling" && this.state !== "trying" && this.state !== "proceeding")) return;
      this.transmit(this.bytes);
      // §17.1.2.2: in Proceeding, timer E fires every T2.
      const next = this.state === "proceeding" ? this.layer.timers.T2 : Math.min(2 * interval, cap);
      this.retransmitEvery(timer, next, cap);
    });
  }

  private transmit(bytes: Uint8Array): void {
    this.wire.send(bytes, this.callId).catch((error: unknown) => this.failTransport(error));
  }

  private failTransport(error: unknown): void {
    if (this.state === "terminated") return;
    // RFC 3261 §17.1.4: a transport failure terminates the transaction and informs the TU.
    const err = error instanceof Error ? error : new Error(String(error));
    const hadFinal = this.state === "completed" || this.state === "accepted";
    this.terminate();
    if (!hadFinal) {
      this.resolveOutcome({ kind: "transportError", error: err });
      this.emit("transportError", err);
    }
  }

  private timeOut(): void {
    if (this.state === "terminated" || this.state === "completed" || this.state === "accepted") return;
    this.terminate();
    this.resolveOutcome({ kind: "timeout" });
    this.emit("timeout");
  }

  /** Called by the layer for every response that matches this transaction. */
  receive(res: SipResponse): void {
    const { T1, T4 } = this.layer.timers;
    if (res.status < 200) {
      if (this.state === "calling" || this.state === "trying" || this.state === "proceeding") {
        this.state = "proceeding";
        // §17.1.1.2: timers A and B run only in Calling; once proceeding, the TU decides (CANCEL).
        this.timers.stop("A");
        this.timers.stop("B");
        this.hadProvisional = true;
        this.emit("provisional", res);
        if (this.cancelWanted) this.sendCancel();
      }
      return;
    }
    if (this.isInvite) {
      if (res.status < 300) {
        if (this.state === "accepted") {
          this.emit("extra2xx", res);
          return;
        }
        if (this.state === "terminated" || this.state === "completed") return;
        // RFC 6026 §7.2: Accepted; 2xx retransmissions reach the TU until timer M.
        this.state = "accepted";
        this.stopCallingTimers();
        this.timers.start("M", 64 * T1, () => this.terminate());
        this.finish(res);
        return;
      }
      if (this.state === "completed") {
        // §17.1.1.2: retransmitted final response → retransmit the ACK.
        if (this.ackBytes) this.transmit(this.ackBytes);
        return;
      }
      if (this.state === "terminated" || this.state === "accepted") return;
      this.state = "completed";
      this.stopCallingTimers();
      if (this.req) {
        this.ackBytes = serializeMessage(buildNon2xxAck(this.req, res));
        this.transmit(this.ackBytes);
      }
      // Timer D: at least 32 s on unreliable transports (64*T1 at the default T1), 0 on reliable.
      this.timers.start("D", this.wire.reliable ? 0 : 64 * T1, () => this.terminate());
      this.finish(res);
      return;
    }
    if (this.state === "completed" || this.state === "terminated") return;
    this.state = "completed";
    this.timers.stop("E");
    this.timers.stop("F");
    this.timers.start("K", this.wire.reliable ? 0 : T4, () => this.terminate());
    this.finish(res);
  }

  /** A final response ends retransmission (A), the wait for it (B) and the wait after CANCEL. */
  private stopCallingTimers(): void {
    this.timers.stop("A");
    this.timers.stop("B");
    this.timers.stop("cancel");
  }

  private finish(res: SipResponse): void {
    this.req = undefined;
    this.bytes = undefined;
    this.resolveOutcome({ kind: "final", response: res });
    this.emit("final", res);
    // Once final, nothing provisional, final or timed out follows (only extra 2xx, transport errors).
    this.release("provisional", "final", "timeout");
  }

  /**
   * RFC 3261 §9.1: CANCEL a pending INVITE. Sent once a provisional response has arrived (before
   * that, it waits for one); a no-op once a final response arrived. Returns the CANCEL transaction
   * when it was sent right away.
   */
  cancel(): ClientTransaction | undefined {
    if (!this.isInvite || this.cancelWanted) return this.cancelTx;
    if (this.state !== "calling" && this.state !== "proceeding") return undefined;
    this.cancelWanted = true;
    if (this.hadProvisional) return this.sendCancel();
    return undefined;
  }

  private sendCancel(): ClientTransaction | undefined {
    if (this.cancelTx || this.state !== "proceeding" || !this.req) return this.cancelTx;
    this.cancelTx = this.layer.startClient(buildCancel(this.req), this.wire);
    // §9.1: no final response 64*T1 after the CANCEL → the INVITE transaction is given up.
    this.timers.start("cancel", 64 * this.layer.timers.T1, () => this.timeOut());
    return this.cancelTx;
  }

  terminate(): void {
    if (this.state === "terminated") return;
    this.state = "terminated";
    this.timers.stopAll();
    this.layer.removeClient(this);
    this.emit("terminated");
  }
}

/** RFC 3261 §17.1.1.3: the ACK for a non-2xx final response, built by the transaction. */
export function buildNon2xxAck(invite: SipRequest, res: SipResponse): SipRequest {
  return mirrorInvite(invite, "ACK", res.to);
}

/** RFC 3261 §9.1: CANCEL mirrors the INVITE's Request-URI, Call-ID, To, From, CSeq number, top Via and Route. */
export function buildCancel(invite: SipRequest): SipRequest {
  return mirrorInvite(invite, "CANCEL", invite.to);
}

/** ACK (non-2xx) and CANCEL share the INVITE's Request-URI, From, Call-ID, CSeq number, top Via and Route. */
function mirrorInvite(invite: SipRequest, method: "ACK" | "CANCEL", to: NameAddr): SipRequest {
  const via = invite.vias[0];
  return createRequest({
    method,
    uri: invite.uri,
    from: invite.from,
    to,
    callId: invite.callId,
    cseq: invite.cseq.seq,
    via: via ? [via] : [],
    maxForwards: 70,
    headers: invite.getHeaders("Route").map((r): [string, string] => ["Route", r]),
  });
}

// ---------------------------------------------------------------------------------------------
// Server transactions (RFC 3261 §17.2)

export type ServerState = "trying" | "proceeding" | "completed" | "confirmed" | "accepted" | "terminated";

export type ServerTransactionEvents = {
  /** INVITE: the ACK for a non-2xx final (§17.2.1) or for a 2xx (passed up while Accepted, RFC 6026). */
  ack: (ack: SipRequest) => void;
  /** INVITE: a matching CANCEL arrived before the final response (§9.2); the stack answers 487 after the listeners ran. */
  cancel: (cancel: SipRequest) => void;
  /** INVITE: timer H fired, the non-2xx final was never acknowledged. */
  timeout: () => void;
  /** INVITE: the TU gave no final response in time; the layer answers 500 right after the listeners ran. */
  unanswered: () => void;
  transportError: (error: Error) => void;
  terminated: () => void;
};

export interface RespondOptions {
  toTag?: string;
  headers?: [string, string][];
  body?: Uint8Array | string;
  contentType?: string;
}

export class ServerTransaction extends Emitter<ServerTransactionEvents> {
  readonly key: string;
  readonly isInvite: boolean;
  state: ServerState;
  /** The To tag this transaction puts on its responses (§8.2.6.2), fixed on first use. */
  private localTag: string | undefined;
  /** To tag of the last response sent; the message itself is kept only as bytes (memory: UDP
   * transactions live on for 64*T1 after their final response). */
  private lastToTag: string | undefined;
  private lastBytes: Uint8Array | undefined;
  /** Its timers, until it lingers (`absorbUntil`). */
  private timers: Timers | undefined;
  readonly mergeKey: string | undefined;
  /** Set while Accepted: the key the ACK for our 2xx is matched by (RFC 6026). */
  acceptedKey: string | undefined;

  /** The request's own To tag (in-dialog requests), compared by RFC 2543 matching. */
  requestToTag: string | undefined;
  /** Held while the TU may respond; released with the final response, because a UDP transaction
   * lives on for 64*T1 and a flood must not pin every parsed request for that long. */
  private req: SipRequest | undefined;
  /** Where its responses go, and their Call-ID for the message tap: both dropped when it lingers. */
  private wire: Wire | undefined;
  private callId: string | undefined;
  /** In its last state, on one of the layer's linger queues. */
  private lingering = false;
  /** An INVITE the TU has not answered yet (at most the stack's 100 sent): counted by the layer. */
  private awaitingTu: boolean;
  /** Where this transaction's warnings go: the TU may hand it its own logger (a call's), whose fields they then carry. */
  log: Logger = log;

  constructor(
    request: SipRequest,
    wire: Wire,
    private readonly layer: TransactionLayer,
  ) {
    super();
    this.req = request;
    this.wire = wire;
    // Kept after the request is let go (64*T1 over UDP): copies, not substrings of its text.
    this.key = unshared(serverKey(request));
    this.isInvite = request.method === "INVITE";
    this.state = this.isInvite ? "proceeding" : "trying";
    const requestToTag = request.to.params.get("tag");
    this.requestToTag = requestToTag ? unshared(requestToTag) : undefined;
    this.mergeKey = this.requestToTag ? undefined : unshared(mergeKey(request));
    this.callId = unshared(request.callId);
    this.awaitingTu = this.isInvite;
    if (this.awaitingTu) layer.invitesAwaitingTu++;
  }

  /** The request, until the final response has been sent. */
  get request(): SipRequest | undefined {
    return this.req;
  }

  /** The To tag of this transaction's responses: the request's own, or one minted once (§8.2.6.2). */
  get toTag(): string {
    if (this.requestToTag) return this.requestToTag;
    this.localTag ??= newTag();
    return this.localTag;
  }

  /** Whether the TU may still respond. */
  get pending(): boolean {
    return this.state === "trying" || this.state === "proceeding";
  }

  respond(status: number, reason?: string, opts: RespondOptions = {}): SipResponse | undefined {
    const req = this.req;
    if (!req || !this.pending) return undefined;
    const toTag = status === 100 ? undefined : (opts.toTag ?? this.toTag);
    if (opts.toTag && !this.requestToTag) this.localTag = opts.toTag;
    const res = createResponse(req, status, reason, { ...opts, ...(toTag ? { toTag } : {}) });
    this.respondWith(res);
    return res;
  }

  /**
   * RFC 3261 §17.2.1: an INVITE's 100 (Trying), unless the TU responds first. The RFC lets a server
   * that knows the TU will respond within 200 ms leave it out: a call routed at once answers 180
   * within milliseconds, and its 100 would be a fourth message for both sides to build, send, trace
   * and parse. The 100 goes when the TU has not responded within a fifth of T1 (100 ms: well before
   * the client's first retransmission at T1), or at once if the INVITE is retransmitted before.
   */
  tryUnlessAnswered(): void {
    this.startTimer("trying", this.layer.timers.T1 / 5, () => this.sendTrying());
  }

  private sendTrying(): void {
    if (this.state === "proceeding" && !this.lastBytes) this.respond(100, "Trying");
  }

  /** Sends a response built elsewhere (e.g. a 2xx from a dialog); it must belong to this request. */
  respondWith(res: SipResponse): void {
    const req = this.req;
    const wire = this.wire;
    if (!this.pending || !req || !wire) return;
    this.timers?.stop("trying");
    if (res.status > 100) this.answeredByTu();
    const { T1, T2 } = this.layer.timers;
    // The request's own To tag or ours (strings kept anyway), or a copy: the response's is a
    // substring of its To header.
    const toTag = res.to.params.get("tag") ?? undefined;
    this.lastToTag = toTag === this.requestToTag ? this.requestToTag : toTag === this.localTag ? this.localTag : toTag && unshared(toTag);
    this.lastBytes = serializeMessage(res);
    this.transmit(this.lastBytes);
    if (res.status < 200) {
      this.state = "proceeding";
      return;
    }
    this.req = undefined;
    this.timers?.stop("noFinal");
    // A CANCEL or the no-final guard only concern a pending request; nothing after the final
    // response logs for the call (its logger's fields would be pinned as long as this lingers).
    this.release("cancel", "unanswered");
    this.log = log;
    if (!this.isInvite) {
      // §17.2.2: Completed; timer J absorbs request retransmissions.
      this.state = "completed";
      this.absorbUntil("J", wire.reliable ? 0 : 64 * T1);
      return;
    }
    if (res.status < 300) {
      // RFC 6026 §8.5: Accepted; the TU (dialog) retransmits the 2xx until the ACK (§13.3.1.4).
      this.state = "accepted";
      this.layer.noteAccepted(this, ackKey(req.callId, req.cseq.seq, req.from.params.get("tag"), this.lastToTag));
      this.startTimer("L", 64 * T1, () => this.terminate());
      return;
    }
    // §17.2.1: Completed; timer G retransmits the final response, timer H waits for the ACK.
    this.state = "completed";
    if (!wire.reliable) {
      const retransmit = (interval: number) =>
        this.startTimer("G", interval, () => {
          if (this.state !== "completed" || !this.lastBytes) return;
          this.transmit(this.lastBytes);
          retransmit(Math.min(2 * interval, T2));
        });
      retransmit(T1);
    }
    this.startTimer("H", 64 * T1, () => {
      if (this.state !== "completed") return;
      this.terminate();
      this.emit("timeout");
    });
  }

  /**
   * Requests the TU never answers must not live forever: a non-INVITE one is dropped after 64*T1
   * (its client has given up by then, §17.1.2.2); an INVITE one is answered 500 after the layer's
   * `unansweredInviteMs` and ends as any other final response would.
   */
  armNoFinalGuard(): void {
    if (this.isInvite) {
      this.startTimer("noFinal", this.layer.unansweredInviteMs, () => {
        if (!this.pending) return;
        this.log.warn("no final response from the TU; INVITE answered 500", { sipCallId: this.req?.callId });
        this.layer.counters.unansweredInvites++;
        this.emit("unanswered");
        this.respond(500, "Server Internal Error");
      });
      return;
    }
    this.startTimer("noFinal", 64 * this.layer.timers.T1, () => {
      if (!this.pending) return;
      this.log.warn("no final response from the TU; transaction dropped", {
        method: this.req?.method,
        sipCallId: this.req?.callId,
      });
      this.terminate();
    });
  }

  /**
   * A retransmission of the request (or the ACK for a non-2xx final) matched this transaction;
   * `via` is the wire it came by, which a lingering transaction answers through.
   */
  receiveRetransmission(req: SipRequest, via: Wire): void {
    if (req.method === "ACK") {
      if (!this.isInvite) return;
      // An RFC 2543 ACK for our 2xx matches by transaction key rather than by dialog.
      if (this.state === "accepted") return this.receiveAck2xx(req);
      if (this.state === "completed") {
        // §17.2.1: Confirmed; timer I absorbs ACK retransmissions.
        this.state = "confirmed";
        this.timers?.stop("G");
        this.timers?.stop("H");
        this.absorbUntil("I", this.wire?.reliable ? 0 : this.layer.timers.T4);
        this.emit("ack", req);
      }
      return;
    }
    // §17.2.1 / §17.2.2: resend the last response in Proceeding and Completed; absorb otherwise.
    if ((this.state === "proceeding" || this.state === "completed") && this.lastBytes) {
      return this.transmit(this.lastBytes, this.wire ?? via, this.callId ?? req.callId);
    }
    // An INVITE retransmitted before the TU responded: its 100 now (tryUnlessAnswered).
    if (this.isInvite) this.sendTrying();
  }

  /** §13.3.1.4: the dialog re-sends its 2xx through this transaction's path until the ACK. */
  retransmit2xx(): void {
    if (this.state === "accepted" && this.lastBytes) this.transmit(this.lastBytes);
  }

  /** RFC 6026: an ACK for our 2xx, matched by dialog identifiers while Accepted. */
  receiveAck2xx(ack: SipRequest): void {
    if (this.lingering) return;
    // The 2xx got there: nothing re-sends it any more, and further ACKs for it go to the TU, whose
    // dialog knows it has one (RFC 6026 §8.7).
    this.lastBytes = undefined;
    this.layer.forgetAccepted(this);
    this.emit("ack", ack);
    // The dialog hears one ACK per INVITE (§13.3.1.4); its listener would pin the dialog and its
    // call for the rest of Timer L (32 s over UDP), after the call may long have ended.
    this.release("ack");
    // Accepted lasts 64*T1 to absorb retransmissions of the INVITE and of this ACK. Timer L
    // restarts here, so it ends at most the ACK's delay later than RFC 6026 §8.7 counts it.
    this.absorbUntil("L", 64 * this.layer.timers.T1);
  }

  /** §9.2: a CANCEL for this INVITE. Returns whether a final response was still pending. */
  receiveCancel(cancel: SipRequest): boolean {
    if (!this.isInvite || !this.pending) return false;
    this.emit("cancel", cancel);
    // §9.2: the UAS answers the INVITE with 487 unless the TU already sent a final response.
    this.respond(487, "Request Terminated");
    return true;
  }

  private answeredByTu(): void {
    if (!this.awaitingTu) return;
    this.awaitingTu = false;
    this.layer.invitesAwaitingTu--;
  }

  private startTimer(name: string, ms: number, fire: () => void): void {
    (this.timers ??= new Timers(this.layer.wheel)).start(name, ms, fire);
  }

  /**
   * Its last state (§17.2.2 Completed, §17.2.1 Confirmed, RFC 6026 Accepted once the ACK came):
   * it only answers or absorbs retransmissions until `timer` ends it. Over a reliable transport
   * that is at once (J and I are 0); otherwise it moves to the layer's linger queue and keeps
   * nothing the retransmissions do not need: no timers, no wire (a retransmission is answered
   * through the one it came by, §18.2.2), no Call-ID.
   */
  private absorbUntil(timer: "I" | "J" | "L", ms: number): void {
    this.timers?.stopAll();
    if (ms === 0) {
      this.startTimer(timer, 0, () => this.terminate());
      return;
    }
    this.timers = undefined;
    this.wire = undefined;
    this.callId = undefined;
    // The tags serve RFC 2543 matching alone from now on (§17.2.3); an INVITE's own tag stays, the
    // To tag of a CANCEL's 200 (§9.2).
    if (!this.key.startsWith(RFC2543_KEY)) this.requestToTag = this.lastToTag = undefined;
    this.lingering = true;
    this.layer.linger(this, ms);
  }

  private transmit(bytes: Uint8Array, wire = this.wire, callId = this.callId): void {
    if (!wire) return;
    wire.send(bytes, callId).catch((error: unknown) => {
      if (this.state === "terminated") return;
      // §17.2.4: report the failure to the TU.
      const err = error instanceof Error ? error : new Error(String(error));
      this.terminate();
      this.emit("transportError", err);
    });
  }

  terminate(): void {
    if (this.state === "terminated") return;
    this.state = "terminated";
    this.answeredByTu();
    this.timers?.stopAll();
    this.layer.removeServer(this);
    this.emit("terminated");
  }

  /** The To tag of the final response, which an RFC 2543 ACK must carry to match (§17.2.3). */
  get responseToTag(): string | undefined {
    return this.lastToTag;
  }
}

// ---------------------------------------------------------------------------------------------
// The layer: owns the transaction tables.

export interface TransactionLimits {
  /** Server transactions alive at once (each keyed by what a peer sent); beyond, none are created. */
  maxServerTransactions: number;
  /** An INVITE the TU has not answered this long gets 500 (RFC 3261 §16.6's timer C is > 3 min). */
  unansweredInviteMs: number;
}

export const DEFAULT_TRANSACTION_LIMITS: TransactionLimits = { maxServerTransactions: 20_000, unansweredInviteMs: 180_000 };

export class TransactionLayer {
  readonly timers: TimerConfig;
  readonly counters = { unansweredInvites: 0 };
  /** The transactions' long timers (Timer J, L, D, M, the no-final guards), one wake-up per slot. */
  readonly wheel = new TimerWheel((error) => log.error("transaction timer failed", { error }));
  /** INVITE server transactions the TU has not answered yet (only the 100 Trying sent): overload's measure. */
  invitesAwaitingTu = 0;
  private readonly limits: TransactionLimits;
  private readonly clients = new Map<string, ClientTransaction>();
  private readonly servers = new Map<string, ServerTransaction>();
  private readonly merged = new Map<string, ServerTransaction>();
  private readonly accepted = new Map<string, ServerTransaction>();
  /** Server transactions in their last state, one queue per duration (linger-queue.ts). */
  private readonly lingering = new Map<number, LingerQueue<ServerTransaction>>();

  constructor(timers: Partial<TimerConfig> = {}, limits: Partial<TransactionLimits> = {}) {
    this.timers = { ...DEFAULT_TIMERS, ...timers };
    this.limits = { ...DEFAULT_TRANSACTION_LIMITS, ...limits };
  }

  get unansweredInviteMs(): number {
    return this.limits.unansweredInviteMs;
  }

  /**
   * Table sizes: live transactions, the merge / ACK-for-2xx indexes, and the server transactions
   * lingering in their last state (counted among `servers` too; all drain as timers end).
   */
  get size(): { clients: number; servers: number; merged: number; accepted: number; lingering: number } {
    let lingering = 0;
    for (const queue of this.lingering.values()) lingering += queue.size;
    return { clients: this.clients.size, servers: this.servers.size, merged: this.merged.size, accepted: this.accepted.size, lingering };
  }

  /** Client transactions still waiting for their final response. */
  get awaitingFinalResponse(): number {
    let n = 0;
    for (const tx of this.clients.values()) if (tx.state === "calling" || tx.state === "trying" || tx.state === "proceeding") n++;
    return n;
  }

  /**
   * Whether a new server transaction may be created. The merge and ACK-for-2xx indexes hold only
   * server transactions, so this one bound covers every table keyed by a peer's input.
   */
  hasServerRoom(): boolean {
    return this.servers.size < this.limits.maxServerTransactions;
  }

  startClient(request: SipRequest, wire: Wire): ClientTransaction {
    const tx = new ClientTransaction(request, wire, this);
    this.clients.set(tx.key, tx);
    tx.start();
    return tx;
  }

  /** Routes a response to its client transaction; false when none matches (§18.1.2: stray response). */
  receiveResponse(res: SipResponse): boolean {
    const branch = branchOf(res);
    if (!branch) return false;
    const tx = this.clients.get(clientKey(branch, res.cseq.method));
    if (!tx) return false;
    tx.receive(res);
    return true;
  }

  /** A server transaction this request belongs to (retransmission, or ACK for a non-2xx final). */
  matchServer(req: SipRequest): ServerTransaction | undefined {
    const tx = this.servers.get(serverKey(req));
    if (!tx || !isRfc2543(req)) return tx;
    // §17.2.3 RFC 2543 matching: the ACK carries the To tag of the response; others the request's.
    const toTag = req.to.params.get("tag") ?? undefined;
    const expected = req.method === "ACK" ? tx.responseToTag : tx.requestToTag;
    return toTag === expected ? tx : undefined;
  }

  /** RFC 3261 §9.2: the INVITE server transaction a CANCEL targets. */
  matchCancelTarget(cancel: SipRequest): ServerTransaction | undefined {
    const tx = this.servers.get(serverKey(cancel, "INVITE"));
    if (!tx || !isRfc2543(cancel)) return tx;
    return (cancel.to.params.get("tag") ?? undefined) === tx.requestToTag ? tx : undefined;
  }

  /** RFC 3261 §8.2.2.2: a request without To tag that shares From tag, Call-ID and CSeq with another transaction. */
  isMerged(req: SipRequest): boolean {
    if (req.to.params.get("tag") || req.method === "ACK" || req.method === "CANCEL") return false;
    const other = this.merged.get(mergeKey(req));
    return other !== undefined && other.key !== serverKey(req);
  }

  /** RFC 6026 §8.7: an ACK for a 2xx, matched by Call-ID, CSeq number and tags to an Accepted INVITE. */
  matchAck2xx(ack: SipRequest): ServerTransaction | undefined {
    return this.accepted.get(ackKey(ack.callId, ack.cseq.seq, ack.from.params.get("tag"), ack.to.params.get("tag")));
  }

  createServer(request: SipRequest, wire: Wire): ServerTransaction {
    const tx = new ServerTransaction(request, wire, this);
    this.servers.set(tx.key, tx);
    if (tx.mergeKey) this.merged.set(tx.mergeKey, tx);
    tx.armNoFinalGuard();
    return tx;
  }

  /** @internal ServerTransaction: it is Accepted, and `key` (ackKey) finds it for the ACK. */
  noteAccepted(tx: ServerTransaction, key: string): void {
    // Kept as long as the transaction lingers: a copy, not substrings of the request's text.
    tx.acceptedKey = unshared(key);
    this.accepted.set(tx.acceptedKey, tx);
  }

  /** @internal ServerTransaction: it ends `ms` from now, as every transaction on that queue does. */
  linger(tx: ServerTransaction, ms: number): void {
    let queue = this.lingering.get(ms);
    if (!queue) {
      queue = new LingerQueue<ServerTransaction>(ms, (ended) => ended.terminate(), (error) => log.error("lingering transaction failed to end", { error }));
      this.lingering.set(ms, queue);
    }
    queue.add(tx);
  }

  removeClient(tx: ClientTransaction): void {
    if (this.clients.get(tx.key) === tx) this.clients.delete(tx.key);
  }

  removeServer(tx: ServerTransaction): void {
    if (this.servers.get(tx.key) === tx) this.servers.delete(tx.key);
    if (tx.mergeKey && this.merged.get(tx.mergeKey) === tx) this.merged.delete(tx.mergeKey);
    this.forgetAccepted(tx);
  }

  /** @internal ServerTransaction: its ACK came; the index no longer finds it. */
  forgetAccepted(tx: ServerTransaction): void {
    if (tx.acceptedKey && this.accepted.get(tx.acceptedKey) === tx) this.accepted.delete(tx.acceptedKey);
    tx.acceptedKey = undefined;
  }

  /** Terminates every transaction (stack shutdown). */
  clear(): void {
    for (const tx of [...this.clients.values()]) tx.terminate();
    for (const tx of [...this.servers.values()]) tx.terminate();
    for (const queue of this.lingering.values()) queue.clear();
  }
}
