// RFC 3262 at the UAS, between two stacks: a reliable 180 (Require: 100rel, RSeq) retransmitted
// until the PRACK, a PRACK that acknowledges nothing gets 481, the matching one 200, and the 2xx
// then confirms the same dialog; a PRACK in the confirmed dialog gets 481. And at the UAC: each
// in-order reliable 1xx PRACKed once in its early dialog (retransmissions and gaps are not), the
// answer in the PRACK, the 2xx confirming that dialog with the PRACKs' CSeq.
import { afterEach, expect, test } from "bun:test";
import { Dialog } from "../../src/sip/dialog.ts";
import { createRequest, createResponse, formatNameAddr, parseUri, type SipRequest, type SipResponse } from "../../src/sip/message.ts";
import { parseRAck, ProvisionalAcknowledgements, reliableRSeq, ReliableProvisionals, wantsReliableProvisionals, type ReliableOutcome } from "../../src/sip/reliable.ts";
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

test("a 1xx is reliable only with Require: 100rel and a valid RSeq (RFC 3262 §3, §7.1)", () => {
  const response = (status: number, headers: [string, string][]) => {
    const uri = parseUri("sip:bob@127.0.0.1")!;
    const req = createRequest({
      method: "INVITE", uri, callId: "c", cseq: 1, via: [{ protocol: "SIP/2.0", transport: "UDP", host: "127.0.0.1", port: 5060, params: new Map([["branch", "z9hG4bKa"]]) }],
      from: { uri: parseUri("sip:alice@127.0.0.1")!, params: new Map([["tag", "a"]]) }, to: { uri, params: new Map() },
    });
    return createResponse(req, status, undefined, { toTag: "b", headers });
  };
  expect(reliableRSeq(response(183, [["Require", "100rel"], ["RSeq", "42"]]))).toBe(42);
  expect(reliableRSeq(response(180, [["Require", "timer, 100rel"], ["RSeq", "4294967295"]]))).toBe(4294967295);
  expect(reliableRSeq(response(180, [["RSeq", "42"]]))).toBeUndefined();
  expect(reliableRSeq(response(180, [["Require", "100rel"]]))).toBeUndefined();
  expect(reliableRSeq(response(100, [["Require", "100rel"], ["RSeq", "1"]]))).toBeUndefined();
  for (const bad of ["0", "4294967296", "-1", "x", "1 2"]) expect(reliableRSeq(response(183, [["Require", "100rel"], ["RSeq", bad]]))).toBeUndefined();
});

