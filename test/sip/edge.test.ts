// The SIP edge under abuse, over real loopback sockets: responses go to the packet's source whatever
// the Via claims (RFC 3261 §18.2.2, RFC 3581), per-source message budgets, the bounded tables
// (rate buckets, server transactions), unanswered INVITEs, and the limits of TCP/TLS connections
// (per address, slowloris deadlines, a peer that never reads).
import { afterEach, expect, test } from "bun:test";
import type { Socket } from "bun";
import type { SipResponse } from "../../src/sip/message.ts";
import { SipStack, type SipStackOptions } from "../../src/sip/stack.ts";
import type { ServerTransaction } from "../../src/sip/transaction.ts";
import { loopbackIsTrunk } from "../helpers/loopbackTrunks.ts";
import { isResponse, type RawSipPeer, tcpPeer, udpPeer } from "../helpers/rawSipPeer.ts";
import { until } from "../helpers/until.ts";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const close of cleanup.splice(0).reverse()) await close();
});

async function startStack(o: Partial<SipStackOptions> = {}): Promise<SipStack> {
  const stack = new SipStack({
    listen: [
      { transport: "udp", host: "127.0.0.1", port: 0 },
      { transport: "tcp", host: "127.0.0.1", port: 0 },
    ],
    isKnownSource: loopbackIsTrunk,
    timers: { T1: 20, T2: 160, T4: 200 },
    ...o,
  });
  await stack.start();
  cleanup.push(() => stack.stop());
  return stack;
}

function port(stack: SipStack, transport: "udp" | "tcp" | "tls"): number {
  return stack.boundEndpoints.find((e) => e.transport === transport)!.port;
}

async function peer(stack: SipStack, o: { localAddress?: string; localPort?: number } = {}): Promise<RawSipPeer> {
  const p = await udpPeer("127.0.0.1", port(stack, "udp"), o);
  cleanup.push(() => p.close());
  return p;
}

let seq = 0;
function request(method: string, o: { via?: string; callId?: string; headers?: string[]; transport?: string } = {}): string {
  seq++;
  return [
    `${method} sip:bob@127.0.0.1 SIP/2.0`,
    o.via ?? `Via: SIP/2.0/${o.transport ?? "UDP"} 127.0.0.1:[port];branch=z9hG4bK-edge${seq}`,
    `From: <sip:alice@127.0.0.1>;tag=f${seq}`,
    "To: <sip:bob@127.0.0.1>",
    `Call-ID: ${o.callId ?? `edge-${seq}@test`}`,
    `CSeq: 1 ${method}`,
    "Max-Forwards: 70",
    ...(o.headers ?? []),
    "Content-Length: 0",
    "",
    "",
  ].join("\r\n");
}

// ---------------------------------------------------------------------------------------------
// Response routing: a forged `received` or rport never redirects a response (RFC 3581 §4).

for (const forged of [
  // The old rule sent these to received + sent-by port: 127.0.0.2 at the client's own port.
  { name: "received=127.0.0.2 and no rport", via: (client: number, _third: number) => `127.0.0.1:${client};received=127.0.0.2` },
  // ... and these to received + rport: 127.0.0.2 at the third socket's port.
  { name: "received=127.0.0.2 and rport=<a third socket's port>", via: (client: number, third: number) => `127.0.0.1:${client};received=127.0.0.2;rport=${third}` },
]) {
  test(`a request whose Via carries ${forged.name} is answered at its real source; third sockets get nothing`, async () => {
    const stack = await startStack();
    stack.onRequest((_req, tx) => tx.respond(486));
    const client = await peer(stack);
    const thirds = [await peer(stack, { localAddress: "127.0.0.2", localPort: client.port }), await peer(stack, { localAddress: "127.0.0.2" })];
    const via = (method: string) => `Via: SIP/2.0/UDP ${forged.via(client.port, thirds[1]!.port)};branch=z9hG4bK-forged-${method}`;
    client.send(request("OPTIONS", { via: via("options"), callId: "forged-options@test" }));
    client.send(request("INVITE", { via: via("invite"), callId: "forged-invite@test" }));
    const ok = await client.waitFor((m): m is SipResponse => m.callId === "forged-options@test" && "status" in m);
    expect(ok.status).toBe(200);
    expect(ok.vias[0]!.params.get("received")).toBe("127.0.0.1");
    // The INVITE's final response is retransmitted (timer G), to the same place.
    await until(() => client.received.filter((m) => m.callId === "forged-invite@test" && "status" in m && m.status === 486).length >= 2);
    // Each third socket then asks something itself: the stack answers in order over the same
    // socket pair, so a misdirected answer would have come first. Its own is the only one.
    for (const third of thirds) {
      third.send(request("OPTIONS", { callId: `third-${third.port}@test` }));
      await third.waitFor((m) => m.callId === `third-${third.port}@test`);
      expect(third.raw).toHaveLength(1);
    }
  });
}

