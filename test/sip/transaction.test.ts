// RFC 3261 §17 state machines without sockets: a recording Wire and timers scaled down
// (T1=10 ms, T2=80 ms, T4=100 ms) on a fake clock (jest.useFakeTimers), so every timer's effect
// is checked at exact times, however loaded the machine running the tests is.
import { afterEach, beforeEach, expect, jest, test } from "bun:test";
import { heapStats } from "bun:jsc";
import { createResponse, parseMessage, type SipRequest, type SipResponse } from "../../src/sip/message.ts";
import { TransactionLayer, type Wire } from "../../src/sip/transaction.ts";

const T = { T1: 10, T2: 80, T4: 100 };
/** For tests that only wait a 64*T1 timer out. */
const FAST = { T1: 3, T2: 24, T4: 30 };

class RecordingWire implements Wire {
  sent: { at: number; text: string }[] = [];
  private readonly t0 = performance.now();
  fail = false;
  constructor(readonly reliable: boolean) {}
  async send(data: Uint8Array): Promise<void> {
    if (this.fail) throw new Error("connection refused");
    this.sent.push({ at: performance.now() - this.t0, text: new TextDecoder().decode(data) });
  }
  lines(): string[] {
    return this.sent.map((s) => s.text.split("\r\n")[0]!);
  }
}

beforeEach(() => {
  jest.useFakeTimers();
});
afterEach(() => {
  jest.useRealTimers();
});

/** Moves the fake clock on, firing every timer that falls due on the way. */
const advance = (ms: number) => jest.advanceTimersByTime(ms);

function parseReq(text: string): SipRequest {
  const r = parseMessage(new TextEncoder().encode(text), "datagram");
  if (!r.ok || "status" in r.message) throw new Error(`bad test request: ${JSON.stringify(!r.ok && r.error)}`);
  return r.message;
}

function req(method: string, o: { branch?: string; toTag?: string; cseq?: number; fromTag?: string } = {}): SipRequest {
  return parseReq(
    [
      `${method} sip:bob@127.0.0.1 SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:5999;branch=${o.branch ?? "z9hG4bK-tx1"}`,
      "Route: <sip:proxy.example.com;lr>",
      `From: <sip:alice@127.0.0.1>;tag=${o.fromTag ?? "a1"}`,
      `To: <sip:bob@127.0.0.1>${o.toTag ? `;tag=${o.toTag}` : ""}`,
      "Call-ID: tx-test@127.0.0.1",
      `CSeq: ${o.cseq ?? 1} ${method}`,
      "Max-Forwards: 70",
      "Content-Length: 0",
      "",
      "",
    ].join("\r\n"),
  );
}

function responseTo(request: SipRequest, status: number, toTag = "b1"): SipResponse {
  // Round-trip through the parser so the response looks like one received from the network.
  const built = createResponse(request, status, undefined, status > 100 ? { toTag } : {});
  const head = [`SIP/2.0 ${built.status} ${built.reason}`, ...built.headerFields.map((f) => `${f.name}: ${f.value}`)];
  const r = parseMessage(new TextEncoder().encode([...head, "Content-Length: 0", "", ""].join("\r\n")), "datagram");
  if (!r.ok || !("status" in r.message)) throw new Error("bad test response");
  return r.message;
}

test("non-INVITE client over UDP: timer E doubles from T1 to T2, timer F times out at 64*T1", async () => {
  const layer = new TransactionLayer(T);
  const wire = new RecordingWire(false);
  const tx = layer.startClient(req("OPTIONS"), wire);
  let timedOut = false;
  tx.on("timeout", () => {
    timedOut = true;
  });
  advance(64 * T.T1 - 1);
  expect(timedOut).toBe(false);
  advance(1);
  const outcome = await tx.outcome;
  expect(outcome.kind).toBe("timeout");
  expect(timedOut).toBe(true);
  // On the fake clock, exactly: intervals 10, 20, 40, then capped at T2=80 ms (uncapped doubling
  // would leave gaps of 160 and 320 ms), the last send at 630 ms, before timer F at 640 ms.
  expect(wire.sent.map((s) => s.at)).toEqual([0, 10, 30, 70, 150, 230, 310, 390, 470, 550, 630]);
  expect(layer.size.clients).toBe(0);
});

