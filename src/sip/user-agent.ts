// The user-agent core in front of the layer above: where each inbound request goes, and what the
// stack answers by itself. In order: where responses go (RFC 3261 §18.2.2 with RFC 3581), ACK and
// retransmission matching (§17.2.3), CANCEL (§9.2), strangers (403 under `strangers: reject`), the
// stateless UAS rules (§8.2), in-dialog dispatch (§12.2.2), OPTIONS (§11.2), and finally a server
// transaction for the handler above.
//
// What the stack answers by itself it answers statelessly (§8.2.7): no transaction, and the same
// request always gets the same response, so a flood of requests leaves no state behind.
import { createLogger } from "../log.ts";
import type { DialogTable } from "./dialogs.ts";
import type { OverloadGuard } from "./overload.ts";
import { createResponse, formatVia, type ParseError, serializeMessage, type SipRequest } from "./message.ts";
import type { ServerTransaction, TransactionLayer, Wire } from "./transaction.ts";
import { defaultPort, type Endpoint, type InboundContext, type SendOptions, stripBrackets, type Transport } from "./transport.ts";
import type { TransportLayer } from "./transport-layer.ts";

const log = createLogger("sip.ua");

export type RequestHandler = (req: SipRequest, tx: ServerTransaction, ctx: InboundContext) => void;

export interface UserAgentRules {
  /** Methods the layers above handle (Allow header; others get 405 or 501). */
  allow: string[];
  /** Option tags we support (Supported header; Require of anything else → 420). */
  supported: string[];
  /** Body types we accept (Accept header; other Content-Types → 415). */
  accept: string[];
  /** Request-URI schemes we serve (others → 416). */
  uriSchemes: string[];
  /** Value of the Server header of OPTIONS answers. */
  userAgent: string;
}

// RFC 3261 §27.4 methods plus the extensions in common use; anything else is "unknown" (501).
const KNOWN_METHODS = new Set([
  "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY", "PUBLISH",
  "INFO", "REFER", "MESSAGE", "UPDATE",
]);

// Methods whose final responses carry a session description: only these are judged by Accept (406).
const ANSWERS_WITH_SDP = new Set(["INVITE", "UPDATE"]);

export class UserAgentCore {
  /** Requests answered by the stack because of a limit (counts since start). */
  readonly counters = { transactionTableFull: 0 };
  private handler: RequestHandler | undefined;
  private draining = false;
  private readonly rules: UserAgentRules;
  private readonly supported: string[];
  private readonly accept: string[];
  private readonly uriSchemes: Set<string>;

  constructor(
    rules: UserAgentRules,
    private readonly transports: TransportLayer,
    private readonly transactions: TransactionLayer,
    private readonly dialogs: DialogTable,
    private readonly overload: OverloadGuard,
  ) {
    this.rules = rules;
    this.supported = rules.supported.map((t) => t.toLowerCase());
    this.accept = rules.accept.map((t) => t.toLowerCase());
    this.uriSchemes = new Set(rules.uriSchemes.map((s) => s.toLowerCase()));
  }

  onRequest(handler: RequestHandler): void {
    this.handler = handler;
  }

  /** Out-of-dialog OPTIONS and INVITEs get 503 from now on (shutdown). */
  drain(): void {
    this.draining = true;
  }

  /** A request that failed to parse but can be answered: its reason names the defect (RFC 4475). */
  receiveMalformed(error: ParseError & { request: SipRequest }, ctx: InboundContext, arrival: Transport, stranger: boolean): void {
    // Straight back to the source: the Via itself may be the defect.
    const wire = this.transports.wireThrough(arrival, ctx.source, ctx.connectionId ? { connectionId: ctx.connectionId } : {});
    const res = stranger ? createResponse(error.request, 403, "Forbidden") : createResponse(error.request, error.status, error.reason);
    wire.send(serializeMessage(res), res.callId).catch((sendError: unknown) => {
      log.debug("could not answer a malformed request", { error: sendError, source: ctx.source });
    });
  }

