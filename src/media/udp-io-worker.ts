// The RTP I/O worker thread: owns the UDP sockets of a WorkerUdpIo (worker-udp-io.ts), sends the
// datagrams the main thread batches and batches what arrives, flushed once per event-loop turn.
// Messages: udp-io-protocol.ts. The compiled executable bundles this file as an extra entrypoint
// (see the Makefile's build target).
import type { udp } from "bun";
import { BatchReader, BatchWriter, type FromWorker, type ToWorker } from "./udp-io-protocol.ts";

declare var self: Worker;

const sockets = new Map<number, udp.Socket<"uint8array">>();
const sends = new BatchReader();
const received = new BatchWriter((batch) => reply(batch, [batch.buffer]));
let flushQueued = false;

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

function reportError(id: number): void {
  received.error(id);
  queueFlush();
}

async function bind(id: number, host: string, port: number): Promise<void> {
  try {
    const socket = await Bun.udpSocket({
      hostname: host,
      port,
      binaryType: "uint8array",
      socket: {
        data: (_s, data, fromPort, address) => {
          received.datagram(id, data, fromPort, address, performance.timeOrigin + performance.now());
          queueFlush();
        },
        error: () => reportError(id),
      },
    });
    sockets.set(id, socket);
    reply({ type: "bound", id, port: socket.port });
  } catch (error) {
    reply({ type: "bindFailed", id, error: error instanceof Error ? error.message : String(error) });
  }
}

function send(id: number, data: Uint8Array, port: number, address: string): void {
  const socket = sockets.get(id);
  if (!socket) return;
  // Bun throws for an address it cannot send to (wrong family, malformed).
  try {
    socket.send(data, port, address);
  } catch {
    reportError(id);
  }
}

// Installed before anything is awaited, so no message posted during start-up is dropped.
self.onmessage = (event: MessageEvent<ToWorker>) => {
  const m = event.data;
  switch (m.type) {
    case "datagrams":
      sends.read(m, send);
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
