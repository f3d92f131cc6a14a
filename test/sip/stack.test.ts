// SipStack over real loopback sockets: the stateless rules of a UAS (RFC 3261 §8.2), Via
// `received`/`rport` (§18.2.1, RFC 3581), response routing (§18.2.2), CANCEL (§9.2), merged
// requests (§8.2.2.2), the source screen (strangers), and the RFC 4475 torture messages.
import { afterAll, afterEach, beforeAll, expect, jest, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { parseMessage, parseUri, type SipRequest, type SipResponse } from "../../src/sip/message.ts";
import { SipStack } from "../../src/sip/stack.ts";
import type { ServerTransaction } from "../../src/sip/transaction.ts";
import type { Endpoint } from "../../src/sip/transport.ts";
import { loopbackIsTrunk } from "../helpers/loopbackTrunks.ts";
import { isMarkerReply, isResponse, type RawSipPeer, settled, tcpPeer, udpPeer } from "../helpers/rawSipPeer.ts";
import { until } from "../helpers/until.ts";

let stack: SipStack;
let udp: Endpoint;
let tcp: Endpoint;
const handled: { req: SipRequest; tx: ServerTransaction }[] = [];
/** Tests set it to make every source a stranger. */
let rejectSources = false;
const peers: RawSipPeer[] = [];
const timers = { T1: 20, T2: 160, T4: 200 };

beforeAll(async () => {
  stack = new SipStack({
    listen: [
      { transport: "udp", host: "127.0.0.1", port: 0 },
      { transport: "tcp", host: "127.0.0.1", port: 0 },
    ],
    supported: ["replaces"],
    isKnownSource: (address) => !rejectSources && loopbackIsTrunk(address),
    timers,
  });
  stack.onRequest((req, tx) => {
    handled.push({ req, tx });
    if (req.method === "INVITE") {
      if (req.getHeader("X-Hold")) return; // left pending: CANCEL tests
      tx.respond(486);
    } else tx.respond(200);
  });
  await stack.start();
  udp = stack.boundEndpoints.find((e) => e.transport === "udp")!;
  tcp = stack.boundEndpoints.find((e) => e.transport === "tcp")!;
});

afterEach(() => {
  jest.useRealTimers();
  for (const p of peers.splice(0)) p.close();
  handled.length = 0;
  rejectSources = false;
});

afterAll(() => stack.stop());

async function newUdpPeer(): Promise<RawSipPeer> {
  const p = await udpPeer("127.0.0.1", udp.port);
  peers.push(p);
  return p;
}

let seq = 0;
function request(
  method: string,
  o: { uri?: string; headers?: string[]; body?: string; branch?: string; callId?: string; cseq?: string; version?: string; transport?: string; fromTag?: string; via?: string } = {},
): string {
  seq++;
  const body = o.body ?? "";
  return [
    `${method} ${o.uri ?? "sip:bob@127.0.0.1"} ${o.version ?? "SIP/2.0"}`,
    o.via ?? `Via: SIP/2.0/${o.transport ?? "UDP"} 127.0.0.1:[port];branch=${o.branch ?? `z9hG4bK-t${seq}`}`,
    `From: <sip:alice@127.0.0.1>;tag=${o.fromTag ?? `f${seq}`}`,
    "To: <sip:bob@127.0.0.1>",
    `Call-ID: ${o.callId ?? `call-${seq}@test`}`,
    `CSeq: ${o.cseq ?? `1 ${method}`}`,
    "Max-Forwards: 70",
    ...(o.headers ?? []),
    `Content-Length: ${new TextEncoder().encode(body).length}`,
    "",
    body,
  ].join("\r\n");
}

async function ask(text: string): Promise<SipResponse> {
  const p = await newUdpPeer();
  p.send(text);
  return p.waitFor((m): m is SipResponse => "status" in m && m.status >= 200);
}

test("OPTIONS is answered 200 with Allow, Accept and Supported", async () => {
  const res = await ask(request("OPTIONS"));
  expect(res.status).toBe(200);
  expect(res.getHeaders("Allow")).toEqual(["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO"]);
  expect(res.getHeader("Accept")).toBe("application/sdp");
  expect(res.getHeader("Supported")).toBe("replaces");
});

test("what the stack answers itself is answered statelessly (§8.2.7): no transaction, the same To tag again", async () => {
  const p = await newUdpPeer();
  const before = stack.transactions.size.servers;
  const options = request("OPTIONS", { branch: "z9hG4bK-stateless" });
  const rejected = request("INVITE", { branch: "z9hG4bK-stateless-420", headers: ["Require: nonsense"] });
  for (let i = 0; i < 2; i++) {
    p.send(options);
    p.send(rejected);
  }
  await until(() => p.received.length === 4, { what: () => p.received.map((m) => ("status" in m ? m.status : m.method)) });
  const tags = (status: number) =>
    p.received.filter((m): m is SipResponse => "status" in m && m.status === status).map((m) => m.to.params.get("tag"));
  expect(new Set(tags(200)).size).toBe(1);
  expect(new Set(tags(420)).size).toBe(1);
  expect(tags(200)[0]).toBeTruthy();
  expect(stack.transactions.size.servers).toBe(before);
});

test("an unknown method gets 501 with Allow; a known but unsupported one 405", async () => {
  const unknown = await ask(request("FOOBAR"));
  expect(unknown.status).toBe(501);
  expect(unknown.getHeaders("Allow")).toContain("BYE");
  const register = await ask(request("REGISTER"));
  expect(register.status).toBe(405);
  expect(register.getHeaders("Allow")).toContain("OPTIONS");
});

test("an unsupported Require gets 420 listing the option tags in Unsupported", async () => {
  const res = await ask(request("INVITE", { headers: ["Require: replaces, nonsense, 100rel"] }));
  expect(res.status).toBe(420);
  expect(res.getHeaders("Unsupported")).toEqual(["nonsense", "100rel"]);
});

test("an unsupported Request-URI scheme gets 416", async () => {
  const res = await ask(request("OPTIONS", { uri: "nobodyKnowsThisScheme:opaque" }));
  expect(res.status).toBe(416);
});

test("an unsupported body type gets 415 with Accept", async () => {
  const res = await ask(request("INVITE", { headers: ["Content-Type: application/unknownformat"], body: "<x/>" }));
  expect(res.status).toBe(415);
  expect(res.getHeader("Accept")).toBe("application/sdp");
});

test("an INVITE whose Accept excludes application/sdp gets 406", async () => {
  const res = await ask(request("INVITE", { headers: ["Accept: text/nobodyknowsthis"] }));
  expect(res.status).toBe(406);
});

test("SIP version other than 2.0 gets 505", async () => {
  const res = await ask(request("OPTIONS", { version: "SIP/7.0" }));
  expect(res.status).toBe(505);
});

test("a malformed request gets 400 with a reason naming the defect", async () => {
  const res = await ask(request("OPTIONS", { cseq: "1 INVITE" }));
  expect(res.status).toBe(400);
  expect(res.reason).toContain("CSeq");
  const badContact = await ask(request("INVITE", { headers: ["Contact: <sip:a@b;x=y"] }));
  expect(badContact.status).toBe(400);
  expect(badContact.reason).toContain("Contact");
});

test("garbage and unanswerable requests are dropped without harming the stack", async () => {
  const p = await newUdpPeer();
  p.send(new Uint8Array([0xff, 0x00, 0x13, 0x37]));
  p.send("INVITE sip:x@y SIP/2.0\r\nContent-Length: 0\r\n\r\n");
  p.send(request("OPTIONS"));
  const res = await p.waitFor(isResponse(200));
  expect(res.cseq.method).toBe("OPTIONS");
  expect(p.received).toHaveLength(1);
});

test("Via gets received and rport (RFC 3581) and the response goes to the source port", async () => {
  const p = await newUdpPeer();
  // sent-by names another host and port: the response must still come back to our socket.
  p.send(request("OPTIONS", { via: "Via: SIP/2.0/UDP 192.0.2.99:5999;rport;branch=z9hG4bK-rport1" }));
  const res = await p.waitFor(isResponse(200));
  const via = res.vias[0]!;
  expect(via.params.get("received")).toBe("127.0.0.1");
  expect(via.params.get("rport")).toBe(String(p.port));
});

test("without rport the response goes to received + sent-by port (§18.2.2)", async () => {
  const p = await newUdpPeer();
  p.send(request("OPTIONS", { via: "Via: SIP/2.0/UDP localhost:[port];branch=z9hG4bK-norport" }));
  const res = await p.waitFor(isResponse(200));
  expect(res.vias[0]!.params.get("received")).toBe("127.0.0.1");
  expect(res.vias[0]!.params.has("rport")).toBe(false);
});

test("a retransmitted request is absorbed and answered from the transaction", async () => {
  const p = await newUdpPeer();
  const text = request("INFO", { branch: "z9hG4bK-retrans" });
  p.send(text);
  await p.waitFor(isResponse(200));
  p.send(text);
  await settled(p);
  expect(p.received.filter((m) => "status" in m && m.status === 200 && m.cseq.method === "INFO")).toHaveLength(2);
  expect(handled.filter((h) => h.req.method === "INFO")).toHaveLength(1);
});

test("an INVITE the TU answers at once gets only the answer; one it holds gets 100 Trying after T1/5, without a To tag — §17.2.1", async () => {
  const p = await newUdpPeer();
  p.send(request("INVITE", { callId: "answered@test" }));
  const busy = await p.waitFor(isResponse(486));
  expect(busy.to.params.get("tag")).toBeTruthy();
  p.send(request("INVITE", { callId: "held@test", headers: ["X-Hold: 1"] }));
  const trying = await p.waitFor(isResponse(100));
  expect(trying.callId).toBe("held@test");
  expect(trying.to.params.has("tag")).toBe(false);
  // The answered INVITE's 100 would have been due T1/5 after it arrived, before the held one's.
  expect(p.received.filter((m) => m.callId === "answered@test").map((m) => ("status" in m ? m.status : m.method))).toEqual([486]);
});

test("an INVITE retransmitted before its 100 Trying is due gets it at once — §17.2.1", async () => {
  const p = await newUdpPeer();
  jest.useFakeTimers();
  const invite = request("INVITE", { callId: "retransmitted@test", headers: ["X-Hold: 1"] });
  p.send(invite);
  await settled(p);
  // The clock stands still: no 100 yet, and only the retransmission can bring it.
  expect(p.received.some((m) => m.callId === "retransmitted@test")).toBe(false);
  p.send(invite);
  const trying = await p.waitFor(isResponse(100));
  expect(trying.callId).toBe("retransmitted@test");
});

// Timer tests run the transactions on a fake clock (jest.useFakeTimers: setTimeout and Date.now),
// switched on after the peer's socket exists; sockets stay real. The clock only moves when the test
// moves it, so "no retransmission before T1" and "none after the ACK" are exact, and a loaded machine
// cannot make timer H end the transaction before the test's ACK arrives.
const advance = (ms: number) => jest.advanceTimersByTime(ms);

test("timer G retransmits a non-2xx at T1, doubling; the ACK stops it and timer I ends the transaction — §17.2.1", async () => {
  const p = await newUdpPeer();
  jest.useFakeTimers();
  p.send(request("INVITE", { branch: "z9hG4bK-ackg", callId: "ackg@test", fromTag: "ackg" }));
  const busy = await p.waitFor(isResponse(486));
  const count486 = () => p.received.filter((m) => "status" in m && m.status === 486).length;
  const tx = handled.find((h) => h.req.callId === "ackg@test")!.tx;
  await settled(p);
  expect(count486()).toBe(1);
  // Timer G: T1, then 2*T1 (and on, up to T2); never earlier.
  advance(timers.T1 - 1);
  await settled(p);
  expect(count486()).toBe(1);
  advance(1);
  await settled(p);
  expect(count486()).toBe(2);
  advance(2 * timers.T1 - 1);
  await settled(p);
  expect(count486()).toBe(2);
  advance(1);
  await settled(p);
  expect(count486()).toBe(3);
  let acked = false;
  tx.on("ack", () => {
    acked = true;
  });
  p.send(
    [
      "ACK sip:bob@127.0.0.1 SIP/2.0",
      "Via: SIP/2.0/UDP 127.0.0.1:[port];branch=z9hG4bK-ackg",
      "From: <sip:alice@127.0.0.1>;tag=ackg",
      `To: <sip:bob@127.0.0.1>;tag=${busy.to.params.get("tag")}`,
      "Call-ID: ackg@test",
      "CSeq: 1 ACK",
      "Content-Length: 0",
      "",
      "",
    ].join("\r\n"),
  );
  await settled(p); // the ACK was read before the marker
  expect(acked).toBe(true);
  expect(tx.state).toBe("confirmed");
  // Without the ACK timer G would fire 4*T1 from here and every T2 after; timer I (T4) ends the
  // transaction. Far past both, nothing more came.
  advance(64 * timers.T1);
  await settled(p);
  expect(count486()).toBe(3);
  expect(tx.state).toBe("terminated");
});

test("CANCEL gets 200 and the pending INVITE 487 (§9.2); an unmatched CANCEL 481", async () => {
  const p = await newUdpPeer();
  const common = { branch: "z9hG4bK-cancel1", callId: "cancel1@test", fromTag: "c1", headers: ["X-Hold: 1"] };
  p.send(request("INVITE", common));
  await p.waitFor(isResponse(100));
  let cancelled = false;
  await until(() => handled.some((h) => h.req.callId === "cancel1@test"));
  handled.find((h) => h.req.callId === "cancel1@test")!.tx.on("cancel", () => {
    cancelled = true;
  });
  p.send(request("CANCEL", { ...common, headers: [], cseq: "1 CANCEL" }));
  const ok = await p.waitFor((m) => "status" in m && m.status === 200 && m.cseq.method === "CANCEL");
  expect(ok).toBeDefined();
  const terminated = await p.waitFor(isResponse(487));
  expect(terminated.cseq.method).toBe("INVITE");
  expect(cancelled).toBe(true);

  p.send(request("CANCEL", { branch: "z9hG4bK-nothing", cseq: "1 CANCEL" }));
  await p.waitFor(isResponse(481));
});

test("a merged request (same From tag, Call-ID, CSeq; other branch) gets 482 — §8.2.2.2", async () => {
  const p = await newUdpPeer();
  const common = { callId: "merged@test", fromTag: "m1", headers: ["X-Hold: 1"] };
  p.send(request("INVITE", { ...common, branch: "z9hG4bK-path1" }));
  await p.waitFor(isResponse(100));
  p.send(request("INVITE", { ...common, branch: "z9hG4bK-path2" }));
  const loop = await p.waitFor(isResponse(482));
  expect(loop.vias[0]!.params.get("branch")).toBe("z9hG4bK-path2");
});

test("an in-dialog request for an unknown dialog gets 481 (§12.2.2)", async () => {
  const p = await newUdpPeer();
  p.send(request("BYE").replace("To: <sip:bob@127.0.0.1>", "To: <sip:bob@127.0.0.1>;tag=nosuchdialog"));
  await p.waitFor(isResponse(481));
});

test("RFC 2543 requests (no z9hG4bK) match their transaction: retransmission and ACK", async () => {
  const p = await newUdpPeer();
  // A stopped clock: timer G cannot fire, so the second 486 can only answer the retransmitted INVITE.
  jest.useFakeTimers();
  const via = "Via: SIP/2.0/UDP 127.0.0.1:[port]";
  const inv = request("INVITE", { via, callId: "rfc2543@test", fromTag: "old" });
  const count486 = () => p.received.filter((m) => "status" in m && m.status === 486).length;
  p.send(inv);
  const busy = await p.waitFor(isResponse(486));
  p.send(inv);
  await settled(p);
  expect(count486()).toBe(2);
  expect(handled.filter((h) => h.req.callId === "rfc2543@test")).toHaveLength(1);
  const ack = request("ACK", { via, callId: "rfc2543@test", fromTag: "old", cseq: "1 ACK" }).replace(
    "To: <sip:bob@127.0.0.1>",
    `To: <sip:bob@127.0.0.1>;tag=${busy.to.params.get("tag")}`,
  );
  const tx = handled.find((h) => h.req.callId === "rfc2543@test")!.tx;
  let acked = false;
  tx.on("ack", () => {
    acked = true;
  });
  p.send(ack);
  await settled(p);
  expect(acked).toBe(true);
  expect(tx.state).toBe("confirmed");
  // Far past every timer G would have fired and timer I: no 486 came after the ACK.
  advance(64 * timers.T1);
  await settled(p);
  expect(count486()).toBe(2);
  expect(tx.state).toBe("terminated");
});

test("a request from a stranger is dropped unread (strangers: drop): no answer, counted, the handler never sees it", async () => {
  rejectSources = true;
  const dropped = stack.counters.sources.strangersDropped;
  const p = await newUdpPeer();
  p.send(request("OPTIONS", { callId: "stranger@test" }));
  await until(() => stack.counters.sources.strangersDropped === dropped + 1);
  // The same peer, known again: its marker's answer is the first and only message it ever gets.
  rejectSources = false;
  await settled(p);
  expect(p.received.filter((m) => !isMarkerReply(m))).toEqual([]);
  expect(p.raw.filter((d) => !isMarkerReply(d))).toEqual([]);
  expect(handled).toEqual([]);
});

test("over TCP the response uses the request's connection, and coalesced requests are all answered", async () => {
  const p = await tcpPeer("127.0.0.1", tcp.port);
  peers.push(p);
  // sent-by port 9 is closed: a response that did not reuse the connection would be lost.
  const one = request("OPTIONS", { transport: "TCP", via: "Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK-tcp1" });
  const two = request("OPTIONS", { transport: "TCP", via: "Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK-tcp2" });
  p.send(one + two);
  await p.waitFor((m) => "status" in m && m.vias[0]?.params.get("branch") === "z9hG4bK-tcp2");
  expect(p.received.filter(isResponse(200))).toHaveLength(2);
});

test("over TCP a request without Content-Length gets 400 on its connection, which then closes", async () => {
  const p = await tcpPeer("127.0.0.1", tcp.port);
  peers.push(p);
  p.send(request("OPTIONS", { transport: "TCP" }).replace(/Content-Length: 0\r\n/, ""));
  const res = await p.waitFor(isResponse(400));
  expect(res.reason).toContain("Content-Length");
});

test("a stranger's TCP connection is refused before anything is read (strangers: drop): closed, nothing answered", async () => {
  rejectSources = true;
  const refused = stack.counters.connections.refusedBySource;
  let closed = false;
  const answers: Uint8Array[] = [];
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port: tcp.port,
    socket: {
      binaryType: "uint8array",
      data(_s, chunk: Uint8Array) {
        answers.push(chunk);
      },
      close() {
        closed = true;
      },
    },
  });
  socket.write(request("INFO", { transport: "TCP", callId: "refused-tcp@test" }));
  await until(() => closed);
  // The connection is gone: any answer would have come on it before the close.
  expect(answers).toEqual([]);
  expect(stack.counters.connections.refusedBySource).toBe(refused + 1);
  expect(handled).toEqual([]);
});

