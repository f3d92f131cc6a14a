// Per-call SIP traces. The recorder listens to the SIP stack's message tap (src/sip/tap.ts) and to
// the call records (which call has which SIP Call-ID, when it ends), keeps each call's messages in
// memory, and writes the call's trace once, `lingerMs` after the call ended (so the last ACK, a
// retransmitted BYE or its 200 are in it). Nothing touches the database per message. At 1,000
// calls/s, 5,000 ended calls' traces wait at once: they wait on one linger queue, each holding its
// messages as the one JSON string the store will write (masked when the call ended), and a live
// call's messages share the objects naming their addresses.
//
// Bounded: a call keeps at most `maxBytes` of messages (later ones are only counted, and the trace
// says how many were dropped); messages of a Call-ID no call claims yet (an inbound INVITE is seen
// before its call exists) wait in a small ring and are claimed when the call names its Call-ID.
// Only sources the stack admits reach the tap, so a stranger's traffic costs nothing here.
import { createLogger } from "../log.ts";
import { LingerQueue } from "../sip/linger-queue.ts";
import type { SipStack } from "../sip/stack.ts";
import type { TappedMessage } from "../sip/tap.ts";
import type { CallStore, CallUpdate } from "../store/calls.ts";
import type { SipTrace, SipTraceStore, TracedMessage } from "../store/sipTraces.ts";
import { maskedMessage } from "./mask.ts";

const log = createLogger("traces");

/** Messages seen before any call claimed their Call-ID; the oldest are forgotten first. */
const UNCLAIMED_RING = 32;
/** Distinct addresses and ports whose objects kept messages share; past this, the cache starts over. */
const SHARED_ENDPOINTS = 1024;
/** The last endpoints used, compared field by field before building the cache's key (≈ 20 against ≈ 100 ns). */
const RECENT_ENDPOINTS = 4;

type Endpoint = TappedMessage["source"];

interface CallTrace {
  id: string;
  /** Messages as tapped; once the call has ended, only those that came after. */
  messages: TappedMessage[];
  /** The messages of the call until it ended, masked: the elements of the JSON array the store writes. */
  written?: string;
  bytes: number;
  droppedMessages: number;
  sipCallIds: string[];
  endedAt?: number;
}

export interface SipTraceRecorderOptions {
  store: SipTraceStore;
  /** records.sipTraceMaxBytes, read for every new call; 0 records nothing. */
  maxBytes: () => number;
  /** How long a call's trace keeps collecting after the call ended (default 5 s). */
  lingerMs?: number;
}

export class SipTraceRecorder {
  private readonly bySipCallId = new Map<string, CallTrace>();
  private readonly byCall = new Map<string, CallTrace>();
  private unclaimed: { sipCallId: string; message: TappedMessage }[] = [];
  /** Traces of ended calls, saved `lingerMs` after the call ended. */
  private readonly lingering: LingerQueue<CallTrace>;
  private readonly endpoints = new Map<string, Endpoint>();
  private readonly recentEndpoints: Endpoint[] = [];
  private detach: (() => void)[] = [];

  constructor(private readonly options: SipTraceRecorderOptions) {
    this.lingering = new LingerQueue(options.lingerMs ?? 5000, (trace) => this.save(trace), (err) => log.error("saving a sip trace failed", { err }));
  }

  attach(stack: SipStack, calls: CallStore): void {
    this.detach.push(
      stack.tapMessages((message) => this.message(message)),
      calls.watch((id, change) => this.onRecord(id, change)),
    );
  }

  /** Stops listening and writes every trace still in memory. */
  stop(): void {
    for (const off of this.detach.splice(0)) off();
    for (const trace of [...this.byCall.values()]) this.save(trace);
    this.lingering.clear();
    this.unclaimed = [];
  }

  /** The trace of a call still in memory (live or lingering), masked; undefined otherwise. */
  live(callId: string): SipTrace | undefined {
    const trace = this.byCall.get(callId);
    return trace ? snapshot(trace) : undefined;
  }

  /** A call's trace: from memory while the call is live or lingering, else from the store. */
  async get(callId: string): Promise<SipTrace | undefined> {
    return this.live(callId) ?? (await this.options.store.get(callId));
  }

  /** A tapped message (attach() feeds the stack's messages here). */
  message(message: TappedMessage): void {
    // A message the stack could not parse comes without its Call-ID: read from its bytes.
    const sipCallId = message.callId ?? callIdOf(message.data);
    if (sipCallId === undefined) return;
    // The tapped bytes may be a view into a buffer the transport reuses: keep a copy. Not its
    // Call-ID, a substring that would pin the parsed message's whole text while the trace lingers.
    const { direction, transport, time } = message;
    const kept: TappedMessage = {
      direction,
      data: message.data.slice(),
      transport,
      source: this.shared(message.source),
      destination: this.shared(message.destination),
      time,
    };
    const trace = this.bySipCallId.get(sipCallId);
    if (trace) return this.add(trace, kept);
    this.unclaimed.push({ sipCallId, message: kept });
    if (this.unclaimed.length > UNCLAIMED_RING) this.unclaimed.shift();
  }

