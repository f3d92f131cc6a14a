// Requests relayed by a trusted front (the cluster's Kamailio): the stack judges the original sender
// the front names in X-Trunkline-Source and hands it up as ctx.origin; the header from anyone else
// is removed unread and the request judged by its real source. A draining stack answers OPTIONS
// and new INVITEs 503. Real loopback sockets: the front on 127.0.0.1, a trunk on 127.0.0.5, a
// stranger on 127.0.0.6.
import { afterEach, expect, test } from "bun:test";
import { parseUri, type SipRequest } from "../../src/sip/message.ts";
import { parseRelayedSource } from "../../src/sip/relayed-source.ts";
import { SipStack, type SipStackOptions } from "../../src/sip/stack.ts";
import type { InboundContext } from "../../src/sip/transport.ts";
import { isResponse, type RawSipPeer, udpPeer } from "../helpers/rawSipPeer.ts";
import { until } from "../helpers/until.ts";

const FRONT = "127.0.0.1";
const TRUNK = "127.0.0.5";
const STRANGER = "127.0.0.6";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const close of cleanup.splice(0).reverse()) await close();
});

interface Seen {
  req: SipRequest;
  ctx: InboundContext;
}

async function startStack(o: Partial<SipStackOptions> = {}): Promise<{ stack: SipStack; seen: Seen[] }> {
  const stack = new SipStack({
    listen: [{ transport: "udp", host: "127.0.0.1", port: 0 }],
    isKnownSource: (address) => address === TRUNK,
    trustedFronts: (address) => address === FRONT,
    ...o,
  });
  const seen: Seen[] = [];
  stack.onRequest((req, tx, ctx) => {
    seen.push({ req, ctx });
    tx.respond(486, "Busy Here");
  });
  await stack.start();
  cleanup.push(() => stack.stop());
  return { stack, seen };
}

async function peer(stack: SipStack, localAddress: string): Promise<RawSipPeer> {
  const p = await udpPeer("127.0.0.1", stack.boundEndpoints[0]!.port, { localAddress });
  cleanup.push(() => p.close());
  return p;
}

let seq = 0;
function request(method: string, from: string, headers: string[] = []): { text: string; callId: string } {
  seq++;
  const callId = `front-${seq}@test`;
  const text = [
    `${method} sip:15550199@127.0.0.1 SIP/2.0`,
    `Via: SIP/2.0/UDP ${from}:[port];branch=z9hG4bK-front${seq}`,
    `From: <sip:caller@${from}>;tag=f${seq}`,
    "To: <sip:15550199@127.0.0.1>",
    `Call-ID: ${callId}`,
    `CSeq: 1 ${method}`,
    "Max-Forwards: 70",
    ...headers,
    "Content-Length: 0",
    "",
    "",
  ].join("\r\n");
  return { text, callId };
}

const answerTo = (callId: string, status?: number) => (m: Parameters<ReturnType<typeof isResponse>>[0]) => isResponse(status)(m) && m.callId === callId;

test("a front's request is judged by the sender it names, handed up as ctx.origin, and answered to the front", async () => {
  const { stack, seen } = await startStack();
  const front = await peer(stack, FRONT);
  const invite = request("INVITE", FRONT, [`X-Trunkline-Source: ${TRUNK}:5062;udp`]);
  front.send(invite.text);
  await front.waitFor(answerTo(invite.callId, 486));
  expect(seen).toHaveLength(1);
  expect(seen[0]!.ctx.origin).toEqual({ address: TRUNK, port: 5062, transport: "udp" });
  expect(seen[0]!.ctx.source.address).toBe(FRONT);
});

test("a front relaying a stranger's request: dropped unread like the stranger's own (counted), the next relayed trunk request passes", async () => {
  const { stack, seen } = await startStack();
  const front = await peer(stack, FRONT);
  front.send(request("INVITE", FRONT, ["X-Trunkline-Source: 198.51.100.7:5060;udp"]).text);
  await until(() => stack.counters.sources.strangersDropped === 1);
  const next = request("INVITE", FRONT, [`X-Trunkline-Source: ${TRUNK}:5060;tcp`]);
  front.send(next.text);
  await front.waitFor(answerTo(next.callId, 486));
  expect(seen.map((s) => s.req.callId)).toEqual([next.callId]);
  expect(front.received.filter(isResponse(486))).toHaveLength(1);
});

test("under strangers: reject, a front relaying a stranger's request gets the 403 to pass back", async () => {
  const { stack, seen } = await startStack({ strangers: "reject" });
  const front = await peer(stack, FRONT);
  const invite = request("INVITE", FRONT, ["X-Trunkline-Source: 198.51.100.7:5060;udp"]);
  front.send(invite.text);
  await front.waitFor(answerTo(invite.callId, 403));
  expect(seen).toHaveLength(0);
});

test("the front's own requests (no header) are its own: its OPTIONS probe gets 200", async () => {
  const { stack } = await startStack();
  const front = await peer(stack, FRONT);
  const probe = request("OPTIONS", FRONT);
  front.send(probe.text);
  await front.waitFor(answerTo(probe.callId, 200));
});

