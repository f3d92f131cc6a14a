// SipStack: the only SIP object the layers above (trunks, calls) hold. It composes, after sipgo's
// transport → transaction → user agent layering:
//   transport-layer.ts  the UDP/TCP/TLS multiplexer; every inbound message passes the per-source
//                       screen (source-guard.ts: strangers, rate budgets) before it is parsed
//   transaction.ts      RFC 3261 §17 client and server transactions
//   user-agent.ts       response routing (§18.2.2, RFC 3581), the stateless UAS rules (§8.2)
//   dialogs.ts          the dialog table in-dialog requests are dispatched to (§12.2.2)
// and adds what a UAC needs to build requests (Via, Contact, Call-ID, tags).
//
// Who may talk to us: only sources the layer above names (`isKnownSource`, or later
// `screenSources`, the call layer filling it with trunk addresses). Requests from anyone else are
// dropped unread (`strangers: "drop"`, the default) or answered 403 (`"reject"`). Requests from a
// trusted front (`trustedFronts`) are judged by the original sender it names (relayed-source.ts),
// which the layers above read as `ctx.origin`.
//
// Usage:
//
//   const stack = new SipStack({ listen: [{ transport: "udp", host: "0.0.0.0", port: 5060 }],
//     advertised: { host: "203.0.113.7" }, isKnownSource: (address) => trunks.has(address) });
//   await stack.start();
//
//   // UAS: answer an INVITE and get a dialog (2xx retransmitted until the ACK, RFC 3261 §13.3.1.4).
//   stack.onRequest((req, tx, ctx) => {
//     if (req.method !== "INVITE") return tx.respond(405);
//     tx.respond(180);
//     const dialog = Dialog.answer(stack, req, tx, ctx, { status: 200, contact: stack.contactFor("bot", ctx.local.transport),
//       body: sdpAnswer, contentType: "application/sdp" });
//     dialog.on("ack", (ack) => ...);                    // the ACK (may carry the SDP answer for a delayed offer)
//     dialog.on("request", (inDialog, itx) => ...);      // re-INVITE, INFO, UPDATE, OPTIONS: respond on itx
//     dialog.on("terminated", (reason) => ...);          // "bye" (peer's BYE answered 200), "local", "ackTimeout" (BYE sent)
//   });
//
//   // UAC: INVITE → 2xx → ACK (sent by the dialog) → BYE.
//   const dest = { transport: "udp", address: "198.51.100.2", port: 5060 } as const;
//   const invite = stack.createOutOfDialogRequest({ method: "INVITE", uri: parseUri("sip:bob@198.51.100.2")!,
//     from: { uri: parseUri("sip:alice@example.com")!, params: new Map() },
//     to: { uri: parseUri("sip:bob@198.51.100.2")!, params: new Map() },
//     transport: "udp", body: sdpOffer, contentType: "application/sdp" });   // Via, From tag, Call-ID, Contact filled in
//   const tx = stack.sendRequest(invite, dest);     // tx.cancel() sends CANCEL (§9.1)
//   tx.on("provisional", (res) => ...);
//   const outcome = await tx.outcome;               // { kind: "final", response } | { kind: "timeout" } | { kind: "transportError", error }
//   if (outcome.kind === "final" && outcome.response.status < 300) {
//     const dialog = Dialog.fromInvite2xx(stack, invite, outcome.response, tx, dest); // sends the ACK, re-ACKs retransmitted 2xx
//     ... later: await dialog.bye();
//   }
//
//   // Non-INVITE (OPTIONS ping, REGISTER): const outcome = await stack.sendRequest(req, dest).outcome;
//   // Responses to our requests never reach onRequest; they resolve the client transaction.
//
// Server transactions: tx.respond(status, reason?, { headers, body, contentType }) or tx.respondWith(res);
// tx.on("cancel") (the stack answers 487 after the listeners ran), tx.on("ack") for non-2xx ACKs;
// an INVITE left without final response gets 500 after `limits.unansweredInviteMs` (tx.on("unanswered")).
// A 2xx to an INVITE belongs to a Dialog (Dialog.answer / dialog.respond2xx), which retransmits it.
// OPTIONS outside a dialog, CANCEL, ACK, retransmissions and in-dialog requests (routed to
// stack.dialogs, else 481) are handled by the stack and never reach onRequest.
import { createLogger } from "../log.ts";
import { DialogTable } from "./dialogs.ts";
import {
  createRequest,
  formatVia,
  newBranch,
  newCallId,
  newTag,
  NO_PARAMS,
  NO_URI_HEADERS,
  type NameAddr,
  serializeMessage,
  type SipRequest,
  type SipResponse,
  type SipUri,
  type TransportName,
  type Via,
} from "./message.ts";
import { DEFAULT_OVERLOAD_LIMITS, OverloadGuard, type OverloadLimits, type OverloadReason } from "./overload.ts";
import { DEFAULT_SOURCE_LIMITS, SourceGuard, type SourceGuardCounters, type SourceLimits, type StrangerPolicy } from "./source-guard.ts";
import {
  type ClientTransaction,
  type TimerConfig,
  TransactionLayer,
  type TransactionLimits,
  type Wire,
} from "./transaction.ts";
import type { Endpoint, SendOptions } from "./transport.ts";
import type { StreamCounters } from "./transport-stream.ts";
import { type ListenSpec, type StreamLimits, type TlsOptions, TransportLayer } from "./transport-layer.ts";
import { type MessageTap, MessageTaps } from "./tap.ts";
import { type RequestHandler, UserAgentCore } from "./user-agent.ts";

