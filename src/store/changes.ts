// Change notifications for managed objects, whether the change came from the API or from a
// config (re)load. Subscribers (trunk service, call routing) re-read what they need from the store.
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
