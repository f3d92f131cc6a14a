// The dialogs a stack knows, by dialog id (RFC 3261 §12): where in-dialog requests are dispatched
// (§12.2.2). Dialogs enter it when they are established (Dialog.answer / Dialog.fromInvite2xx) and
// leave it when they end; only the layer above creates them (it answers or places a call), so the
// table is bounded by that layer's call limits, never by what a peer sends.
import type { Dialog } from "./dialog.ts";
import type { SipRequest } from "./message.ts";

/** What a dialog needs to enter and leave its stack's table. */
export interface DialogRegistry {
  add(dialog: Dialog): void;
  remove(dialog: Dialog): void;
}

export function dialogId(callId: string, localTag: string, remoteTag: string): string {
  return `${callId}|${localTag}|${remoteTag}`;
}

export class DialogTable implements DialogRegistry {
  private readonly byId = new Map<string, Dialog>();

  add(dialog: Dialog): void {
    this.byId.set(dialog.id, dialog);
  }

  remove(dialog: Dialog): void {
    if (this.byId.get(dialog.id) === dialog) this.byId.delete(dialog.id);
  }

  /** The dialog an inbound request belongs to: at the UAS the local tag is the To tag (§12.2.2). */
  match(req: SipRequest): Dialog | undefined {
    return this.byId.get(dialogId(req.callId, req.to.params.get("tag") ?? "", req.from.params.get("tag") ?? ""));
  }

  get size(): number {
    return this.byId.size;
  }

  values(): IterableIterator<Dialog> {
    return this.byId.values();
  }

  /** Forgets every dialog without signalling (stack shutdown). */
  terminateAll(): void {
    for (const dialog of [...this.byId.values()]) dialog.terminate();
  }
}
