// Blind transfer's own logic (src/calls/transfer.ts) with the dialog faked: the Refer-To target,
// the sipfrag status line, and how the REFER's answer and the NOTIFYs settle the transfer —
// including the ends a SIPp carrier is not asked to play (no NOTIFY at all, a subscription ended
// without a final status, NOTIFYs of another event package). test/interop/calls-transfer.test.ts
// drives the same code against SIPp.
import { describe, expect, test } from "bun:test";
import { BlindTransfer, referTarget, sipfragStatus, transferTarget, type TransferOutcome } from "../../src/calls/transfer.ts";
import type { Dialog } from "../../src/sip/dialog.ts";
import { formatUri, parseUri, type SipRequest } from "../../src/sip/message.ts";
import { parseMessage } from "../../src/sip/parser.ts";
import type { ClientOutcome, ServerTransaction } from "../../src/sip/transaction.ts";
import { until } from "../helpers/until.ts";

describe("transferTarget", () => {
  const trunk = { domain: "sip.carrier.example", port: 5070 };
  test("a number or user name goes to the trunk's domain; a sip: URI is kept", () => {
    expect(formatUri(transferTarget("+15557654321", trunk) as never)).toBe("sip:+15557654321@sip.carrier.example:5070");
    expect(formatUri(transferTarget("desk.42", { domain: "10.0.0.1" }) as never)).toBe("sip:desk.42@10.0.0.1");
    expect(formatUri(transferTarget(" sips:bob@example.net;transport=tls ", trunk) as never)).toBe("sips:bob@example.net;transport=tls");
  });
  test("anything else says why", () => {
    expect(transferTarget("two words", trunk)).toEqual({ error: "must be a number, a user name or a sip: URI" });
    expect(transferTarget("<sip:x@y>", trunk)).toEqual({ error: "must be a number, a user name or a sip: URI" });
    expect(transferTarget("sip:", trunk)).toEqual({ error: "is not a valid SIP URI" });
    expect(transferTarget("1234", undefined)).toEqual({ error: "needs a full sip: URI: the call has no trunk to take a domain from" });
  });
});

test("sipfragStatus reads the status line, and only a status line", () => {
  expect(sipfragStatus("SIP/2.0 200 OK\r\n")).toBe(200);
  expect(sipfragStatus("SIP/2.0 100 Trying")).toBe(100);
  expect(sipfragStatus("\r\nSIP/2.0 503 Service Unavailable\r\nRetry-After: 5\r\n\r\n")).toBe(503);
  expect(sipfragStatus("INVITE sip:a@b SIP/2.0")).toBeUndefined();
  expect(sipfragStatus("SIP/2.0 2000 OK")).toBeUndefined();
  expect(sipfragStatus("")).toBeUndefined();
});

/** A dialog that records the requests sent in it; each one's outcome is settled by the test. */
function fakeDialog() {
  const sent: { method: string; headers: [string, string][]; contact?: unknown; answer(o: ClientOutcome): void }[] = [];
  const dialog = {
    createRequest: (method: string, o: { headers?: [string, string][]; contact?: unknown }) => ({ method, headers: o.headers ?? [], contact: o.contact }),
    sendRequest: (req: { method: string; headers: [string, string][]; contact?: unknown }) => {
      let answer: (o: ClientOutcome) => void = () => {};
      const outcome = new Promise<ClientOutcome>((resolve) => (answer = resolve));
      sent.push({ ...req, answer });
      return { outcome };
    },
  };
  return { dialog: dialog as unknown as Dialog, sent };
}

const status = (code: number): ClientOutcome => ({ kind: "final", response: { status: code } as never });

function notify(o: { event?: string; state?: string; body?: string; contentType?: string }): SipRequest {
  const body = o.body ?? "";
  const text =
    "NOTIFY sip:trunkline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK1\r\nFrom: <sip:c@127.0.0.1>;tag=a\r\nTo: <sip:t@127.0.0.1>;tag=b\r\n" +
    "Call-ID: x\r\nCSeq: 1 NOTIFY\r\nMax-Forwards: 70\r\n" +
    (o.event !== undefined ? `Event: ${o.event}\r\n` : "") +
    (o.state !== undefined ? `Subscription-State: ${o.state}\r\n` : "") +
    (body ? `Content-Type: ${o.contentType ?? "message/sipfrag"}\r\n` : "") +
    `Content-Length: ${body.length}\r\n\r\n${body}`;
  const parsed = parseMessage(new TextEncoder().encode(text), "datagram");
  if (!parsed.ok) throw new Error(parsed.error.reason);
  return parsed.message as SipRequest;
}

function answer(req: SipRequest, transfer: BlindTransfer): number {
  let code = 0;
  transfer.notify(req, { respond: (s: number) => void (code = s) } as unknown as ServerTransaction);
  return code;
}

function start(o: { firstNotifyTimeoutMs?: number } = {}) {
  const { dialog, sent } = fakeDialog();
  const outcomes: TransferOutcome[] = [];
  const transfer = new BlindTransfer(
    dialog,
    { referTo: parseUri("sip:+15557654321@carrier.example")!, contact: { uri: parseUri("sip:127.0.0.1:5060")!, params: new Map() }, ...o },
    (outcome) => void outcomes.push(outcome),
  );
  return { transfer, sent, outcomes };
}