test("non-INVITE client over a reliable transport never retransmits; timer K is 0", async () => {
  const layer = new TransactionLayer(T);
  const wire = new RecordingWire(true);
  const request = req("OPTIONS");
  const tx = layer.startClient(request, wire);
  advance(50);
  expect(wire.sent).toHaveLength(1);
  expect(layer.receiveResponse(responseTo(request, 200))).toBe(true);
  expect((await tx.outcome).kind).toBe("final");
  advance(0);
  expect(tx.state).toBe("terminated");
});

test("non-INVITE client: a provisional moves to Proceeding where timer E fires every T2", async () => {
  const layer = new TransactionLayer(T);
  const wire = new RecordingWire(false);
  const request = req("BYE");
  const tx = layer.startClient(request, wire);
  layer.receiveResponse(responseTo(request, 100));
  expect(tx.state).toBe("proceeding");
  advance(100);
  // Timer E, armed at T1 before the provisional, fires at 10 ms and from then on every T2 (80 ms).
  expect(wire.sent.map((s) => s.at)).toEqual([0, 10, 90]);
  layer.receiveResponse(responseTo(request, 200));
  expect(tx.state).toBe("completed");
  advance(T.T4 - 1);
  expect(tx.state).toBe("completed");
  advance(1); // timer K
  expect(tx.state).toBe("terminated");
});

test("INVITE client: timer A doubles without cap until a provisional; non-2xx gets an ACK built by the transaction", async () => {
  const layer = new TransactionLayer(T);
  const wire = new RecordingWire(false);
  const invite = req("INVITE", { branch: "z9hG4bK-inv1" });
  const tx = layer.startClient(invite, wire);
  const invites = () => wire.sent.filter((x) => x.text.startsWith("INVITE"));
  advance(70);
  expect(invites().map((x) => x.at)).toEqual([0, 10, 30, 70]); // T1 doubling
  layer.receiveResponse(responseTo(invite, 180));
  const atProvisional = invites().length;
  advance(100);
  expect(invites()).toHaveLength(atProvisional);
  const busy = responseTo(invite, 486, "callee");
  layer.receiveResponse(busy);
  const outcome = await tx.outcome;
  expect(outcome.kind === "final" && outcome.response.status).toBe(486);
  const ack = parseReq(wire.sent.at(-1)!.text);
  expect(ack.method).toBe("ACK");
  expect(ack.uri.user).toBe("bob");
  expect(ack.vias).toHaveLength(1);
  expect(ack.vias[0]!.params.get("branch")).toBe("z9hG4bK-inv1");
  expect(ack.to.params.get("tag")).toBe("callee");
  expect(ack.cseq).toEqual({ seq: 1, method: "ACK" });
  expect(ack.getHeaders("Route")).toEqual(["<sip:proxy.example.com;lr>"]);
  // A retransmitted final response is answered with the same ACK; timer D then ends the transaction.
  layer.receiveResponse(busy);
  expect(wire.lines().filter((l) => l.startsWith("ACK"))).toHaveLength(2);
  expect(tx.state).toBe("completed");
  advance(64 * T.T1);
  expect(tx.state).toBe("terminated");
});

test("INVITE client: timer B reports a timeout after 64*T1 without any response", async () => {
  const layer = new TransactionLayer(FAST);
  const tx = layer.startClient(req("INVITE", { branch: "z9hG4bK-inv2" }), new RecordingWire(false));
  advance(64 * FAST.T1 - 1);
  expect(tx.state).toBe("calling");
  advance(1);
  expect((await tx.outcome).kind).toBe("timeout");
});

test("INVITE client: a provisional stops timer B (§17.1.1.2): long after 64*T1 it still waits, and the final response completes it", async () => {
  const layer = new TransactionLayer(FAST);
  const invite = req("INVITE", { branch: "z9hG4bK-inv2b" });
  const tx = layer.startClient(invite, new RecordingWire(false));
  layer.receiveResponse(responseTo(invite, 180));
  advance(4 * 64 * FAST.T1);
  expect(tx.state).toBe("proceeding");
  layer.receiveResponse(responseTo(invite, 486));
  const outcome = await tx.outcome;
  expect(outcome.kind === "final" && outcome.response.status).toBe(486);
});

