// Blind transfer of a call's far end (RFC 3515): a REFER in the call's dialog asks the peer (the
// carrier) to call `Refer-To` itself; the REFER's implicit subscription reports how that goes in
// NOTIFYs whose message/sipfrag body (RFC 3420) is the status line of the carrier's new call
// (§2.4.5). A sipfrag 2xx means the far end is handed over; a REFER refused, a sipfrag ≥ 300, a
// subscription ended without a final status, or no NOTIFY in time means it stays with us.
//
//   const target = transferTarget("+15557654321", trunk);        // SipUri | { error }
//   const transfer = new BlindTransfer(dialog, { referTo, contact }, (outcome) => ...);
//   call's in-dialog NOTIFY → transfer.notify(req, tx);  call ended → transfer.stop()
//
// The other way round, a REFER from the trunk (the trunk's referPolicy: accept) makes us the
// transferee (RFC 5589 §6): `referTarget(req)` reads its Refer-To, `notifyReferProgress` reports
// the new call's progress to the transferor in NOTIFYs of the REFER's implicit subscription.
//
//   const target = referTarget(req);                               // { uri } | { status, reason }
//   notifyReferProgress(dialog, { status: 100 }, contact);  ...  notifyReferProgress(dialog, { status: 200, final: true }, contact)
import type { Dialog } from "../sip/dialog.ts";
import { formatUri, NO_PARAMS, NO_URI_HEADERS, parseNameAddr, parseUri, reasonPhrase, type NameAddr, type SipRequest, type SipUri } from "../sip/message.ts";
import type { ServerTransaction } from "../sip/transaction.ts";

export type TransferOutcome =
  | { ok: true; sipStatus: number }
  /** rejected: the REFER got a non-2xx (or nothing); failed: the sipfrag said so, or the subscription ended without a final status; timeout: no NOTIFY in time. */
  | { ok: false; reason: "rejected" | "failed" | "timeout"; sipStatus?: number };

/** RFC 3515 §2.4.4: the first NOTIFY follows the REFER's acceptance at once; 64·T1 is the transaction-level patience. */
export const FIRST_NOTIFY_TIMEOUT_MS = 32_000;

/**
 * `to` as the Refer-To URI: a full sip:/sips: URI as given, or a number or user name (RFC 3261 §25.1
 * user characters) at the trunk's domain.
 */