test("an rport value the client wrote is replaced by the source port (RFC 3581 §4)", async () => {
  const stack = await startStack();
  const client = await peer(stack);
  client.send(request("OPTIONS", { via: "Via: SIP/2.0/UDP 127.0.0.1:5999;rport=5999;branch=z9hG4bK-rport-value" }));
  const res = await client.waitFor(isResponse(200));
  expect(res.vias[0]!.params.get("rport")).toBe(String(client.port));
});

// ---------------------------------------------------------------------------------------------
// Per-source budgets

test("a known source over its message budget is dropped unread and counted; other sources are untouched", async () => {
  const stack = await startStack({ limits: { trunkMessagesPerSecond: 5 } });
  const noisy = await peer(stack);
  const sent = 25;
  for (let i = 0; i < sent; i++) noisy.send(request("OPTIONS", { callId: `noisy-${i}@test` }));
  // Each datagram is answered or counted as dropped: wait until all were decided.
  await until(() => noisy.received.length + stack.counters.sources.rateLimited === sent);
  // A burst of one second's worth (5) passes; refilling at 5/s, 10 more would need a 2 s stall.
  expect(noisy.received.length).toBeLessThanOrEqual(15);
  expect(stack.counters.sources.rateLimited).toBeGreaterThanOrEqual(10);
  const quiet = await peer(stack, { localAddress: "127.0.0.3" });
  quiet.send(request("OPTIONS", { callId: "quiet@test" }));
  await quiet.waitFor((m) => m.callId === "quiet@test");
});

test("the rate table is capped: a spray of new stranger addresses is dropped once it is full", async () => {
  const stack = await startStack({ strangers: "reject", isKnownSource: () => false, limits: { trackedSources: 16, messagesPerSecond: 1 } });
  const sources = Array.from({ length: 40 }, (_, i) => `127.0.0.${10 + i}`);
  const peers = await Promise.all(sources.map((localAddress) => peer(stack, { localAddress })));
  let maxTracked = 0;
  for (const p of peers) {
    p.send(request("OPTIONS"));
    maxTracked = Math.max(maxTracked, stack.trackedSources);
  }
  const answered = () => peers.filter((p) => p.received.length > 0).length;
  await until(() => answered() + stack.counters.sources.tableFull === sources.length);
  expect(Math.max(maxTracked, stack.trackedSources)).toBeLessThanOrEqual(16);
  expect(stack.counters.sources.tableFull).toBeGreaterThanOrEqual(1);
  // Those that got through were strangers under "reject": 403, nothing else.
  for (const p of peers) for (const m of p.received) expect((m as SipResponse).status).toBe(403);
});

// ---------------------------------------------------------------------------------------------
// Server transactions: bounded, and never left unanswered.

test("server transactions are capped: beyond the limit requests get a stateless 503 with Retry-After", async () => {
  const stack = await startStack({ limits: { maxServerTransactions: 16 } });
  const held: ServerTransaction[] = [];
  stack.onRequest((_req, tx) => void held.push(tx));
  const client = await peer(stack);
  for (let i = 0; i < 20; i++) client.send(request("INVITE", { callId: `held-${i}@test` }));
  await until(() => held.length + client.received.filter(isResponse(503)).length === 20);
  expect(held).toHaveLength(16);
  expect(stack.transactions.size.servers).toBe(16);
  const refused = client.received.filter(isResponse(503));
  expect(refused).toHaveLength(4);
  expect(refused[0]!.getHeader("Retry-After")).toBe("5");
  expect(stack.counters.transactionTableFull).toBe(4);
  // What needs no transaction is still answered.
  client.send(request("OPTIONS", { callId: "still@test" }));
  await client.waitFor((m) => m.callId === "still@test" && "status" in m && m.status === 200);
  for (const tx of held) tx.respond(486);
});