test("INVITE client: 2xx moves to Accepted and later 2xx are passed up as extra2xx (RFC 6026)", async () => {
  const layer = new TransactionLayer(FAST);
  const wire = new RecordingWire(false);
  const invite = req("INVITE", { branch: "z9hG4bK-inv3" });
  const tx = layer.startClient(invite, wire);
  const extras: number[] = [];
  tx.on("extra2xx", (r) => extras.push(r.status));
  layer.receiveResponse(responseTo(invite, 200));
  expect(tx.state).toBe("accepted");
  layer.receiveResponse(responseTo(invite, 200));
  expect(extras).toEqual([200]);
  // The ACK for a 2xx is the dialog's, never the transaction's.
  expect(wire.lines().filter((l) => l.startsWith("ACK"))).toHaveLength(0);
  advance(64 * FAST.T1); // timer M
  expect(tx.state).toBe("terminated");
});

test("CANCEL waits for a provisional response, then mirrors the INVITE (§9.1)", async () => {
  const layer = new TransactionLayer(T);
  const wire = new RecordingWire(true);
  const invite = req("INVITE", { branch: "z9hG4bK-inv4" });
  const tx = layer.startClient(invite, wire);
  expect(tx.cancel()).toBeUndefined();
  expect(wire.lines().some((l) => l.startsWith("CANCEL"))).toBe(false);
  layer.receiveResponse(responseTo(invite, 180));
  const cancel = parseReq(wire.sent.at(-1)!.text);
  expect(cancel.method).toBe("CANCEL");
  expect(cancel.vias[0]!.params.get("branch")).toBe("z9hG4bK-inv4");
  expect(cancel.cseq).toEqual({ seq: 1, method: "CANCEL" });
  expect(cancel.to.params.has("tag")).toBe(false);
  expect(layer.size.clients).toBe(2);
});

test("a transport error ends the client transaction and is reported (§17.1.4)", async () => {
  const layer = new TransactionLayer(T);
  const wire = new RecordingWire(true);
  wire.fail = true;
  const tx = layer.startClient(req("OPTIONS", { branch: "z9hG4bK-fail" }), wire);
  const outcome = await tx.outcome;
  expect(outcome.kind).toBe("transportError");
  expect(tx.state).toBe("terminated");
});

test("non-INVITE server: retransmissions resend the final response; timer J ends it after 64*T1", async () => {
  const layer = new TransactionLayer(FAST);
  const wire = new RecordingWire(false);
  const request = req("OPTIONS", { branch: "z9hG4bK-srv1" });
  const tx = layer.createServer(request, wire);
  layer.matchServer(request)?.receiveRetransmission(request, wire); // Trying: absorbed
  expect(wire.sent).toHaveLength(0);
  tx.respond(200);
  layer.matchServer(request)!.receiveRetransmission(request, wire);
  expect(wire.lines()).toEqual(["SIP/2.0 200 OK", "SIP/2.0 200 OK"]);
  expect(tx.state).toBe("completed");
  advance(64 * FAST.T1);
  expect(tx.state).toBe("terminated");
  expect(layer.matchServer(request)).toBeUndefined();
});

test("INVITE server: timer G retransmits a non-2xx until the ACK, timer I then ends it", async () => {
  const layer = new TransactionLayer(T);
  const wire = new RecordingWire(false);
  const invite = req("INVITE", { branch: "z9hG4bK-srv2" });
  const tx = layer.createServer(invite, wire);
  tx.respond(486);
  advance(30); // retransmits at 10, 30, 70
  expect(wire.sent).toHaveLength(3);
  const ack = req("ACK", { branch: "z9hG4bK-srv2", toTag: tx.toTag });
  let acked = false;
  tx.on("ack", () => {
    acked = true;
  });
  layer.matchServer(ack)!.receiveRetransmission(ack, wire);
  const count = wire.sent.length;
  expect(acked).toBe(true);
  expect(tx.state).toBe("confirmed");
  advance(T.T4 + 30);
  expect(wire.sent.length).toBe(count);
  expect(tx.state).toBe("terminated");
});

