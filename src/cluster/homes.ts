// One channel, one mixer: which node a channel's mixer lives on (its home), as this node knows it.
// Call paths ask `place()` and never wait on the database for a read: this node's own leases and
// what it knows of the other nodes' (their claim and release notices, and a refresh after each
// heartbeat) are in memory. The one write is the claim, on the first join of a channel homed nowhere
// (or on a dead node). Leases are renewed after each heartbeat and released when the channel's
// mixer closes. On SQLite the one node wins every claim: it homes everything.
//   const homes = new ChannelHomes({ store: store.homes, nodes: store.nodes, nodeId, deadAfterMs });
//   await homes.start(); homes.follow(registry);
//   await homes.place({ applicationId, channelId })  → { here: true } | { here: false, home }
//   await homes.afterBeat();    // with each heartbeat: renew, release the unused, refresh what others hold
import { createLogger } from "../log.ts";
import type { ChannelHome, ChannelHomeStore, ChannelKey, HomeNode } from "../store/channelHomes.ts";
import type { NodeStore } from "../store/nodes.ts";

const log = createLogger("cluster.homes");

export type Placement = { here: true } | { here: false; home: HomeNode };

export interface ChannelHomesOptions {
  store: ChannelHomeStore;
  nodes: NodeStore;
  nodeId: string;
  /** A node silent for this long is dead: its channels may be taken over. Also the lease's length. */
  deadAfterMs: number;
}

/** What the homes need to know of this node's mixers (the channel registry). */
export interface OpenChannels {
  isOpen(applicationId: string, channelId: string): boolean;
  onLifecycle(listener: (change: "opened" | "closed", channel: ChannelKey) => void): () => void;
}

export class ChannelHomes {
  /** Leases this node holds, with when it claimed each (performance.now()). */
  private readonly held = new Map<string, number>();
  /** Channels other nodes home, as last heard. */
  private readonly elsewhere = new Map<string, string>();
  /** Every node's addresses and whether it was alive at the last refresh. */
  private nodeTable = new Map<string, HomeNode & { alive: boolean }>();
  /** Claims and releases run one after another, so a release never overtakes a later claim. */
  private tail: Promise<unknown> = Promise.resolve();
  private channels: OpenChannels | undefined;
  private unsubscribes: (() => void)[] = [];

  constructor(private readonly options: ChannelHomesOptions) {}

  get nodeId(): string {
    return this.options.nodeId;
  }

  /** Gives up the leases a previous run of this node left, then learns who homes what. */
  async start(): Promise<void> {
    const stale = await this.options.store.releaseAll(this.nodeId);
    if (stale > 0) log.info("channel leases of the previous run released", { count: stale });
    this.unsubscribes.push(
      this.options.store.onNotice((notice) => {
        if (notice.nodeId === this.nodeId) return;
        const key = keyOf(notice);
        if (notice.action === "claimed") this.elsewhere.set(key, notice.nodeId);
        else if (this.elsewhere.get(key) === notice.nodeId) this.elsewhere.delete(key);
      }),
    );
    await this.refresh();
  }

  /** Follows this node's mixers: a channel opened without a claim is claimed, a closed one released. */
  follow(channels: OpenChannels): void {
    this.channels = channels;
    this.unsubscribes.push(
      channels.onLifecycle((change, channel) => {
        const key = keyOf(channel);
        if (change === "closed") {
          if (this.held.delete(key)) this.queue(() => this.options.store.release(channel, this.nodeId), "release");
        } else if (!this.held.has(key)) {
          this.place(channel).catch((err: unknown) => log.error("claiming an opened channel failed", { channel, err }));
        }
      }),
    );
  }

  /** Stops following; waits for the claims and releases already under way. */
  async stop(): Promise<void> {
    for (const unsubscribe of this.unsubscribes.splice(0)) unsubscribe();
    await this.tail;
  }

