// SIP over UDP (RFC 3261 §18): one datagram is one message.
//
// The socket asks the kernel for a large receive buffer (4 MiB; Linux grants up to
// net.core.rmem_max): the default (~208 KiB) holds about a hundred small datagrams, a few
// milliseconds of a scanner's flood, and once it overflows the kernel drops a trunk's datagrams as
// readily as the flood's. node:dgram is used because Bun.udpSocket cannot set SO_RCVBUF.
import dgram from "node:dgram";
import { createLogger } from "../log.ts";
import { type Endpoint, type InboundHandler, isIpv6, type Transport, TransportError } from "./transport.ts";

const log = createLogger("sip.udp");

export const UDP_RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024;

export class UdpTransport implements Transport {
  readonly name = "udp" as const;
  readonly reliable = false;

  private constructor(
    private readonly socket: dgram.Socket,
    readonly local: Endpoint,
  ) {}

  static async listen(host: string, port: number, onMessage: InboundHandler): Promise<UdpTransport> {
    const socket = dgram.createSocket({ type: isIpv6(host) ? "udp6" : "udp4", recvBufferSize: UDP_RECEIVE_BUFFER_BYTES });
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(port, host, () => {
        socket.off("error", reject);
        resolve();
      });
    });
    const local: Endpoint = { transport: "udp", address: host, port: socket.address().port };
    socket.on("message", (data: Uint8Array, peer: dgram.RemoteInfo) => {
      if (isKeepAlive(data)) return;
      try {
        onMessage(data, { source: { transport: "udp", address: peer.address, port: peer.port }, local }, "datagram");
      } catch (error) {
        // A bad datagram must never take the listener down.
        log.error("udp message handler failed", { error, source: `${peer.address}:${peer.port}` });
      }
    });
    socket.on("error", (error) => log.debug("udp socket error", { error: String(error) }));
    // Linux reports twice what it grants (the bookkeeping overhead included).
    const granted = socket.getRecvBufferSize() / 2;
    if (granted < UDP_RECEIVE_BUFFER_BYTES) {
      log.info("the kernel caps the SIP UDP receive buffer; raise net.core.rmem_max to absorb floods", { granted, asked: UDP_RECEIVE_BUFFER_BYTES });
    }
    return new UdpTransport(socket, local);
  }

  async send(data: Uint8Array, dest: Endpoint): Promise<void> {
    try {
      await this.sendOnce(data, dest);
    } catch (error) {
      if (!isIcmpError(error)) throw new TransportError(`udp send to ${dest.address}:${dest.port} failed: ${String(error)}`, dest);
      // One socket serves every peer, so an ICMP error here (port unreachable, …) was caused by an
      // earlier datagram to some other, vanished peer: the kernel reports it on the next send and
      // clears it, without sending this datagram. Sending again delivers ours; failing this
      // destination's transaction for another peer's ICMP would be wrong (RFC 3261 §18.4).
      log.debug("icmp error from an earlier datagram", { error: String(error) });
      try {
        await this.sendOnce(data, dest);
      } catch (again) {
        throw new TransportError(`udp send to ${dest.address}:${dest.port} failed: ${String(again)}`, dest);
      }
    }
  }

  private sendOnce(data: Uint8Array, dest: Endpoint): Promise<void> {
    // A full kernel buffer loses the datagram like any other UDP loss; the transaction layer's
    // retransmissions recover (RFC 3261 §17.1.2.2).
    return new Promise((resolve, reject) => this.socket.send(data, dest.port, dest.address, (error) => (error ? reject(error) : resolve())));
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }
}

/** Errors the kernel reports for a datagram sent earlier, from the ICMP answer it got. */
const ICMP_ERRORS = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "EHOSTDOWN"]);

function isIcmpError(error: unknown): boolean {
  return typeof error === "object" && error !== null && ICMP_ERRORS.has(String((error as { code?: unknown }).code));
}

/** RFC 5626 §3.5.1 keep-alives and stray whitespace datagrams carry no message. */
function isKeepAlive(data: Uint8Array): boolean {
  for (const b of data) if (b !== 0x0d && b !== 0x0a && b !== 0x20 && b !== 0x00) return false;
  return true;
}
