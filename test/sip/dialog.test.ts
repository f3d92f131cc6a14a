// RFC 3261 §12/§13 dialogs between two stacks (and a raw peer where one side must misbehave):
// ACK for 2xx, 2xx retransmission until ACK, BYE, route sets, CSeq order, re-INVITE, delayed offer.
import { afterEach, expect, jest, test } from "bun:test";
import { Dialog, type DialogTermination, MAX_FORKS } from "../../src/sip/dialog.ts";
import { parseUri, type SipRequest, type SipResponse } from "../../src/sip/message.ts";
import { SipStack } from "../../src/sip/stack.ts";
import type { ClientTransaction } from "../../src/sip/transaction.ts";
import type { Endpoint, InboundContext } from "../../src/sip/transport.ts";
import { isResponse, type RawSipPeer, settled, udpPeer } from "../helpers/rawSipPeer.ts";
import { until } from "../helpers/until.ts";
import { loopbackIsTrunk } from "../helpers/loopbackTrunks.ts";

/** Scaled-down timers, for the tests that run them on the fake clock. */
const timers = { T1: 10, T2: 80, T4: 100 };
const stacks: SipStack[] = [];
const peers: RawSipPeer[] = [];

afterEach(async () => {
  jest.useRealTimers();
  for (const p of peers.splice(0)) p.close();
  for (const s of stacks.splice(0)) await s.stop();
});

const CERT = new URL("../fixtures/tls/cert.pem", import.meta.url).pathname;
const KEY = new URL("../fixtures/tls/key.pem", import.meta.url).pathname;

/**
 * A stack on a free port. Without `fakeClockTimers` it keeps the RFC timers (T1 = 500 ms): on the real
 * clock no stall of a loaded machine comes near 64*T1, so no transaction or 2xx retransmission gives
 * up in the middle of a test that is not about timers.
 */
async function newStack(transport: "udp" | "tcp" | "tls" = "udp", host = "127.0.0.1", fakeClockTimers?: typeof timers): Promise<SipStack> {
  const s = new SipStack({
    isKnownSource: loopbackIsTrunk,
    listen: [{ transport, host, port: 0 }],
    ...(fakeClockTimers ? { timers: fakeClockTimers } : {}),
    // Trust the test CA only: the certificate names 127.0.0.1, ::1 and localhost.
    ...(transport === "tls" ? { tls: { certFile: CERT, keyFile: KEY, caFile: CERT } } : {}),
  });
  await s.start();
  stacks.push(s);
  return s;
}

function invite(from: SipStack, to: Endpoint, o: { body?: string; headers?: [string, string][] } = {}): SipRequest {
  const host = to.address.includes(":") ? `[${to.address}]` : to.address;
  return from.createOutOfDialogRequest({
    method: "INVITE",
    uri: parseUri(`sip:bob@${host}:${to.port}`)!,
    from: { uri: parseUri("sip:alice@127.0.0.1")!, params: new Map() },
    to: { uri: parseUri("sip:bob@127.0.0.1")!, params: new Map() },
    transport: to.transport,
    ...(o.body ? { body: o.body, contentType: "application/sdp" } : {}),
    ...(o.headers ? { headers: o.headers } : {}),
  });
}

async function call(a: SipStack, dest: Endpoint, inv: SipRequest): Promise<{ dialog: Dialog; tx: ClientTransaction; res: SipResponse }> {
  const tx = a.sendRequest(inv, dest);
  const outcome = await tx.outcome;
  if (outcome.kind !== "final" || outcome.response.status >= 300) throw new Error(`call failed: ${JSON.stringify(outcome.kind)}`);
  return { dialog: Dialog.fromInvite2xx(a, inv, outcome.response, tx, dest), tx, res: outcome.response };
}

function answering(b: SipStack, onDialog: (d: Dialog, req: SipRequest, ctx: InboundContext) => void = () => {}): void {
  b.onRequest((req, tx, ctx) => {
    const d = Dialog.answer(b, req, tx, ctx, {
      contact: b.contactFor("bob", ctx.local.transport),
      body: "v=0\r\n",
      contentType: "application/sdp",
    });
    onDialog(d, req, ctx);
  });
}

