// SIP over TCP and TLS (RFC 3261 §18): byte streams framed by Content-Length, connection reuse,
// idle timeout and RFC 5626 §3.5.1 CRLF keep-alive; and the limits of a connection: how many in all
// and per remote address, a deadline for the TLS handshake and each message to arrive whole
// (slowloris), and a bound on what may wait to be written to a peer that does not read.
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
  /** Close a connection after this long without receiving anything (our own writes do not count). */
  idleTimeoutMs?: number;
  /** Largest message accepted on a stream before the connection is dropped. */
  maxMessageSize?: number;
  connectTimeoutMs?: number;
  /** Open connections (both directions) beyond which no more are opened or accepted (default 4096). */
  maxConnections?: number;
  /** Inbound connections from one remote address beyond which more are refused (default 16). */
  maxConnectionsPerAddress?: number;
  /**
   * An inbound connection must finish its TLS handshake and deliver its first complete message
   * within this, and any message begun later must be complete within it too (default 5000 ms).
   */
  handshakeTimeoutMs?: number;
  /** Bytes waiting to be written to a peer that does not read, beyond which it is closed (default 1 MiB). */
  maxWriteQueueBytes?: number;
  /** Inbound connections from sources this rejects are closed at accept, before any byte is read. */
  acceptSource?: (source: Endpoint) => boolean;
}

/** Why connections were refused or closed by a limit (counts since start). */
export interface StreamCounters {
  refusedBySource: number;
  refusedPerAddress: number;
  refusedAtLimit: number;
  closedSlow: number;
  closedWriteQueue: number;
}

export const STREAM_DEFAULTS = {
  idleTimeoutMs: 300_000,
  maxMessageSize: 65_536,
  maxConnections: 4096,
  maxConnectionsPerAddress: 16,
  handshakeTimeoutMs: 5_000,
  maxWriteQueueBytes: 1_048_576,
};

interface ConnectionState {
  conn?: StreamConnection;
  /** Outbound connections: settles the connect attempt (after the TLS handshake for TLS). */
  ready?: (error?: Error) => void;
}

class StreamConnection {
  private pending: Uint8Array | undefined;
  private unsent: Uint8Array[] = [];
  /** Bytes in `unsent`: what the kernel would not take yet. */
  queued = 0;
  /** Last time bytes arrived: a peer that only receives is idle (it may have stopped reading). */
  lastActivity = performance.now();
  /** Inbound connections until their first complete message: when they were accepted. */
  awaitingFirstSince: number | undefined;
  /** When the incomplete message now in `pending` began. */
  partialSince: number | undefined;
  closed = false;

  constructor(
    readonly id: string,
    readonly socket: Socket<ConnectionState>,
    readonly remote: Endpoint,
    /** What a request must match to reuse this connection (see reuseKey). */
    readonly reuseKey: string,
    readonly inbound: boolean,
  ) {
    if (inbound) this.awaitingFirstSince = this.lastActivity;
  }

  /** Queues what the kernel does not take; false when the backlog would exceed `maxQueued` (the caller closes the connection). */
  write(data: Uint8Array, maxQueued: number): boolean {
    if (this.unsent.length > 0) {
      if (this.queued + data.length > maxQueued) return false;
      this.unsent.push(data);
      this.queued += data.length;
      return true;
    }
    const written = Math.max(this.socket.write(data), 0);
    if (written < data.length) {
      if (data.length - written > maxQueued) return false;
      this.unsent.push(data.subarray(written));
      this.queued += data.length - written;
    }
    return true;
  }

  drain(): void {
    while (this.unsent.length > 0) {
      const next = this.unsent[0]!;
      const written = Math.max(this.socket.write(next), 0);
      this.queued -= written;
      if (written < next.length) {
        this.unsent[0] = next.subarray(written);
        return;
      }
      this.unsent.shift();
    }
  }

  /** Whether the handshake, the first message or a message begun has taken longer than `limitMs`. */
  isSlow(now: number, limitMs: number): boolean {
    const since = this.awaitingFirstSince ?? this.partialSince;
    return since !== undefined && now - since > limitMs;
  }

