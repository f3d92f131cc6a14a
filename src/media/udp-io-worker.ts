// The RTP I/O worker thread: owns the UDP sockets of a WorkerUdpIo (worker-udp-io.ts), sends the
// datagrams the main thread batches and batches what arrives, flushed once per event-loop turn.
// Backpressure: when the main thread falls behind (a flood, a stall) and more than maxUnreadBytes of
// received batches wait unread, further datagrams are dropped and counted, as a full socket buffer
// would drop them, instead of queueing without bound.
// The sockets themselves are the in-thread ones (udp-io.ts), on this thread's event loop.
// Messages: udp-io-protocol.ts. The compiled executable bundles this file as an extra entrypoint
// (see the Makefile's build target).
import { BatchReader, BatchWriter, type FromWorker, type ToWorker } from "./udp-io-protocol.ts";
import { inThreadUdpIo, type DatagramSocket } from "./udp-io.ts";

declare var self: Worker;

const sockets = new Map<number, DatagramSocket>();
const sends = new BatchReader();
const received = new BatchWriter((batch) => {
  unreadBytes += batch.length;
  reply({ ...batch, dropped }, [batch.buffer]);
  dropped = 0;
});
let flushQueued = false;
let maxUnreadBytes = Infinity;
/** bytes of received batches posted to the main thread and not yet read there */
let unreadBytes = 0;
let dropped = 0;

function reply(message: FromWorker, transfer: Bun.Transferable[] = []): void {
  self.postMessage(message, transfer);
}

function queueFlush(): void {
  if (flushQueued) return;
  flushQueued = true;
  setImmediate(() => {
    flushQueued = false;
    received.flush();
  });
}

async function bind(id: number, host: string, port: number): Promise<void> {
  try {
    const socket = await inThreadUdpIo.bind(host, port, {
      data: (data, fromPort, address, arrivalMs) => {
        if (unreadBytes + received.size > maxUnreadBytes) {
          dropped++;
          return;
        }
        // The main thread has its own timeOrigin: send the absolute time.
        received.datagram(id, data, fromPort, address, performance.timeOrigin + arrivalMs);
        queueFlush();
      },
      error: () => {
        received.error(id);
        queueFlush();
      },
    });
    sockets.set(id, socket);
    reply({ type: "bound", id, port: socket.port });
  } catch (error) {
    reply({ type: "bindFailed", id, error: error instanceof Error ? error.message : String(error) });
  }
}

// Installed before anything is awaited, so no message posted during start-up is dropped.
self.onmessage = (event: MessageEvent<ToWorker>) => {
  const m = event.data;
  switch (m.type) {
    case "datagrams":
      sends.read(m, (id, data, port, address) => sockets.get(id)?.send(data, port, address));
      break;
    case "limits":
      maxUnreadBytes = m.maxUnreadBytes;
      break;
    case "read":
      unreadBytes -= m.bytes;
      break;
    case "bind":
      void bind(m.id, m.host, m.port);
      break;
    case "close":
      sockets.get(m.id)?.close();
      sockets.delete(m.id);
      break;
    case "exit":
      for (const socket of sockets.values()) socket.close();
      process.exit(0);
  }
};

reply({ type: "ready" });