const log = createLogger("sip.stack");
/**
 * How long a stop waits for answers to requests in flight: a BYE's 200 comes within a round trip,
 * two retransmissions (T1, 2·T1) fit; timer F's 32 s to a silent peer is not worth holding a stop for.
 */
const STOP_WAIT_FOR_ANSWERS_MS = 2000;

export type { ListenSpec } from "./transport-layer.ts";
export type { RequestHandler } from "./user-agent.ts";

/** Every limit of the stack, each with a default; see SourceLimits, StreamLimits, TransactionLimits. */
export type SipLimits = SourceLimits &
  Required<StreamLimits> &
  TransactionLimits &
  OverloadLimits & {
    /** Largest SIP message accepted, in bytes; larger requests get 413 (RFC 3261 §21.4.11). */
    maxMessageSize: number;
  };

export interface SipStackOptions {
  listen: ListenSpec[];
  /** The address (and port) peers should use to reach us: written into Via and Contact. */
  advertised?: { host: string; port?: number };
  tls?: TlsOptions;
  /** Sources allowed to send requests (trunk addresses); until set (here or by screenSources), nobody is. */
  isKnownSource?: (address: string) => boolean;
  /** Addresses of fronts (the cluster's Kamailio) whose X-Trunkline-Source header is believed. */
  trustedFronts?: (address: string) => boolean;
  /** What a request from any other source gets: nothing ("drop", default) or a stateless 403 ("reject"). */
  strangers?: StrangerPolicy;
  limits?: Partial<SipLimits>;
  timers?: Partial<TimerConfig>;
  /** Methods the layers above handle (Allow header; others get 405 or 501). */
  allow?: string[];
  /** Option tags we support (Supported header; Require of anything else → 420). */
  supported?: string[];
  /** Body types we accept (Accept header; other Content-Types → 415). */
  accept?: string[];
  /** Request-URI schemes we serve (others → 416). */
  uriSchemes?: string[];
  /** Value of the User-Agent / Server header (default "Trunkline", no version). */
  userAgent?: string;
  /**
   * RFC 3261 §8.1.2: out-of-dialog requests over UDP and TCP go to this proxy (the cluster's
   * front) instead of their destination, with a preloaded loose Route naming it (§16.12.1.1).
   */
  outboundProxy?: { address: string; port: number };
}

/** Per-request options for sendRequest (TLS certificate checks per trunk). */
export type RequestSendOptions = Pick<SendOptions, "serverName" | "verify">;

/** What the stack refused or dropped because of a screen or a limit, counted since start. */
export interface SipStackCounters {
  sources: SourceGuardCounters;
  connections: StreamCounters;
  transactionTableFull: number;
  unansweredInvites: number;
  /** New INVITEs answered 503 because the node was behind (src/sip/overload.ts). */
  overloaded: Record<OverloadReason, number>;
}

export class SipStack {
  readonly transactions: TransactionLayer;
  /** Established dialogs; in-dialog requests route here. */
  readonly dialogs = new DialogTable();
  private readonly guard: SourceGuard;
  private readonly transports: TransportLayer;
  private readonly ua: UserAgentCore;
  private readonly userAgent: string;
  private readonly outboundProxy: { address: string; port: number; route: string } | undefined;
  private readonly taps = new MessageTaps();
  private readonly overload: OverloadGuard;

