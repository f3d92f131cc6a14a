// SIP traces and HEP without a network: the recorder (claiming a call's first messages, the size
// cap, the linger before the one write), masking, the trace store and its retention on both
// drivers, the pcap read by tshark (IPv6 and TCP included), HEP3 packets, RTCP as JSON, the HEP
// queue's bound.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { heapStats } from "bun:jsc";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildCompound, parseCompound } from "../../src/media/rtcp.ts";
import type { SipStack } from "../../src/sip/stack.ts";
import type { MessageTap, TappedMessage } from "../../src/sip/tap.ts";
import type { CallStore, CallUpdate } from "../../src/store/calls.ts";
import { openPostgresStore, openStore, type Store } from "../../src/store/index.ts";
import { CallRecordRetention } from "../../src/store/retention.ts";
import { type SerializedSipTrace, type SipTrace, SipTraceStore } from "../../src/store/sipTraces.ts";
import { type SqlExecutor, SqliteExecutor } from "../../src/store/sql.ts";
import { tracePcap, traceView } from "../../src/traces/formats.ts";
import dgram from "node:dgram";
import { metrics } from "../../src/metrics.ts";
import { encodeHep3, HepExporter, rtcpJson } from "../../src/traces/hep.ts";
import { maskedMessage } from "../../src/traces/mask.ts";
import { callIdOf, SipTraceRecorder } from "../../src/traces/sipTrace.ts";
import { decodeHep3 } from "../helpers/hep.ts";
import { createDatabase, startPostgres, type Postgres } from "../helpers/postgres.ts";
import { until } from "../helpers/until.ts";

const encoder = new TextEncoder();
const US = { address: "192.0.2.1", port: 5060 };
const THEM = { address: "198.51.100.7", port: 5080 };

function sip(firstLine: string, callId: string, extra = "", body = ""): string {
  return `${firstLine}\r\nVia: SIP/2.0/UDP 198.51.100.7:5080;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: ${callId}\r\nCSeq: 1 INVITE\r\n${extra}Content-Length: ${encoder.encode(body).length}\r\n\r\n${body}`;
}

function tapped(direction: "sent" | "received", text: string, time = Date.now()): TappedMessage {
  return { direction, data: encoder.encode(text), transport: "udp", source: direction === "sent" ? US : THEM, destination: direction === "sent" ? THEM : US, time };
}

const SDES_KEY = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
const SDP = `v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\nm=audio 40000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:${SDES_KEY}|2^20\r\n`;

describe("masking", () => {
  test("credentials and SDES keys are masked; Content-Length follows the masked body", () => {
    const text = sip("INVITE sip:b@y SIP/2.0", "m1", 'Proxy-Authorization: Digest username="u", response="0123456789abcdef0123456789abcdef"\r\nContent-Type: application/sdp\r\n', SDP);
    const masked = maskedMessage(encoder.encode(text));
    expect(masked).not.toContain(SDES_KEY);
    expect(masked).not.toContain("0123456789abcdef0123456789abcdef");
    expect(masked).toContain("Proxy-Authorization: [redacted]");
    expect(masked).toContain("inline:[redacted]");
    const [head, body] = masked.split("\r\n\r\n") as [string, string];
    expect(Number(/Content-Length: (\d+)/.exec(head)?.[1])).toBe(encoder.encode(body).length);
    const plain = sip("BYE sip:b@y SIP/2.0", "m2");
    expect(maskedMessage(encoder.encode(plain))).toBe(plain);
  });

  test("the Call-ID is read from the raw header lines, full or compact form, never from the body", () => {
    expect(callIdOf(encoder.encode(sip("INVITE sip:b@y SIP/2.0", "abc@host")))).toBe("abc@host");
    expect(callIdOf(encoder.encode("SIP/2.0 200 OK\r\nCall-Info: <x>\r\ni:  compact-1 \r\n\r\n"))).toBe("compact-1");
    expect(callIdOf(encoder.encode("OPTIONS sip:x SIP/2.0\r\nVia: x\r\n\r\nCall-ID: in-the-body\r\n"))).toBeUndefined();
  });
});

function fakeStack(): { stack: SipStack; send(m: TappedMessage): void } {
  let tap: MessageTap | undefined;
  const stack = {
    tapMessages(fn: MessageTap) {
      tap = fn;
      return () => (tap = undefined);
    },
  } as unknown as SipStack;
  return { stack, send: (m) => tap?.(m) };
}

