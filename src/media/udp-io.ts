// What an RTP session needs from UDP sockets, and its in-thread implementation on Bun.udpSocket
// (a media worker's sockets are in-thread sockets of that worker; benchmarks put stand-ins here).
//
//   const socket = await io.bind("0.0.0.0", 10000, { data: (bytes, port, address, arrivalMs) => …, error: () => … });
//   socket.send(bytes, 5004, "192.0.2.7");   // never throws: failures reach handlers.error()
//   socket.close();                          // no callbacks after this
//
// `arrivalMs` is performance.now() of the calling thread when the datagram was read from the socket.
// `data` may be a view into a buffer shared with other datagrams: copy what must outlive the callback.

import { descriptorOf, isTransientSendError, sendTo, socketAddress, type SocketAddress } from "../net/udp-sendto.ts";

export interface DatagramSocket {
  readonly port: number;
  /** Sends (or queues) one datagram; false when it could not be handed on. Never throws. */
  send(data: Uint8Array, port: number, address: string): boolean;
  close(): void;
}

export interface DatagramHandlers {
  data(data: Uint8Array, port: number, address: string, arrivalMs: number): void;
  /** A send failed or the socket reported an error (e.g. ICMP port unreachable from a vanished peer). */
  error(): void;
}

export interface UdpIo {
  /** Rejects when the address cannot be bound (EADDRINUSE etc.). */
  bind(host: string, port: number, handlers: DatagramHandlers): Promise<DatagramSocket>;
  close(): void;
}

/** Sockets on the calling thread's event loop. */
export const inThreadUdpIo: UdpIo = {
  async bind(host, port, handlers) {
    const socket = await Bun.udpSocket({
      hostname: host,
      port,
      binaryType: "uint8array",
      socket: {
        data: (_s, data, fromPort, address) => handlers.data(data, fromPort, address, performance.now()),
        error: () => handlers.error(),
      },
    });
    const fd = descriptorOf(socket);
    const rawSend = fd >= 0 ? sendTo : undefined;
    let target: { port: number; address: string; sockaddr: SocketAddress | undefined } | undefined;
    return {
      port: socket.port,
      send(data, toPort, address) {
        if (rawSend) {
          // Encoded once per destination; an address that is not an IP literal goes through Bun's send.
          if (target?.port !== toPort || target.address !== address) target = { port: toPort, address, sockaddr: socketAddress(address, toPort) };
          if (target.sockaddr && !socket.closed) {
            const errno = rawSend(fd, data, target.sockaddr);
            if (errno === 0) return true;
            if (!isTransientSendError(errno)) handlers.error();
            return false;
          }
        }
        // Bun throws for an address it cannot send to (wrong family, malformed) and on a closed socket.
        try {
          return socket.send(data, toPort, address);
        } catch {
          handlers.error();
          return false;
        }
      },
      close: () => socket.close(),
    };
  },
  close() {},
};
