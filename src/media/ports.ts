// RTP port allocation over the configured range (rtp.portMin–rtp.portMax): RTP on an even port, RTCP on
// the odd port above it (RFC 3550 §11), both bound so a peer without rtcp-mux can use the pair.
//
//   const allocator = new RtpPortAllocator({ min: 10000, max: 20000 });
//   const pair = await bindRtpPair(allocator, "0.0.0.0", { rtp, rtcp }, io);  // { rtp, rtcp, port } | { error }
//   pair.close();                                                           // closes both sockets, frees the port
//
// Ports are handed out round-robin so a port just released (whose peer may still send a few packets)
// is the last to be reused.
import type { DatagramHandlers, DatagramSocket, UdpIo } from "./udp-io.ts";

export class RtpPortAllocator {
  readonly min: number;
  readonly max: number;
  private readonly inUse = new Set<number>();
  private cursor: number;

  constructor(range: { min: number; max: number }) {
    const min = range.min % 2 === 0 ? range.min : range.min + 1;
    if (!(min >= 1024 && range.max <= 65535 && min + 1 <= range.max)) {
      throw new RangeError(`invalid RTP port range ${range.min}-${range.max}`);
    }
    this.min = min;
    this.max = range.max;
    this.cursor = min + 2 * Math.floor((Math.random() * this.capacity));
  }

  /** Number of even/odd pairs in the range. */
  get capacity(): number {
    return Math.floor((this.max - this.min + 1) / 2);
  }

  get used(): number {
    return this.inUse.size;
  }

  /** Reserves the next free even port, or undefined when the range is exhausted. */
  reserve(): number | undefined {
    for (let i = 0; i < this.capacity; i++) {
      const port = this.cursor;
      this.cursor += 2;
      if (this.cursor + 1 > this.max) this.cursor = this.min;
      if (!this.inUse.has(port)) {
        this.inUse.add(port);
        return port;
      }
    }
    return undefined;
  }

  release(port: number): void {
    this.inUse.delete(port);
  }
}

export interface BoundRtpPair {
  port: number;
  rtp: DatagramSocket;
  rtcp: DatagramSocket;
  close(): void;
}

export type BindResult = BoundRtpPair | { error: string };

const MAX_BIND_ATTEMPTS = 32;

/** Binds RTP + RTCP sockets on the next free pair; ports taken by other processes are skipped. */
export async function bindRtpPair(
  allocator: RtpPortAllocator,
  host: string,
  handlers: { rtp: DatagramHandlers; rtcp: DatagramHandlers },
  io: UdpIo,
): Promise<BindResult> {
  const attempts = Math.min(MAX_BIND_ATTEMPTS, allocator.capacity);
  let lastError = "";
  for (let i = 0; i < attempts; i++) {
    const port = allocator.reserve();
    if (port === undefined) return { error: `RTP port range ${allocator.min}-${allocator.max} exhausted` };
    let rtp: DatagramSocket | undefined;
    try {
      rtp = await io.bind(host, port, handlers.rtp);
      const rtcp = await io.bind(host, port + 1, handlers.rtcp);
      const bound = rtp;
      return {
        port, rtp: bound, rtcp,
        close() {
          bound.close();
          rtcp.close();
          allocator.release(port);
        },
      };
    } catch (error) {
      // EADDRINUSE from another process: the cursor has already moved past this pair.
      rtp?.close();
      allocator.release(port);
      lastError = error instanceof Error ? error.message : String(error);
    }
  }
  return { error: `no bindable RTP port pair in ${allocator.min}-${allocator.max} after ${attempts} attempts (${lastError})` };
}