test("overload: while INVITEs await the layer above's answer, new ones get a stateless 503 with Retry-After; nothing else is shed", async () => {
  const stack = await startStack({ limits: { maxUnansweredInvites: 2, retryAfterSec: 7 } });
  const held: ServerTransaction[] = [];
  stack.onRequest((_req, tx) => void held.push(tx));
  const client = await peer(stack);
  const first = request("INVITE", { callId: "first@test" });
  client.send(first);
  client.send(request("INVITE", { callId: "second@test" }));
  await until(() => held.length === 2);
  expect(stack.transactions.invitesAwaitingTu).toBe(2);

  client.send(request("INVITE", { callId: "shed@test" }));
  const refused = await client.waitFor((m): m is SipResponse => m.callId === "shed@test" && "status" in m && m.status === 503);
  expect(refused.getHeader("Retry-After")).toBe("7");
  expect(stack.counters.overloaded.unanswered_invites).toBe(1);
  expect(stack.transactions.size.servers).toBe(2);
  // A retransmission of an admitted INVITE reaches its transaction (its 100 again), and an in-dialog
  // request passes the guard (481: no such dialog here), as does OPTIONS.
  const trying = () => client.received.filter((m) => m.callId === "first@test" && "status" in m && m.status === 100).length;
  await until(() => trying() === 1);
  client.send(first);
  await until(() => trying() === 2);
  client.send(request("BYE", { callId: "in-dialog@test" }).replace("To: <sip:bob@127.0.0.1>", "To: <sip:bob@127.0.0.1>;tag=known"));
  await client.waitFor((m) => m.callId === "in-dialog@test" && "status" in m && m.status === 481);
  client.send(request("OPTIONS", { callId: "options@test" }));
  await client.waitFor((m) => m.callId === "options@test" && "status" in m && m.status === 200);

  // A ringing call is no longer the node's work: its 180 makes room for the next INVITE.
  held[0]!.respond(180);
  expect(stack.transactions.invitesAwaitingTu).toBe(1);
  client.send(request("INVITE", { callId: "third@test" }));
  await until(() => held.length === 3);
  expect(stack.counters.overloaded.unanswered_invites).toBe(1);
  for (const tx of held) tx.respond(486);
  expect(stack.transactions.invitesAwaitingTu).toBe(0);
});

test("an INVITE the layer above never answers gets 500 after the deadline, and its listeners hear it", async () => {
  const stack = await startStack({ limits: { unansweredInviteMs: 300 } });
  let unanswered = 0;
  stack.onRequest((_req, tx) => {
    tx.on("unanswered", () => unanswered++);
    tx.respond(180);
  });
  const client = await peer(stack);
  client.send(request("INVITE", { callId: "forgotten@test" }));
  const final = await client.waitFor((m): m is SipResponse => m.callId === "forgotten@test" && "status" in m && m.status >= 200);
  expect(final.status).toBe(500);
  expect(unanswered).toBe(1);
  expect(stack.counters.unansweredInvites).toBe(1);
  expect(client.received.filter((m) => "status" in m).map((m) => (m as SipResponse).status)).toEqual([180, 500]);
});

// ---------------------------------------------------------------------------------------------
// TCP/TLS connection limits

function connect(portNumber: number, onClose: () => void = () => {}): Promise<Socket<undefined>> {
  return Bun.connect({ hostname: "127.0.0.1", port: portNumber, socket: { data() {}, close: onClose } });
}

test("connections per address are capped; a slot frees when one closes", async () => {
  const stack = await startStack({ limits: { maxConnectionsPerAddress: 2 } });
  const tcp = port(stack, "tcp");
  const a = await tcpPeer("127.0.0.1", tcp);
  const b = await tcpPeer("127.0.0.1", tcp);
  cleanup.push(() => a.close(), () => b.close());
  // Both are counted once they have spoken.
  a.send(request("OPTIONS", { transport: "TCP", callId: "a@test" }));
  b.send(request("OPTIONS", { transport: "TCP", callId: "b@test" }));
  await a.waitFor((m) => m.callId === "a@test");
  await b.waitFor((m) => m.callId === "b@test");
  let closed = false;
  const third = await connect(tcp, () => {
    closed = true;
  });
  cleanup.push(() => third.end());
  await until(() => closed);
  expect(stack.counters.connections.refusedPerAddress).toBe(1);
  a.close();
  await until(async () => {
    const c = await tcpPeer("127.0.0.1", tcp).catch(() => undefined);
    if (!c) return false;
    cleanup.push(() => c.close());
    const callId = `after-close-${seq}@test`;
    c.send(request("OPTIONS", { transport: "TCP", callId }));
    return c.waitFor((m) => m.callId === callId, 500).then(() => true, () => false);
  });
});

