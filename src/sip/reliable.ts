// Reliable provisional responses at the UAS (RFC 3262): a 1xx sent with `Require: 100rel` and an
// RSeq, retransmitted by us until the caller's PRACK acknowledges it, the PRACK answered.
//
//   const early = Dialog.early(stack, invite, tx, ctx);             // the 1xx creates the early dialog
//   const reliable = new ReliableProvisionals(early, invite, tx);
//   const outcome = await reliable.send(180, "Ringing", { contact }); // "acknowledged" | "timeout" | "gone"
//   early.accept(invite, tx, { ... });                               // the 2xx confirms the same dialog
import type { Dialog } from "./dialog.ts";
import { createResponse, formatNameAddr, type NameAddr, type SipRequest, type SipResponse } from "./message.ts";
import type { ServerTransaction } from "./transaction.ts";

export const RELIABLE_PROVISIONAL_TAG = "100rel";

/** RFC 3262 §3: the caller requires or supports reliable provisionals. */
export function wantsReliableProvisionals(invite: SipRequest): "required" | "supported" | undefined {
  const has = (values: string[]) => values.some((v) => v.trim().toLowerCase() === RELIABLE_PROVISIONAL_TAG);
  if (has(invite.require)) return "required";
  if (has(invite.supported)) return "supported";
  return undefined;
}

/** RFC 3262 §7.2: `RAck: response-num CSeq-num Method`. */
export function parseRAck(value: string | undefined): { rseq: number; cseq: number; method: string } | undefined {
  const m = /^\s*(\d{1,10})\s+(\d{1,10})\s+([A-Za-z]+)\s*$/.exec(value ?? "");
  if (!m) return undefined;
  const rseq = Number(m[1]);
  const cseq = Number(m[2]);
  if (rseq < 1 || rseq > 0xffffffff || cseq > 0xffffffff) return undefined;
  return { rseq, cseq, method: m[3]!.toUpperCase() };
}

export type ReliableOutcome = "acknowledged" | "timeout" | "gone";

export class ReliableProvisionals {
  /** §3: the first RSeq is chosen between 1 and 2**31 - 1; each later reliable 1xx adds one. */
  private nextRSeq = 1 + Math.floor(Math.random() * 0x7fffffff);
  private outstanding: { rseq: number; finish(outcome: ReliableOutcome): void } | undefined;
  private readonly onRequest = (req: SipRequest, tx: ServerTransaction) => this.receive(req, tx);

  constructor(
    private readonly dialog: Dialog,
    private readonly invite: SipRequest,
    private readonly tx: ServerTransaction,
    private readonly timers: { T1: number },
  ) {
    dialog.on("request", this.onRequest);
    tx.on("cancel", () => this.outstanding?.finish("gone"));
  }

  /**
   * §3: sends a reliable 1xx and retransmits it at T1, 2·T1, 4·T1 … until the PRACK
   * ("acknowledged"), for 64·T1 at most ("timeout": the caller should get a 5xx), or until the
   * INVITE got a final response some other way ("gone"). One at a time (§3).
   */
  send(status: number, reason: string, o: { contact: NameAddr; headers?: [string, string][]; body?: string; contentType?: string }): Promise<ReliableOutcome> {
    if (this.outstanding) throw new Error("a reliable provisional response is still unacknowledged");
    const rseq = this.nextRSeq++;
    const res: SipResponse = createResponse(this.invite, status, reason, {
      toTag: this.dialog.localTag,
      headers: [
        // §12.1.1: a response that creates a dialog copies Record-Route and carries our Contact.
        ...this.invite.getHeaders("Record-Route").map((v): [string, string] => ["Record-Route", v]),
        ["Contact", formatNameAddr(o.contact)],
        ["Require", RELIABLE_PROVISIONAL_TAG],
        ["RSeq", String(rseq)],
        ...(o.headers ?? []),
      ],
      ...(o.body !== undefined ? { body: o.body } : {}),
      ...(o.contentType !== undefined ? { contentType: o.contentType } : {}),
    });
    const { T1 } = this.timers;
    const giveUpAt = Date.now() + 64 * T1;
    return new Promise<ReliableOutcome>((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const finish = (outcome: ReliableOutcome) => {
        if (this.outstanding?.rseq !== rseq) return;
        this.outstanding = undefined;
        clearTimeout(timer);
        resolve(outcome);
      };
      this.outstanding = { rseq, finish };
      const transmit = (interval: number) => {
        if (!this.tx.pending || this.dialog.state === "terminated") return finish("gone");
        this.tx.respondWith(res);
        if (Date.now() + interval > giveUpAt) {
          timer = setTimeout(() => finish("timeout"), Math.max(0, giveUpAt - Date.now()));
          return;
        }
        timer = setTimeout(() => transmit(2 * interval), interval);
      };
      transmit(T1);
    });
  }

  /** Stops listening: the dialog is confirmed (or ended); a late PRACK gets the dialog's own answer. */
  close(): void {
    this.dialog.off("request", this.onRequest);
    this.outstanding?.finish("gone");
  }

  // §3: a PRACK that acknowledges the outstanding reliable 1xx gets 200; any other PRACK 481.
  private receive(req: SipRequest, tx: ServerTransaction): void {
    if (req.method !== "PRACK") {
      // Nothing else is served in the early dialog (the call starts at the 2xx).
      tx.respond(405, "Method Not Allowed", { headers: [["Allow", "PRACK, BYE, CANCEL"]] });
      return;
    }
    const rack = parseRAck(req.getHeader("RAck"));
    const outstanding = this.outstanding;
    if (!rack || !outstanding || rack.rseq !== outstanding.rseq || rack.cseq !== this.invite.cseq.seq || rack.method !== "INVITE") {
      tx.respond(481, "No Matching Reliable Provisional Response");
      return;
    }
    tx.respond(200);
    outstanding.finish("acknowledged");
  }
}