test("RFC 5626 keep-alive: CRLFCRLF ping gets a CRLF pong", async () => {
  const p = await tcpPeer("127.0.0.1", tcp.port);
  peers.push(p);
  p.send("\r\n\r\n");
  await until(() => p.raw.length > 0);
  expect(new TextDecoder().decode(p.raw[0])).toBe("\r\n");
});

// RFC 4475 torture messages over a real socket. Via rewritten to our loopback peer so no response
// can leave the machine.
const corpusDir = new URL("../../../shared/corpus/rfc4475/", import.meta.url).pathname;
const expectations = new Map(
  readFileSync(`${corpusDir}EXPECT.tsv`, "utf8")
    .trim()
    .split("\n")
    .slice(1)
    .map((line) => {
      const [name, , , handling] = line.split("\t");
      return [name!, handling!] as const;
    }),
);

function expectedStatus(handling: string): number[] | "drop" | "answered" {
  if (handling.startsWith("drop")) return "drop";
  if (handling.includes("or ignore")) return "answered";
  const codes = [...handling.matchAll(/\b([1-6]\d\d)\b/g)].map((m) => Number(m[1]));
  if (handling.startsWith("accept or 400")) return "answered";
  if (handling.startsWith("accept") || handling.startsWith("parse") || handling.startsWith("a user agent"))
    return "answered";
  if (handling.startsWith("not a 400")) return codes.length ? codes : "answered";
  return codes.length ? codes : "answered";
}

