// RFC 3262 at the UAS, between two stacks: a reliable 180 (Require: 100rel, RSeq) retransmitted
// until the PRACK, a PRACK that acknowledges nothing gets 481, the matching one 200, and the 2xx
// then confirms the same dialog; a PRACK in the confirmed dialog gets 481.
import { afterEach, expect, test } from "bun:test";
import { Dialog } from "../../src/sip/dialog.ts";
import { parseUri, type SipRequest, type SipResponse } from "../../src/sip/message.ts";
import { parseRAck, ReliableProvisionals, wantsReliableProvisionals, type ReliableOutcome } from "../../src/sip/reliable.ts";
import { SipStack } from "../../src/sip/stack.ts";
import { loopbackIsTrunk } from "../helpers/loopbackTrunks.ts";
import { until } from "../helpers/until.ts";

const timers = { T1: 50, T2: 400 };
const stacks: SipStack[] = [];

afterEach(async () => {
  for (const s of stacks.splice(0)) await s.stop();
});

async function newStack(): Promise<SipStack> {
  const s = new SipStack({
    isKnownSource: loopbackIsTrunk,
    listen: [{ transport: "udp", host: "127.0.0.1", port: 0 }],
    allow: ["INVITE", "ACK", "CANCEL", "BYE", "PRACK"],
    supported: ["100rel"],
    timers,
  });
  await s.start();
  stacks.push(s);
  return s;
}

test("RAck and the 100rel option tag are read as RFC 3262 §7.2 / §3 say", () => {
  expect(parseRAck("776656 1 INVITE")).toEqual({ rseq: 776656, cseq: 1, method: "INVITE" });
  expect(parseRAck(" 1 314159 invite ")).toEqual({ rseq: 1, cseq: 314159, method: "INVITE" });
  for (const bad of [undefined, "", "0 1 INVITE", "1 INVITE", "x 1 INVITE", "1 2 3", "99999999999 1 INVITE"]) expect(parseRAck(bad)).toBeUndefined();
});

test("a reliable 180 is retransmitted until the PRACK; a PRACK for another RSeq gets 481, the matching one 200; the 2xx confirms the dialog", async () => {
  const uac = await newStack();
  const uas = await newStack();
  const uasEnd = uas.boundEndpoints[0]!;
  let outcome: Promise<ReliableOutcome> | undefined;
  let answer: (() => void) | undefined;
  uas.onRequest((req, tx, ctx) => {
    expect(wantsReliableProvisionals(req)).toBe("required");
    const early = Dialog.early(uas, req, tx, ctx);
    const reliable = new ReliableProvisionals(early, req, tx, uas.transactions.timers);
    outcome = reliable.send(180, "Ringing", { contact: uas.contactFor(undefined, "udp") });
    answer = () => {
      reliable.close();
      early.accept(req, tx, { contact: uas.contactFor(undefined, "udp") });
    };
  });

  const uri = parseUri(`sip:bob@127.0.0.1:${uasEnd.port}`)!;
  const invite = uac.createOutOfDialogRequest({
    method: "INVITE", uri, transport: "udp",
    from: { uri: parseUri("sip:alice@127.0.0.1")!, params: new Map() },
    to: { uri, params: new Map() },
    headers: [["Require", "100rel"]],
  });
  const tx = uac.sendRequest(invite, uasEnd);
  const ringing: SipResponse[] = [];
  tx.on("provisional", (res) => {
    if (res.status === 180) ringing.push(res);
  });
  // §3: no PRACK yet, so the same 180 (same RSeq) comes again.
  await until(() => ringing.length >= 3, { what: () => ringing.length });
  const rseq = Number(ringing[0]!.getHeader("RSeq"));
  expect(ringing[0]!.getHeader("Require")).toBe("100rel");
  expect(ringing.map((r) => Number(r.getHeader("RSeq")))).toEqual([rseq, rseq, rseq]);
  expect(ringing[0]!.to.params.get("tag")).toBeTruthy();

  let cseq = invite.cseq.seq;
  const prack = async (rack: string): Promise<number> => {
    const req: SipRequest = uac.createOutOfDialogRequest({
      method: "PRACK", uri: ringing[0]!.contacts[0]!.uri, transport: "udp",
      from: invite.from, to: ringing[0]!.to, callId: invite.callId, cseq: ++cseq,
      headers: [["RAck", rack]],
    });
    const result = await uac.sendRequest(req, uasEnd).outcome;
    if (result.kind !== "final") throw new Error(`PRACK: ${result.kind}`);
    return result.response.status;
  };
  expect(await prack(`${rseq + 1} ${invite.cseq.seq} INVITE`)).toBe(481);
  expect(await prack(`${rseq} ${invite.cseq.seq} INVITE`)).toBe(200);
  expect(await outcome).toBe("acknowledged");
  // Acknowledged: nothing is outstanding any more.
  expect(await prack(`${rseq} ${invite.cseq.seq} INVITE`)).toBe(481);

  answer!();
  const final = await tx.outcome;
  expect(final.kind === "final" && final.response.status).toBe(200);
  const res = (final as { response: SipResponse }).response;
  expect(res.to.params.get("tag")).toBe(ringing[0]!.to.params.get("tag")!);
  const dialog = Dialog.fromInvite2xx(uac, invite, res, tx, uasEnd);
  // The dialog was confirmed with the early one's CSeq history: the PRACKs counted, a PRACK now gets 481.
  dialog.localSeq = cseq;
  const late = await dialog.sendRequest(dialog.createRequest("PRACK", { headers: [["RAck", `${rseq} ${invite.cseq.seq} INVITE`]] })).outcome;
  expect(late.kind === "final" && late.response.status).toBe(481);
});