  constructor(opts: SipStackOptions) {
    if (opts.outboundProxy) {
      const { address, port } = opts.outboundProxy;
      const host = address.includes(":") ? `[${address}]` : address;
      this.outboundProxy = { address, port, route: `<sip:${host}:${port};lr>` };
    }
    const limits = opts.limits ?? {};
    this.guard = new SourceGuard(
      opts.strangers ?? "drop",
      { ...DEFAULT_SOURCE_LIMITS, ...pick(limits, ["messagesPerSecond", "trunkMessagesPerSecond", "trackedSources"]) },
      {
        ...(opts.isKnownSource ? { isKnown: opts.isKnownSource } : {}),
        ...(opts.trustedFronts ? { isFront: opts.trustedFronts } : {}),
      },
    );
    this.transactions = new TransactionLayer(opts.timers, pick(limits, ["maxServerTransactions", "unansweredInviteMs"]));
    this.overload = new OverloadGuard({
      ...DEFAULT_OVERLOAD_LIMITS,
      ...pick(limits, ["maxUnansweredInvites", "maxEventLoopLagMs", "retryAfterSec"]),
    });
    this.userAgent = opts.userAgent ?? "Trunkline";
    this.transports = new TransportLayer(
      {
        listen: opts.listen,
        ...(opts.advertised ? { advertised: opts.advertised } : {}),
        ...(opts.tls ? { tls: opts.tls } : {}),
        ...(limits.maxMessageSize !== undefined ? { maxMessageSize: limits.maxMessageSize } : {}),
        stream: pick(limits, ["idleTimeoutMs", "maxConnections", "maxConnectionsPerAddress", "handshakeTimeoutMs", "maxWriteQueueBytes"]),
      },
      this.guard,
      {
        request: (req, ctx, arrival, stranger) => this.ua.receiveRequest(req, ctx, arrival, stranger),
        response: (res) => this.receiveResponse(res),
        malformed: (error, ctx, arrival, stranger) => this.ua.receiveMalformed(error, ctx, arrival, stranger),
      },
      this.taps,
    );
    this.ua = new UserAgentCore(
      {
        allow: opts.allow ?? ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO"],
        supported: opts.supported ?? [],
        accept: opts.accept ?? ["application/sdp"],
        uriSchemes: opts.uriSchemes ?? ["sip", "sips"],
        userAgent: this.userAgent,
      },
      this.transports,
      this.transactions,
      this.dialogs,
      this.overload,
    );
  }

  start(): Promise<void> {
    this.overload.start();
    return this.transports.start();
  }

  /**
   * Closes every transport. With `deadline` (epoch ms), requests already sent (the BYEs of a
   * shutdown) first get until then, at most STOP_WAIT_FOR_ANSWERS_MS, for their final responses.
   */
  async stop(deadline?: number): Promise<void> {
    if (deadline !== undefined) {
      const until = Math.min(deadline, Date.now() + STOP_WAIT_FOR_ANSWERS_MS);
      while (this.transactions.awaitingFinalResponse > 0 && Date.now() < until) await Bun.sleep(10);
    }
    this.dialogs.terminateAll();
    this.transactions.clear();
    this.guard.close();
    this.overload.stop();
    await this.transports.stop();
  }

  /** Where we listen (a TLS transport without certificate only dials out and is not listed). */
  get boundEndpoints(): Endpoint[] {
    return this.transports.boundEndpoints;
  }

  /**
   * Names the sources allowed to send requests (the call layer: trunk addresses); the stack never
   * learns what a trunk is. Called again, it replaces the screen.
   */
  screenSources(isKnown: (address: string) => boolean): void {
    this.guard.setKnownSources(isKnown);
  }

  /**
   * From now on out-of-dialog OPTIONS and INVITEs get 503 (a front's probe takes this node out of
   * its rotation, a new call goes elsewhere); dialogs and transactions carry on.
   */
  drain(): void {
    this.ua.drain();
  }

  /**
   * Every message sent, and every message received that passed the source screen, as raw bytes
   * (src/sip/tap.ts); the listener runs synchronously, so it must only copy what it needs. Returns
   * the function that removes it.
   */
  tapMessages(tap: MessageTap): () => void {
    return this.taps.add(tap);
  }

  /** Out-of-dialog requests that passed the screens and stateless checks; the handler must respond on tx. */
  onRequest(handler: RequestHandler): void {
    this.ua.onRequest(handler);
  }

  get counters(): SipStackCounters {
    return {
      sources: { ...this.guard.counters },
      connections: this.transports.streamCounters,
      transactionTableFull: this.ua.counters.transactionTableFull,
      unansweredInvites: this.transactions.counters.unansweredInvites,
      overloaded: { ...this.overload.counters },
    };
  }

  /** Source addresses holding a rate bucket now (bounded by `limits.trackedSources`). */
  get trackedSources(): number {
    return this.guard.trackedSources;
  }

  /** Bytes waiting to be written to stream peers (bounded per connection by `limits.maxWriteQueueBytes`). */
  get queuedBytes(): number {
    return this.transports.queuedBytes;
  }

  /** The longest write queue a stream connection has had since start. */
  get peakQueuedBytes(): number {
    return this.transports.peakQueuedBytes;
  }

  private receiveResponse(res: SipResponse): void {
    // §18.1.2: responses go to their client transaction; strays are dropped.
    if (!this.transactions.receiveResponse(res)) log.debug("stray response", { status: res.status, sipCallId: res.callId });
  }