function rewriteToLoopback(text: string): string {
  // Every Via sent-by → 127.0.0.1:[port] (the peer); other IPv4 literals → 127.0.0.1.
  return text
    .replace(/^(Via|v)(\s*:\s*SIP\s*\/\s*2\.0\s*\/\s*[A-Za-z]+\s+)[^;,\r\n]+/gim, "$1$2127.0.0.1:[port]")
    .replace(/\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b/g, "127.0.0.1");
}

test("RFC 4475 torture messages get the handling EXPECT.tsv asks of a user agent", async () => {
  const failures: string[] = [];
  for (const file of readdirSync(corpusDir).filter((f) => f.endsWith(".dat"))) {
    const name = file.replace(/\.dat$/, "");
    const handling = expectations.get(name);
    if (!handling) continue;
    const original = readFileSync(`${corpusDir}${file}`, "latin1");
    if (!/^[A-Z]+ /.test(original) || original.startsWith("SIP/")) {
      // Responses: must be dropped (no transaction) and must not break the stack.
      const p = await newUdpPeer();
      p.send(Buffer.from(rewriteToLoopback(original), "latin1"));
      await settled(p);
      if (p.raw.some((d) => !isMarkerReply(d))) failures.push(`${name}: a response was answered`);
      continue;
    }
    const parsed = parseMessage(Buffer.from(original, "latin1"), "datagram");
    // "400 where a response can be built (usable Via, From, To, Call-ID, CSeq), otherwise drop".
    const answerable = parsed.ok || parsed.error.request !== undefined;
    let expected = expectedStatus(handling);
    if (!answerable && Array.isArray(expected) && expected.includes(400)) expected = "drop";
    const p = await newUdpPeer();
    p.send(Buffer.from(rewriteToLoopback(original).replaceAll("[port]", String(p.port)), "latin1"));
    await settled(p);
    // Replies to malformed requests copy the malformed headers, so read the status line raw.
    const statuses = p.raw
      .filter((d) => !isMarkerReply(d))
      .map((d) => /^SIP\/2\.0 (\d{3}) ?(.*)/.exec(new TextDecoder().decode(d)))
      .filter((m) => m !== null && Number(m[1]) >= 200)
      .map((m) => ({ status: Number(m![1]), reason: m![2] }));
    const final = statuses[0];
    if (expected === "drop") {
      if (final) failures.push(`${name}: expected drop, got ${final.status}`);
    } else if (expected === "answered") {
      if (!final || final.status === 400) failures.push(`${name}: expected an answer (not 400), got ${final?.status}`);
    } else if (!final || !expected.includes(final.status)) {
      failures.push(`${name}: expected ${expected.join("/")}, got ${final?.status ?? "nothing"} (${final?.reason ?? ""})`);
    }
    p.close();
  }
  expect(failures).toEqual([]);
});