/** A recorder on an in-memory store, fed by a fake stack's tap. */
function recording(lingerMs: number, maxBytes: () => number = () => 100_000) {
  const store = openStore(":memory:");
  const { stack, send } = fakeStack();
  const recorder = new SipTraceRecorder({ store: store.sipTraces, maxBytes, lingerMs });
  recorder.attach(stack, store.calls);
  return { store, stack, send, recorder };
}

describe("the recorder", () => {
  test("claims the INVITE seen before its call, keeps only its call's messages, writes once after the linger", async () => {
    const { store, send, recorder } = recording(50);
    send(tapped("received", sip("INVITE sip:b@y SIP/2.0", "cid-1")));
    send(tapped("received", sip("OPTIONS sip:b@y SIP/2.0", "someone-else")));
    store.calls.create({ id: "call_1", direction: "inbound", from: "a", to: "b", sipCallId: "cid-1" });
    send(tapped("sent", sip("SIP/2.0 200 OK", "cid-1")));
    store.calls.update("call_1", { state: "ended", endReason: "rejected" });
    // Within the linger: the ACK still belongs to the trace.
    send(tapped("received", sip("ACK sip:b@y SIP/2.0", "cid-1")));
    expect(recorder.live("call_1")?.messages.map((m) => m.message.split(" ")[0])).toEqual(["INVITE", "SIP/2.0", "ACK"]);
    expect(await store.sipTraces.get("call_1")).toBeUndefined();
    await until(async () => (await store.sipTraces.get("call_1")) !== undefined, { what: () => "never written" });
    expect(recorder.live("call_1")).toBeUndefined();
    const stored = (await recorder.get("call_1"))!;
    expect(stored.messages.map((m) => [m.direction, m.source, m.destination])).toEqual([
      ["received", THEM, US],
      ["sent", US, THEM],
      ["received", THEM, US],
    ]);
    // After the write the call is forgotten: a late retransmission goes nowhere.
    send(tapped("received", sip("ACK sip:b@y SIP/2.0", "cid-1")));
    expect(recorder.live("call_1")).toBeUndefined();
    recorder.stop();
    await store.close();
  });

  test("the messages a call's trace keeps share one object per address and port, however many the tap made", async () => {
    const { store, send, recorder } = recording(60_000);
    store.calls.create({ id: "call_3", direction: "inbound", from: "a", to: "b", sipCallId: "cid-3" });
    // The tap makes fresh address objects for every message.
    for (const direction of ["received", "sent", "received"] as const) {
      const message = tapped(direction, sip("INFO sip:b@y SIP/2.0", "cid-3"));
      send({ ...message, source: { ...message.source }, destination: { ...message.destination } });
    }
    const [first, second, third] = recorder.live("call_3")!.messages;
    expect([first!.source, first!.destination]).toEqual([THEM, US]);
    expect(third!.source).toBe(first!.source);
    expect(second!.destination).toBe(first!.source);
    expect(second!.source).toBe(first!.destination);
    // Six other peers later, the first one's object is still the one its messages share.
    for (let port = 6000; port < 6006; port++) {
      send({ ...tapped("received", sip("INFO sip:b@y SIP/2.0", "cid-3")), source: { address: THEM.address, port } });
    }
    send({ ...tapped("received", sip("INFO sip:b@y SIP/2.0", "cid-3")), source: { ...THEM } });
    const messages = recorder.live("call_3")!.messages;
    expect(new Set(messages.slice(3, 9).map((m) => m.source)).size).toBe(6);
    expect(messages.at(-1)!.source).toBe(first!.source);
    recorder.stop();
    await store.close();
  });

  test("an ended call's trace lingers as one string of its masked messages, not two objects per message", () => {
    let record: ((id: string, change: CallUpdate) => void) | undefined;
    const calls = { watch: (fn: typeof record) => ((record = fn), () => {}) } as unknown as CallStore;
    const { stack, send } = fakeStack();
    const saved: string[] = [];
    const store = { save: (trace: { messagesJson?: string }) => saved.push(trace.messagesJson ?? "") } as unknown as SipTraceStore;
    const recorder = new SipTraceRecorder({ store, maxBytes: () => 100_000, lingerMs: 60_000 });
    recorder.attach(stack, calls);
    const lines = ["INVITE sip:b@y SIP/2.0", "SIP/2.0 100 Trying", "SIP/2.0 200 OK", "ACK sip:b@y SIP/2.0", "BYE sip:b@y SIP/2.0", "SIP/2.0 200 OK"];
    const call = (n: number) => {
      record!(`call_${n}`, { sipCallId: `cid-${n}` });
      for (const [i, line] of lines.entries()) send(tapped(i % 2 === 0 ? "received" : "sent", sip(line, `cid-${n}`)));
      record!(`call_${n}`, { state: "ended" });
    };
    // The code's own cells (compiled functions, shapes) come with the first calls: not counted.
    for (let n = 0; n < 200; n++) call(n);
    const ended = 2_000;
    Bun.gc(true);
    const before = heapStats().objectCount;
    for (let n = 200; n < 200 + ended; n++) call(n);
    Bun.gc(true);
    // The trace, its call's id and Call-ID, its arrays, the string and the index entries: 8.6 per
    // call. Keeping the six messages as tapped until the write was 25.6 (each a copy of its bytes
    // and the object that names them).
    expect((heapStats().objectCount - before) / ended).toBeLessThan(10);
    const live = recorder.live("call_7")!;
    expect(live.messages.map((m) => m.message.split("\r\n")[0])).toEqual(lines);
    recorder.stop();
    expect(saved).toHaveLength(200 + ended);
    expect((JSON.parse(saved[7]!) as { message: string }[]).map((m) => m.message.split("\r\n")[0])).toEqual(lines);
  });

  test("files a message under the Call-ID the stack tapped it with, reading the bytes only for a message without one", async () => {
    const { store, send, recorder } = recording(60_000);
    store.calls.create({ id: "call_2", direction: "inbound", from: "a", to: "b", sipCallId: "parsed-id" });
    // The stack's Call-ID wins over the bytes (which it parsed itself); without one, the bytes are read.
    send({ ...tapped("received", sip("INVITE sip:b@y SIP/2.0", "bytes-id")), callId: "parsed-id" });
    send(tapped("received", sip("ACK sip:b@y SIP/2.0", "parsed-id")));
    send(tapped("received", sip("BYE sip:b@y SIP/2.0", "bytes-id")));
    expect(recorder.live("call_2")?.messages.map((m) => m.message.split(" ")[0])).toEqual(["INVITE", "ACK"]);
    recorder.stop();
    await store.close();
  });

  test("a call's trace stops at records.sipTraceMaxBytes and says how many messages it dropped; 0 records nothing", async () => {
    let maxBytes = 2 * encoder.encode(sip("BYE sip:b@y SIP/2.0", "cid-2")).length;
    const { store, stack, send, recorder } = recording(10_000, () => maxBytes);
    store.calls.create({ id: "call_2", direction: "outbound", from: "a", to: "b" });
    store.calls.update("call_2", { sipCallId: "cid-2" });
    for (let i = 0; i < 5; i++) send(tapped("sent", sip("BYE sip:b@y SIP/2.0", "cid-2")));
    const view = traceView(recorder.live("call_2")!);
    expect(view.messages).toHaveLength(2);
    expect(view.messages.map((m) => m.retransmission)).toEqual([false, true]);
    expect(view).toMatchObject({ droppedMessages: 3, truncated: true });
    // Stopping writes what is in memory, finished or not.
    recorder.stop();
    expect((await store.sipTraces.get("call_2"))?.droppedMessages).toBe(3);

    maxBytes = 0;
    const again = new SipTraceRecorder({ store: store.sipTraces, maxBytes: () => maxBytes });
    again.attach(stack, store.calls);
    store.calls.create({ id: "call_3", direction: "inbound", from: "a", to: "b", sipCallId: "cid-3" });
    send(tapped("received", sip("INVITE sip:b@y SIP/2.0", "cid-3")));
    expect(again.live("call_3")).toBeUndefined();
    again.stop();
    expect(await store.sipTraces.get("call_3")).toBeUndefined();
    await store.close();
  });
});