  private onRecord(id: string, change: CallUpdate): void {
    let trace = this.byCall.get(id);
    if (change.sipCallId !== undefined) {
      if (!trace) {
        if (this.options.maxBytes() === 0) return;
        trace = { id, messages: [], bytes: 0, droppedMessages: 0, sipCallIds: [] };
        this.byCall.set(id, trace);
      }
      if (!trace.sipCallIds.includes(change.sipCallId)) {
        trace.sipCallIds.push(change.sipCallId);
        this.bySipCallId.set(change.sipCallId, trace);
        const claimed = this.unclaimed.filter((u) => u.sipCallId === change.sipCallId);
        if (claimed.length > 0) {
          this.unclaimed = this.unclaimed.filter((u) => u.sipCallId !== change.sipCallId);
          for (const u of claimed) this.add(trace, u.message);
        }
      }
    }
    if (trace && change.state === "ended" && trace.endedAt === undefined) {
      trace.endedAt = Date.now();
      // One string while it lingers instead of two objects per message (a copy of its bytes, its record).
      trace.written = trace.messages.map((m) => JSON.stringify(traced(m))).join(",");
      trace.messages = [];
      this.lingering.add(trace);
    }
  }

  /** One object per address and port, shared by every kept message that names it. */
  private shared(endpoint: Endpoint): Endpoint {
    for (const recent of this.recentEndpoints) {
      if (recent.port === endpoint.port && recent.address === endpoint.address) return recent;
    }
    const key = `${endpoint.port} ${endpoint.address}`;
    let kept = this.endpoints.get(key);
    if (!kept) {
      if (this.endpoints.size >= SHARED_ENDPOINTS) this.endpoints.clear();
      kept = { address: endpoint.address, port: endpoint.port };
      this.endpoints.set(key, kept);
    }
    this.recentEndpoints.unshift(kept);
    if (this.recentEndpoints.length > RECENT_ENDPOINTS) this.recentEndpoints.pop();
    return kept;
  }

  private add(trace: CallTrace, message: TappedMessage): void {
    if (trace.bytes + message.data.length > this.options.maxBytes()) {
      trace.droppedMessages++;
      return;
    }
    trace.messages.push(message);
    trace.bytes += message.data.length;
  }

  private save(trace: CallTrace): void {
    // Saved already (on stop) when the queue comes to it.
    if (this.byCall.get(trace.id) !== trace) return;
    this.byCall.delete(trace.id);
    for (const sipCallId of trace.sipCallIds) if (this.bySipCallId.get(sipCallId) === trace) this.bySipCallId.delete(sipCallId);
    if (trace.messages.length === 0 && !trace.written && trace.droppedMessages === 0) return;
    try {
      const { id: callId, bytes, droppedMessages } = trace;
      this.options.store.save({ callId, bytes, droppedMessages, messagesJson: messagesJson(trace) }, trace.endedAt ?? Date.now());
    } catch (err) {
      log.error("saving a sip trace failed", { callId: trace.id, sipCallId: trace.sipCallIds.at(-1), err });
    }
  }
}

function snapshot(trace: CallTrace): SipTrace {
  const written: TracedMessage[] = trace.written ? JSON.parse(`[${trace.written}]`) : [];
  return {
    callId: trace.id,
    bytes: trace.bytes,
    droppedMessages: trace.droppedMessages,
    messages: [...written, ...trace.messages.map(traced)],
  };
}

function messagesJson(trace: CallTrace): string {
  const elements = trace.messages.map((m) => JSON.stringify(traced(m)));
  if (trace.written) elements.unshift(trace.written);
  return `[${elements.join(",")}]`;
}

function traced(m: TappedMessage): TracedMessage {
  return {
    time: m.time,
    direction: m.direction,
    transport: m.transport,
    source: m.source,
    destination: m.destination,
    message: maskedMessage(m.data),
  };
}

const CR = 0x0d;
const LF = 0x0a;

/**
 * The Call-ID header's value (RFC 3261 §20.8, compact form "i"), read from the raw header lines
 * without parsing the message; undefined when there is none.
 */
export function callIdOf(data: Uint8Array): string | undefined {
  let line = 0;
  while (line < data.length) {
    let end = line;
    while (end < data.length && data[end] !== LF) end++;
    const lineEnd = end > line && data[end - 1] === CR ? end - 1 : end;
    if (lineEnd === line) return undefined; // the empty line: end of the headers
    const value = headerValue(data, line, lineEnd);
    if (value !== undefined) return value;
    line = end + 1;
  }
  return undefined;
}

function headerValue(data: Uint8Array, start: number, end: number): string | undefined {
  const first = (data[start] ?? 0) | 0x20;
  let i: number;
  if (first === 0x69 /* i */) i = start + 1;
  else if (first === 0x63 /* c */ && end - start > 8 && matchesCallId(data, start)) i = start + 7;
  else return undefined;
  while (i < end && (data[i] === 0x20 || data[i] === 0x09)) i++;
  if (data[i] !== 0x3a /* : */) return undefined;
  i++;
  while (i < end && (data[i] === 0x20 || data[i] === 0x09)) i++;
  let last = end;
  while (last > i && (data[last - 1] === 0x20 || data[last - 1] === 0x09)) last--;
  return last > i ? Buffer.from(data.buffer, data.byteOffset + i, last - i).toString("latin1") : undefined;
}

const CALL_ID = "call-id";

function matchesCallId(data: Uint8Array, start: number): boolean {
  for (let k = 0; k < CALL_ID.length; k++) {
    if (((data[start + k] ?? 0) | 0x20) !== CALL_ID.charCodeAt(k)) return false;
  }
  return true;
}