test("fuzz over sockets: mutated torture messages and random bytes never break the stack", async () => {
  let state = 0x5eed;
  const random = () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state / 4294967296;
  };
  const p = await newUdpPeer();
  const seeds = readdirSync(corpusDir)
    .filter((f) => f.endsWith(".dat"))
    .map((f) => rewriteToLoopback(readFileSync(`${corpusDir}${f}`, "latin1")).replaceAll("[port]", String(p.port)))
    .map((text) => Buffer.from(text, "latin1"));
  const mutate = (input: Uint8Array): Uint8Array => {
    const out = Uint8Array.from(input);
    const flips = 1 + Math.floor(random() * 8);
    for (let i = 0; i < flips; i++) out[Math.floor(random() * out.length)] = Math.floor(random() * 256);
    return random() < 0.2 ? out.subarray(0, Math.floor(random() * out.length)) : out;
  };
  const stream = await tcpPeer("127.0.0.1", tcp.port);
  peers.push(stream);
  for (let i = 0; i < 600; i++) {
    const seed = seeds[i % seeds.length]!;
    const bytes =
      i % 10 === 0 ? crypto.getRandomValues(new Uint8Array(1 + Math.floor(random() * 1500))) : mutate(seed);
    p.send(bytes);
    if (i % 3 === 0) stream.send(bytes);
    // Every 10 datagrams the stack must still answer, having read them all: it is alive, and the
    // socket buffer never overflows (a lost marker would fail the test, not a lost fuzz datagram).
    if (i % 10 === 9) await settled(p);
  }
  // Still alive and answering on both transports (a fresh TCP connection: the fuzzed one may be closed).
  const after = await newUdpPeer();
  after.send(request("OPTIONS", { branch: "z9hG4bK-after-fuzz" }));
  await after.waitFor(isResponse(200));
  const fresh = await tcpPeer("127.0.0.1", tcp.port);
  peers.push(fresh);
  fresh.send(request("OPTIONS", { transport: "TCP", branch: "z9hG4bK-after-fuzz-tcp" }));
  await fresh.waitFor(isResponse(200));
});

