// SIP over UDP (RFC 3261 §18): one datagram is one message.
//
// The socket asks the kernel for a large receive buffer (4 MiB; Linux grants up to
// net.core.rmem_max): the default (~208 KiB) holds about a hundred small datagrams, a few
// milliseconds of a scanner's flood, and once it overflows the kernel drops a trunk's datagrams as
// readily as the flood's. Bun.udpSocket has no option for it, so it is set on the socket's descriptor
// (src/net/udp-sendto.ts), where sends go too: libc's sendto with the destination encoded once,
// instead of Bun parsing the address string for every datagram (node:dgram, used before, added a
// name lookup and a callback per send on top).
import { constants } from "node:os";
import { createLogger } from "../log.ts";
import { descriptorOf, isTransientSendError, sendTo, setReceiveBuffer, socketAddress, type SocketAddress } from "../net/udp-sendto.ts";
import { type Endpoint, hostPort, type InboundHandler, type Transport, TransportError } from "./transport.ts";

const log = createLogger("sip.udp");

export const UDP_RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024;
/**
 * Destinations whose encoded address is kept. Answers go to every source the stack admits (a
 * stranger's 403 too), so the cache is emptied when full rather than grown: a miss costs an encoding.
 */
const MAX_CACHED_DESTINATIONS = 1024;

/** Errors the kernel reports for a datagram sent earlier, from the ICMP answer it got. */
const ICMP_ERRORS = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "EHOSTDOWN"]);
const ERRNO_NAMES = new Map(Object.entries(constants.errno).map(([name, value]) => [value, name]));

export class UdpTransport implements Transport {
  readonly name = "udp" as const;
  readonly reliable = false;
  private readonly destinations = new Map<string, SocketAddress>();

  private constructor(
    private readonly socket: Bun.udp.Socket<"uint8array">,
    /** The socket's descriptor for sendto; -1 sends with Bun's own send. */
    private readonly fd: number,
    readonly local: Endpoint,
    /** The receive buffer the kernel granted; undefined if it could not be asked. */
    readonly receiveBufferBytes: number | undefined,
  ) {}

  static async listen(host: string, port: number, onMessage: InboundHandler): Promise<UdpTransport> {
    let local: Endpoint | undefined;
    let socket: Bun.udp.Socket<"uint8array">;
    try {
      socket = await Bun.udpSocket({
        hostname: host,
        port,
        binaryType: "uint8array",
        socket: {
          data(_socket, data, fromPort, address) {
            if (!local || isKeepAlive(data)) return;
            try {
              onMessage(data, { source: { transport: "udp", address, port: fromPort }, local }, "datagram");
            } catch (error) {
              // A bad datagram must never take the listener down.
              log.error("udp message handler failed", { error, source: `${address}:${fromPort}` });
            }
          },
          error: (_socket, error) => log.debug("udp socket error", { error: String(error) }),
        },
      });
    } catch (error) {
      // Bun's message names the host, not the port: an operator needs both (another process on 5060).
      const code = (error as { code?: unknown }).code;
      throw Object.assign(new Error(`udp listen on ${hostPort(host, port)} failed: ${typeof code === "string" ? code : String(error)}`), { code });
    }
    local = { transport: "udp", address: host, port: socket.port };
    const fd = descriptorOf(socket);
    const granted = fd >= 0 ? setReceiveBuffer(fd, UDP_RECEIVE_BUFFER_BYTES) : undefined;
    if (granted === undefined) {
      log.info("the SIP UDP socket keeps the kernel's default receive buffer: libc could not be loaded to ask for more", { asked: UDP_RECEIVE_BUFFER_BYTES });
    } else if (granted < UDP_RECEIVE_BUFFER_BYTES) {
      log.info("the kernel caps the SIP UDP receive buffer; raise net.core.rmem_max to absorb floods", { granted, asked: UDP_RECEIVE_BUFFER_BYTES });
    }
    return new UdpTransport(socket, fd, local, granted);
  }

  /** `dest.address` is an IP literal (the resolver has made names addresses); a name fails the send. */
  send(data: Uint8Array, dest: Endpoint): Promise<void> {
    let error = this.sendOnce(data, dest.address, dest.port);
    if (error !== undefined && ICMP_ERRORS.has(error)) {
      // One socket serves every peer, so an ICMP error here (port unreachable, …) was caused by an
      // earlier datagram to some other, vanished peer: the kernel reports it on the next send and
      // clears it, without sending this datagram. Sending again delivers ours; failing this
      // destination's transaction for another peer's ICMP would be wrong (RFC 3261 §18.4).
      log.debug("icmp error from an earlier datagram", { error });
      error = this.sendOnce(data, dest.address, dest.port);
    }
    if (error === undefined) return Promise.resolve();
    return Promise.reject(new TransportError(`udp send to ${dest.address}:${dest.port} failed: ${error}`, dest));
  }

  /** Sends once: undefined when sent (or lost like any datagram), else the error's code. */
  private sendOnce(data: Uint8Array, address: string, port: number): string | undefined {
    const sockaddr = this.fd >= 0 && !this.socket.closed ? this.sockaddrOf(address, port) : undefined;
    if (sockaddr) {
      const errno = sendTo!(this.fd, data, sockaddr);
      // A full kernel buffer loses the datagram like any other UDP loss; the transaction layer's
      // retransmissions recover (RFC 3261 §17.1.2.2).
      if (errno === 0 || isTransientSendError(errno)) return undefined;
      return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
    }
    // No libc, or an address sendto cannot take: Bun's send, which throws what it cannot send.
    try {
      this.socket.send(data, port, address);
      return undefined;
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      return typeof code === "string" ? code : String(error);
    }
  }

  private sockaddrOf(address: string, port: number): SocketAddress | undefined {
    const key = `${address} ${port}`;
    let sockaddr = this.destinations.get(key);
    if (sockaddr) return sockaddr;
    sockaddr = socketAddress(address, port);
    if (!sockaddr) return undefined;
    if (this.destinations.size >= MAX_CACHED_DESTINATIONS) this.destinations.clear();
    this.destinations.set(key, sockaddr);
    return sockaddr;
  }

  close(): Promise<void> {
    this.socket.close();
    return Promise.resolve();
  }
}

/** RFC 5626 §3.5.1 keep-alives and stray whitespace datagrams carry no message. */
function isKeepAlive(data: Uint8Array): boolean {
  for (const b of data) if (b !== 0x0d && b !== 0x0a && b !== 0x20 && b !== 0x00) return false;
  return true;
}
