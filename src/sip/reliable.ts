// Reliable provisional responses (RFC 3262).
//
// UAS: a 1xx sent with `Require: 100rel` and an RSeq, retransmitted by us until the caller's PRACK
// acknowledges it, the PRACK answered.
//
//   const early = Dialog.early(stack, invite, tx, ctx);             // the 1xx creates the early dialog
//   const reliable = new ReliableProvisionals(early, invite, tx);
//   const outcome = await reliable.send(180, "Ringing", { contact }); // "acknowledged" | "timeout" | "gone"
//   early.accept(invite, tx, { ... });                               // the 2xx confirms the same dialog
//
// UAC: each in-order reliable 1xx is PRACKed once, in its early dialog; the 2xx confirms that dialog.
//
//   const pracks = new ProvisionalAcknowledgements(stack, invite, dest);
//   tx.on("provisional", (res) => {
//     const verdict = pracks.receive(res);       // "acknowledge" (PRACK it) | "discard" | "unreliable"
//     if (verdict.kind === "acknowledge") void pracks.prack(verdict, answerSdp ? { body, contentType } : undefined);
//   });
//   const early = pracks.finish(final2xx);        // then Dialog.fromInvite2xx(..., { early })
import { createLogger } from "../log.ts";
import { Dialog, type DialogHost, MAX_FORKS } from "./dialog.ts";
import { createResponse, formatNameAddr, type NameAddr, type SipRequest, type SipResponse } from "./message.ts";
import type { ClientOutcome, ServerTransaction } from "./transaction.ts";
import type { Endpoint } from "./transport.ts";

const log = createLogger("sip.reliable");

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

/** RFC 3262 §3: a provisional response sent reliably (not 100, `Require: 100rel`, an RSeq). */
export function reliableRSeq(res: SipResponse): number | undefined {
  if (res.status <= 100 || res.status >= 200) return undefined;
  if (!res.require.some((tag) => tag.trim().toLowerCase() === RELIABLE_PROVISIONAL_TAG)) return undefined;
  const value = res.getHeader("RSeq")?.trim() ?? "";
  // §7.1: 1 to 2**32 - 1.
  if (!/^\d{1,10}$/.test(value)) return undefined;
  const rseq = Number(value);
  return rseq >= 1 && rseq <= 0xffffffff ? rseq : undefined;
}

export type ProvisionalVerdict =
  | { kind: "acknowledge"; dialog: Dialog; rseq: number; response: SipResponse }
  | { kind: "discard"; reason: "retransmission" | "out_of_order" | "too_many_dialogs" | "no_tag" }
  | { kind: "unreliable" };

/** The UAC's side of RFC 3262 for one INVITE: which reliable 1xx to PRACK, and the PRACKs. */
export class ProvisionalAcknowledgements {
  /** Per early dialog (To tag): the dialog and the RSeq of its last in-order reliable 1xx (§4). */
  private readonly early = new Map<string, { dialog: Dialog; rseq: number }>();
  private sending: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly stack: DialogHost,
    private readonly invite: SipRequest,
    private readonly dest: Endpoint,
  ) {}

  /**
   * §4: the first reliable 1xx of an early dialog sets its sequence number; a later one is
   * acknowledged only when its RSeq is one higher. The same RSeq again is a retransmission
   * (discarded: our PRACK's own transaction makes it reliable), anything else is out of order
   * (neither acknowledged nor processed further).
   */
  receive(res: SipResponse): ProvisionalVerdict {
    const rseq = reliableRSeq(res);
    if (rseq === undefined) return { kind: "unreliable" };
    const tag = res.to.params.get("tag");
    // §4: the PRACK is sent in the early dialog the 1xx created, which needs its To tag.
    if (!tag) return { kind: "discard", reason: "no_tag" };
    const known = this.early.get(tag);
    if (known) {
      if (rseq === known.rseq) return { kind: "discard", reason: "retransmission" };
      if (rseq !== known.rseq + 1) return { kind: "discard", reason: "out_of_order" };
      known.rseq = rseq;
      return { kind: "acknowledge", dialog: known.dialog, rseq, response: res };
    }
    // Early dialogs are bounded per INVITE like the forks of its 2xx, so a peer inventing tags grows nothing.
    if (this.early.size >= MAX_FORKS) return { kind: "discard", reason: "too_many_dialogs" };
    const dialog = Dialog.uacEarly(this.stack, this.invite, res, this.dest);
    this.early.set(tag, { dialog, rseq });
    return { kind: "acknowledge", dialog, rseq, response: res };
  }

  /**
   * §4 / §7.2: the PRACK for an acknowledged 1xx, in its early dialog (`RAck: RSeq CSeq-num method`),
   * carrying `sdp` when the 1xx carried the offer (§5: the answer goes in the PRACK). PRACKs go out
   * in the order they are asked for, each after the previous one's answer.
   */
  prack(verdict: Extract<ProvisionalVerdict, { kind: "acknowledge" }>, answer?: { body: string; contentType: string }): Promise<ClientOutcome | undefined> {
    const send = async (): Promise<ClientOutcome | undefined> => {
      const { dialog, rseq } = verdict;
      if (dialog.state !== "early") return undefined;
      const { seq, method } = this.invite.cseq;
      const req = dialog.createRequest("PRACK", {
        headers: [["RAck", `${rseq} ${seq} ${method}`]],
        ...(answer ? { body: answer.body, contentType: answer.contentType } : {}),
      });
      const outcome = await dialog.sendRequest(req).outcome;
      if (outcome.kind !== "final" || outcome.response.status >= 300) {
        log.warn("PRACK not accepted", { callId: this.invite.callId, rseq, outcome: outcome.kind === "final" ? outcome.response.status : outcome.kind });
      }
      return outcome;
    };
    const sent = this.sending.then(send, send);
    this.sending = sent;
    return sent;
  }

  /**
   * The INVITE's final response: a 2xx's early dialog (undefined when it has none) is handed to
   * Dialog.fromInvite2xx to confirm; every other early dialog ends (§4: no 2xx, no dialog).
   */
  finish(final?: SipResponse): Dialog | undefined {
    const tag = final && final.status < 300 ? final.to.params.get("tag") : undefined;
    const confirmed = tag ? this.early.get(tag)?.dialog : undefined;
    for (const { dialog } of this.early.values()) if (dialog !== confirmed) dialog.terminate();
    this.early.clear();
    return confirmed;
  }
}