test("a stack with a smaller maxMessageSize answers a larger request 413 and still serves small ones", async () => {
  const small = new SipStack({ listen: [{ transport: "udp", host: "127.0.0.1", port: 0 }], isKnownSource: loopbackIsTrunk, limits: { maxMessageSize: 2048 } });
  small.onRequest((_req, tx) => tx.respond(200));
  await small.start();
  try {
    const p = await udpPeer("127.0.0.1", small.boundEndpoints[0]!.port);
    peers.push(p);
    p.send(request("MESSAGE", { body: "x".repeat(3000), headers: ["Content-Type: text/plain"] }));
    const tooLarge = await p.waitFor((m): m is SipResponse => "status" in m);
    expect(tooLarge.status).toBe(413);
    p.send(request("OPTIONS"));
    expect((await p.waitFor((m): m is SipResponse => "status" in m && m.status === 200)).status).toBe(200);
  } finally {
    await small.stop();
  }
});

test("strangers: reject answers every method 403 statelessly (no 100 Trying, no transaction, never the handler, never the message tap); ACK nothing", async () => {
  const guarded = new SipStack({ listen: [{ transport: "udp", host: "127.0.0.1", port: 0 }], strangers: "reject", timers: { T1: 20, T2: 160, T4: 200 } });
  const tapped: string[] = [];
  guarded.tapMessages((m) => tapped.push(m.direction));
  const seen: SipRequest[] = [];
  guarded.onRequest((req, tx) => {
    seen.push(req);
    tx.respond(200);
  });
  await guarded.start();
  try {
    const p = await udpPeer("127.0.0.1", guarded.boundEndpoints[0]!.port);
    peers.push(p);
    for (const method of ["INVITE", "OPTIONS", "REGISTER", "BYE", "FOOBAR"]) p.send(request(method, { callId: `reject-${method}@test` }));
    p.send(request("ACK", { callId: "reject-ACK@test" }));
    p.send(request("MESSAGE", { callId: "reject-last@test" }));
    await p.waitFor((m) => m.callId === "reject-last@test");
    expect(p.received.map((m) => [m.callId, (m as SipResponse).status])).toEqual([
      ["reject-INVITE@test", 403],
      ["reject-OPTIONS@test", 403],
      ["reject-REGISTER@test", 403],
      ["reject-BYE@test", 403],
      ["reject-FOOBAR@test", 403],
      ["reject-last@test", 403],
    ]);
    expect(p.received.some((m) => m.getHeader("Server") !== undefined)).toBe(false);
    expect(seen).toEqual([]);
    expect(guarded.transactions.size.servers).toBe(0);
    expect(guarded.counters.sources.strangersRejected).toBe(7);
    // Neither traced nor mirrored to HEP: a stranger's packets cost no copy.
    expect(tapped.filter((d) => d === "received")).toEqual([]);
  } finally {
    await guarded.stop();
  }
});

