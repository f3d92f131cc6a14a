// UdpIo on sockets owned by a worker thread (udp-io-worker.ts), so the kernel and Bun-native cost
// of every datagram runs beside the main thread's media work instead of on it.
//
//   const io = new WorkerUdpIo();                        // one per process; starts the worker
//   const session = await RtpSession.open({ allocator, io });
//   io.close();                                          // ends the worker and every socket on it
//
// Sends are queued into one batch that goes to the worker at the end of the macrotask, or sooner once
// it is large (a mixer tick's packets cost a few messages); datagrams arrive in batches, one per turn
// of the worker's event loop (formats: udp-io-protocol.ts). send() returns true once queued; what fails later in
// the worker reaches the socket's error handler. The worker never keeps the process alive. Should it
// die, its sockets report an error for every send (calls on them end by media timeout) and the
// next bind starts a new worker, unless that one never started (then binds fail with the reason).
// Should the main thread fall behind (an RTP flood, a stall), the worker drops datagrams beyond
// maxUnreadBytes of unread batches rather than let them pile up; drops are counted and logged.
import { createLogger } from "../log.ts";
import { metrics } from "../metrics.ts";
import { BatchReader, BatchWriter, MAX_DATAGRAM_BYTES, type FromWorker, type ToWorker } from "./udp-io-protocol.ts";
import type { DatagramHandlers, DatagramSocket, UdpIo } from "./udp-io.ts";

const log = createLogger("media.udp-io");

/** Every worker's drops together, for the metrics. */
let droppedTotal = 0;
metrics.counter(
  "trunkline_rtp_worker_dropped_datagrams_total",
  "RTP/RTCP datagrams the RTP I/O worker (rtp.ioWorker) dropped unread because the main thread was behind.",
  [],
  () => droppedTotal,
);

/**
 * From source the worker script sits beside this module. The compiled executable bundles this module
 * into its main entrypoint, whose import.meta.url is the bundle's root, and holds the worker (an
 * entrypoint of its own, see the Makefile) under its path from the repository root.
 */
const WORKER_URL = new URL(import.meta.url.endsWith("/worker-udp-io.ts") ? "./udp-io-worker.ts" : "./src/media/udp-io-worker.ts", import.meta.url).href;
/** A send batch this large goes to the worker at once (≈ 80 G.711 packets), not at the end of the macrotask. */
const EARLY_FLUSH_BYTES = 16 * 1024;
/** close() lets the worker send what is queued (RTCP BYEs) before it is terminated regardless. */
const EXIT_GRACE_MS = 1000;
/** ≈ 40,000 G.711 packets, well over a second of 500 legs: only a main thread that is far behind hits it. */
const DEFAULT_MAX_UNREAD_BYTES = 8 * 1024 * 1024;
const DROP_WARNING_INTERVAL_MS = 10_000;

export interface WorkerUdpIoOptions {
  /** Received bytes the worker may have handed over unread before it drops datagrams. */
  maxUnreadBytes?: number;
}

export class WorkerUdpIo implements UdpIo {
  private readonly maxUnreadBytes: number;
  private worker: IoWorker;
  private closed = false;

  constructor(o: WorkerUdpIoOptions = {}) {
    this.maxUnreadBytes = o.maxUnreadBytes ?? DEFAULT_MAX_UNREAD_BYTES;
    this.worker = new IoWorker(this.maxUnreadBytes);
  }

  /** Datagrams the worker dropped because the main thread was behind reading them. */
  get droppedDatagrams(): number {
    return this.worker.dropped;
  }

  bind(host: string, port: number, handlers: DatagramHandlers): Promise<DatagramSocket> {
    if (this.closed) return Promise.reject(new Error("UDP I/O is closed"));
    if (this.worker.failure && this.worker.started) this.worker = new IoWorker(this.maxUnreadBytes);
    return this.worker.bind(host, port, handlers);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.worker.close();
  }
}

interface PendingBind {
  handlers: DatagramHandlers;
  resolve: (socket: DatagramSocket) => void;
  reject: (error: Error) => void;
}

/** One worker thread and the main-thread side of its sockets. */
class IoWorker {
  /** the worker ran its script */
  started = false;
  /** why the worker is gone (exited, crashed or closed): no more messages either way */
  failure: Error | undefined;
  /** datagrams it dropped because this thread was behind */
  dropped = 0;
  private lastDropWarningAt = -Infinity;
  private readonly worker: Worker;
  private readonly sockets = new Map<number, WorkerSocket>();
  private readonly pendingBinds = new Map<number, PendingBind>();
  private nextId = 1;
  private readonly sends = new BatchWriter((batch) => this.worker.postMessage(batch, [batch.buffer]));
  private readonly received = new BatchReader();
  private flushQueued = false;
  private closing = false;
  private terminateTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(maxUnreadBytes: number) {
    this.worker = new Worker(WORKER_URL, { ref: false });
    this.post({ type: "limits", maxUnreadBytes });
    this.worker.addEventListener("message", (event: MessageEvent<FromWorker>) => this.onMessage(event.data));
    this.worker.addEventListener("error", (event) => log.error("RTP I/O worker failed", { error: event.message }));
    this.worker.addEventListener("close", () => this.onExit());
  }

