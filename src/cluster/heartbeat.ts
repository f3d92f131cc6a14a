// This node's heartbeat: its row in the nodes table rewritten every cluster.heartbeatMs with its
// load, in the background. Nothing on a call path waits for it: a beat still in flight when the next
// is due (a slow database) makes that one skip, and a failed beat is logged and retried next time.
//   const heartbeat = new NodeHeartbeat({ nodes: store.nodes, identity, intervalMs: 2000, load });
//   await heartbeat.start();   // the first beat (also resets the row's start time)
//   await heartbeat.stop();    // no more beats; the row stays and turns dead after deadAfterMs
import { createLogger } from "../log.ts";
import type { NodeLoad, NodeStore } from "../store/nodes.ts";

const log = createLogger("cluster");

export interface NodeIdentity {
  nodeId: string;
  sipAddress: string;
  httpUrl: string;
}

export interface NodeHeartbeatOptions {
  nodes: NodeStore;
  identity: NodeIdentity;
  intervalMs: number;
  /** Calls and media legs in progress now. */
  load: () => Omit<NodeLoad, "cpuPercent">;
  /** Runs after each beat, in the same background work (a survivor's sweep of dead nodes' calls). */
  afterBeat?: () => Promise<void>;
}

export class NodeHeartbeat {
  private timer: ReturnType<typeof setInterval> | undefined;
  private inFlight: Promise<void> | undefined;
  private cpuBefore = process.cpuUsage();
  private wallBefore = performance.now();

  constructor(private readonly options: NodeHeartbeatOptions) {}

  async start(): Promise<void> {
    await this.beat(true);
    this.timer = setInterval(() => void this.beat(false), this.options.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.inFlight;
  }

  private beat(starting: boolean): Promise<void> {
    if (this.inFlight) return this.inFlight;
    const { nodes, identity, load, afterBeat } = this.options;
    this.inFlight = nodes
      .beat({ ...identity, load: { ...load(), cpuPercent: this.cpuPercent() } }, { starting })
      .then(afterBeat)
      .catch((err: unknown) => log.error("heartbeat failed", { nodeId: identity.nodeId, err }))
      .finally(() => {
        this.inFlight = undefined;
      });
    return this.inFlight;
  }

  /** The process's CPU time (user + system, every thread) since the last beat, whole percent of one core. */
  private cpuPercent(): number {
    const cpu = process.cpuUsage();
    const wall = performance.now();
    const usedMicros = cpu.user - this.cpuBefore.user + (cpu.system - this.cpuBefore.system);
    const elapsedMicros = (wall - this.wallBefore) * 1000;
    this.cpuBefore = cpu;
    this.wallBefore = wall;
    return elapsedMicros > 0 ? Math.round((usedMicros / elapsedMicros) * 100) : 0;
  }
}
