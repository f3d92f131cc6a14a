// SIP over TCP and TLS (RFC 3261 §18): byte streams framed by Content-Length, connection reuse,
// idle timeout and RFC 5626 §3.5.1 CRLF keep-alive.
import type { Socket, TCPSocketListener } from "bun";
import { createLogger } from "../log.ts";
import { nextMessageLength } from "./framing.ts";
import {
  type Endpoint,
  type InboundHandler,
  type SendOptions,
  type Transport,
  TransportError,
  stripBrackets,
} from "./transport.ts";

const log = createLogger("sip.stream");

const CR = 0x0d;
const LF = 0x0a;
const PONG = new Uint8Array([CR, LF]);

export interface StreamTransportOptions {
  tls?: {
    /** Server side: certificate and key files (PEM). */
    certFile?: string;
    keyFile?: string;
    /** Client side: PEM bundle to trust instead of the system store. */
    caFile?: string;
    /** Client side: verify the server certificate (default true). */
    verify?: boolean;
  };
  /** Close a connection after this long without traffic either way. */
  idleTimeoutMs?: number;
  /** Largest message accepted on a stream before the connection is dropped. */
  maxMessageSize?: number;
  connectTimeoutMs?: number;
  /** Open connections (both directions) beyond which inbound ones are refused (default 4096). */
  maxConnections?: number;
  /** Inbound connections from sources this rejects are closed at once. */
  acceptSource?: (source: Endpoint) => boolean;
}

interface ConnectionState {
  conn?: StreamConnection;
  /** Outbound connections: settles the connect attempt (after the TLS handshake for TLS). */
  ready?: (error?: Error) => void;
}

class StreamConnection {
  private pending: Uint8Array | undefined;
  private unsent: Uint8Array[] = [];
  lastActivity = Date.now();
  closed = false;

  constructor(
    readonly id: string,
    readonly socket: Socket<ConnectionState>,
    readonly remote: Endpoint,
    /** What a request must match to reuse this connection (see reuseKey). */
    readonly reuseKey: string,
  ) {}

  write(data: Uint8Array): void {
    this.lastActivity = Date.now();
    if (this.unsent.length > 0) {
      this.unsent.push(data);
      return;
    }
    const written = this.socket.write(data);
    if (written < data.length) this.unsent.push(data.subarray(Math.max(written, 0)));
  }

  drain(): void {
    while (this.unsent.length > 0) {
      const next = this.unsent[0]!;
      const written = this.socket.write(next);
      if (written < next.length) {
        this.unsent[0] = next.subarray(Math.max(written, 0));
        return;
      }
      this.unsent.shift();
    }
  }

  /**
   * Appends received bytes and yields every complete message. A stream that cannot be framed
   * returns the error and the unframed bytes; the connection is then dropped.
   */
  receive(
    chunk: Uint8Array,
    maxSize: number,
    deliver: (message: Uint8Array) => void,
  ): { error: string; unframed: Uint8Array } | undefined {
    this.lastActivity = Date.now();
    let buf = chunk;
    if (this.pending) {
      buf = new Uint8Array(this.pending.length + chunk.length);
      buf.set(this.pending);
      buf.set(chunk, this.pending.length);
      this.pending = undefined;
    }
    let off = 0;
    while (off < buf.length) {
      // RFC 3261 §7.5: CRLFs before a message are ignored; RFC 5626 §3.5.1: a double CRLF is a
      // keep-alive ping answered with a single CRLF pong.
      let crlfs = 0;
      while (off + 1 < buf.length && buf[off] === CR && buf[off + 1] === LF) {
        off += 2;
        crlfs++;
      }
      if (crlfs >= 2) this.write(PONG);
      if (off >= buf.length) break;
      if (buf.length - off === 1 && buf[off] === CR) break;
      const view = buf.subarray(off);
      const length = nextMessageLength(view, maxSize);
      if (length === "incomplete") {
        if (view.length > maxSize) return { error: `message exceeds ${maxSize} bytes`, unframed: view };
        break;
      }
      if (typeof length !== "number") return { error: length.error, unframed: view };
      deliver(view.subarray(0, length));
      off += length;
    }
    if (off < buf.length) this.pending = buf.slice(off);
    return undefined;
  }
}

export class StreamTransport implements Transport {
  readonly reliable = true;
  private readonly connections = new Map<string, StreamConnection>();
  private readonly byRemote = new Map<string, StreamConnection>();
  private readonly connecting = new Map<string, Promise<StreamConnection>>();
  private nextId = 0;
  private idleSweep: ReturnType<typeof setInterval> | undefined;
  private listener: TCPSocketListener<ConnectionState> | undefined;
  private caBundle: string | undefined;
  local: Endpoint;

  private constructor(
    readonly name: "tcp" | "tls",
    host: string,
    private readonly onMessage: InboundHandler,
    private readonly opts: StreamTransportOptions,
  ) {
    this.local = { transport: name, address: host, port: 0 };
  }

