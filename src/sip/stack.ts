// SipStack: transports + transactions + the stateless rules of a user agent (RFC 3261 §8.2) +
// response routing (§18.2.2) + in-dialog request dispatch (§12.2.2). The only SIP object the
// layers above (trunks, calls) hold.
//
// Usage:
//
//   const stack = new SipStack({ listen: [{ transport: "udp", host: "0.0.0.0", port: 5060 }],
//     advertised: { host: "203.0.113.7" } });
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
// tx.on("cancel") (the stack answers 487 after the listeners ran), tx.on("ack") for non-2xx ACKs.
// A 2xx to an INVITE belongs to a Dialog (Dialog.answer / dialog.respond2xx), which retransmits it.
// OPTIONS outside a dialog, CANCEL, ACK, retransmissions and in-dialog requests (routed to
// stack.dialogs, else 481) are handled here and never reach onRequest.
import { networkInterfaces } from "node:os";
import { createLogger } from "../log.ts";
import type { Dialog } from "./dialog.ts";
import {
  createRequest,
  createResponse,
  formatVia,
  newBranch,
  newCallId,
  newTag,
  type NameAddr,
  parseMessage,
  serializeMessage,
  type SipRequest,
  type SipResponse,
  type SipUri,
  type TransportName,
  type Via,
} from "./message.ts";
import {
  type ClientTransaction,
  type ServerTransaction,
  type TimerConfig,
  TransactionLayer,
  type Wire,
} from "./transaction.ts";
import {
  defaultPort,
  type Endpoint,
  type InboundContext,
  isIpv6,
  type SendOptions,
  stripBrackets,
  type Transport,
} from "./transport.ts";
import { StreamTransport } from "./transport-stream.ts";
import { UdpTransport } from "./transport-udp.ts";

const log = createLogger("sip.stack");

export interface ListenSpec {
  transport: TransportName;
  /** Bind address: "0.0.0.0", "::", or a specific interface address. */
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
}

export interface SipStackOptions {
  listen: ListenSpec[];
  /** The address (and port) peers should use to reach us: written into Via and Contact. */
  advertised?: { host: string; port?: number };
  tls?: {
    /** TLS listener certificate and key (PEM files); without them a "tls" listen entry only dials out. */
    certFile?: string;
    keyFile?: string;
    /** TLS client: trust this PEM bundle instead of the system store. */
    caFile?: string;
    /** TLS client: verify server certificates (default true). */
    verify?: boolean;
  };
  /** Called first for every inbound message; false drops it silently before parsing. */
  acceptSource?: (source: Endpoint) => boolean;
  timers?: Partial<TimerConfig>;
  /** TCP/TLS connections idle this long are closed (default 5 min). */
  idleTimeoutMs?: number;
  /** Methods the layers above handle (Allow header; others get 405 or 501). */
  allow?: string[];
  /** Option tags we support (Supported header; Require of anything else → 420). */
  supported?: string[];
  /** Body types we accept (Accept header; other Content-Types → 415). */
  accept?: string[];
  /** Request-URI schemes we serve (others → 416). */
  uriSchemes?: string[];
  /** Value of the User-Agent / Server header. */
  userAgent?: string;
  /** Largest SIP message accepted, in bytes (default 65536); larger requests get 413 (RFC 3261 §21.4.11). */
  maxMessageSize?: number;
  /** Open TCP/TLS connections per transport beyond which inbound ones are refused (default 4096). */
  maxConnections?: number;
}

export type RequestHandler = (req: SipRequest, tx: ServerTransaction, ctx: InboundContext) => void;

/** A refusal the stack sends statelessly, before any transaction or 100 Trying exists. */
export interface Refusal {
  status: number;
  reason: string;
}
/** Decides, right after the parse, whether an out-of-dialog request is refused (e.g. unknown source). */
export type RequestScreen = (req: SipRequest, ctx: InboundContext) => Refusal | undefined;

/** Per-request options for sendRequest (TLS certificate checks per trunk). */
export type RequestSendOptions = Pick<SendOptions, "serverName" | "verify">;

// RFC 3261 §27.4 methods plus the extensions in common use; anything else is "unknown" (501).
const KNOWN_METHODS = new Set([
  "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY", "PUBLISH",
  "INFO", "REFER", "MESSAGE", "UPDATE",
]);

// Methods whose final responses carry a session description: only these are judged by Accept (406).
const ANSWERS_WITH_SDP = new Set(["INVITE", "UPDATE"]);