// Timer tests run the dialogs' and transactions' timers on a fake clock (jest.useFakeTimers fakes
// setTimeout and Date.now), switched on once the sockets exist; sockets stay real. The clock moves
// only when the test moves it, so a retransmission is checked to come exactly when due and not 1 ms
// earlier, and a loaded machine cannot push the ACK past the dialog's 64*T1 give-up.
const advance = (ms: number) => jest.advanceTimersByTime(ms);

const variants = [
  { transport: "udp", host: "127.0.0.1" },
  { transport: "tcp", host: "127.0.0.1" },
  { transport: "tls", host: "127.0.0.1" },
  { transport: "udp", host: "::1" },
  { transport: "tcp", host: "::1" },
  { transport: "tls", host: "::1" },
] as const;

for (const { transport, host } of variants) {
  test(`${transport} on ${host}: INVITE/200/ACK/BYE establishes matching dialogs on both sides and ends them`, async () => {
    const a = await newStack(transport, host);
    const b = await newStack(transport, host);
    const events: string[] = [];
    let uas: Dialog | undefined;
    answering(b, (d) => {
      uas = d;
      d.on("ack", () => events.push("ack"));
      d.on("terminated", (r: DialogTermination) => events.push(`uas:${r}`));
    });
    const { dialog } = await call(a, b.boundEndpoints[0]!, invite(a, b.boundEndpoints[0]!, { body: "v=0\r\n" }));
    await until(() => events.includes("ack"));
    expect(uas!.callId).toBe(dialog.callId);
    expect(uas!.localTag).toBe(dialog.remoteTag);
    expect(uas!.remoteTag).toBe(dialog.localTag);
    expect(a.dialogs.size).toBe(1);
    const bye = await dialog.bye();
    expect(bye?.kind === "final" && bye.response.status).toBe(200);
    await until(() => events.includes("uas:bye"));
    expect(a.dialogs.size).toBe(0);
    expect(b.dialogs.size).toBe(0);
    // Ended dialogs keep no listeners: the INVITE transaction lingering with one on the UAS dialog
    // (RFC 6026 Timer L) must not keep the listeners' owner (a call) alive.
    expect([uas!.listenerCount("ack"), uas!.listenerCount("terminated"), dialog.listenerCount("terminated")]).toEqual([0, 0, 0]);
  });
}

test("after many calls every transaction table and dialog map drains once the timers ran", async () => {
  const fast = { T1: 3, T2: 24, T4: 30 };
  const a = new SipStack({ isKnownSource: loopbackIsTrunk, listen: [{ transport: "udp", host: "127.0.0.1", port: 0 }], timers: fast });
  const b = new SipStack({ isKnownSource: loopbackIsTrunk, listen: [{ transport: "udp", host: "127.0.0.1", port: 0 }], timers: fast });
  await a.start();
  await b.start();
  stacks.push(a, b);
  answering(b);
  const dest = b.boundEndpoints[0]!;
  // The clock stands still while the calls run over the sockets: no timer can fire early or late.
  // Ten calls at a time keep every burst of datagrams well inside the sockets' receive buffers.
  jest.useFakeTimers();
  for (let batch = 0; batch < 4; batch++) {
    await Promise.all(
      Array.from({ length: 10 }, async (_, i) => {
        const { dialog } = await call(a, dest, invite(a, dest));
        if (i % 2 === 0) await dialog.bye();
        else {
          // The callee hangs up this time.
          const uas = [...b.dialogs.values()].find((d) => d.callId === dialog.callId)!;
          await uas.bye();
        }
      }),
    );
  }
  const options = a.sendRequest(
    a.createOutOfDialogRequest({
      method: "OPTIONS",
      uri: parseUri(`sip:bob@127.0.0.1:${dest.port}`)!,
      from: { uri: parseUri("sip:alice@127.0.0.1")!, params: new Map() },
      to: { uri: parseUri("sip:bob@127.0.0.1")!, params: new Map() },
      transport: "udp",
    }),
    dest,
  );
  expect((await options.outcome).kind).toBe("final");
  for (const s of [a, b]) expect(s.dialogs.size).toBe(0);
  // Every call is over, but its transactions wait out their timers (J, K, L, M) ...
  expect(a.transactions.size.clients).toBeGreaterThan(0);
  expect(b.transactions.size.servers).toBeGreaterThan(0);
  // ... which all end by 64*T1.
  advance(64 * fast.T1);
  for (const s of [a, b]) {
    expect(s.transactions.size).toEqual({ clients: 0, servers: 0, merged: 0, accepted: 0, lingering: 0 });
    expect(s.dialogs.size).toBe(0);
  }
});