test("the message tap names each message's Call-ID as the stack parsed or built it, both ways; an unparseable datagram comes without one", async () => {
  const tapping = new SipStack({ listen: [{ transport: "udp", host: "127.0.0.1", port: 0 }], isKnownSource: loopbackIsTrunk });
  const tapped: { direction: string; callId: string | undefined; firstLine: string }[] = [];
  tapping.tapMessages((m) => tapped.push({ direction: m.direction, callId: m.callId, firstLine: new TextDecoder().decode(m.data).split("\r\n")[0]! }));
  tapping.onRequest((_req, tx) => tx.respond(200));
  await tapping.start();
  try {
    const p = await udpPeer("127.0.0.1", tapping.boundEndpoints[0]!.port);
    peers.push(p);
    p.send("NOT SIP AT ALL\r\nCall-ID: garbage@test\r\n\r\n");
    p.send(request("OPTIONS", { callId: "tapped@test" }));
    await p.waitFor((m) => m.callId === "tapped@test");
    await until(() => tapped.some((t) => t.direction === "sent"));
    expect(tapped).toEqual([
      { direction: "received", callId: undefined, firstLine: "NOT SIP AT ALL" },
      { direction: "received", callId: "tapped@test", firstLine: "OPTIONS sip:bob@127.0.0.1 SIP/2.0" },
      { direction: "sent", callId: "tapped@test", firstLine: "SIP/2.0 200 OK" },
    ]);
  } finally {
    await tapping.stop();
  }
});