test("UAC: reliable 1xx are PRACKed once each and in order, in the early dialog; the PRACK carries our answer; the 2xx confirms that dialog with the PRACKs' CSeq", async () => {
  const uac = await newStack();
  const uas = await newStack();
  const uasEnd = uas.boundEndpoints[0]!;
  const pracksSeen: { rack: string; cseq: number; body: string }[] = [];
  let sendProvisional: ((status: number, rseq: number, body?: string) => void) | undefined;
  let answer: (() => void) | undefined;
  uas.onRequest((req, tx, ctx) => {
    const early = Dialog.early(uas, req, tx, ctx);
    early.on("request", (prack, prackTx) => {
      pracksSeen.push({ rack: prack.getHeader("RAck") ?? "", cseq: prack.cseq.seq, body: prack.bodyText });
      prackTx.respond(200);
    });
    sendProvisional = (status, rseq, body) =>
      tx.respondWith(createResponse(req, status, undefined, {
        toTag: early.localTag,
        headers: [["Contact", formatNameAddr(uas.contactFor(undefined, "udp"))], ["Require", "100rel"], ["RSeq", String(rseq)]],
        ...(body ? { body, contentType: "application/sdp" } : {}),
      }));
    answer = () => early.accept(req, tx, { contact: uas.contactFor(undefined, "udp") });
  });

  const uri = parseUri(`sip:bob@127.0.0.1:${uasEnd.port}`)!;
  const invite = uac.createOutOfDialogRequest({
    method: "INVITE", uri, transport: "udp",
    from: { uri: parseUri("sip:alice@127.0.0.1")!, params: new Map() },
    to: { uri, params: new Map() },
    headers: [["Supported", "100rel"]],
  });
  const tx = uac.sendRequest(invite, uasEnd);
  const pracks = new ProvisionalAcknowledgements(uac, invite, uasEnd);
  const verdicts: string[] = [];
  tx.on("provisional", (res) => {
    if (res.status === 100) return;
    const verdict = pracks.receive(res);
    verdicts.push(verdict.kind === "discard" ? verdict.reason : verdict.kind);
    if (verdict.kind === "acknowledge") void pracks.prack(verdict, res.body.length > 0 ? { body: "answer-sdp", contentType: "application/sdp" } : undefined);
  });
  const offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n";
  await until(() => sendProvisional !== undefined);
  sendProvisional!(180, 5, undefined);
  await until(() => pracksSeen.length === 1, { what: () => pracksSeen });
  expect(pracksSeen[0]).toEqual({ rack: `5 ${invite.cseq.seq} INVITE`, cseq: invite.cseq.seq + 1, body: "" });
  // §4: the same RSeq again is a retransmission, a gap is out of order: neither is PRACKed.
  sendProvisional!(180, 5, undefined);
  sendProvisional!(183, 7, offer);
  await until(() => verdicts.length === 3, { what: () => verdicts });
  sendProvisional!(183, 6, offer);
  await until(() => pracksSeen.length === 2, { what: () => pracksSeen });
  expect(verdicts).toEqual(["acknowledge", "retransmission", "out_of_order", "acknowledge"]);
  // §5: the 1xx carried the offer, so the PRACK carries the answer.
  expect(pracksSeen[1]).toEqual({ rack: `6 ${invite.cseq.seq} INVITE`, cseq: invite.cseq.seq + 2, body: "answer-sdp" });

  answer!();
  const final = await tx.outcome;
  if (final.kind !== "final") throw new Error(final.kind);
  const early = pracks.finish(final.response);
  expect(early?.state).toBe("early");
  const dialog = Dialog.fromInvite2xx(uac, invite, final.response, tx, uasEnd, { early: early! });
  expect(dialog).toBe(early!);
  expect(dialog.state).toBe("confirmed");
  // The BYE follows the PRACKs' CSeq (the UAS would refuse a lower one with 500).
  const bye = dialog.createRequest("BYE");
  expect(bye.cseq.seq).toBe(invite.cseq.seq + 3);
  const byeOutcome = await dialog.sendRequest(bye).outcome;
  expect(byeOutcome.kind === "final" && byeOutcome.response.status).toBe(200);
  expect(pracksSeen).toHaveLength(2);
});

test("UAC: early dialogs of an INVITE that fails end with it", async () => {
  const uac = await newStack();
  const uas = await newStack();
  const uasEnd = uas.boundEndpoints[0]!;
  let reject: (() => void) | undefined;
  uas.onRequest((req, tx, ctx) => {
    const early = Dialog.early(uas, req, tx, ctx);
    early.on("request", (_prack, prackTx) => {
      prackTx.respond(200);
      reject = () => tx.respond(486, "Busy Here", { toTag: early.localTag });
    });
    tx.respondWith(createResponse(req, 183, undefined, {
      toTag: early.localTag,
      headers: [["Contact", formatNameAddr(uas.contactFor(undefined, "udp"))], ["Require", "100rel"], ["RSeq", "1"]],
    }));
  });
  const uri = parseUri(`sip:bob@127.0.0.1:${uasEnd.port}`)!;
  const invite = uac.createOutOfDialogRequest({
    method: "INVITE", uri, transport: "udp",
    from: { uri: parseUri("sip:alice@127.0.0.1")!, params: new Map() },
    to: { uri, params: new Map() },
    headers: [["Require", "100rel"]],
  });
  const tx = uac.sendRequest(invite, uasEnd);
  const pracks = new ProvisionalAcknowledgements(uac, invite, uasEnd);
  const prackOutcomes: Promise<unknown>[] = [];
  tx.on("provisional", (res) => {
    const verdict = pracks.receive(res);
    if (verdict.kind === "acknowledge") prackOutcomes.push(pracks.prack(verdict));
  });
  await until(() => reject !== undefined);
  await Promise.all(prackOutcomes);
  expect(uac.dialogs.size).toBe(1);
  reject!();
  const final = await tx.outcome;
  expect(final.kind === "final" && final.response.status).toBe(486);
  expect(pracks.finish(final.kind === "final" ? final.response : undefined)).toBeUndefined();
  expect(uac.dialogs.size).toBe(0);
});