/** Moves the fake clock through `times` (ms from now, ascending): at each, exactly one more copy, none 1 ms before. */
async function expectCopiesAt(p: RawSipPeer, count: () => number, times: number[]): Promise<void> {
  let now = 0;
  for (const t of times) {
    const before = count();
    advance(t - 1 - now);
    await settled(p);
    expect({ at: t - 1, copies: count() }).toEqual({ at: t - 1, copies: before });
    advance(1);
    await settled(p);
    expect({ at: t, copies: count() }).toEqual({ at: t, copies: before + 1 });
    now = t;
  }
}

test("UAS retransmits its 2xx (T1 doubling to T2) until the ACK, then stops (§13.3.1.4)", async () => {
  const b = await newStack("udp", "127.0.0.1", timers);
  let uas: Dialog | undefined;
  let acked = false;
  answering(b, (d) => {
    uas = d;
    d.on("ack", () => (acked = true));
  });
  const p = await udpPeer("127.0.0.1", b.boundEndpoints[0]!.port);
  peers.push(p);
  jest.useFakeTimers();
  p.send(rawInvite("retx"));
  const ok = await p.waitFor(isResponse(200));
  const count200 = () => p.received.filter((m) => "status" in m && m.status === 200 && m.cseq.method === "INVITE").length;
  // Intervals T1, 2*T1, 4*T1, then capped at T2: 10, 30, 70, 150, 230 ms.
  await expectCopiesAt(p, count200, [10, 30, 70, 150, 230]);
  p.send(rawAck("retx", ok.to.params.get("tag")!));
  await settled(p);
  expect(acked).toBe(true);
  const atAck = count200();
  // Next copy was due at 310 ms, and the give-up at 640 ms: far past both, nothing more came.
  advance(64 * timers.T1);
  await settled(p);
  expect(count200()).toBe(atAck);
  expect(p.received.some((m) => "method" in m && m.method === "BYE")).toBe(false);
  expect(uas!.state).toBe("confirmed");
});

test("UAS without ACK gives up after 64*T1, sends BYE and ends with ackTimeout", async () => {
  const b = await newStack("udp", "127.0.0.1", timers);
  let reason: DialogTermination | undefined;
  answering(b, (d) => d.on("terminated", (r: DialogTermination) => (reason = r)));
  const p = await udpPeer("127.0.0.1", b.boundEndpoints[0]!.port);
  peers.push(p);
  jest.useFakeTimers();
  p.send(rawInvite("noack"));
  await p.waitFor(isResponse(200));
  const byes = () => p.received.filter((m): m is SipRequest => "method" in m && m.method === "BYE");
  advance(64 * timers.T1 - 1);
  await settled(p);
  expect(byes()).toEqual([]);
  expect(reason).toBeUndefined();
  // Copies went out at 10, 30, 70, then every T2 up to 630 ms; the next one due, at 710 ms, finds
  // 64*T1 passed and sends the BYE instead (and not a millisecond earlier).
  await expectCopiesAt(p, () => byes().length, [710 - (64 * timers.T1 - 1)]);
  const bye = byes()[0]!;
  expect(reason).toBe("ackTimeout");
  expect(bye.uri.user).toBe("caller");
  expect(bye.uri.port).toBe(p.port);
  expect(bye.getHeaders("Route")).toEqual(["<sip:127.0.0.1:" + p.port + ";lr>", "<sip:rr2.example.com;lr>"]);
});

