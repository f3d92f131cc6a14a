// The trunk service of the running process: feeds the trunk manager from the store (and every
// trunk change made through the API or a config reload) and un-registers every trunk on shutdown.
// Its status routes: src/api/routes/services.ts.
//
//   const trunks = new TrunkService(ctx, stack);   // stack: the started SipStack
//   trunks.manager                                 // for the calls layer: candidates(), acquireCall()
//   await trunks.afterBeat()                       // after each heartbeat: registration leases (cluster.front)
import type { AppContext, Service } from "../app.ts";
import { parseFront } from "../cluster/front.ts";
import { createResolver, type Resolver } from "../sip/resolver.ts";
import type { SipStack } from "../sip/stack.ts";
import { TrunkManager } from "./manager.ts";
import { stackPort } from "./sipPort.ts";

export class TrunkService implements Service {
  readonly name = "trunks";
  readonly manager: TrunkManager;
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly ctx: AppContext, stack: SipStack, o: { resolver?: Resolver } = {}) {
    const { front, deadAfterMs } = ctx.config.cluster;
    this.manager = new TrunkManager({
      port: stackPort(stack),
      resolver: o.resolver ?? createResolver(),
      nodeId: ctx.nodeId,
      // With a front, each registering trunk is registered by one node of the cluster (a lease).
      ...(front ? { cluster: { nodeId: ctx.nodeId, leases: ctx.store.registrations, leaseMs: deadAfterMs, front: parseFront(front) } } : {}),
    });
  }

  /** The lease of each registering trunk is renewed (or taken over) with the node's heartbeat. */
  afterBeat(): Promise<void> {
    return this.manager.syncLeases();
  }

  start(): void {
    this.unsubscribe = this.ctx.store.changes.subscribe((change) => {
      if (change.entity === "trunk") this.manager.apply(this.ctx.store.trunks.list());
    });
    this.manager.apply(this.ctx.store.trunks.list());
  }

  async stop(deadline: number): Promise<void> {
    this.unsubscribe?.();
    await this.manager.stop(deadline);
  }
}