  receiveRequest(req: SipRequest, ctx: InboundContext, arrival: Transport, stranger: boolean): void {
    stampReceived(req, ctx);
    const wire = this.responseWire(arrival, req, ctx);

    // A stranger's request reaches no transaction or dialog: 403 (never to an ACK, §17.1.1.3).
    if (stranger) {
      if (req.method !== "ACK") this.respondStateless(req, wire, 403, "Forbidden");
      return;
    }

    if (req.method === "ACK") {
      const tx = this.transactions.matchServer(req);
      if (tx) return tx.receiveRetransmission(req, wire);
      const accepted = this.transactions.matchAck2xx(req);
      if (accepted) return accepted.receiveAck2xx(req);
      const dialog = this.dialogs.match(req);
      if (dialog) return dialog.receiveAck(req);
      log.debug("ACK matches nothing", { sipCallId: req.callId });
      return;
    }

    const existing = this.transactions.matchServer(req);
    if (existing) return existing.receiveRetransmission(req, wire);

    if (req.method === "CANCEL") {
      const target = this.transactions.matchCancelTarget(req);
      if (!target) return this.respondStateless(req, wire, 481);
      if (this.tableFull(req, wire)) return;
      // §9.2: 200 for the CANCEL itself, then 487 for the INVITE if it was still pending.
      this.transactions.createServer(req, wire).respond(200, "OK", { toTag: target.toTag });
      target.receiveCancel(req);
      return;
    }

    if (this.transactions.isMerged(req)) return this.respondStateless(req, wire, 482, "Loop Detected");
    const rejection = this.statelessRejection(req);
    if (rejection) return this.respondStateless(req, wire, rejection.status, rejection.reason, rejection.headers);
    const inDialog = Boolean(req.to.params.get("tag"));
    const dialog = inDialog ? this.dialogs.match(req) : undefined;
    // §12.2.2: a request for a dialog we do not know.
    if (inDialog && !dialog) return this.respondStateless(req, wire, 481);
    // §21.5.4: a draining node is unavailable to new work; the front's OPTIONS probe reads that.
    if (!inDialog && this.draining && (req.method === "OPTIONS" || req.method === "INVITE")) {
      return this.respondStateless(req, wire, 503, "Draining", [["Retry-After", "30"]]);
    }
    // §21.5.4: a node behind on new calls refuses more before any state exists (src/sip/overload.ts).
    if (!inDialog && req.method === "INVITE" && this.overload.shouldShed(this.transactions.invitesAwaitingTu)) {
      return this.respondStateless(req, wire, 503, "Service Unavailable", [["Retry-After", this.overload.retryAfter]]);
    }
    // §11.2: capabilities.
    if (!inDialog && req.method === "OPTIONS") return this.respondStateless(req, wire, 200, "OK", this.capabilityHeaders());
    if (this.tableFull(req, wire)) return;

    const tx = this.transactions.createServer(req, wire);
    if (req.method === "INVITE") tx.tryUnlessAnswered();
    if (dialog) return dialog.receiveRequest(req, tx, ctx);
    if (!this.handler) {
      tx.respond(503, "Service Unavailable");
      return;
    }
    this.handler(req, tx, ctx);
  }

  /**
   * Every server transaction is keyed by what a peer sent, so their number is bounded: beyond it,
   * 503 with Retry-After (RFC 3261 §21.5.4), statelessly.
   */
  private tableFull(req: SipRequest, wire: Wire): boolean {
    if (this.transactions.hasServerRoom()) return false;
    this.counters.transactionTableFull++;
    this.respondStateless(req, wire, 503, "Service Unavailable", [["Retry-After", "5"]]);
    return true;
  }

  /**
   * RFC 3261 §8.2.7 stateless UAS: no transaction, and the same request always gets the same
   * response, its To tag derived from the request rather than drawn at random.
   */
  private respondStateless(req: SipRequest, wire: Wire, status: number, reason?: string, headers: [string, string][] = []): void {
    const toTag = req.to.params.get("tag") ? undefined : statelessTag(req);
    const res = createResponse(req, status, reason, { headers, ...(toTag ? { toTag } : {}) });
    wire.send(serializeMessage(res), res.callId).catch((error: unknown) => {
      log.debug("stateless response not sent", { error, status });
    });
  }

  private capabilityHeaders(): [string, string][] {
    const headers: [string, string][] = [
      ["Allow", this.rules.allow.join(", ")],
      ["Accept", this.accept.join(", ")],
      ["Accept-Encoding", "identity"],
      ["Accept-Language", "en"],
      ["Server", this.rules.userAgent],
    ];
    if (this.supported.length > 0) headers.push(["Supported", this.supported.join(", ")]);
    return headers;
  }