test("INVITE server: without ACK, timer H fires after 64*T1 and the retransmissions stop at T2 spacing", async () => {
  const layer = new TransactionLayer(T);
  const wire = new RecordingWire(false);
  const tx = layer.createServer(req("INVITE", { branch: "z9hG4bK-srv3" }), wire);
  let timedOut = false;
  tx.on("timeout", () => {
    timedOut = true;
  });
  tx.respond(603);
  advance(64 * T.T1 - 1);
  expect(timedOut).toBe(false);
  advance(1);
  expect(timedOut).toBe(true);
  // Capped at T2=80 ms: uncapped doubling would leave gaps of 160 and 320 ms.
  expect(wire.sent.map((s) => s.at)).toEqual([0, 10, 30, 70, 150, 230, 310, 390, 470, 550, 630]);
});

test("INVITE server on a reliable transport: no retransmission, timer I is 0 after the ACK", async () => {
  const layer = new TransactionLayer(T);
  const wire = new RecordingWire(true);
  const invite = req("INVITE", { branch: "z9hG4bK-srv4" });
  const tx = layer.createServer(invite, wire);
  tx.respond(480);
  advance(60);
  expect(wire.sent).toHaveLength(1);
  const ack = req("ACK", { branch: "z9hG4bK-srv4", toTag: tx.toTag });
  layer.matchServer(ack)!.receiveRetransmission(ack, wire);
  advance(0);
  expect(tx.state).toBe("terminated");
});

test("responses of one server transaction share one To tag (§8.2.6.2); 100 Trying has none", () => {
  const layer = new TransactionLayer(T);
  const tx = layer.createServer(req("INVITE", { branch: "z9hG4bK-tag" }), new RecordingWire(true));
  const trying = tx.respond(100)!;
  const ringing = tx.respond(180)!;
  const ok = tx.respond(200)!;
  expect(trying.to.params.has("tag")).toBe(false);
  expect(ringing.to.params.get("tag")).toBe(ok.to.params.get("tag")!);
  expect(tx.respond(500)).toBeUndefined();
});

test("ACK for a 2xx matches the Accepted INVITE by dialog identifiers (RFC 6026)", () => {
  const layer = new TransactionLayer(T);
  const tx = layer.createServer(req("INVITE", { branch: "z9hG4bK-acc" }), new RecordingWire(false));
  tx.respond(200);
  expect(tx.state).toBe("accepted");
  const ack = req("ACK", { branch: "z9hG4bK-other", toTag: tx.toTag });
  expect(layer.matchServer(ack)).toBeUndefined();
  expect(layer.matchAck2xx(ack)).toBe(tx);
});

test("server matching keys on branch and sent-by; CANCEL finds its INVITE; merged requests are detected", () => {
  const layer = new TransactionLayer(T);
  const invite = req("INVITE", { branch: "z9hG4bK-m1" });
  const tx = layer.createServer(invite, new RecordingWire(false));
  expect(layer.matchServer(req("INVITE", { branch: "z9hG4bK-m1" }))).toBe(tx);
  expect(layer.matchServer(req("INVITE", { branch: "z9hG4bK-m2" }))).toBeUndefined();
  expect(layer.matchCancelTarget(req("CANCEL", { branch: "z9hG4bK-m1" }))).toBe(tx);
  expect(layer.matchCancelTarget(req("CANCEL", { branch: "z9hG4bK-m9" }))).toBeUndefined();
  expect(layer.isMerged(req("INVITE", { branch: "z9hG4bK-m2" }))).toBe(true);
  expect(layer.isMerged(req("INVITE", { branch: "z9hG4bK-m3", fromTag: "other" }))).toBe(false);
  expect(layer.isMerged(req("INVITE", { branch: "z9hG4bK-m4", cseq: 2 }))).toBe(false);
});

test("RFC 2543 matching (no magic cookie) compares the To tag of the ACK with the response's", () => {
  const layer = new TransactionLayer(T);
  const invite = req("INVITE", { branch: "old-style-1" });
  const tx = layer.createServer(invite, new RecordingWire(true));
  expect(layer.matchServer(req("INVITE", { branch: "old-style-1" }))).toBe(tx);
  tx.respond(404);
  expect(layer.matchServer(req("ACK", { branch: "old-style-1", toTag: tx.toTag }))).toBe(tx);
  expect(layer.matchServer(req("ACK", { branch: "old-style-1", toTag: "wrong" }))).toBeUndefined();
  expect(layer.matchCancelTarget(req("CANCEL", { branch: "old-style-1" }))).toBe(tx);
});