  static async listen(
    name: "tcp" | "tls",
    host: string,
    port: number,
    onMessage: InboundHandler,
    opts: StreamTransportOptions = {},
  ): Promise<StreamTransport> {
    const t = new StreamTransport(name, host, onMessage, opts);
    await t.start(port);
    return t;
  }

  private async start(port: number): Promise<void> {
    const tls = this.opts.tls;
    if (this.name === "tls") this.caBundle = await trustedRoots(tls?.caFile);
    const idle = this.opts.idleTimeoutMs ?? 300_000;
    this.idleSweep = setInterval(() => this.closeIdle(idle), Math.max(20, Math.min(idle / 4, 5_000)));
    this.idleSweep.unref();
    // TLS without a certificate still dials out (trunks over TLS); it just does not listen.
    if (this.name === "tls" && (!tls?.certFile || !tls.keyFile)) {
      log.debug("TLS without certificate and key: outbound connections only");
      return;
    }
    this.listener = Bun.listen<ConnectionState>({
      hostname: this.local.address,
      port,
      ...(this.name === "tls" && tls?.certFile && tls.keyFile
        ? { tls: { cert: Bun.file(tls.certFile), key: Bun.file(tls.keyFile) } }
        : {}),
      socket: this.handlers((socket) => {
        // Disallowed sources are refused at accept, before any byte is read.
        const remote: Endpoint = { transport: this.name, address: socket.remoteAddress, port: socket.remotePort };
        if (this.opts.acceptSource && !this.opts.acceptSource(remote)) return socket.terminate();
        // A connection flood must not exhaust file descriptors.
        if (this.connections.size >= (this.opts.maxConnections ?? 4096)) {
          log.warn("refusing connection: limit reached", { remote, limit: this.opts.maxConnections ?? 4096 });
          return socket.terminate();
        }
        this.register(this.wrap(socket, remote));
      }),
    });
    this.local = { ...this.local, port: this.listener.port };
  }

  private handlers(onOpen: (socket: Socket<ConnectionState>) => void) {
    const maxSize = this.opts.maxMessageSize ?? 65_536;
    return {
      binaryType: "uint8array" as const,
      open: onOpen,
      data: (socket: Socket<ConnectionState>, chunk: Uint8Array) => {
        const conn = socket.data?.conn;
        if (!conn) return;
        const deliver = (message: Uint8Array) => {
          try {
            this.onMessage(message, { source: conn.remote, connectionId: conn.id, local: this.local }, "stream");
          } catch (handlerError) {
            // One bad message must not take the connection (or the process) down.
            log.error("stream message handler failed", { error: handlerError, remote: conn.remote });
          }
        };
        const failure = conn.receive(chunk, maxSize, deliver);
        if (failure) {
          // The parser still gets the bytes, so a request whose reply can be built is answered
          // 400/413 on this connection before it closes (RFC 3261 §18.3, §21.4.11).
          log.warn("dropping stream connection: framing error", { error: failure.error, remote: conn.remote });
          deliver(failure.unframed);
          this.forget(conn);
          socket.end();
        }
      },
      drain: (socket: Socket<ConnectionState>) => socket.data?.conn?.drain(),
      close: (socket: Socket<ConnectionState>) => {
        const conn = socket.data?.conn;
        if (conn) this.forget(conn);
      },
      error: (socket: Socket<ConnectionState>, error: Error) => {
        log.debug("stream socket error", { error, remote: socket.data?.conn?.remote });
      },
    };
  }

  /**
   * Reuse key of a connection to `dest`. A TLS connection is only as trustworthy as the check made
   * when it was opened, so TLS keys name it: a trunk that verifies certificates never rides a
   * connection opened without verification (or verified for another server name), nor one a peer
   * opened to us.
   */
  private reuseKey(dest: Endpoint, opts: SendOptions = {}): string {
    if (this.name !== "tls") return remoteKey(dest);
    const verify = opts.verify ?? this.opts.tls?.verify ?? true;
    const identity = verify ? `verified:${(opts.serverName ?? stripBrackets(dest.address)).toLowerCase()}` : "unverified";
    return `${remoteKey(dest)}|${identity}`;
  }

  /** Wraps a socket; `remote` and `key` are given for outbound connections (accepted ones are keyed as unverified). */
  private wrap(socket: Socket<ConnectionState>, remote?: Endpoint, key?: string): StreamConnection {
    const peer = remote ?? { transport: this.name, address: socket.remoteAddress, port: socket.remotePort };
    const reuse = key ?? this.reuseKey(peer, { verify: false });
    const conn = new StreamConnection(`${this.name}-${++this.nextId}`, socket, peer, reuse);
    // A fresh object per socket: Bun hands every accepted socket the same listener `data` object.
    socket.data = { conn, ...(socket.data?.ready ? { ready: socket.data.ready } : {}) };
    return conn;
  }

  private register(conn: StreamConnection): StreamConnection {
    this.connections.set(conn.id, conn);
    this.byRemote.set(conn.reuseKey, conn);
    return conn;
  }

  private forget(conn: StreamConnection): void {
    conn.closed = true;
    this.connections.delete(conn.id);
    if (this.byRemote.get(conn.reuseKey) === conn) this.byRemote.delete(conn.reuseKey);
  }