  /**
   * Appends received bytes and yields every complete message. A stream that cannot be framed
   * returns the error and the unframed bytes; the connection is then dropped.
   */
  receive(
    chunk: Uint8Array,
    o: { maxSize: number; now: number; pong: () => void },
    deliver: (message: Uint8Array) => void,
  ): { error: string; unframed: Uint8Array } | undefined {
    this.lastActivity = o.now;
    let buf = chunk;
    if (this.pending) {
      buf = new Uint8Array(this.pending.length + chunk.length);
      buf.set(this.pending);
      buf.set(chunk, this.pending.length);
      this.pending = undefined;
    }
    let off = 0;
    let delivered = false;
    while (off < buf.length) {
      // RFC 3261 §7.5: CRLFs before a message are ignored; RFC 5626 §3.5.1: a double CRLF is a
      // keep-alive ping answered with a single CRLF pong.
      let crlfs = 0;
      while (off + 1 < buf.length && buf[off] === CR && buf[off + 1] === LF) {
        off += 2;
        crlfs++;
      }
      if (crlfs >= 2) o.pong();
      if (off >= buf.length) break;
      if (buf.length - off === 1 && buf[off] === CR) break;
      const view = buf.subarray(off);
      const length = nextMessageLength(view, o.maxSize);
      if (length === "incomplete") {
        if (view.length > o.maxSize) return { error: `message exceeds ${o.maxSize} bytes`, unframed: view };
        break;
      }
      if (typeof length !== "number") return { error: length.error, unframed: view };
      this.awaitingFirstSince = undefined;
      delivered = true;
      deliver(view.subarray(0, length));
      off += length;
    }
    if (off < buf.length) {
      this.pending = buf.slice(off);
      if (delivered || this.partialSince === undefined) this.partialSince = o.now;
    } else {
      this.partialSince = undefined;
    }
    return undefined;
  }
}