  /** Where the channel's mixer is: here (claimed now if it was not), or another live node. */
  async place(channel: ChannelKey): Promise<Placement> {
    const key = keyOf(channel);
    if (this.held.has(key)) return { here: true };
    const known = this.liveHome(this.elsewhere.get(key));
    if (known) return { here: false, home: known };
    const { deadAfterMs } = this.options;
    const claimed = await this.queue(() => this.options.store.claim(channel, this.nodeId, { leaseMs: deadAfterMs, deadAfterMs }), "claim");
    if (!claimed) throw new Error("the channel's home could not be claimed");
    if (claimed.won) {
      this.held.set(key, performance.now());
      this.elsewhere.delete(key);
      return { here: true };
    }
    // Taken meanwhile (by this node only if a claim of its own ran in between).
    if (!claimed.home) return this.place(channel);
    if (claimed.home.nodeId === this.nodeId) {
      this.held.set(key, performance.now());
      return { here: true };
    }
    this.elsewhere.set(key, claimed.home.nodeId);
    return { here: false, home: claimed.home };
  }

  /** After each heartbeat: renews this node's leases, releases unused ones, refreshes the rest. */
  async afterBeat(): Promise<void> {
    const { store, deadAfterMs } = this.options;
    const kept = new Set((await store.renew(this.nodeId, deadAfterMs)).map(keyOf));
    for (const [key, claimedAt] of [...this.held]) {
      // Older than a lease, so it was in the database before the renewal ran.
      if (!kept.has(key) && performance.now() - claimedAt > deadAfterMs) {
        // Another node took it over while this one could not renew (a stalled process or database).
        log.warn("a channel lease was lost to another node", { channel: JSON.parse(key) as unknown });
        this.held.delete(key);
      }
    }
    // A claim whose join never came (a failed SDP, a caller gone) is given back after a lease's length.
    for (const [key, claimedAt] of [...this.held]) {
      const channel = JSON.parse(key) as [string, string];
      if (this.channels?.isOpen(channel[0], channel[1]) === false && performance.now() - claimedAt > deadAfterMs) {
        this.held.delete(key);
        this.queue(() => store.release({ applicationId: channel[0], channelId: channel[1] }, this.nodeId), "release");
      }
    }
    await this.refresh();
  }

  /** The HTTP base URLs of the other live nodes (where a channel's home may be). */
  peerUrls(): string[] {
    return [...this.nodeTable.values()].filter((n) => n.alive && n.nodeId !== this.nodeId && n.httpUrl !== "").map((n) => n.httpUrl);
  }

  /** Every channel's home, from the database (GET /api/v1/cluster). */
  list(): Promise<ChannelHome[]> {
    return this.options.store.list();
  }

  private liveHome(nodeId: string | undefined): HomeNode | undefined {
    if (nodeId === undefined || nodeId === this.nodeId) return undefined;
    const node = this.nodeTable.get(nodeId);
    return node?.alive && node.sipAddress !== "" ? { nodeId: node.nodeId, sipAddress: node.sipAddress, httpUrl: node.httpUrl } : undefined;
  }

  private async refresh(): Promise<void> {
    const [nodes, homes] = await Promise.all([this.options.nodes.list(this.options.deadAfterMs), this.options.store.list()]);
    this.nodeTable = new Map(nodes.map((n) => [n.nodeId, { nodeId: n.nodeId, sipAddress: n.sipAddress, httpUrl: n.httpUrl, alive: n.health === "alive" }]));
    this.elsewhere.clear();
    for (const home of homes) if (home.nodeId !== this.nodeId) this.elsewhere.set(keyOf(home), home.nodeId);
  }

  private queue<T>(work: () => Promise<T>, what: string): Promise<T | undefined> {
    const run = this.tail.then(work).catch((err: unknown) => {
      log.error(`channel home ${what} failed`, { err });
      return undefined;
    });
    this.tail = run;
    return run;
  }
}

function keyOf(channel: ChannelKey): string {
  return JSON.stringify([channel.applicationId, channel.channelId]);
}