describe("BlindTransfer", () => {
  test("sends one REFER with Refer-To and a Contact; 100 then 200 sipfrag settle it as done, once", async () => {
    const { transfer, sent, outcomes } = start();
    expect(sent.map((r) => r.method)).toEqual(["REFER"]);
    expect(sent[0]!.headers).toEqual([["Refer-To", "<sip:+15557654321@carrier.example>"]]);
    expect(sent[0]!.contact).toBeDefined();
    sent[0]!.answer(status(202));
    expect(answer(notify({ event: "refer", state: "active;expires=60", body: "SIP/2.0 100 Trying\r\n" }), transfer)).toBe(200);
    expect(outcomes).toEqual([]);
    expect(answer(notify({ event: "refer;id=1", state: "terminated;reason=noresource", body: "SIP/2.0 200 OK\r\n" }), transfer)).toBe(200);
    expect(outcomes).toEqual([{ ok: true, sipStatus: 200 }]);
    // The subscription is over: a late NOTIFY matches nothing.
    expect(answer(notify({ event: "refer", state: "terminated", body: "SIP/2.0 200 OK\r\n" }), transfer)).toBe(481);
    expect(outcomes.length).toBe(1);
  });

  test("a refused REFER is rejected with its status", async () => {
    const { sent, outcomes } = start();
    sent[0]!.answer(status(603));
    await until(() => outcomes.length > 0);
    expect(outcomes).toEqual([{ ok: false, reason: "rejected", sipStatus: 603 }]);
  });

  test("a REFER that gets no answer at all is rejected", async () => {
    const { sent, outcomes } = start();
    sent[0]!.answer({ kind: "timeout" });
    await until(() => outcomes.length > 0);
    expect(outcomes).toEqual([{ ok: false, reason: "rejected" }]);
  });

  test("no NOTIFY in time is a timeout", async () => {
    const { sent, outcomes } = start({ firstNotifyTimeoutMs: 50 });
    sent[0]!.answer(status(202));
    await until(() => outcomes.length > 0);
    expect(outcomes).toEqual([{ ok: false, reason: "timeout" }]);
  });

  test("a subscription terminated without a final status failed; other packages and bodies are refused and change nothing", () => {
    const { transfer, outcomes } = start();
    expect(answer(notify({ event: "presence", state: "active", body: "SIP/2.0 200 OK" }), transfer)).toBe(489);
    expect(answer(notify({ state: "active", body: "SIP/2.0 200 OK" }), transfer)).toBe(489);
    expect(answer(notify({ event: "refer", state: "active", body: "SIP/2.0 200 OK", contentType: "text/plain" }), transfer)).toBe(400);
    expect(answer(notify({ event: "refer", state: "active" }), transfer)).toBe(400);
    expect(outcomes).toEqual([]);
    expect(answer(notify({ event: "refer", state: "terminated;reason=timeout", body: "SIP/2.0 180 Ringing" }), transfer)).toBe(200);
    expect(outcomes).toEqual([{ ok: false, reason: "failed", sipStatus: 180 }]);
  });

  test("stop() (the call ended) settles nothing: no outcome, not even its timer's, later NOTIFYs get 481", async () => {
    const { transfer, outcomes } = start({ firstNotifyTimeoutMs: 10 });
    transfer.stop();
    expect(answer(notify({ event: "refer", state: "terminated", body: "SIP/2.0 200 OK" }), transfer)).toBe(481);
    // A transfer started after it with a longer timeout has timed out: the stopped one's timer would have fired by then.
    const later = start({ firstNotifyTimeoutMs: 30 });
    await until(() => later.outcomes.length > 0);
    expect(outcomes).toEqual([]);
  });
});

describe("referTarget (a REFER from the trunk, we the transferee)", () => {
  function refer(referTo: string[]): SipRequest {
    const text =
      "REFER sip:trunkline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK2\r\nFrom: <sip:c@127.0.0.1>;tag=a\r\nTo: <sip:t@127.0.0.1>;tag=b\r\n" +
      "Call-ID: y\r\nCSeq: 2 REFER\r\nMax-Forwards: 70\r\n" +
      referTo.map((v) => `Refer-To: ${v}\r\n`).join("") +
      "Content-Length: 0\r\n\r\n";
    const parsed = parseMessage(new TextEncoder().encode(text), "datagram");
    if (!parsed.ok) throw new Error(parsed.error.reason);
    return parsed.message as SipRequest;
  }

  test("one sip:/sips: Refer-To is the target", () => {
    const target = referTarget(refer(["<sip:+15557654321@sip.carrier.example:5070>"]));
    expect("uri" in target && formatUri(target.uri)).toBe("sip:+15557654321@sip.carrier.example:5070");
    expect(referTarget(refer(["sips:bob@example.net"]))).toMatchObject({ uri: { scheme: "sips", user: "bob" } });
  });

  test("none or two is 400 (RFC 3515 §2.4.1), another scheme 416, Replaces (attended transfer) 501", () => {
    expect(referTarget(refer([]))).toEqual({ status: 400, reason: "Missing Refer-To" });
    expect(referTarget(refer(["<sip:a@h>", "<sip:b@h>"]))).toEqual({ status: 400, reason: "More Than One Refer-To" });
    expect(referTarget(refer(["<tel:+15557654321>"]))).toMatchObject({ status: 416 });
    expect(referTarget(refer(["<sip:a@h?Replaces=x%40y%3Bto-tag%3D1%3Bfrom-tag%3D2>"]))).toMatchObject({ status: 501 });
    expect(referTarget(refer(["<sip:a@h?replaces=x>"]))).toMatchObject({ status: 501 });
  });
});