test("UAC ACKs every retransmission of the 2xx with the same ACK (§13.2.2.4)", async () => {
  const a = await newStack();
  const p = await udpPeer("127.0.0.1", a.boundEndpoints[0]!.port);
  peers.push(p);
  const dest: Endpoint = { transport: "udp", address: "127.0.0.1", port: p.port };
  const inv = invite(a, dest);
  const tx = a.sendRequest(inv, dest);
  const got = (await p.waitFor((m) => "method" in m && m.method === "INVITE")) as SipRequest;
  const ok = rawOk(got, p.port);
  p.send(ok);
  const outcome = await tx.outcome;
  if (outcome.kind !== "final") throw new Error("no final");
  Dialog.fromInvite2xx(a, inv, outcome.response, tx, dest, { ack: { body: "v=0\r\n", contentType: "application/sdp" } });
  const ack = (await p.waitFor((m) => "method" in m && m.method === "ACK")) as SipRequest;
  expect(ack.cseq).toEqual({ seq: 1, method: "ACK" });
  expect(ack.bodyText).toBe("v=0\r\n"); // delayed offer: the answer rides in the ACK
  expect(ack.vias[0]!.params.get("branch")).not.toBe(inv.vias[0]!.params.get("branch"));
  p.send(ok);
  await until(() => p.received.filter((m) => "method" in m && m.method === "ACK").length === 2, { what: () => p.received.length });
  const acks = p.received.filter((m): m is SipRequest => "method" in m && m.method === "ACK");
  expect(acks[1]!.vias[0]!.params.get("branch")).toBe(ack.vias[0]!.params.get("branch")!);
});

/** Our INVITE to a raw peer, answered by its first fork's 2xx (To tag callee1): the dialog made from it. */
async function dialogWithRawPeer() {
  const a = await newStack();
  const p = await udpPeer("127.0.0.1", a.boundEndpoints[0]!.port);
  peers.push(p);
  const dest: Endpoint = { transport: "udp", address: "127.0.0.1", port: p.port };
  const inv = invite(a, dest);
  const tx = a.sendRequest(inv, dest);
  const got = (await p.waitFor((m) => "method" in m && m.method === "INVITE")) as SipRequest;
  p.send(rawOk(got, p.port));
  const outcome = await tx.outcome;
  if (outcome.kind !== "final") throw new Error("no final");
  const dialog = Dialog.fromInvite2xx(a, inv, outcome.response, tx, dest);
  return { a, p, got, dialog, tx };
}

test("a 2xx from a second fork is ACKed and that dialog ended with BYE (§13.2.2.4)", async () => {
  const { a, p, got, dialog } = await dialogWithRawPeer();
  p.send(rawOk(got, p.port).replace("tag=callee1", "tag=callee2"));
  const bye = (await p.waitFor((m) => "method" in m && m.method === "BYE")) as SipRequest;
  expect(bye.to.params.get("tag")).toBe("callee2");
  const ackTags = p.received
    .filter((m): m is SipRequest => "method" in m && m.method === "ACK")
    .map((m) => m.to.params.get("tag"));
  expect(ackTags).toEqual(["callee1", "callee2"]);
  expect(dialog.state).toBe("confirmed");
  expect(a.dialogs.size).toBe(1);
});

test("after our BYE the Accepted INVITE transaction still has the dialog's 2xx re-ACKed (§13.2.2.4), a new fork's no more", async () => {
  const { p, got, dialog, tx } = await dialogWithRawPeer();
  const count = (method: string, tag: string) =>
    p.received.filter((m) => "method" in m && m.method === method && m.to.params.get("tag") === tag).length;
  void dialog.bye();
  await until(() => count("BYE", "callee1") === 1);
  expect(tx.state).toBe("accepted"); // RFC 6026 Timer M: 64*T1
  // A fork answering after the call ended is left to its UAS; the 2xx sent after it shows it was handled.
  p.send(rawOk(got, p.port).replace("tag=callee1", "tag=callee3"));
  p.send(rawOk(got, p.port));
  await until(() => count("ACK", "callee1") === 2, { what: () => p.received.length });
  expect([count("ACK", "callee3"), count("BYE", "callee3")]).toEqual([0, 0]);
});

