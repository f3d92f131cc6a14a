// A message tap: every SIP message the transport layer sends or admits, as raw bytes with its
// addresses, transport and time, for whoever listens (per-call traces, HEP export). The stack knows
// nothing of who listens; with no listener the transport layer skips the tap with one field check.
import type { TransportName } from "./message.ts";

export interface TappedMessage {
  direction: "sent" | "received";
  /** The message exactly as on the wire (after TLS decryption for TLS). */
  data: Uint8Array;
  transport: TransportName;
  source: { address: string; port: number };
  destination: { address: string; port: number };
  /** Epoch milliseconds with sub-millisecond precision. */
  time: number;
  /** The Call-ID (RFC 3261 §20.8) the stack parsed or built the message with; absent when it could not parse it. */
  callId?: string;
}

export type MessageTap = (message: TappedMessage) => void;

/** Listeners of the tap; `current` is undefined while nobody listens (the transport layer's one check). */
export class MessageTaps {
  private readonly listeners = new Set<MessageTap>();
  current: MessageTap | undefined;

  /** Returns the function that removes the listener. */
  add(tap: MessageTap): () => void {
    this.listeners.add(tap);
    this.rebuild();
    return () => {
      this.listeners.delete(tap);
      this.rebuild();
    };
  }

  private rebuild(): void {
    const all = [...this.listeners];
    if (all.length === 0) this.current = undefined;
    else if (all.length === 1) this.current = all[0];
    else
      this.current = (message) => {
        for (const tap of all) tap(message);
      };
  }
}

/** Wall-clock time with the monotonic clock's sub-millisecond resolution. */
export const tapTime: () => number = (() => {
  const origin = Date.now() - performance.now();
  return () => origin + performance.now();
})();