test("the header from anyone but a front: a stranger naming a trunk is still a stranger; a trunk's header is removed unread", async () => {
  const { stack, seen } = await startStack();
  const stranger = await peer(stack, STRANGER);
  stranger.send(request("INVITE", STRANGER, [`X-Trunkline-Source: ${TRUNK}:5060;udp`]).text);
  await until(() => stack.counters.sources.strangersDropped === 1);

  const trunk = await peer(stack, TRUNK);
  const invite = request("INVITE", TRUNK, ["X-Trunkline-Source: 198.51.100.7:5060;udp"]);
  trunk.send(invite.text);
  await trunk.waitFor(answerTo(invite.callId, 486));
  expect(seen).toHaveLength(1);
  expect(seen[0]!.ctx.origin).toBeUndefined();
  expect(seen[0]!.req.hasHeader("X-Trunkline-Source")).toBe(false);
  expect(stranger.received).toHaveLength(0);
});

test("a malformed header from a front names nobody: the request is the front's own, judged as such", async () => {
  const { stack, seen } = await startStack();
  const front = await peer(stack, FRONT);
  const invite = request("INVITE", FRONT, [`X-Trunkline-Source: ${TRUNK}`]);
  front.send(invite.text);
  await front.waitFor(answerTo(invite.callId, 486));
  expect(seen[0]!.ctx.origin).toBeUndefined();
});

test("draining: OPTIONS and new INVITEs get 503 with Retry-After at once; other requests still reach the layer above", async () => {
  const { stack, seen } = await startStack();
  const front = await peer(stack, FRONT);
  stack.drain();
  const probe = request("OPTIONS", FRONT);
  front.send(probe.text);
  const answer = await front.waitFor(answerTo(probe.callId, 503));
  expect(answer.getHeader("Retry-After")).toBe("30");
  const invite = request("INVITE", FRONT, [`X-Trunkline-Source: ${TRUNK}:5060;udp`]);
  front.send(invite.text);
  await front.waitFor(answerTo(invite.callId, 503));
  const info = request("INFO", FRONT, [`X-Trunkline-Source: ${TRUNK}:5060;udp`]);
  front.send(info.text);
  await front.waitFor(answerTo(info.callId, 486));
  expect(seen.map((s) => s.req.method)).toEqual(["INFO"]);
});

test("X-Trunkline-Source: ip:port;transport, IPv6 in brackets; anything else names nobody", () => {
  expect(parseRelayedSource("203.0.113.9:5060;udp")).toEqual({ address: "203.0.113.9", port: 5060, transport: "udp" });
  expect(parseRelayedSource(" [2001:DB8::1]:5061;TLS ")).toEqual({ address: "2001:db8::1", port: 5061, transport: "tls" });
  for (const bad of ["203.0.113.9", "203.0.113.9:5060", "203.0.113.9:0;udp", "203.0.113.9:70000;udp", "host.example:5060;udp", "2001:db8::1:5060;udp", "203.0.113.9:5060;sctp", "1.2.3.4:5060;udp, 5.6.7.8:5060;udp"]) {
    expect(parseRelayedSource(bad)).toBeUndefined();
  }
});

test("outbound proxy (the front): requests outside a dialog go to it with a loose Route, in-dialog ones to their destination", async () => {
  const proxy = await udpPeer("127.0.0.1", 9, { localAddress: FRONT });
  const carrier = await udpPeer("127.0.0.1", 9, { localAddress: "127.0.0.8" });
  cleanup.push(() => proxy.close(), () => carrier.close());
  const { stack } = await startStack({ outboundProxy: { address: FRONT, port: proxy.port } });
  const carrierEndpoint = { transport: "udp" as const, address: "127.0.0.8", port: carrier.port };
  const ping = (callId: string, toTag?: string) =>
    stack.createOutOfDialogRequest({
      method: "OPTIONS",
      uri: parseUri(`sip:ping@127.0.0.8:${carrier.port}`)!,
      from: { uri: parseUri("sip:node@127.0.0.1")!, params: new Map() },
      to: { uri: parseUri(`sip:ping@127.0.0.8:${carrier.port}`)!, params: new Map(toTag ? [["tag", toTag]] : []) },
      transport: "udp",
      callId,
    });

  const outOfDialog = ping("via-proxy@test");
  stack.sendRequest(outOfDialog, carrierEndpoint);
  const relayed = (await proxy.waitFor((m) => !("status" in m) && m.callId === "via-proxy@test")) as SipRequest;
  expect(relayed.getHeaders("Route")).toEqual([`<sip:${FRONT}:${proxy.port};lr>`]);
  expect(relayed.uri.host).toBe("127.0.0.8");

  // A retry built from the first attempt's headers (digest) carries our Route once, and still goes to the proxy.
  const retry = ping("retry@test");
  retry.addHeader("Route", `<sip:${FRONT}:${proxy.port};lr>`);
  stack.sendRequest(retry, carrierEndpoint);
  const retried = (await proxy.waitFor((m) => !("status" in m) && m.callId === "retry@test")) as SipRequest;
  expect(retried.getHeaders("Route")).toHaveLength(1);

  const inDialog = ping("in-dialog@test", "remote-tag");
  stack.sendRequest(inDialog, carrierEndpoint);
  const direct = (await carrier.waitFor((m) => !("status" in m) && m.callId === "in-dialog@test")) as SipRequest;
  expect(direct.getHeaders("Route")).toEqual([]);
  // The proxy got the two out-of-dialog requests (and their retransmissions) and nothing else.
  expect(new Set(proxy.received.map((m) => m.callId))).toEqual(new Set(["via-proxy@test", "retry@test"]));
});