test("slowloris: a connection that sends nothing, or drips a message, is closed at the deadline; a prompt one stays", async () => {
  const stack = await startStack({ limits: { handshakeTimeoutMs: 300, idleTimeoutMs: 60_000 } });
  const tcp = port(stack, "tcp");
  const prompt = await tcpPeer("127.0.0.1", tcp);
  cleanup.push(() => prompt.close());
  prompt.send(request("OPTIONS", { transport: "TCP", callId: "prompt-1@test" }));
  await prompt.waitFor((m) => m.callId === "prompt-1@test");

  const closed = { silent: false, drip: false };
  const silent = await connect(tcp, () => {
    closed.silent = true;
  });
  const drip = await connect(tcp, () => {
    closed.drip = true;
  });
  cleanup.push(() => silent.end(), () => drip.end());
  const text = request("OPTIONS", { transport: "TCP" });
  let sentBytes = 0;
  const dripper = setInterval(() => {
    if (sentBytes < text.length) drip.write(text.slice(sentBytes, ++sentBytes));
  }, 20);
  cleanup.push(() => clearInterval(dripper));
  await until(() => closed.silent && closed.drip);
  expect(sentBytes).toBeLessThan(text.length);
  expect(stack.counters.connections.closedSlow).toBe(2);
  // The prompt connection, idle all along, still serves.
  prompt.send(request("OPTIONS", { transport: "TCP", callId: "prompt-2@test" }));
  await prompt.waitFor((m) => m.callId === "prompt-2@test");
});

test("TLS: a connection that never starts its handshake is closed at the deadline", async () => {
  const cert = new URL("../fixtures/tls/cert.pem", import.meta.url).pathname;
  const key = new URL("../fixtures/tls/key.pem", import.meta.url).pathname;
  const stack = await startStack({
    listen: [{ transport: "tls", host: "127.0.0.1", port: 0 }],
    tls: { certFile: cert, keyFile: key },
    limits: { handshakeTimeoutMs: 300 },
  });
  let closed = false;
  const raw = await connect(port(stack, "tls"), () => {
    closed = true;
  });
  cleanup.push(() => raw.end());
  await until(() => closed);
  expect(stack.counters.connections.closedSlow).toBe(1);
});

test("a TCP peer that never reads is disconnected at the write-queue bound; the queue never grows past it", async () => {
  const bound = 256 * 1024;
  const stack = await startStack({ limits: { maxWriteQueueBytes: bound } });
  // A real peer that never reads: a small receive window, requests whose answers are ~56 KB each
  // (every Via is copied into the response), and no recv() ever.
  const vias = Array.from({ length: 7 }, (_, i) => `Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK-big${i};x=${"v".repeat(7900)}`);
  const one = request("OPTIONS", { transport: "TCP", via: vias.join("\r\n") });
  const script = `
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", ${port(stack, "tcp")}))
msg = sys.stdin.buffer.read()
try:
    for _ in range(400):
        s.sendall(msg)
except OSError:
    pass
print("sent", flush=True)
time.sleep(60)
`;
  const child = Bun.spawn(["python3", "-c", script], { stdin: new TextEncoder().encode(one), stdout: "pipe", stderr: "ignore" });
  cleanup.push(() => child.kill());
  await until(() => stack.counters.connections.closedWriteQueue === 1, { timeoutMs: 20_000 });
  // The queue filled up to the bound (the kernel buffers full) and never past it; then it was gone.
  expect(stack.peakQueuedBytes).toBeGreaterThan(bound - 60_000);
  expect(stack.peakQueuedBytes).toBeLessThanOrEqual(bound);
  expect(stack.queuedBytes).toBe(0);
});