export class StreamTransport implements Transport {
  readonly reliable = true;
  private readonly connections = new Map<string, StreamConnection>();
  private readonly byRemote = new Map<string, StreamConnection>();
  private readonly connecting = new Map<string, Promise<StreamConnection>>();
  /** Inbound connections per remote address (entries only while such connections are open). */
  private readonly perAddress = new Map<string, number>();
  private readonly limits: typeof STREAM_DEFAULTS;
  readonly counters: StreamCounters = { refusedBySource: 0, refusedPerAddress: 0, refusedAtLimit: 0, closedSlow: 0, closedWriteQueue: 0 };
  private nextId = 0;
  private peakQueued = 0;
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
    this.limits = {
      idleTimeoutMs: opts.idleTimeoutMs ?? STREAM_DEFAULTS.idleTimeoutMs,
      maxMessageSize: opts.maxMessageSize ?? STREAM_DEFAULTS.maxMessageSize,
      maxConnections: opts.maxConnections ?? STREAM_DEFAULTS.maxConnections,
      maxConnectionsPerAddress: opts.maxConnectionsPerAddress ?? STREAM_DEFAULTS.maxConnectionsPerAddress,
      handshakeTimeoutMs: opts.handshakeTimeoutMs ?? STREAM_DEFAULTS.handshakeTimeoutMs,
      maxWriteQueueBytes: opts.maxWriteQueueBytes ?? STREAM_DEFAULTS.maxWriteQueueBytes,
    };
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
    const { idleTimeoutMs, handshakeTimeoutMs } = this.limits;
    const every = Math.max(20, Math.min(idleTimeoutMs / 4, handshakeTimeoutMs / 2, 5_000));
    this.idleSweep = setInterval(() => this.closeStale(), every);
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
      socket: {
        ...this.handlers((socket) => {
          const remote: Endpoint = { transport: this.name, address: socket.remoteAddress, port: socket.remotePort };
          const refusal = this.refusal(remote);
          if (refusal) {
            this.counters[refusal]++;
            return socket.terminate();
          }
          this.register(this.wrap(socket, remote, undefined, true));
        }),
        // With a handshake handler Bun opens a TLS socket at accept, not after the handshake: the
        // connection is screened and its handshake deadline runs from the first byte on.
        handshake: (socket: Socket<ConnectionState>, success: boolean, error: Error | null) => {
          if (!success) log.debug("TLS handshake failed", { error, remote: socket.data?.conn?.remote });
        },
      },
    });
    this.local = { ...this.local, port: this.listener.port };
  }

  /** Why an inbound connection is refused at accept, before any byte is read; undefined to accept it. */
  private refusal(remote: Endpoint): keyof StreamCounters | undefined {
    if (this.opts.acceptSource && !this.opts.acceptSource(remote)) return "refusedBySource";
    // A connection flood must not exhaust file descriptors.
    if (this.connections.size >= this.limits.maxConnections) {
      log.warn("refusing connection: limit reached", { remote, limit: this.limits.maxConnections });
      return "refusedAtLimit";
    }
    if ((this.perAddress.get(remote.address) ?? 0) >= this.limits.maxConnectionsPerAddress) return "refusedPerAddress";
    return undefined;
  }

  private handlers(onOpen: (socket: Socket<ConnectionState>) => void) {
    const maxSize = this.limits.maxMessageSize;
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
        const pong = () => this.write(conn, PONG);
        const failure = conn.receive(chunk, { maxSize, now: performance.now(), pong }, deliver);
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

  /** Wraps a socket; `key` is given for outbound connections (accepted ones are keyed as unverified). */
  private wrap(socket: Socket<ConnectionState>, remote: Endpoint, key: string | undefined, inbound: boolean): StreamConnection {
    const reuse = key ?? this.reuseKey(remote, { verify: false });
    const conn = new StreamConnection(`${this.name}-${++this.nextId}`, socket, remote, reuse, inbound);
    // A fresh object per socket: Bun hands every accepted socket the same listener `data` object.
    socket.data = { conn, ...(socket.data?.ready ? { ready: socket.data.ready } : {}) };
    return conn;
  }

  private register(conn: StreamConnection): StreamConnection {
    this.connections.set(conn.id, conn);
    this.byRemote.set(conn.reuseKey, conn);
    if (conn.inbound) this.perAddress.set(conn.remote.address, (this.perAddress.get(conn.remote.address) ?? 0) + 1);
    return conn;
  }

  /** Forgets a connection once, whoever notices first (our close, the peer's, an error). */
  private forget(conn: StreamConnection): void {
    if (conn.closed) return;
    conn.closed = true;
    if (!this.connections.delete(conn.id)) return;
    if (this.byRemote.get(conn.reuseKey) === conn) this.byRemote.delete(conn.reuseKey);
    if (conn.inbound) {
      const left = (this.perAddress.get(conn.remote.address) ?? 1) - 1;
      if (left > 0) this.perAddress.set(conn.remote.address, left);
      else this.perAddress.delete(conn.remote.address);
    }
  }

  /** Writes to a connection; one whose peer stopped reading past the write-queue bound is closed. */
  private write(conn: StreamConnection, data: Uint8Array): boolean {
    if (conn.write(data, this.limits.maxWriteQueueBytes)) {
      if (conn.queued > this.peakQueued) this.peakQueued = conn.queued;
      return true;
    }
    log.warn("closing stream connection: the peer does not read", { remote: conn.remote, queued: conn.queued });
    this.counters.closedWriteQueue++;
    this.forget(conn);
    conn.socket.terminate();
    return false;
  }

  /** Closes connections idle too long, and those whose handshake or message is too slow to arrive. */
  private closeStale(): void {
    const now = performance.now();
    const { idleTimeoutMs, handshakeTimeoutMs } = this.limits;
    for (const conn of this.connections.values()) {
      const slow = conn.isSlow(now, handshakeTimeoutMs);
      if (!slow && now - conn.lastActivity < idleTimeoutMs) continue;
      log.debug(slow ? "closing a connection too slow to deliver a message" : "closing idle connection", { remote: conn.remote });
      this.forget(conn);
      if (!slow) {
        conn.socket.end();
        continue;
      }
      // No goodbye for a slowloris: a TLS socket that never finished its handshake cannot end politely.
      this.counters.closedSlow++;
      conn.socket.terminate();
    }
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** The longest write queue any connection has had: stays at most maxWriteQueueBytes. */
  get peakQueuedBytes(): number {
    return this.peakQueued;
  }

  /** Bytes waiting in every connection's write queue. */
  get queuedBytes(): number {
    let total = 0;
    for (const conn of this.connections.values()) total += conn.queued;
    return total;
  }

  async send(data: Uint8Array, dest: Endpoint, opts: SendOptions = {}): Promise<void> {
    const preferred = opts.connectionId ? this.connections.get(opts.connectionId) : undefined;
    const conn = preferred ?? this.byRemote.get(this.reuseKey(dest, opts)) ?? (await this.connect(dest, opts));
    if (conn.closed) throw new TransportError(`connection to ${dest.address}:${dest.port} closed`, dest);
    if (!this.write(conn, data)) throw new TransportError(`connection to ${dest.address}:${dest.port} closed: the peer does not read`, dest);
  }

  private connect(dest: Endpoint, opts: SendOptions): Promise<StreamConnection> {
    const key = this.reuseKey(dest, opts);
    const inFlight = this.connecting.get(key);
    if (inFlight) return inFlight;
    // Responses may make us dial an address a peer named (RFC 3261 §18.2.2): the cap holds here too.
    if (this.connections.size + this.connecting.size >= this.limits.maxConnections) {
      this.counters.refusedAtLimit++;
      return Promise.reject(new TransportError(`${this.name} connect to ${dest.address}:${dest.port} refused: connection limit reached`, dest));
    }
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
      this.wrap(socket, dest, this.reuseKey(dest, opts), false);
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
