// Transport layer vocabulary (RFC 3261 §18): where bytes come from and go to.
// Transports deal in bytes only; transport-layer.ts multiplexes them and parses, user-agent.ts
// routes responses.
import type { TransportName } from "./message.ts";

export interface Endpoint {
  transport: TransportName;
  /** IP literal without brackets ("127.0.0.1", "::1") or a host name for outbound TLS (certificate check). */
  address: string;
  port: number;
}

export interface InboundContext {
  /** The peer as seen by the socket (source IP and port): where responses go. */
  source: Endpoint;
  /**
   * The original sender when a trusted front relayed the request (relayed-source.ts): the peer the
   * layers above judge (which trunk it is), while responses still go back through `source`.
   */
  origin?: Endpoint;
  /** Stream transports: the connection the message arrived on, so its response can take the same path. */
  connectionId?: string;
  /** The local listener that received the message. */
  local: Endpoint;
}

/** How one transport hands complete messages upwards; framing is what the parser needs to know. */
export type InboundHandler = (data: Uint8Array, ctx: InboundContext, framing: "datagram" | "stream") => void;

export interface SendOptions {
  /** Stream transports: prefer this connection (RFC 3261 §18.2.2 response on the request's connection). */
  connectionId?: string;
  /** TLS client: host name to check the server certificate against (defaults to the destination address). */
  serverName?: string;
  /** TLS client: verify the server certificate (default true, against the system store or the configured CA). */
  verify?: boolean;
}

export interface Transport {
  readonly name: TransportName;
  /** UDP is unreliable: transactions retransmit (RFC 3261 §17) and wait out timers D, I, J, K. */
  readonly reliable: boolean;
  /** The bound address and port (port resolved when 0 was asked for). */
  readonly local: Endpoint;
  send(data: Uint8Array, dest: Endpoint, opts?: SendOptions): Promise<void>;
  close(): Promise<void>;
}

export class TransportError extends Error {
  constructor(message: string, readonly dest: Endpoint) {
    super(message);
    this.name = "TransportError";
  }
}

export function isIpv6(address: string): boolean {
  return address.includes(":");
}

/** host:port for Via/URIs, with IPv6 references bracketed (RFC 3261 §25.1 IPv6reference). */
export function hostPort(address: string, port?: number): string {
  const host = isIpv6(address) && !address.startsWith("[") ? `[${address}]` : address;
  return port === undefined ? host : `${host}:${port}`;
}

export function stripBrackets(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

export function defaultPort(transport: TransportName): number {
  return transport === "tls" ? 5061 : 5060;
}