test("RFC 2543 transactions keep the tags their matching compares while they linger over UDP (§17.2.3)", () => {
  const layer = new TransactionLayer(T);
  const wire = new RecordingWire(false);
  const bye = layer.createServer(req("BYE", { branch: "old-style-bye", toTag: "b7", cseq: 2 }), wire);
  bye.respond(200);
  expect(layer.size.lingering).toBe(1);
  expect(layer.matchServer(req("BYE", { branch: "old-style-bye", toTag: "b7", cseq: 2 }))).toBe(bye);
  expect(layer.matchServer(req("BYE", { branch: "old-style-bye", toTag: "other", cseq: 2 }))).toBeUndefined();
  const invite = layer.createServer(req("INVITE", { branch: "old-style-inv" }), wire);
  invite.respond(200);
  const ack = req("ACK", { branch: "old-style-inv", toTag: invite.toTag });
  layer.matchServer(ack)!.receiveRetransmission(ack, wire);
  expect(layer.size.lingering).toBe(2);
  expect(layer.matchServer(ack)).toBe(invite);
  expect(layer.matchServer(req("ACK", { branch: "old-style-inv", toTag: "other" }))).toBeUndefined();
});

test("a CANCEL on a pending INVITE emits cancel and answers 487", () => {
  const layer = new TransactionLayer(T);
  const wire = new RecordingWire(true);
  const tx = layer.createServer(req("INVITE", { branch: "z9hG4bK-c1" }), wire);
  let seen = false;
  tx.on("cancel", () => {
    seen = true;
  });
  expect(tx.receiveCancel(req("CANCEL", { branch: "z9hG4bK-c1" }))).toBe(true);
  expect(seen).toBe(true);
  expect(wire.lines()).toEqual(["SIP/2.0 487 Request Terminated"]);
  expect(tx.receiveCancel(req("CANCEL", { branch: "z9hG4bK-c1" }))).toBe(false);
});

test("a server transaction's final response lets go of its cancel and unanswered listeners (it lingers 64*T1 holding what they close over); ack still reaches the TU", () => {
  const layer = new TransactionLayer(T);
  const tx = layer.createServer(req("INVITE", { branch: "z9hG4bK-rel1" }), new RecordingWire(false));
  const acks: string[] = [];
  tx.on("cancel", () => {});
  tx.on("unanswered", () => {});
  tx.on("ack", (ack) => acks.push(ack.method));
  tx.respond(180);
  expect([tx.listenerCount("cancel"), tx.listenerCount("unanswered")]).toEqual([1, 1]);
  tx.respond(200);
  expect(tx.state).toBe("accepted");
  expect([tx.listenerCount("cancel"), tx.listenerCount("unanswered"), tx.listenerCount("ack")]).toEqual([0, 0, 1]);
  tx.receiveAck2xx(req("ACK", { branch: "z9hG4bK-rel2", toTag: tx.toTag }));
  expect(acks).toEqual(["ACK"]);
  // The ACK came: Timer L keeps the transaction 64*T1 longer, and no listener pins the dialog meanwhile.
  expect(tx.state).toBe("accepted");
  expect(tx.listenerCount("ack")).toBe(0);
});

test("a client transaction's final response lets go of its provisional, final and timeout listeners; a later 2xx still reaches extra2xx", () => {
  const layer = new TransactionLayer(FAST);
  const invite = req("INVITE", { branch: "z9hG4bK-rel3" });
  const tx = layer.startClient(invite, new RecordingWire(false));
  const extras: number[] = [];
  tx.on("provisional", () => {});
  tx.on("final", () => {});
  tx.on("timeout", () => {});
  tx.on("extra2xx", (r) => extras.push(r.status));
  layer.receiveResponse(responseTo(invite, 180));
  expect(tx.listenerCount("provisional")).toBe(1);
  layer.receiveResponse(responseTo(invite, 200));
  expect([tx.listenerCount("provisional"), tx.listenerCount("final"), tx.listenerCount("timeout")]).toEqual([0, 0, 0]);
  layer.receiveResponse(responseTo(invite, 200));
  expect(extras).toEqual([200]);
  advance(64 * FAST.T1); // timer M
});