export function transferTarget(to: string, trunk: { domain: string; port?: number } | undefined): SipUri | { error: string } {
  const text = to.trim();
  if (/^sips?:/i.test(text)) {
    const uri = parseUri(text);
    return uri?.host ? uri : { error: "is not a valid SIP URI" };
  }
  if (!/^[A-Za-z0-9\-_.!~*'()+&=$,;?/]{1,64}$/.test(text)) return { error: "must be a number, a user name or a sip: URI" };
  if (!trunk) return { error: "needs a full sip: URI: the call has no trunk to take a domain from" };
  return { scheme: "sip", user: text, host: trunk.domain, port: trunk.port, params: NO_PARAMS, headers: NO_URI_HEADERS };
}

/**
 * The Refer-To of a REFER we are asked to act on: exactly one (RFC 3515 §2.4.1), a sip:/sips: URI
 * (we place SIP calls only). A Replaces header in it asks for an attended transfer (RFC 3891 §3,
 * RFC 5589 §7), which we cannot perform: our new call would have to replace a dialog we do not
 * hold. That is 501 (the functionality is missing) rather than 603, which would say the transfer
 * was refused by choice and invite no other attempt.
 */
export function referTarget(req: SipRequest): { uri: SipUri } | { status: number; reason: string } {
  const values = req.getHeaders("refer-to");
  if (values.length !== 1) return { status: 400, reason: values.length === 0 ? "Missing Refer-To" : "More Than One Refer-To" };
  const uri = parseNameAddr(values[0]!)?.uri;
  if (!uri || !uri.host || (uri.scheme !== "sip" && uri.scheme !== "sips")) return { status: 416, reason: "Refer-To Must Be A sip: Or sips: URI" };
  if ([...uri.headers.keys()].some((name) => name.toLowerCase() === "replaces")) return { status: 501, reason: "Attended Transfer (Replaces) Not Supported" };
  return { uri: { ...uri, headers: NO_URI_HEADERS } };
}

/**
 * A NOTIFY of the refer subscription (RFC 3515 §2.4.4-2.4.5): the new call's status line as a
 * message/sipfrag body; a final status ends the subscription (RFC 6665 §4.2.2, reason noresource).
 * Resolves to whether the subscription lives on (the subscriber answered 2xx).
 */
export async function notifyReferProgress(dialog: Dialog, progress: { status: number; final?: boolean }, contact: NameAddr): Promise<boolean> {
  const state = progress.final ? "terminated;reason=noresource" : "active;expires=60";
  const notify = dialog.createRequest("NOTIFY", {
    headers: [["Event", "refer"], ["Subscription-State", state]],
    body: `SIP/2.0 ${progress.status} ${reasonPhrase(progress.status)}\r\n`,
    contentType: "message/sipfrag;version=2.0",
    contact,
  });
  const outcome = await dialog.sendRequest(notify).outcome;
  // RFC 6665 §4.2.2: a NOTIFY refused (or unanswered) ends the subscription.
  return outcome.kind === "final" && outcome.response.status < 300;
}

/** The status code of a message/sipfrag body's status line ("SIP/2.0 200 OK"), RFC 3420 §2. */
export function sipfragStatus(body: string): number | undefined {
  const match = /^SIP\/2\.0 ([1-6][0-9]{2})(?: |\r?\n|$)/.exec(body.trimStart());
  return match ? Number(match[1]) : undefined;
}

/** RFC 6665 §8.2.3 (RFC 3265 §7.2.3) Subscription-State: its state and expires parameter. */
function subscriptionState(header: string | undefined): { state: string; expiresSec?: number } {
  const [state = "", ...params] = (header ?? "").split(";").map((p) => p.trim());
  const expires = params.find((p) => /^expires=\d+$/i.test(p));
  return { state: state.toLowerCase(), ...(expires ? { expiresSec: Number(expires.split("=")[1]) } : {}) };
}

export class BlindTransfer {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private settled = false;

  constructor(
    private readonly dialog: Dialog,
    o: { referTo: SipUri; contact: NameAddr; firstNotifyTimeoutMs?: number },
    private readonly done: (outcome: TransferOutcome) => void,
  ) {
    // RFC 3515 §2.1, §2.4.1: one Refer-To; the REFER carries a Contact (it creates a subscription usage).
    const refer = dialog.createRequest("REFER", { headers: [["Refer-To", `<${formatUri(o.referTo)}>`]], contact: o.contact });
    this.arm(o.firstNotifyTimeoutMs ?? FIRST_NOTIFY_TIMEOUT_MS);
    dialog.sendRequest(refer).outcome.then((outcome) => {
      if (outcome.kind !== "final") return this.settle({ ok: false, reason: "rejected" });
      const status = outcome.response.status;
      // §2.4.2: 202 Accepted (any 2xx) starts the subscription; anything else ends the transfer.
      if (status >= 300) this.settle({ ok: false, reason: "rejected", sipStatus: status });
    });
  }

  /** An in-dialog NOTIFY: answered here (200, or why not), and followed when it is the refer subscription's. */
  notify(req: SipRequest, tx: ServerTransaction): void {
    const event = req.getHeader("event")?.split(";")[0]?.trim().toLowerCase();
    // RFC 6665 §8.2.1 / RFC 3265 §7.2.1: only the "refer" event package is subscribed here.
    if (event !== "refer") return void tx.respond(489, "Bad Event", { headers: [["Allow-Events", "refer"]] });
    if (this.settled) return void tx.respond(481, "Subscription Does Not Exist");
    const status = req.contentType?.toLowerCase().startsWith("message/sipfrag") ? sipfragStatus(req.bodyText) : undefined;
    if (status === undefined) return void tx.respond(400, "Missing Or Bad sipfrag Body");
    tx.respond(200);
    const { state, expiresSec } = subscriptionState(req.getHeader("subscription-state"));
    if (status >= 200 && status < 300) return this.settle({ ok: true, sipStatus: status });
    if (status >= 300) return this.settle({ ok: false, reason: "failed", sipStatus: status });
    if (state === "terminated") return this.settle({ ok: false, reason: "failed", sipStatus: status });
    // Still trying: the subscription lasts as long as the notifier said, without a refresh from us.
    this.arm((expiresSec ?? FIRST_NOTIFY_TIMEOUT_MS / 1000) * 1000);
  }

  /** The call ended: nothing more to follow. */
  stop(): void {
    this.settled = true;
    clearTimeout(this.timer);
  }

  private arm(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.settle({ ok: false, reason: "timeout" }), ms);
  }

  private settle(outcome: TransferOutcome): void {
    if (this.settled) return;
    this.stop();
    this.done(outcome);
  }
}
