// Change notifications for managed objects, whether the change came from the API, a config
// (re)load, or another node sharing the PostgreSQL store. Subscribers (trunk service, call routing) re-read what they need from the store.
import { AsyncLocalStorage } from "node:async_hooks";
import { createLogger } from "../log.ts";

export type ChangeAction = "created" | "updated" | "deleted";
export type StoreChange =
  | { entity: "trunk"; action: ChangeAction; id: string }
  | { entity: "application"; action: ChangeAction; id: string }
  | { entity: "inboundRoute"; action: ChangeAction; applicationId: string; sipUsername: string }
  | { entity: "callerId"; action: ChangeAction; applicationId: string; channelId: string }
  | { entity: "webhooks"; action: ChangeAction };

export type ChangeListener = (change: StoreChange) => void;

const log = createLogger("store");

export class ChangeFeed {
  private readonly listeners = new Set<ChangeListener>();

  /** Tells the other nodes about a change this node made (PostgreSQL NOTIFY); none on SQLite. */
  publisher: ((change: StoreChange) => Promise<void>) | undefined;

  /** The changes written by the transaction the running work belongs to (async context), told once it commits. */
  private readonly held = new AsyncLocalStorage<StoreChange[]>();

  /** A change this store just wrote: emitted here, then published to the other nodes. */
  async committed(change: StoreChange): Promise<void> {
    const held = this.held.getStore();
    if (held) return void held.push(change);
    this.emit(change);
    await this.publisher?.(change);
  }

  /**
   * Runs a transaction, holding back the changes its work writes: told in order once it commits,
   * dropped if it fails (nothing changed, so nobody hears of it). Writes of other work go on as ever.
   */
  async afterCommit<T>(transaction: () => Promise<T>): Promise<T> {
    const held: StoreChange[] = [];
    const result = await this.held.run(held, transaction);
    for (const change of held) await this.committed(change);
    return result;
  }

  /** Returns the function that unsubscribes. */
  subscribe(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(change: StoreChange): void {
    for (const listener of this.listeners) {
      try {
        listener(change);
      } catch (err) {
        log.error("change listener failed", { change, err });
      }
    }
  }
}

export type Source = "yaml" | "api";
