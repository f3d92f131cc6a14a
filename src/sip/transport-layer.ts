// The transport layer (RFC 3261 §18) as one multiplexer over the UDP, TCP and TLS transports: binds
// the listeners, picks the transport for a destination, and takes every inbound message through the
// per-source screen (source-guard.ts) before parsing it; what passes goes up parsed, requests to
// the user-agent core, responses to the transaction layer. Bytes only ever leave through here.
import { networkInterfaces } from "node:os";
import { createLogger } from "../log.ts";
import { isResponseBytes, parseMessage, type ParseError, type SipRequest, type SipResponse, type TransportName } from "./message.ts";
import { parseRelayedSource, RELAYED_SOURCE_HEADER } from "./relayed-source.ts";
import type { SourceGuard } from "./source-guard.ts";
import { type MessageTaps, type TappedMessage, tapTime } from "./tap.ts";
import type { Wire } from "./transaction.ts";
import {
  defaultPort,
  type Endpoint,
  type InboundContext,
  isIpv6,
  type SendOptions,
  stripBrackets,
  type Transport,
} from "./transport.ts";
import { StreamTransport, type StreamCounters, type StreamTransportOptions } from "./transport-stream.ts";
import { UdpTransport } from "./transport-udp.ts";

const log = createLogger("sip.transport");

export interface ListenSpec {
  transport: TransportName;
  /** Bind address: "0.0.0.0", "::", or a specific interface address. */
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
}

export interface TlsOptions {
  /** TLS listener certificate and key (PEM files); without them a "tls" listen entry only dials out. */
  certFile?: string;
  keyFile?: string;
  /** TLS client: trust this PEM bundle instead of the system store. */
  caFile?: string;
  /** TLS client: verify server certificates (default true). */
  verify?: boolean;
}

/** The limits of stream connections (transport-stream.ts), shared by the TCP and TLS transports. */
export type StreamLimits = Pick<
  StreamTransportOptions,
  "idleTimeoutMs" | "maxConnections" | "maxConnectionsPerAddress" | "handshakeTimeoutMs" | "maxWriteQueueBytes"
>;

export interface TransportLayerOptions {
  listen: ListenSpec[];
  /** The address (and port) peers should use to reach us: written into Via and Contact. */
  advertised?: { host: string; port?: number };
  tls?: TlsOptions;
  /** Largest SIP message accepted, in bytes. */
  maxMessageSize?: number;
  stream?: StreamLimits;
}

/** Where admitted, parsed messages go. `stranger`: a request from a source that belongs to no trunk, admitted to be refused. */
export interface InboundSink {
  request(req: SipRequest, ctx: InboundContext, arrival: Transport, stranger: boolean): void;
  response(res: SipResponse): void;
  /** A request that failed to parse but carries enough to be answered (400, 413, 505). */
  malformed(error: ParseError & { request: SipRequest }, ctx: InboundContext, arrival: Transport, stranger: boolean): void;
}

export class TransportLayer {
  private readonly transports: Transport[] = [];
  private readonly parseLimits: { maxSize?: number };

  constructor(
    private readonly opts: TransportLayerOptions,
    private readonly guard: SourceGuard,
    private readonly sink: InboundSink,
    private readonly taps: MessageTaps,
  ) {
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
    else {
      const tls = this.opts.tls;
      transport = await StreamTransport.listen(spec.transport, host, spec.port, onMessage, {
        ...this.opts.stream,
        ...(tls ? { tls: o.clientOnly ? clientTls(tls) : tls } : {}),
        ...(this.opts.maxMessageSize !== undefined ? { maxMessageSize: this.opts.maxMessageSize } : {}),
        acceptSource: (source) => this.guard.admitConnection(source.address),
      });
    }
    return transport;
  }

  async stop(): Promise<void> {
    const closing = this.transports.splice(0).map((t) => t.close());
    await Promise.all(closing);
  }

  /** Where we listen (a TLS transport without certificate only dials out and is not listed). */
  get boundEndpoints(): Endpoint[] {
    return this.transports.filter((t) => t.local.port !== 0).map((t) => t.local);
  }

  /** Connections refused or closed by a limit, summed over the stream transports. */
  get streamCounters(): StreamCounters {
    const sum: StreamCounters = { refusedBySource: 0, refusedPerAddress: 0, refusedAtLimit: 0, closedSlow: 0, closedWriteQueue: 0 };
    for (const t of this.streams()) for (const key of Object.keys(sum) as (keyof StreamCounters)[]) sum[key] += t.counters[key];
    return sum;
  }

  /** Bytes waiting in the write queues of every stream connection. */
  get queuedBytes(): number {
    return this.streams().reduce((n, t) => n + t.queuedBytes, 0);
  }

  /** The longest write queue any stream connection has had. */
  get peakQueuedBytes(): number {
    return this.streams().reduce((n, t) => Math.max(n, t.peakQueuedBytes), 0);
  }

  private streams(): StreamTransport[] {
    return this.transports.filter((t): t is StreamTransport => t instanceof StreamTransport);
  }

