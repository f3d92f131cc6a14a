// Change notifications for managed objects, whether the change came from the API, a config
// (re)load, or another node sharing the PostgreSQL store. Subscribers (trunk service, call routing) re-read what they need from the store.
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

  /** A change this store just wrote: emitted here, then published to the other nodes. */
  async committed(change: StoreChange): Promise<void> {
    this.emit(change);
    await this.publisher?.(change);
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
