// RTP port allocation over the configured range (rtp.portMin–rtp.portMax): RTP on an even port, RTCP on
// the odd port above it (RFC 3550 §11), both bound so a peer without rtcp-mux can use the pair.
//
//   const allocator = new RtpPortAllocator({ min: 10000, max: 20000 });
//   const pair = await bindRtpPair(allocator, "0.0.0.0", { rtp, rtcp }, io);  // { rtp, rtcp, port } | { error }
//   pair.close();                                                           // closes both sockets, frees the port
//
// Ports are drawn at random (crypto-strength) from the free pairs, so the next call's port cannot be
// guessed from this one's (an RTP sprayer must cover the whole range). A released pair waits in a
// first-in first-out cooling queue, behind the pairs released before it, while its old peer may still
// send a few packets; it returns to the random pool once half the range is cooling, or sooner when
// nothing else is free. Reserving and releasing are O(1).
import type { DatagramHandlers, DatagramSocket, UdpIo } from "./udp-io.ts";

const RANDOM_BATCH = 256;

export class RtpPortAllocator {
  readonly min: number;
  readonly max: number;
  /** pair indices free to draw: the first `freeCount` entries, in no order */
  private readonly free: Int32Array;
  private freeCount: number;
  /** released pair indices, oldest first: a ring of `coolingCount` entries from `coolingHead` */
  private readonly cooling: Int32Array;
  private coolingHead = 0;
  private coolingCount = 0;
  private readonly inUse: Uint8Array;
  private usedCount = 0;
  private readonly random = new Uint32Array(RANDOM_BATCH);
  private randomLeft = 0;

  constructor(range: { min: number; max: number }) {
    const min = range.min % 2 === 0 ? range.min : range.min + 1;
    if (!(min >= 1024 && range.max <= 65535 && min + 1 <= range.max)) {
      throw new RangeError(`invalid RTP port range ${range.min}-${range.max}`);
    }
    this.min = min;
    this.max = range.max;
    const capacity = this.capacity;
    this.free = new Int32Array(capacity);
    for (let i = 0; i < capacity; i++) this.free[i] = i;
    this.freeCount = capacity;
    this.cooling = new Int32Array(capacity);
    this.inUse = new Uint8Array(capacity);
  }

  /** Number of even/odd pairs in the range. */
  get capacity(): number {
    return Math.floor((this.max - this.min + 1) / 2);
  }

  get used(): number {
    return this.usedCount;
  }

  /** Reserves a random free even port, or undefined when the range is exhausted. */
  reserve(): number | undefined {
    let index: number;
    if (this.freeCount > 0) {
      const at = this.nextRandom() % this.freeCount;
      index = this.free[at]!;
      this.free[at] = this.free[--this.freeCount]!;
    } else if (this.coolingCount > 0) {
      index = this.takeCoolest();
    } else {
      return undefined;
    }
    this.inUse[index] = 1;
    this.usedCount++;
    return this.min + 2 * index;
  }

  release(port: number): void {
    const index = (port - this.min) / 2;
    if (!Number.isInteger(index) || index < 0 || index >= this.capacity || this.inUse[index] === 0) return;
    this.inUse[index] = 0;
    this.usedCount--;
    this.cooling[(this.coolingHead + this.coolingCount) % this.capacity] = index;
    this.coolingCount++;
    // Half the range cooling: the longest-released pair rejoins the draw, so ports stay unpredictable.
    if (this.coolingCount > this.capacity / 2) this.free[this.freeCount++] = this.takeCoolest();
  }

  private takeCoolest(): number {
    const index = this.cooling[this.coolingHead]!;
    this.coolingHead = (this.coolingHead + 1) % this.capacity;
    this.coolingCount--;
    return index;
  }

  private nextRandom(): number {
    if (this.randomLeft === 0) {
      crypto.getRandomValues(this.random);
      this.randomLeft = RANDOM_BATCH;
    }
    return this.random[--this.randomLeft]!;
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
      // EADDRINUSE from another process: the pair cools down like any released one.
      rtp?.close();
      allocator.release(port);
      lastError = error instanceof Error ? error.message : String(error);
    }
  }
  return { error: `no bindable RTP port pair in ${allocator.min}-${allocator.max} after ${attempts} attempts (${lastError})` };
}