  /** The path to a destination for transactions and dialogs; a missing transport fails the send (§17.1.4). */
  wireTo(dest: Endpoint, opts: SendOptions = {}): Wire {
    let transport: Transport;
    try {
      transport = this.transportFor(dest);
    } catch (error) {
      return { reliable: true, send: () => Promise.reject(error) };
    }
    return this.wireThrough(transport, dest, opts);
  }

  /** The path to `dest` through a given transport: responses leave by the one their request came in on. */
  wireThrough(transport: Transport, dest: Endpoint, opts: SendOptions = {}): Wire {
    return {
      reliable: transport.reliable,
      send: (data, callId) => {
        if (this.taps.current) this.tap("sent", transport, data, dest, callId);
        return transport.send(data, dest, opts);
      },
    };
  }

  async send(data: Uint8Array, dest: Endpoint, opts: SendOptions = {}, callId?: string): Promise<void> {
    const transport = this.transportFor(dest);
    if (this.taps.current) this.tap("sent", transport, data, dest, callId);
    await transport.send(data, dest, opts);
  }

  /** Hands a message to the tap's listeners; a failing listener never fails the message. */
  private tap(direction: "sent" | "received", transport: Transport, data: Uint8Array, peer: Endpoint, callId: string | undefined): void {
    const listener = this.taps.current;
    if (!listener) return;
    const local = transport.local;
    const us = { address: local.address === "0.0.0.0" || local.address === "::" ? this.sentBy(transport.name).host : local.address, port: local.port };
    const them = { address: peer.address, port: peer.port };
    const message: TappedMessage = {
      direction,
      data,
      transport: transport.name,
      source: direction === "sent" ? us : them,
      destination: direction === "sent" ? them : us,
      time: tapTime(),
    };
    if (callId !== undefined) message.callId = callId;
    try {
      listener(message);
    } catch (error) {
      log.error("sip message tap failed", { error });
    }
  }

  private transportFor(dest: Endpoint): Transport {
    const v6 = isIpv6(stripBrackets(dest.address));
    const sameName = this.transports.filter((t) => t.name === dest.transport);
    const sameFamily = sameName.find((t) => isIpv6(t.local.address) === v6 || t.local.address === "::");
    const transport = sameFamily ?? sameName[0];
    if (!transport) throw new Error(`no ${dest.transport} transport is listening`);
    return transport;
  }

  /** Our sent-by (Via) and Contact host and port for a transport: the advertised address, else the bound one. */
  sentBy(transport: TransportName): { host: string; port: number } {
    const t = this.transports.find((x) => x.name === transport) ?? this.transports[0];
    const bound = t?.local;
    const host = this.opts.advertised?.host ?? (bound ? usableHost(bound.address) : "127.0.0.1");
    // Port 0: a TLS transport without certificate does not listen; its Via names the default port.
    const port = this.opts.advertised?.port ?? (bound?.port || defaultPort(transport));
    return { host: stripBrackets(host), port };
  }

  private receive(arrival: Transport, data: Uint8Array, ctx: InboundContext, framing: "datagram" | "stream"): void {
    // Decided on the source address and the first bytes, before any parsing: a stranger's request
    // under "drop" and anything over its source's budget cost a lookup and nothing else.
    const admission = this.guard.admit(ctx.source.address, !isResponseBytes(data), framing === "stream");
    if (admission === "drop") return;
    let stranger = admission === "reject";
    // A stranger's request (answered 403 under sip.strangers: reject) is no one's call: neither
    // traced nor mirrored to HEP, so an attacker's packets cost no copy.
    const parsed = parseMessage(data, framing, this.parseLimits);
    // Tapped once parsed, with its Call-ID, so listeners need not search the bytes for it; before
    // anything is done with it, so a trace keeps the order of the wire.
    if (this.taps.current && !stranger) this.tap("received", arrival, data, ctx.source, parsed.ok ? parsed.message.callId : undefined);
    if (!parsed.ok) {
      const { error } = parsed;
      if (error.request && error.request.method !== "ACK" && error.request.vias.length > 0) {
        this.sink.malformed({ ...error, request: error.request }, ctx, arrival, stranger);
      } else {
        log.debug("dropped unparseable message", { reason: error.reason, source: ctx.source });
      }
      return;
    }
    const msg = parsed.message;
    if ("status" in msg) return this.sink.response(msg);
    let inbound = ctx;
    if (this.guard.isFront(ctx.source.address)) {
      // A front's request names its original sender, who is screened as if it had come directly;
      // without the header it is the front's own request (its OPTIONS probes).
      const origin = parseRelayedSource(msg.getHeader(RELAYED_SOURCE_HEADER));
      if (origin) {
        const relayed = this.guard.admitRelayed(origin.address);
        if (relayed === "drop") return;
        stranger = relayed === "reject";
        inbound = { ...ctx, origin };
      }
    } else if (msg.hasHeader(RELAYED_SOURCE_HEADER)) {
      // Anyone else's claim about where a request comes from is removed unread.
      msg.removeHeader(RELAYED_SOURCE_HEADER);
    }
    this.sink.request(msg, inbound, arrival, stranger);
  }
}

/** TLS options without the listener's certificate: a transport that only dials out. */
function clientTls(tls: TlsOptions): TlsOptions {
  const { certFile: _certFile, keyFile: _keyFile, ...client } = tls;
  return client;
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