  // -------------------------------------------------------------------------------------------
  // Sending

  /**
   * Starts a client transaction. A request without Via gets ours (advertised sent-by, fresh
   * branch, rport); the Via already present is kept (CANCEL, retries built by the caller). With an
   * outbound proxy, a request outside a dialog goes to the proxy instead (see viaOutboundProxy).
   */
  sendRequest(req: SipRequest, dest: Endpoint, opts: RequestSendOptions = {}): ClientTransaction {
    const hop = this.viaOutboundProxy(req, dest);
    if (req.vias.length === 0) req.addHeader("Via", formatVia(this.viaFor(hop.transport)), { prepend: true });
    if (!req.hasHeader("User-Agent")) req.addHeader("User-Agent", this.userAgent);
    return this.transactions.startClient(req, this.wireTo(hop, opts));
  }

  /**
   * RFC 3261 §8.1.2: a request outside a dialog (no To tag) is sent to the outbound proxy, its
   * Route set preloaded with the proxy's loose-routing URI so the proxy forwards it by its
   * Request-URI (§16.12.1.1); in-dialog requests follow the dialog's route set, which the proxy
   * Record-Routed. A retry that copied our Route keeps one. TLS goes straight to its destination
   * (the certificate names the trunk, not the proxy).
   */
  private viaOutboundProxy(req: SipRequest, dest: Endpoint): Endpoint {
    const proxy = this.outboundProxy;
    if (!proxy || dest.transport === "tls" || req.to.params.has("tag") || req.method === "ACK" || req.method === "CANCEL") return dest;
    if (req.getHeaders("Route")[0] !== proxy.route) req.addHeader("Route", proxy.route, { prepend: true });
    return { transport: dest.transport, address: proxy.address, port: proxy.port };
  }

  /** Sends outside any transaction: the ACK for a 2xx, 2xx retransmissions, stateless responses. */
  sendStateless(msg: SipRequest | SipResponse, dest: Endpoint, opts: SendOptions = {}): Promise<void> {
    return this.transports.send(serializeMessage(msg), dest, opts, msg.callId);
  }

  /** The path to a destination for transactions and dialogs; a missing transport fails the send (§17.1.4). */
  wireTo(dest: Endpoint, opts: SendOptions = {}): Wire {
    return this.transports.wireTo(dest, opts);
  }

  /** Our Via for a new request: advertised sent-by, fresh z9hG4bK branch, RFC 3581 rport. */
  viaFor(transport: TransportName): Via {
    const { host, port } = this.transports.sentBy(transport);
    return {
      protocol: "SIP/2.0",
      transport: transport.toUpperCase(),
      host,
      port,
      params: new Map<string, string | null>([
        ["branch", newBranch()],
        ["rport", null],
      ]),
    };
  }

  /** A Contact for requests and 2xx responses on this transport (advertised address). */
  contactFor(user: string | undefined, transport: TransportName): NameAddr {
    const { host, port } = this.transports.sentBy(transport);
    const params = transport === "udp" ? NO_PARAMS : new Map([["transport", transport]]);
    const uri: SipUri = { scheme: "sip", host, port, params, headers: NO_URI_HEADERS };
    if (user) uri.user = user;
    return { uri, params: NO_PARAMS };
  }

  /** A new out-of-dialog INVITE (or other method) with fresh Call-ID and From tag. */
  createOutOfDialogRequest(o: {
    method: string;
    uri: SipUri;
    from: NameAddr;
    to: NameAddr;
    transport: TransportName;
    contactUser?: string;
    headers?: [string, string][];
    body?: Uint8Array | string;
    contentType?: string;
    cseq?: number;
    callId?: string;
  }): SipRequest {
    const from: NameAddr = o.from.params.get("tag") ? o.from : { ...o.from, params: new Map(o.from.params).set("tag", newTag()) };
    return createRequest({
      method: o.method,
      uri: o.uri,
      from,
      to: o.to,
      callId: o.callId ?? newCallId(this.transports.sentBy(o.transport).host),
      cseq: o.cseq ?? 1,
      via: [this.viaFor(o.transport)],
      ...(o.method === "INVITE" || o.contactUser !== undefined
        ? { contact: this.contactFor(o.contactUser, o.transport) }
        : {}),
      ...(o.headers ? { headers: o.headers } : {}),
      ...(o.body !== undefined ? { body: o.body } : {}),
      ...(o.contentType !== undefined ? { contentType: o.contentType } : {}),
    });
  }
}

/** The keys of `from` that are set, for passing partial option groups down without undefined values. */
function pick<T extends object, K extends keyof T>(from: T, keys: K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const key of keys) if (from[key] !== undefined) out[key] = from[key];
  return out;
}
