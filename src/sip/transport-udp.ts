// SIP over UDP (RFC 3261 §18): one datagram is one message.
import { createLogger } from "../log.ts";
import { type Endpoint, type InboundHandler, type Transport, TransportError } from "./transport.ts";

const log = createLogger("sip.udp");

export class UdpTransport implements Transport {
  readonly name = "udp" as const;
  readonly reliable = false;

  private constructor(
    private readonly socket: Bun.udp.Socket<"uint8array">,
    readonly local: Endpoint,
  ) {}

  static async listen(host: string, port: number, onMessage: InboundHandler): Promise<UdpTransport> {
    let local: Endpoint | undefined;
    const socket = await Bun.udpSocket({
      hostname: host,
      port,
      binaryType: "uint8array",
      socket: {
        data(_sock, data, srcPort, srcAddress) {
          if (!local || isKeepAlive(data)) return;
          try {
            onMessage(data, { source: { transport: "udp", address: srcAddress, port: srcPort }, local }, "datagram");
          } catch (error) {
            // A bad datagram must never take the listener down.
            log.error("udp message handler failed", { error, source: `${srcAddress}:${srcPort}` });
          }
        },
        error(_sock, error) {
          log.debug("udp socket error", { error: String(error) });
        },
      },
    });
    local = { transport: "udp", address: host, port: socket.port };
    return new UdpTransport(socket, local);
  }

  async send(data: Uint8Array, dest: Endpoint): Promise<void> {
    try {
      this.sendOnce(data, dest);
    } catch (error) {
      if (!isIcmpError(error)) throw new TransportError(`udp send to ${dest.address}:${dest.port} failed: ${String(error)}`, dest);
      // One socket serves every peer, so an ICMP error here (port unreachable, …) was caused by an
      // earlier datagram to some other, vanished peer: the kernel reports it on the next send and
      // clears it, without sending this datagram. Sending again delivers ours; failing this
      // destination's transaction for another peer's ICMP would be wrong (RFC 3261 §18.4).
      log.debug("icmp error from an earlier datagram", { error: String(error) });
      try {
        this.sendOnce(data, dest);
      } catch (again) {
        throw new TransportError(`udp send to ${dest.address}:${dest.port} failed: ${String(again)}`, dest);
      }
    }
  }

  private sendOnce(data: Uint8Array, dest: Endpoint): void {
    // false means the kernel buffer is full: the datagram is lost like any other UDP loss,
    // and the transaction layer's retransmissions recover (RFC 3261 §17.1.2.2).
    if (!this.socket.send(data, dest.port, dest.address)) log.debug("udp send dropped", { dest });
  }

  async close(): Promise<void> {
    this.socket.close();
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