let pg: Postgres | undefined;
let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "trunkline-traces-"));
  pg = await startPostgres();
}, 60_000);
afterAll(async () => {
  await pg?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const trace = (callId: string, n = 1): SipTrace => ({
  callId,
  bytes: 10 * n,
  droppedMessages: 0,
  messages: Array.from({ length: n }, (_, i) => ({ time: 1_700_000_000_000 + i, direction: "sent" as const, transport: "udp" as const, source: US, destination: THEM, message: sip("BYE sip:b@y SIP/2.0", callId) })),
});
/** What the recorder hands the store: the messages as their JSON. */
const asSaved = (t: SipTrace): SerializedSipTrace => ({ callId: t.callId, bytes: t.bytes, droppedMessages: t.droppedMessages, messagesJson: JSON.stringify(t.messages) });

const drivers: { name: string; open(): Promise<Store> }[] = [
  { name: "SQLite", open: async () => openStore(":memory:") },
  { name: "PostgreSQL", open: async () => openPostgresStore({ url: await createDatabase(pg!, `traces_${Date.now()}`) }) },
];

for (const driver of drivers) {
  test(`traces are stored, replaced and pruned by records.sipTraceDays (${driver.name})`, async () => {
    const store = await driver.open();
    const DAY = 86_400_000;
    const now = Date.parse("2026-06-01T00:00:00Z");
    store.sipTraces.save(asSaved(trace("old")), now - 10 * DAY);
    store.sipTraces.save(asSaved(trace("recent")), now - DAY);
    store.sipTraces.save(asSaved(trace("recent", 3)), now - DAY);
    expect(await store.sipTraces.get("recent")).toEqual(trace("recent", 3));
    const retention = new CallRecordRetention({ records: store.sipTraces, kind: "SIP traces", retentionDays: () => 7, batchSize: 1, now: () => now });
    expect(await retention.run()).toEqual({ pruned: 1, batches: 2 });
    expect(await store.sipTraces.get("old")).toBeUndefined();
    expect(await store.sipTraces.get("recent")).toBeDefined();
    await store.close();
  });
}

test("traces are written behind: readable at once, and closing the store commits what waits", async () => {
  const dir = mkdtempSync(join(tmpdir(), "traces-behind-"));
  try {
    const path = join(dir, "t.db");
    const store = await openStore(path);
    for (let i = 0; i < 5; i++) store.sipTraces.save(asSaved(trace(`batch-${i}`, i + 1)), Date.now());
    // Read-your-writes before any commit.
    expect(await store.sipTraces.get("batch-3")).toEqual(trace("batch-3", 4));
    await store.close();
    const reopened = await openStore(path);
    for (let i = 0; i < 5; i++) expect(await reopened.sipTraces.get(`batch-${i}`)).toEqual(trace(`batch-${i}`, i + 1));
    await reopened.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the traces saved within one window share one transaction; one the database refuses does not take the others along", async () => {
  const store = await openStore(":memory:");
  const executor = new SqliteExecutor(store.db!);
  const batches: number[] = [];
  const counting: SqlExecutor = {
    dialect: "sqlite",
    query: (sql, params) => executor.query(sql, params),
    transaction: (work) => executor.transaction(work),
    serial: (work) => executor.serial(work),
    batch: (statements) => {
      batches.push(statements.length);
      // A trace whose call id the database refuses (a stand-in for any row-level failure).
      if (statements.some((st) => st.params[0] === "refused")) return Promise.reject(new Error("refused"));
      return executor.batch(statements);
    },
  };
  const traces = new SipTraceStore(counting);
  for (let i = 0; i < 10; i++) traces.save(asSaved(trace(`t-${i}`)), Date.now());
  await traces.flush();
  expect(batches).toEqual([10]);
  traces.save(asSaved(trace("ok-1")), Date.now());
  traces.save(asSaved(trace("refused")), Date.now());
  traces.save(asSaved(trace("ok-2")), Date.now());
  await traces.flush();
  expect(batches).toEqual([10, 3, 1, 1, 1]);
  expect(await traces.get("ok-1")).toBeDefined();
  expect(await traces.get("ok-2")).toBeDefined();
  expect(await traces.get("refused")).toBeUndefined();
  await store.close();
});

test("the pcap opens in tshark: SIP over UDP/IPv4 and TCP/IPv6 with their addresses, ports and times", () => {
  const v6 = { address: "2001:db8::1", port: 5060 };
  const v6peer = { address: "2001:db8::7", port: 5061 };
  const t0 = Date.parse("2026-06-01T00:00:00.123Z");
  const pcapTrace: SipTrace = {
    callId: "call_x",
    bytes: 0,
    droppedMessages: 0,
    messages: [
      { time: t0, direction: "received", transport: "udp", source: THEM, destination: US, message: sip("INVITE sip:b@y SIP/2.0", "p1") },
      { time: t0 + 1.5, direction: "sent", transport: "tcp", source: v6, destination: v6peer, message: sip("INVITE sip:c@z SIP/2.0", "p1") },
      { time: t0 + 20, direction: "received", transport: "tls", source: v6peer, destination: v6, message: sip("SIP/2.0 180 Ringing", "p1") },
    ],
  };
  const path = join(dir, "t.pcap");
  writeFileSync(path, tracePcap(pcapTrace));
  const run = spawnSync(
    "tshark",
    ["-r", path, "-T", "fields", "-e", "frame.time_epoch", "-e", "ip.src", "-e", "ipv6.src", "-e", "udp.srcport", "-e", "tcp.srcport", "-e", "sip.Method", "-e", "sip.Status-Code", "-E", "separator=|"],
    { encoding: "utf8" },
  );
  expect(run.status, run.stderr).toBe(0);
  const rows = run.stdout.trim().split("\n").map((r) => r.split("|"));
  expect(rows.map((r) => r.slice(1))).toEqual([
    ["198.51.100.7", "", "5080", "", "INVITE", ""],
    ["", "2001:db8::1", "", "5060", "INVITE", ""],
    ["", "2001:db8::7", "", "5061", "", "180"],
  ]);
  expect(rows.map((r) => Math.round(Number(r[0]) * 1000))).toEqual([t0, t0 + 2, t0 + 20]);
});

test("HEP3 packets carry the spec's chunks; RTCP goes as JSON", () => {
  const packet = encodeHep3({
    source: { address: "2001:db8::1", port: 5060 },
    destination: { address: "2001:db8::7", port: 5061 },
    ipProtocol: 6,
    time: 1_700_000_000_250.5,
    protocolType: 1,
    captureId: 0xfffffffe,
    authKey: "key",
    correlationId: "cid",
    payload: encoder.encode("OPTIONS sip:x SIP/2.0\r\n\r\n"),
  });
  const decoded = decodeHep3(packet)!;
  expect(decoded).toMatchObject({ protocolType: 1, captureId: 0xfffffffe, authKey: "key", correlationId: "cid", payload: "OPTIONS sip:x SIP/2.0\r\n\r\n" });
  expect(decoded.source).toBe("2001:db8:0:0:0:0:0:1:5060");
  expect(decoded.chunks.get(0x0001)).toEqual(Uint8Array.of(10));
  expect(decoded.chunks.get(0x0002)).toEqual(Uint8Array.of(6));
  expect(decoded.chunks.get(0x0009)).toEqual(Uint8Array.of(0x65, 0x53, 0xf1, 0x00));
  expect(new DataView(decoded.chunks.get(0x000a)!.buffer, decoded.chunks.get(0x000a)!.byteOffset).getUint32(0)).toBe(250_500);

  const compound = buildCompound({
    ssrc: 0x1234,
    cname: "tl",
    sender: { ntpSec: 1, ntpFrac: 2 ** 31, rtpTimestamp: 160, packetCount: 50, octetCount: 8000 },
    reports: [{ ssrc: 0x99, fractionLost: 12, cumulativeLost: 3, extendedHighestSeq: 1000, jitter: 40, lastSr: 7, delaySinceLastSr: 65536 }],
  });
  expect(rtcpJson(parseCompound(compound)!)).toEqual({
    ssrc: 0x1234,
    type: 200,
    report_count: 1,
    sender_information: { ntp_timestamp_sec: 1, ntp_timestamp_usec: 500_000, rtp_timestamp: 160, packets: 50, octets: 8000 },
    report_blocks: [{ source_ssrc: 0x99, fraction_lost: 12, packets_lost: 3, highest_seq_no: 1000, ia_jitter: 40, lsr: 7, dlsr: 65536 }],
    sdes_ssrc: 0x1234,
    sdes_information: [{ type: 1, text: "tl" }],
  });
});

test("the HEP exporter never queues more than its bound: the rest is dropped and counted", async () => {
  const sink = dgram.createSocket("udp4");
  const got: HepPacketLike[] = [];
  sink.on("message", (data) => got.push(decodeHep3(new Uint8Array(data))!));
  await new Promise<void>((resolve) => sink.bind(0, "127.0.0.1", resolve));
  const dropped = () => metrics.counter("trunkline_hep_dropped_total", "", ["reason"]).get({ reason: "queue_full" });
  const before = dropped();
  const exporter = await HepExporter.open({ host: "127.0.0.1", port: sink.address().port, captureId: 9, maxQueued: 3 });
  try {
    // Five messages in one turn of the event loop: three fit the queue, two are dropped.
    for (let i = 0; i < 5; i++) exporter.sip(tapped("received", sip("OPTIONS sip:b@y SIP/2.0", `q${i}`)));
    expect(dropped() - before).toBe(2);
    await until(() => got.length === 3, { what: () => got.length });
    expect(got.map((p) => /Call-ID: (\S+)/.exec(p.payload)?.[1])).toEqual(["q0", "q1", "q2"]);
    expect(got.every((p) => p.captureId === 9 && p.protocolType === 1)).toBe(true);
  } finally {
    exporter.close();
    sink.close();
  }
});

type HepPacketLike = NonNullable<ReturnType<typeof decodeHep3>>;