test("transactions lingering after their final response keep none of their requests' text: what they hold is copied", () => {
  const layer = new TransactionLayer(T);
  // ≈ 48 KB of header text per request, the Call-ID, tags and branch substrings of it.
  const padding = Array.from({ length: 6 }, (_, i) => `X-Padding-${i}: ${"x".repeat(8000)}`);
  const request = (method: string, n: number, toTag?: string) =>
    parseReq(
      [
        `${method} sip:bob@127.0.0.1 SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-keep-${method}-${n}`,
        `From: <sip:alice@127.0.0.1>;tag=a${n}`,
        `To: <sip:bob@127.0.0.1>${toTag ? `;tag=${toTag}` : ""}`,
        `Call-ID: keep-${n}@127.0.0.1`,
        `CSeq: ${method === "BYE" ? 2 : 1} ${method}`,
        ...padding,
        "Content-Length: 0",
        "",
        "",
      ].join("\r\n"),
    );
  Bun.gc(true);
  const before = heapStats().heapSize;
  for (let n = 0; n < 100; n++) {
    const invite = layer.createServer(request("INVITE", n), new RecordingWire(false));
    invite.respond(200);
    invite.receiveAck2xx(request("ACK", n, invite.toTag));
    layer.createServer(request("BYE", n, invite.toTag), new RecordingWire(false)).respond(200);
  }
  expect(layer.size.servers).toBe(200);
  Bun.gc(true);
  // Any kept substring would pin its request's ≈ 48 KB: ≈ 14 MB for these 300.
  expect(heapStats().heapSize - before).toBeLessThan(3_000_000);
});

test("a UDP call's two lingering server transactions keep a few heap cells each: no timers, wire, listeners or rope strings", () => {
  const layer = new TransactionLayer(T);
  const call = (n: number) => {
    const invite = layer.createServer(req("INVITE", { branch: `z9hG4bK-cells-i${n}`, fromTag: `f${n}` }), new RecordingWire(false));
    invite.on("ack", () => {});
    invite.respond(200);
    const ack = req("ACK", { branch: `z9hG4bK-cells-a${n}`, fromTag: `f${n}`, toTag: invite.toTag });
    layer.matchAck2xx(ack)!.receiveAck2xx(ack);
    const bye = req("BYE", { branch: `z9hG4bK-cells-b${n}`, fromTag: `f${n}`, toTag: invite.toTag, cseq: 2 });
    layer.createServer(bye, new RecordingWire(false)).respond(200);
  };
  // The code's own cells (compiled functions, shapes) come with the first calls: not counted.
  for (let n = 0; n < 200; n++) call(n);
  const calls = 2_000;
  Bun.gc(true);
  const before = heapStats().objectCount;
  for (let n = 200; n < 200 + calls; n++) call(n);
  expect(layer.size.lingering).toBe(2 * (200 + calls));
  Bun.gc(true);
  // Both transactions, their keys and table entries, the INVITE's merge key and To tag, and the
  // BYE's 200 as bytes for its retransmissions: 10.6 per call. Before the linger queue, 61 (timers
  // and their closures, the wires, listener objects, tags built as ropes of a node per byte).
  expect((heapStats().objectCount - before) / calls).toBeLessThan(13);
});

test("an Accepted INVITE server transaction re-sends its 2xx until the ACK, then keeps no copy of it (Timer L lasts 64*T1)", () => {
  const layer = new TransactionLayer(T);
  const wire = new RecordingWire(false);
  const tx = layer.createServer(req("INVITE", { branch: "z9hG4bK-acc2" }), wire);
  tx.respond(200);
  tx.retransmit2xx();
  expect(wire.lines()).toEqual(["SIP/2.0 200 OK", "SIP/2.0 200 OK"]);
  tx.receiveAck2xx(req("ACK", { branch: "z9hG4bK-acc3", toTag: tx.toTag }));
  tx.retransmit2xx();
  expect(wire.lines()).toHaveLength(2);
  expect(tx.state).toBe("accepted");
});

test("a throwing listener never escapes a timer", async () => {
  const layer = new TransactionLayer(FAST);
  const tx = layer.startClient(req("OPTIONS", { branch: "z9hG4bK-throw" }), new RecordingWire(true));
  tx.on("timeout", () => {
    throw new Error("listener bug");
  });
  advance(64 * FAST.T1);
  expect((await tx.outcome).kind).toBe("timeout");
});