export class SipStack {
  readonly transactions: TransactionLayer;
  /** Established dialogs by id (Call-ID, local tag, remote tag); in-dialog requests route here. */
  readonly dialogs = new Map<string, Dialog>();
  private readonly transports: Transport[] = [];
  private handler: RequestHandler | undefined;
  private screen: RequestScreen | undefined;
  private readonly allow: string[];
  private readonly supported: string[];
  private readonly accept: string[];
  private readonly uriSchemes: Set<string>;
  private readonly userAgent: string;
  private readonly parseLimits: { maxSize?: number };

  constructor(private readonly opts: SipStackOptions) {
    this.transactions = new TransactionLayer(opts.timers);
    this.allow = opts.allow ?? ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO"];
    this.supported = (opts.supported ?? []).map((t) => t.toLowerCase());
    this.accept = (opts.accept ?? ["application/sdp"]).map((t) => t.toLowerCase());
    this.uriSchemes = new Set((opts.uriSchemes ?? ["sip", "sips"]).map((s) => s.toLowerCase()));
    this.userAgent = opts.userAgent ?? "Trunkline";
    this.parseLimits = opts.maxMessageSize !== undefined ? { maxSize: opts.maxMessageSize } : {};
  }

  async start(): Promise<void> {
    try {
      for (const spec of this.opts.listen) this.transports.push(await this.listen(spec));
      // Trunks over TLS work without a TLS listener: requests and their responses share the
      // connection we open (RFC 3261 §18.2.2); only peers dialling us need a listener.
      if (!this.transports.some((t) => t.name === "tls")) {
        this.transports.push(await this.listen({ transport: "tls", host: "0.0.0.0", port: 0 }, { clientOnly: true }));
      }
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  private async listen(spec: ListenSpec, o: { clientOnly?: boolean } = {}): Promise<Transport> {
    const host = stripBrackets(spec.host);
    // Each transport's handler knows its transport, so responses leave where the request came in.
    let transport: Transport | undefined;
    const onMessage = (data: Uint8Array, ctx: InboundContext, framing: "datagram" | "stream") => {
      if (transport) this.receive(transport, data, ctx, framing);
    };
    if (spec.transport === "udp") transport = await UdpTransport.listen(host, spec.port, onMessage);
    else
      transport = await StreamTransport.listen(spec.transport, host, spec.port, onMessage, {
        ...(this.opts.tls ? { tls: o.clientOnly ? clientTls(this.opts.tls) : this.opts.tls } : {}),
        ...(this.opts.idleTimeoutMs !== undefined ? { idleTimeoutMs: this.opts.idleTimeoutMs } : {}),
        ...(this.opts.acceptSource ? { acceptSource: this.opts.acceptSource } : {}),
        ...(this.opts.maxMessageSize !== undefined ? { maxMessageSize: this.opts.maxMessageSize } : {}),
        ...(this.opts.maxConnections !== undefined ? { maxConnections: this.opts.maxConnections } : {}),
      });
    return transport;
  }

  async stop(): Promise<void> {
    for (const dialog of [...this.dialogs.values()]) dialog.terminate();
    this.transactions.clear();
    const closing = this.transports.splice(0).map((t) => t.close());
    await Promise.all(closing);
  }

  /** Where we listen (a TLS transport without certificate only dials out and is not listed). */
  get boundEndpoints(): Endpoint[] {
    return this.transports.filter((t) => t.local.port !== 0).map((t) => t.local);
  }

  /**
   * Refusals answered statelessly (§8.2.7) before onRequest: a flood of refused requests costs a
   * parse and one send each, and leaves no transaction behind.
   */
  screenRequests(screen: RequestScreen): void {
    this.screen = screen;
  }

  /** Out-of-dialog requests that passed the stateless checks; the handler must respond on tx. */
  onRequest(handler: RequestHandler): void {
    this.handler = handler;
  }

  // -------------------------------------------------------------------------------------------
  // Sending

  /**
   * Starts a client transaction. A request without Via gets ours (advertised sent-by, fresh
   * branch, rport); the Via already present is kept (CANCEL, retries built by the caller).
   */
  sendRequest(req: SipRequest, dest: Endpoint, opts: RequestSendOptions = {}): ClientTransaction {
    if (req.vias.length === 0) req.addHeader("Via", formatVia(this.viaFor(dest.transport)), { prepend: true });
    if (!req.hasHeader("User-Agent")) req.addHeader("User-Agent", this.userAgent);
    return this.transactions.startClient(req, this.wireTo(dest, opts));
  }

  /** Sends outside any transaction: the ACK for a 2xx, 2xx retransmissions, stateless responses. */
  async sendStateless(msg: SipRequest | SipResponse, dest: Endpoint, opts: SendOptions = {}): Promise<void> {
    await this.transportFor(dest).send(serializeMessage(msg), dest, opts);
  }

  /** The path to a destination for transactions and dialogs; a missing transport fails the send (§17.1.4). */
  wireTo(dest: Endpoint, opts: SendOptions = {}): Wire {
    let transport: Transport;
    try {
      transport = this.transportFor(dest);
    } catch (error) {
      return { reliable: true, send: () => Promise.reject(error) };
    }
    return { reliable: transport.reliable, send: (data) => transport.send(data, dest, opts) };
  }

  private transportFor(dest: Endpoint): Transport {
    const v6 = isIpv6(stripBrackets(dest.address));
    const sameName = this.transports.filter((t) => t.name === dest.transport);
    const sameFamily = sameName.find((t) => isIpv6(t.local.address) === v6 || isWildcard6(t.local.address));
    const transport = sameFamily ?? sameName[0];
    if (!transport) throw new Error(`no ${dest.transport} transport is listening`);
    return transport;
  }

  /** Our Via for a new request: advertised sent-by, fresh z9hG4bK branch, RFC 3581 rport. */
  viaFor(transport: TransportName): Via {
    const { host, port } = this.sentBy(transport);
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
    const { host, port } = this.sentBy(transport);
    const params = new Map<string, string | null>();
    if (transport !== "udp") params.set("transport", transport);
    const uri: SipUri = { scheme: "sip", host, port, params, headers: new Map() };
    if (user) uri.user = user;
    return { uri, params: new Map() };
  }

  private sentBy(transport: TransportName): { host: string; port: number } {
    const t = this.transports.find((x) => x.name === transport) ?? this.transports[0];
    const bound = t?.local;
    const host = this.opts.advertised?.host ?? (bound ? usableHost(bound.address) : "127.0.0.1");
    // Port 0: a TLS transport without certificate does not listen; its Via names the default port.
    const port = this.opts.advertised?.port ?? (bound?.port || defaultPort(transport));
    return { host: stripBrackets(host), port };
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
    const from: NameAddr = { ...o.from, params: new Map(o.from.params) };
    if (!from.params.get("tag")) from.params.set("tag", newTag());
    return createRequest({
      method: o.method,
      uri: o.uri,
      from,
      to: o.to,
      callId: o.callId ?? newCallId(this.sentBy(o.transport).host),
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

  // -------------------------------------------------------------------------------------------
  // Receiving

  private receive(transport: Transport, data: Uint8Array, ctx: InboundContext, framing: "datagram" | "stream"): void {
    // Cheap source filter before any parsing (scanner floods).
    if (this.opts.acceptSource && !this.opts.acceptSource(ctx.source)) return;
    const parsed = parseMessage(data, framing, this.parseLimits);
    if (!parsed.ok) {
      const { status, reason, request } = parsed.error;
      if (request && request.method !== "ACK" && request.vias.length > 0) {
        // RFC 3261 §8.2 / RFC 4475: answer a malformed request whose reply can be built; the
        // reply goes straight back to the source since the Via itself may be the defect.
        const res = createResponse(request, status, reason);
        transport.send(serializeMessage(res), ctx.source, withConnection(ctx)).catch((error: unknown) => {
          log.debug("could not answer a malformed request", { error, source: ctx.source });
        });
      } else {
        log.debug("dropped unparseable message", { reason, source: ctx.source });
      }
      return;
    }
    const msg = parsed.message;
    if ("status" in msg) {
      // §18.1.2: responses go to their client transaction; strays are dropped.
      if (!this.transactions.receiveResponse(msg)) log.debug("stray response", { status: msg.status, callId: msg.callId });
      return;
    }
    this.receiveRequest(transport, msg, ctx);
  }

  private receiveRequest(transport: Transport, req: SipRequest, ctx: InboundContext): void {
    stampReceived(req, ctx);
    const wire = this.responseWire(transport, req, ctx);

    if (req.method === "ACK") {
      const tx = this.transactions.matchServer(req);
      if (tx) return tx.receiveRetransmission(req);
      const accepted = this.transactions.matchAck2xx(req);
      if (accepted) return accepted.receiveAck2xx(req);
      const dialog = this.dialogFor(req);
      if (dialog) return dialog.receiveAck(req);
      log.debug("ACK matches nothing", { callId: req.callId });
      return;
    }

    const existing = this.transactions.matchServer(req);
    if (existing) return existing.receiveRetransmission(req);

    if (req.method === "CANCEL") {
      const target = this.transactions.matchCancelTarget(req);
      if (!target) return this.respondStateless(req, wire, 481);
      // §9.2: 200 for the CANCEL itself, then 487 for the INVITE if it was still pending.
      this.transactions.createServer(req, wire).respond(200, "OK", { toTag: target.toTag });
      target.receiveCancel(req);
      return;
    }

    // §8.2.7: what the stack answers by itself it answers statelessly, so a flood of requests
    // (scanners, unauthenticated junk) leaves no transaction state behind.
    if (this.transactions.isMerged(req)) return this.respondStateless(req, wire, 482, "Loop Detected");
    const rejection = this.statelessRejection(req);
    if (rejection) return this.respondStateless(req, wire, rejection.status, rejection.reason, rejection.headers);
    const inDialog = Boolean(req.to.params.get("tag"));
    const dialog = inDialog ? this.dialogFor(req) : undefined;
    // §12.2.2: a request for a dialog we do not know.
    if (inDialog && !dialog) return this.respondStateless(req, wire, 481);
    // §11.2: capabilities.
    if (!inDialog && req.method === "OPTIONS") return this.respondStateless(req, wire, 200, "OK", this.capabilityHeaders());
    const refusal = inDialog ? undefined : this.screen?.(req, ctx);
    if (refusal) return this.respondStateless(req, wire, refusal.status, refusal.reason);

    const tx = this.transactions.createServer(req, wire);
    if (req.method === "INVITE") tx.respond(100, "Trying");
    if (dialog) return dialog.receiveRequest(req, tx, ctx);
    if (!this.handler) {
      tx.respond(503, "Service Unavailable");
      return;
    }
    this.handler(req, tx, ctx);
  }

  /**
   * RFC 3261 §8.2.7 stateless UAS: no transaction, and the same request always gets the same
   * response, its To tag derived from the request rather than drawn at random.
   */
  private respondStateless(req: SipRequest, wire: Wire, status: number, reason?: string, headers: [string, string][] = []): void {
    const toTag = req.to.params.get("tag") ? undefined : statelessTag(req);
    const res = createResponse(req, status, reason, { headers, ...(toTag ? { toTag } : {}) });
    wire.send(serializeMessage(res)).catch((error: unknown) => {
      log.debug("stateless response not sent", { error, status });
    });
  }

  private dialogFor(req: SipRequest): Dialog | undefined {
    // At the UAS the local tag is the To tag, the remote tag the From tag (§12.2.2).
    return this.dialogs.get(dialogId(req.callId, req.to.params.get("tag") ?? "", req.from.params.get("tag") ?? ""));
  }

  private capabilityHeaders(): [string, string][] {
    const headers: [string, string][] = [
      ["Allow", this.allow.join(", ")],
      ["Accept", this.accept.join(", ")],
      ["Accept-Encoding", "identity"],
      ["Accept-Language", "en"],
      ["Server", this.userAgent],
    ];
    if (this.supported.length > 0) headers.push(["Supported", this.supported.join(", ")]);
    return headers;
  }

  /** RFC 3261 §8.2.1–§8.2.3: the checks a UAS applies before the request reaches the core. */
  private statelessRejection(req: SipRequest): { status: number; reason: string; headers: [string, string][] } | undefined {
    const allowHeader: [string, string] = ["Allow", this.allow.join(", ")];
    const checkHeaders = req.checkHeaders();
    if (checkHeaders) return { status: 400, reason: checkHeaders, headers: [] };
    if (req.cseq.method !== req.method && KNOWN_METHODS.has(req.method)) {
      return { status: 400, reason: "CSeq method does not match the request method", headers: [] };
    }
    // §8.2.1
    if (!this.allow.includes(req.method)) {
      return KNOWN_METHODS.has(req.method)
        ? { status: 405, reason: "Method Not Allowed", headers: [allowHeader] }
        : { status: 501, reason: "Not Implemented", headers: [allowHeader] };
    }
    // §8.2.2.1
    if (!this.uriSchemes.has(req.uri.scheme.toLowerCase())) {
      return { status: 416, reason: "Unsupported URI Scheme", headers: [] };
    }
    // §8.2.2.3 (ACK and CANCEL are handled before this point)
    const unsupported = req.require.filter((tag) => !this.supported.includes(tag.toLowerCase()));
    if (unsupported.length > 0) {
      return { status: 420, reason: "Bad Extension", headers: [["Unsupported", unsupported.join(", ")]] };
    }
    // §8.2.3
    const contentType = req.contentType;
    if (req.body.length > 0 && contentType !== undefined && !this.accept.includes(contentType)) {
      return { status: 415, reason: "Unsupported Media Type", headers: [["Accept", this.accept.join(", ")]] };
    }
    const encodings = req.getHeaders("Content-Encoding").filter((e) => e.trim().toLowerCase() !== "identity");
    if (encodings.length > 0) {
      return { status: 415, reason: "Unsupported Media Type", headers: [["Accept-Encoding", "identity"]] };
    }
    // RFC 3261 §21.4.7 / RFC 4475 §3.3.15: we can only answer with SDP.
    if (ANSWERS_WITH_SDP.has(req.method) && req.hasHeader("Accept") && !acceptsSdp(req.getHeaders("Accept"))) {
      return { status: 406, reason: "Not Acceptable", headers: [["Accept", "application/sdp"]] };
    }
    return undefined;
  }

  /** RFC 3261 §18.2.2 (with RFC 3581 rport): where the responses of this request go. */
  private responseWire(transport: Transport, req: SipRequest, ctx: InboundContext): Wire {
    const via = req.vias[0];
    const rport = via?.params.get("rport");
    const sentByPort = via?.port ?? defaultPort(ctx.source.transport);
    // Streams answer on the request's connection; should it be gone, a new connection goes to
    // received + sent-by port (§18.2.2). Datagrams go to received + rport (RFC 3581 §4).
    const dest: Endpoint = {
      transport: ctx.source.transport,
      address: via?.params.get("received") ?? ctx.source.address,
      port: !transport.reliable && rport ? Number(rport) : sentByPort,
    };
    const sendOpts = withConnection(ctx);
    return { reliable: transport.reliable, send: (data) => transport.send(data, dest, sendOpts) };
  }
}

function statelessTag(req: SipRequest): string {
  const key = `${req.callId}|${req.from.params.get("tag") ?? ""}|${req.vias[0]?.params.get("branch") ?? ""}|${req.cseq.seq}`;
  return Bun.hash(key).toString(36);
}

export function dialogId(callId: string, localTag: string, remoteTag: string): string {
  return `${callId}|${localTag}|${remoteTag}`;
}

function withConnection(ctx: InboundContext): SendOptions {
  return ctx.connectionId ? { connectionId: ctx.connectionId } : {};
}

/**
 * RFC 3261 §18.2.1: `received` when the sent-by host differs from the source address;
 * RFC 3581 §4: fill an empty `rport` with the source port (and always add `received` then).
 */
function stampReceived(req: SipRequest, ctx: InboundContext): void {
  const vias = req.vias;
  const top = vias[0];
  if (!top) return;
  const wantsRport = top.params.has("rport") && !top.params.get("rport");
  const differs = stripBrackets(top.host).toLowerCase() !== ctx.source.address.toLowerCase();
  if (!wantsRport && !differs) return;
  const params = new Map(top.params);
  params.set("received", ctx.source.address);
  if (wantsRport) params.set("rport", String(ctx.source.port));
  const values = req.getHeaders("Via");
  values[0] = formatVia({ ...top, params });
  req.setHeader("Via", values);
}

function acceptsSdp(values: string[]): boolean {
  return values.some((v) => {
    const type = (v.split(";")[0] ?? "").trim().toLowerCase();
    return type === "application/sdp" || type === "application/*" || type === "*/*";
  });
}

/** TLS options without the listener's certificate: a transport that only dials out. */
function clientTls(tls: NonNullable<SipStackOptions["tls"]>): NonNullable<SipStackOptions["tls"]> {
  const { certFile: _certFile, keyFile: _keyFile, ...client } = tls;
  return client;
}

function isWildcard6(address: string): boolean {
  return address === "::";
}

/** A sent-by host for Via/Contact when no advertised address is configured. */
function usableHost(bound: string): string {
  if (bound !== "0.0.0.0" && bound !== "::") return bound;
  for (const list of Object.values(networkInterfaces())) {
    for (const ni of list ?? []) {
      if (!ni.internal && (ni.family === "IPv4") === (bound === "0.0.0.0")) return ni.address;
    }
  }
  return bound === "::" ? "::1" : "127.0.0.1";
}