test("an ended dialog is not kept alive by its INVITE transaction while that stays Accepted for Timer M (RFC 6026)", async () => {
  const a = await newStack();
  const p = await udpPeer("127.0.0.1", a.boundEndpoints[0]!.port);
  peers.push(p);
  const dest: Endpoint = { transport: "udp", address: "127.0.0.1", port: p.port };
  const transactions: ClientTransaction[] = [];
  const dialogs: WeakRef<Dialog>[] = [];
  // In a function of its own, so that no variable of the test's frame refers to the dialog.
  const placeAndEnd = async (n: number) => {
    const inv = invite(a, dest);
    const tx = a.sendRequest(inv, dest);
    await until(() => p.received.filter((m) => "method" in m && m.method === "INVITE").length === n + 1);
    p.send(rawOk(p.received.filter((m): m is SipRequest => "method" in m && m.method === "INVITE")[n]!, p.port));
    const outcome = await tx.outcome;
    if (outcome.kind !== "final") throw new Error("no final");
    const dialog = Dialog.fromInvite2xx(a, inv, outcome.response, tx, dest);
    dialog.terminate();
    transactions.push(tx);
    dialogs.push(new WeakRef(dialog));
  };
  for (let n = 0; n < 10; n++) await placeAndEnd(n);
  Bun.gc(true);
  expect(transactions.map((tx) => tx.state)).toEqual(Array(10).fill("accepted"));
  // The collector scans the stack conservatively, so a stray word may keep one or two.
  expect(dialogs.filter((d) => d.deref() === undefined).length).toBeGreaterThanOrEqual(8);
});

test("a peer inventing To tags gets at most MAX_FORKS fork dialogs (ACK + BYE each); more 2xx are ignored", async () => {
  const { a, p, got } = await dialogWithRawPeer();
  for (let i = 0; i < 3 * MAX_FORKS; i++) p.send(rawOk(got, p.port).replace("tag=callee1", `tag=invented${i}`));
  // Then the first 2xx again: its re-ACK shows every invented one before it was handled.
  p.send(rawOk(got, p.port));
  const count = (method: string) => p.received.filter((m) => "method" in m && m.method === method).length;
  await until(() => p.received.filter((m) => "method" in m && m.method === "ACK" && m.to.params.get("tag") === "callee1").length === 2);
  await until(() => count("BYE") === MAX_FORKS);
  expect(count("ACK")).toBe(2 + MAX_FORKS);
  const forked = p.received.filter((m): m is SipRequest => "method" in m && m.method === "BYE").map((m) => m.to.params.get("tag"));
  expect(forked).toEqual(Array.from({ length: MAX_FORKS }, (_, i) => `invented${i}`));
  expect(a.dialogs.size).toBe(1);
});

test("route sets: UAS keeps Record-Route order, UAC reverses it; requests target the remote Contact", async () => {
  const b = await newStack();
  let uas: Dialog | undefined;
  answering(b, (d) => (uas = d));
  const p = await udpPeer("127.0.0.1", b.boundEndpoints[0]!.port);
  peers.push(p);
  p.send(rawInvite("routes"));
  const ok = await p.waitFor(isResponse(200));
  expect(ok.getHeaders("Record-Route")).toEqual(["<sip:127.0.0.1:" + p.port + ";lr>", "<sip:rr2.example.com;lr>"]);
  expect(ok.contacts[0]!.uri.user).toBe("bob");
  const info = uas!.createRequest("INFO");
  expect(info.uri.user).toBe("caller");
  expect(info.getHeaders("Route")).toEqual(["<sip:127.0.0.1:" + p.port + ";lr>", "<sip:rr2.example.com;lr>"]);
  expect(info.cseq.method).toBe("INFO");
  expect(info.to.params.get("tag")).toBe("rawtag-routes");
  expect(info.from.params.get("tag")).toBe(uas!.localTag);
  expect(uas!.nextHop()).toEqual({ transport: "udp", address: "127.0.0.1", port: p.port });
  uas!.terminate();
});

