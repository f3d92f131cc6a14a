// A minimal typed event emitter for transactions and dialogs. A throwing listener is logged and
// never unwinds into the timer or socket callback that fired the event.
import { createLogger } from "../log.ts";

const log = createLogger("sip.emitter");

// biome-ignore lint: listener signatures vary per event
type EventMap = Record<string, (...args: any[]) => void>;

type Listeners<E extends EventMap> = { [K in keyof E]?: E[K][] };

export class Emitter<E extends EventMap> {
  /** Made with the first listener and dropped with the last one released: a lingering transaction keeps none. */
  private listeners: Listeners<E> | undefined;

  on<K extends keyof E>(event: K, listener: E[K]): this {
    const listeners: Listeners<E> = (this.listeners ??= {});
    (listeners[event] ??= []).push(listener);
    return this;
  }

  off<K extends keyof E>(event: K, listener: E[K]): this {
    const list = this.listeners?.[event];
    if (this.listeners && list) this.listeners[event] = list.filter((l) => l !== listener);
    return this;
  }

  listenerCount(event: keyof E): number {
    return this.listeners?.[event]?.length ?? 0;
  }

  /**
   * Drops the listeners of `events` (of every event when none are named): those that can no longer
   * fire. A transaction lives on 64*T1 after its final response (UDP), and listeners it kept would
   * pin what they close over — a whole call, its media buffers included — as long.
   */
  protected release(...events: (keyof E)[]): void {
    const listeners = this.listeners;
    if (!listeners) return;
    for (const event of events) delete listeners[event];
    if (events.length === 0 || !hasAny(listeners)) this.listeners = undefined;
  }

  protected emit<K extends keyof E>(event: K, ...args: Parameters<E[K]>): void {
    const list = this.listeners?.[event];
    if (!list) return;
    // A listener added while this event is delivered hears the next one, not this one.
    for (const listener of list.slice()) {
      try {
        listener(...args);
      } catch (error) {
        log.error("event listener threw", { event: String(event), error });
      }
    }
  }
}

function hasAny(listeners: object): boolean {
  for (const _ in listeners) return true;
  return false;
}