test("a stack without a TLS listener still dials TLS peers (trunks over TLS), verifying them", async () => {
  const cert = new URL("../fixtures/tls/cert.pem", import.meta.url).pathname;
  const key = new URL("../fixtures/tls/key.pem", import.meta.url).pathname;
  const server = new SipStack({ listen: [{ transport: "tls", host: "127.0.0.1", port: 0 }], isKnownSource: loopbackIsTrunk, tls: { certFile: cert, keyFile: key } });
  server.onRequest((_req, tx) => tx.respond(200));
  const trusting = new SipStack({ listen: [{ transport: "udp", host: "127.0.0.1", port: 0 }], tls: { caFile: cert } });
  const strict = new SipStack({ listen: [{ transport: "udp", host: "127.0.0.1", port: 0 }] });
  await Promise.all([server.start(), trusting.start(), strict.start()]);
  try {
    expect(trusting.boundEndpoints.map((e) => e.transport)).toEqual(["udp"]);
    const dest = server.boundEndpoints[0]!;
    const ask = (from: SipStack) => {
      const uri = parseUri(`sip:ping@127.0.0.1:${dest.port};transport=tls`)!;
      const req = from.createOutOfDialogRequest({ method: "OPTIONS", uri, from: { uri: parseUri("sip:a@127.0.0.1")!, params: new Map() }, to: { uri, params: new Map() }, transport: "tls" });
      return from.sendRequest(req, dest).outcome;
    };
    const answered = await ask(trusting);
    expect(answered.kind === "final" ? answered.response.status : answered.kind).toBe(200);
    const refused = await ask(strict);
    expect(refused.kind).toBe("transportError");
  } finally {
    await Promise.all([server.stop(), trusting.stop(), strict.stop()]);
  }
});