test("an in-dialog request with a lower CSeq gets 500; a re-INVITE reaches the dialog's listener and its 2xx is ACKed", async () => {
  const a = await newStack();
  const b = await newStack();
  let uas: Dialog | undefined;
  const seen: string[] = [];
  answering(b, (d) => {
    uas = d;
    d.on("request", (req, tx) => {
      seen.push(req.method);
      if (req.method === "INVITE") d.respond2xx(req, tx, { contact: b.contactFor("bob", "udp"), body: "v=0\r\n", contentType: "application/sdp" });
      else tx.respond(200);
    });
  });
  const { dialog } = await call(a, b.boundEndpoints[0]!, invite(a, b.boundEndpoints[0]!));
  const reinvite = dialog.createRequest("INVITE", { body: "v=0\r\n", contentType: "application/sdp" });
  const retx = dialog.sendRequest(reinvite);
  const out = await retx.outcome;
  expect(out.kind === "final" && out.response.status).toBe(200);
  expect(seen).toEqual(["INVITE"]);
  const reAcked = new Promise<SipRequest>((resolve) => uas!.on("ack", resolve));
  dialog.acknowledge(reinvite, retx);
  expect((await reAcked).cseq).toEqual({ seq: reinvite.cseq.seq, method: "ACK" });
  // A stale CSeq (below the re-INVITE's) is out of order.
  dialog.localSeq = 0;
  const stale = await dialog.sendRequest(dialog.createRequest("INFO")).outcome;
  expect(stale.kind === "final" && stale.response.status).toBe(500);
  expect(uas!.state).toBe("confirmed");
});

test("answering an INVITE that was CANCELled leaves no dialog and sends no 2xx", async () => {
  const b = await newStack();
  let late: Dialog | undefined;
  const cancelled = new Promise<void>((resolve) =>
    b.onRequest((req, tx, ctx) => {
      tx.on("cancel", () => {
        queueMicrotask(() => {
          late = Dialog.answer(b, req, tx, ctx, { contact: b.contactFor("bob", "udp") });
          resolve();
        });
      });
    }),
  );
  const p = await udpPeer("127.0.0.1", b.boundEndpoints[0]!.port);
  peers.push(p);
  p.send(rawInvite("late"));
  await p.waitFor(isResponse(100));
  p.send(rawInvite("late").replace("INVITE sip:", "CANCEL sip:").replace("CSeq: 7 INVITE", "CSeq: 7 CANCEL"));
  await p.waitFor(isResponse(487));
  await cancelled;
  expect(late!.state).toBe("terminated");
  expect(b.dialogs.size).toBe(0);
  // A 2xx would have been sent when the dialog was made, before the marker was read.
  await settled(p);
  expect(p.received.some((m) => "status" in m && m.status === 200 && m.cseq.method === "INVITE")).toBe(false);
});

function rawInvite(id: string): string {
  return [
    "INVITE sip:bob@127.0.0.1 SIP/2.0",
    `Via: SIP/2.0/UDP 127.0.0.1:[port];branch=z9hG4bK-${id}`,
    "Record-Route: <sip:127.0.0.1:[port];lr>, <sip:rr2.example.com;lr>",
    `From: <sip:caller@127.0.0.1>;tag=rawtag-${id}`,
    "To: <sip:bob@127.0.0.1>",
    `Call-ID: ${id}@raw`,
    "CSeq: 7 INVITE",
    "Contact: <sip:caller@127.0.0.1:[port]>",
    "Max-Forwards: 70",
    "Content-Length: 0",
    "",
    "",
  ].join("\r\n");
}

function rawAck(id: string, toTag: string): string {
  return [
    "ACK sip:bob@127.0.0.1 SIP/2.0",
    `Via: SIP/2.0/UDP 127.0.0.1:[port];branch=z9hG4bK-ack-${id}`,
    `From: <sip:caller@127.0.0.1>;tag=rawtag-${id}`,
    `To: <sip:bob@127.0.0.1>;tag=${toTag}`,
    `Call-ID: ${id}@raw`,
    "CSeq: 7 ACK",
    "Max-Forwards: 70",
    "Content-Length: 0",
    "",
    "",
  ].join("\r\n");
}

function rawOk(inv: SipRequest, port: number): string {
  return [
    "SIP/2.0 200 OK",
    ...inv.getHeaders("Via").map((v) => `Via: ${v}`),
    `From: ${inv.getHeader("From")}`,
    `To: ${inv.getHeader("To")};tag=callee1`,
    `Call-ID: ${inv.callId}`,
    `CSeq: ${inv.cseq.seq} INVITE`,
    `Contact: <sip:callee@127.0.0.1:${port}>`,
    "Content-Type: application/sdp",
    "Content-Length: 5",
    "",
    "v=0\r\n",
  ].join("\r\n");
}