  bind(host: string, port: number, handlers: DatagramHandlers): Promise<DatagramSocket> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pendingBinds.set(id, { handlers, resolve, reject });
      this.post({ type: "bind", id, host, port });
    });
  }

  send(socket: WorkerSocket, data: Uint8Array, port: number, address: string): boolean {
    // The in-thread socket refuses these too; here they would not fit the record.
    if (this.failure || socket.closed || !(Number.isInteger(port) && port >= 1 && port <= 0xffff) || data.length > MAX_DATAGRAM_BYTES) {
      socket.handlers.error();
      return false;
    }
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flush);
    }
    this.sends.datagram(socket.id, data, port, address, 0);
    // A large tick goes out in parts, so the worker sends the first legs' packets while the main
    // thread still mixes the rest.
    if (this.sends.size >= EARLY_FLUSH_BYTES) this.sends.flush();
    return true;
  }

  closeSocket(socket: WorkerSocket): void {
    this.sockets.delete(socket.id);
    if (this.failure) return;
    // Queued sends (the RTCP BYE) go before the close.
    this.flush();
    this.post({ type: "close", id: socket.id });
  }

  close(): void {
    if (this.failure) return;
    this.flush();
    this.post({ type: "exit" });
    this.closing = true;
    this.terminateTimer = setTimeout(() => this.worker.terminate(), EXIT_GRACE_MS);
    this.terminateTimer.unref();
    this.die(new Error("UDP I/O is closed"));
  }

  private readonly flush = (): void => {
    this.flushQueued = false;
    if (!this.failure) this.sends.flush();
  };

  private post(message: ToWorker): void {
    this.worker.postMessage(message);
  }

  private onMessage(m: FromWorker): void {
    if (this.failure) return;
    switch (m.type) {
      case "ready":
        this.started = true;
        log.debug("RTP I/O worker started");
        break;
      case "datagrams":
        this.received.read(m, this.deliver, this.deliverError);
        this.post({ type: "read", bytes: m.length });
        if (m.dropped > 0) this.noteDropped(m.dropped);
        break;
      case "bound": {
        const pending = this.pendingBinds.get(m.id);
        if (!pending) break;
        this.pendingBinds.delete(m.id);
        const socket = new WorkerSocket(this, m.id, m.port, pending.handlers);
        this.sockets.set(m.id, socket);
        pending.resolve(socket);
        break;
      }
      case "bindFailed":
        this.pendingBinds.get(m.id)?.reject(new Error(m.error));
        this.pendingBinds.delete(m.id);
        break;
    }
  }

  private noteDropped(count: number): void {
    this.dropped += count;
    droppedTotal += count;
    const now = performance.now();
    if (now - this.lastDropWarningAt < DROP_WARNING_INTERVAL_MS) return;
    this.lastDropWarningAt = now;
    log.warn("RTP I/O worker dropped datagrams: the main thread is behind", { dropped: this.dropped });
  }

  private readonly deliver = (id: number, data: Uint8Array, port: number, address: string, time: number): void => {
    const socket = this.sockets.get(id);
    if (!socket) return;  // closed while the datagram was on its way
    // One handler failing must not lose the rest of the batch.
    try {
      socket.handlers.data(data, port, address, time - performance.timeOrigin);
    } catch (error) {
      log.error("datagram handler failed", { localPort: socket.port, error });
    }
  };

  private readonly deliverError = (id: number): void => {
    this.sockets.get(id)?.handlers.error();
  };

  private onExit(): void {
    clearTimeout(this.terminateTimer);
    if (this.closing) return;
    if (!this.started) {
      log.error("RTP I/O worker could not start");
      this.die(new Error("RTP I/O worker could not start"));
      return;
    }
    log.error("RTP I/O worker exited; its sockets are gone", { sockets: this.sockets.size });
    this.die(new Error("RTP I/O worker exited"));
  }

  private die(reason: Error): void {
    this.failure = reason;
    for (const pending of this.pendingBinds.values()) pending.reject(reason);
    this.pendingBinds.clear();
    this.sockets.clear();
  }
}

class WorkerSocket implements DatagramSocket {
  closed = false;

  constructor(
    private readonly io: IoWorker,
    readonly id: number,
    readonly port: number,
    readonly handlers: DatagramHandlers,
  ) {}

  send(data: Uint8Array, port: number, address: string): boolean {
    return this.io.send(this, data, port, address);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.io.closeSocket(this);
  }
}