  private closeIdle(idleMs: number): void {
    const cutoff = Date.now() - idleMs;
    for (const conn of this.connections.values()) {
      if (conn.lastActivity < cutoff) {
        log.debug("closing idle connection", { remote: conn.remote });
        this.forget(conn);
        conn.socket.end();
      }
    }
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  async send(data: Uint8Array, dest: Endpoint, opts: SendOptions = {}): Promise<void> {
    const preferred = opts.connectionId ? this.connections.get(opts.connectionId) : undefined;
    const conn = preferred ?? this.byRemote.get(this.reuseKey(dest, opts)) ?? (await this.connect(dest, opts));
    if (conn.closed) throw new TransportError(`connection to ${dest.address}:${dest.port} closed`, dest);
    conn.write(data);
  }

  private connect(dest: Endpoint, opts: SendOptions): Promise<StreamConnection> {
    const key = this.reuseKey(dest, opts);
    const inFlight = this.connecting.get(key);
    if (inFlight) return inFlight;
    const attempt = this.open(dest, opts).finally(() => this.connecting.delete(key));
    this.connecting.set(key, attempt);
    return attempt;
  }

  private async open(dest: Endpoint, opts: SendOptions): Promise<StreamConnection> {
    const verify = opts.verify ?? this.opts.tls?.verify ?? true;
    const timeoutMs = this.opts.connectTimeoutMs ?? 10_000;
    const isTls = this.name === "tls";
    // TCP is usable once open; TLS only after the handshake, whose verdict honours rejectUnauthorized.
    let settle: (error?: Error) => void = () => {};
    const ready = new Promise<void>((resolve, reject) => {
      settle = (error) => (error ? reject(error) : resolve());
    });
    // A refused connect rejects `ready` from connectError while Bun.connect's own rejection is the
    // one awaited below; without a handler that second rejection would surface as unhandled.
    ready.catch(() => {});
    const state: ConnectionState = { ready: settle };
    const base = this.handlers((socket) => {
      this.wrap(socket, dest, this.reuseKey(dest, opts));
      if (!isTls) socket.data.ready?.();
    });
    const handlers = {
      ...base,
      handshake: (socket: Socket<ConnectionState>, success: boolean, error: Error | null) => {
        socket.data.ready?.(success ? undefined : new Error(`certificate rejected: ${error?.message ?? "unauthorized"}`));
      },
      close: (socket: Socket<ConnectionState>) => {
        socket.data.ready?.(new Error("connection closed during setup"));
        base.close(socket);
      },
      connectError: (_socket: Socket<ConnectionState>, error: Error) => settle(error),
    };
    const tls = isTls
      ? {
          serverName: opts.serverName ?? stripBrackets(dest.address),
          rejectUnauthorized: verify,
          ...(this.caBundle ? { ca: this.caBundle } : {}),
        }
      : undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let socket: Socket<ConnectionState> | undefined;
    try {
      socket = await Promise.race([
        Bun.connect<ConnectionState>({
          hostname: stripBrackets(dest.address),
          port: dest.port,
          data: state,
          ...(tls ? { tls } : {}),
          socket: handlers,
        }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error("connect timeout")), timeoutMs);
        }),
      ]);
      await Promise.race([
        ready,
        new Promise<never>((_, reject) => {
          clearTimeout(timer);
          timer = setTimeout(() => reject(new Error("handshake timeout")), timeoutMs);
        }),
      ]);
      socket.data.ready = undefined;
      const conn = socket.data.conn;
      if (!conn || conn.closed) throw new Error("connection closed during setup");
      return this.register(conn);
    } catch (error) {
      if (socket?.data) socket.data.ready = undefined;
      socket?.terminate();
      // Bun says "Failed to connect" for every socket error; the errno code is what tells them apart.
      const code = (error as { code?: unknown } | null)?.code;
      const detail = `${error instanceof Error ? error.message : String(error)}${typeof code === "string" ? ` (${code})` : ""}`;
      throw new TransportError(`${this.name} connect to ${dest.address}:${dest.port} failed: ${detail}`, dest);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.idleSweep);
    for (const conn of this.connections.values()) conn.socket.terminate();
    this.connections.clear();
    this.byRemote.clear();
    this.listener?.stop(true);
  }
}

function remoteKey(e: Endpoint): string {
  return `${stripBrackets(e.address).toLowerCase()}|${e.port}`;
}

// Where Linux distributions keep the system trust store as one PEM bundle.
const SYSTEM_CA_BUNDLES = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"];

/**
 * Roots TLS clients verify servers against: the configured CA file, else the system store (so an
 * administrator's added CAs count), else undefined, which leaves Bun's bundled Mozilla roots.
 */
async function trustedRoots(caFile: string | undefined): Promise<string | undefined> {
  if (caFile) return Bun.file(caFile).text();
  for (const path of SYSTEM_CA_BUNDLES) {
    const file = Bun.file(path);
    if (await file.exists()) return file.text();
  }
  return undefined;
}