  /**
   * RFC 3261 §8.2.1–§8.2.3: the checks a UAS applies before the request reaches the core. A reason
   * is given only where it names the defect; otherwise the status's own phrase (§21) is sent.
   */
  private statelessRejection(req: SipRequest): { status: number; reason?: string; headers: [string, string][] } | undefined {
    const allow = this.rules.allow;
    const allowHeader: [string, string] = ["Allow", allow.join(", ")];
    const checkHeaders = req.checkHeaders();
    if (checkHeaders) return { status: 400, reason: checkHeaders, headers: [] };
    if (req.cseq.method !== req.method && KNOWN_METHODS.has(req.method)) {
      return { status: 400, reason: "CSeq method does not match the request method", headers: [] };
    }
    // §8.2.1
    if (!allow.includes(req.method)) {
      return KNOWN_METHODS.has(req.method)
        ? { status: 405, headers: [allowHeader] }
        : { status: 501, headers: [allowHeader] };
    }
    // §8.2.2.1
    if (!this.uriSchemes.has(req.uri.scheme.toLowerCase())) {
      return { status: 416, headers: [] };
    }
    // §8.2.2.3 (ACK and CANCEL are handled before this point)
    const unsupported = req.require.filter((tag) => !this.supported.includes(tag.toLowerCase()));
    if (unsupported.length > 0) {
      return { status: 420, headers: [["Unsupported", unsupported.join(", ")]] };
    }
    // §8.2.3
    const contentType = req.contentType;
    if (req.body.length > 0 && contentType !== undefined && !this.accept.includes(contentType)) {
      return { status: 415, headers: [["Accept", this.accept.join(", ")]] };
    }
    const encodings = req.getHeaders("Content-Encoding").filter((e) => e.trim().toLowerCase() !== "identity");
    if (encodings.length > 0) {
      return { status: 415, headers: [["Accept-Encoding", "identity"]] };
    }
    // RFC 3261 §21.4.7 / RFC 4475 §3.3.15: we can only answer with SDP.
    if (ANSWERS_WITH_SDP.has(req.method) && req.hasHeader("Accept") && !acceptsSdp(req.getHeaders("Accept"))) {
      return { status: 406, headers: [["Accept", "application/sdp"]] };
    }
    return undefined;
  }

  /**
   * RFC 3261 §18.2.2 with RFC 3581 §4: where the responses of this request go. The address is
   * always the one the packet came from, never a `received` or sent-by host the request named,
   * so nobody can make us send responses to a third party.
   */
  private responseWire(arrival: Transport, req: SipRequest, ctx: InboundContext): Wire {
    const via = req.vias[0];
    // Streams answer on the request's connection; should it be gone, a new connection goes to the
    // source address and the sent-by port. Datagrams go to the source port when the client asked
    // for rport (stampReceived wrote it in), else to the sent-by port.
    const sentByPort = via?.port ?? defaultPort(ctx.source.transport);
    const dest: Endpoint = {
      transport: ctx.source.transport,
      address: ctx.source.address,
      port: !arrival.reliable && via?.params.has("rport") ? ctx.source.port : sentByPort,
    };
    const sendOpts: SendOptions = ctx.connectionId ? { connectionId: ctx.connectionId } : {};
    return this.transports.wireThrough(arrival, dest, sendOpts);
  }
}

function statelessTag(req: SipRequest): string {
  const key = `${req.callId}|${req.from.params.get("tag") ?? ""}|${req.vias[0]?.params.get("branch") ?? ""}|${req.cseq.seq}`;
  return Bun.hash(key).toString(36);
}

/**
 * RFC 3261 §18.2.1: `received` when the sent-by host differs from the source address; RFC 3581 §4:
 * `rport` (when present) set to the source port, with `received` then always added. A `received`
 * or `rport` value the request arrived with is overwritten by what the socket saw.
 */
function stampReceived(req: SipRequest, ctx: InboundContext): void {
  const top = req.vias[0];
  if (!top) return;
  const hasRport = top.params.has("rport");
  const differs = stripBrackets(top.host).toLowerCase() !== ctx.source.address.toLowerCase();
  if (!hasRport && !differs && !top.params.has("received")) return;
  const params = new Map(top.params);
  params.set("received", ctx.source.address);
  if (hasRport) params.set("rport", String(ctx.source.port));
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
