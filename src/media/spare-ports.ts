// Spare RTP port pairs: pairs a media worker binds ahead of need, so that a call's answer does not
// wait for the worker to bind one. Under load the worker is busy with a mixer tick (all its
// channels' frames, every 20 ms) when a bind arrives, and the reply waits for the main thread's
// next turn too: at 1,000 calls/s that round trip was 7–9 ms of an 8–12 ms median INVITE→200 and
// most of its p99 (README, "Calls per second").
//
//   const spares = new SparePorts((m) => host.send(m));
//   const port = spares.take(allocator, "0.0.0.0");   // a bound pair, or undefined: bind one as before
//   spares.onSpared(port) / spares.onSpareFailed(port) // the worker's replies
//   spares.clear();                                     // the worker is gone: every port goes back
//
// How many: as many as legs asked for in the last second, at most 64 (at 1,000 calls/s a 64 ms
// round trip) and a sixteenth of the port range, so a small range is never held idle. With no asks
// for two seconds the spares are closed: an idle node keeps no port bound for nobody.
import { metrics } from "../metrics.ts";
import type { ToHost } from "./media-protocol.ts";
import type { RtpPortAllocator } from "./ports.ts";

const WINDOW_MS = 1000;
const MAX_SPARES = 64;

/** Spare pairs bound and idle, every host's together. */
let idleTotal = 0;
metrics.gauge("trunkline_rtp_spare_pairs", "RTP port pairs the media workers hold bound ahead of calls (the next answers take them; closed when calls stop coming).", [], () => idleTotal);

interface Pool {
  readonly allocator: RtpPortAllocator;
  readonly address: string;
  /** bound on the worker, idle */
  readonly ready: number[];
  /** asked of the worker, not answered yet */
  opening: number;
  /** legs that asked in the current window, and in the one before */
  asks: number;
  lastAsks: number;
}

export class SparePorts {
  private readonly pools = new Map<RtpPortAllocator, Map<string, Pool>>();
  private readonly opening = new Map<number, Pool>();
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly send: (m: ToHost) => void) {}

  /** A spare pair's port for a leg binding on `address` from `allocator`'s range, or undefined. */
  take(allocator: RtpPortAllocator, address: string): number | undefined {
    const pool = this.pool(allocator, address);
    pool.asks++;
    const port = pool.ready.pop();
    if (port !== undefined) idleTotal--;
    this.fill(pool);
    return port;
  }

  onSpared(port: number): void {
    const pool = this.opening.get(port);
    if (!pool) return;
    this.opening.delete(port);
    pool.opening--;
    if (pool.ready.length >= target(pool)) return this.close(pool, port);
    pool.ready.push(port);
    idleTotal++;
  }

  /** The pair could not be bound (another process holds a port): it cools down like any released one. */
  onSpareFailed(port: number): void {
    const pool = this.opening.get(port);
    if (!pool) return;
    this.opening.delete(port);
    pool.opening--;
    pool.allocator.release(port);
  }

  /** Gives every port back to its range: the worker and its sockets are gone (or going). */
  clear(): void {
    for (const byAddress of this.pools.values()) {
      for (const pool of byAddress.values()) {
        for (const port of pool.ready) pool.allocator.release(port);
        idleTotal -= pool.ready.length;
      }
    }
    for (const [port, pool] of this.opening) pool.allocator.release(port);
    this.pools.clear();
    this.opening.clear();
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private pool(allocator: RtpPortAllocator, address: string): Pool {
    let byAddress = this.pools.get(allocator);
    if (!byAddress) this.pools.set(allocator, (byAddress = new Map()));
    let pool = byAddress.get(address);
    if (!pool) byAddress.set(address, (pool = { allocator, address, ready: [], opening: 0, asks: 0, lastAsks: 0 }));
    return pool;
  }

  private fill(pool: Pool): void {
    for (let wanted = target(pool) - pool.ready.length - pool.opening; wanted > 0; wanted--) {
      const port = pool.allocator.reserve();
      if (port === undefined) return;
      pool.opening++;
      this.opening.set(port, pool);
      this.send({ t: "spare", host: pool.address, port });
      this.timer ??= setInterval(() => this.roll(), WINDOW_MS);
      this.timer.unref?.();
    }
  }

  /** A new window: spares beyond what the last one asked for are closed. */
  private roll(): void {
    let held = this.opening.size;
    for (const byAddress of this.pools.values()) {
      for (const pool of byAddress.values()) {
        pool.lastAsks = pool.asks;
        pool.asks = 0;
        for (; pool.ready.length > target(pool); idleTotal--) this.close(pool, pool.ready.pop()!);
        held += pool.ready.length;
      }
    }
    if (held === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private close(pool: Pool, port: number): void {
    this.send({ t: "unspare", port });
    pool.allocator.release(port);
  }
}

function target(pool: Pool): number {
  return Math.min(MAX_SPARES, pool.allocator.capacity >> 4, Math.max(pool.asks, pool.lastAsks));
}
