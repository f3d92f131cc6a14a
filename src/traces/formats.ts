// A call's SIP trace as the API serves it: JSON, a text ladder, or a pcap (libpcap, link type
// LINKTYPE_RAW: IPv4/IPv6 packets with synthesized UDP or TCP headers; TLS appears as the TCP it
// was carried on, decrypted) that Wireshark and tshark open and decode as SIP.
import type { SipTrace, TracedMessage } from "../store/sipTraces.ts";
import { ipv4Bytes, ipv6Bytes } from "./ip.ts";

export interface TraceMessageView {
  time: string;
  direction: "sent" | "received";
  transport: "udp" | "tcp" | "tls";
  source: string;
  destination: string;
  /** The first line: request line or status line. */
  summary: string;
  /** The same bytes were already sent or received in this direction (a retransmission). */
  retransmission: boolean;
  message: string;
}

export interface TraceView {
  callId: string;
  messages: TraceMessageView[];
  bytes: number;
  droppedMessages: number;
  /** Messages were dropped because the trace reached records.sipTraceMaxBytes. */
  truncated: boolean;
}

export function endpointText(e: { address: string; port: number }): string {
  return e.address.includes(":") ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

export function traceView(trace: SipTrace): TraceView {
  const seen = new Set<string>();
  return {
    callId: trace.callId,
    bytes: trace.bytes,
    droppedMessages: trace.droppedMessages,
    truncated: trace.droppedMessages > 0,
    messages: trace.messages.map((m) => {
      const key = `${m.direction}\n${m.message}`;
      const retransmission = seen.has(key);
      seen.add(key);
      return {
        time: new Date(m.time).toISOString(),
        direction: m.direction,
        transport: m.transport,
        source: endpointText(m.source),
        destination: endpointText(m.destination),
        summary: m.message.slice(0, m.message.indexOf("\r\n") >>> 0).trim(),
        retransmission,
        message: m.message,
      };
    }),
  };
}

const COLUMN = 34;

/** A ladder diagram (one column per address:port, in order of appearance), then every message in full. */
export function traceText(trace: SipTrace): string {
  const view = traceView(trace);
  const columns: string[] = [];
  for (const m of view.messages) for (const e of [m.source, m.destination]) if (!columns.includes(e)) columns.push(e);
  const lines: string[] = [];
  lines.push(`SIP trace of call ${view.callId}: ${view.messages.length} messages, ${view.bytes} bytes`);
  if (view.truncated) lines.push(`TRUNCATED: ${view.droppedMessages} later messages dropped (records.sipTraceMaxBytes)`);
  lines.push("");
  const time = (iso: string) => iso.slice(11, 23);
  lines.push(" ".repeat(13) + columns.map((c) => c.padEnd(COLUMN)).join(""));
  for (const m of view.messages) {
    const from = columns.indexOf(m.source);
    const to = columns.indexOf(m.destination);
    const left = Math.min(from, to);
    const right = Math.max(from, to);
    const label = ` ${ladderLabel(m)} `;
    const width = COLUMN * (right - left) - 1;
    const dashes = Math.max(0, width - label.length - 1);
    const arrow = from < to ? `${"-".repeat(Math.floor(dashes / 2))}${label}${"-".repeat(Math.ceil(dashes / 2))}>` : `<${"-".repeat(Math.floor(dashes / 2))}${label}${"-".repeat(Math.ceil(dashes / 2))}`;
    let row = " ".repeat(13 + left * COLUMN) + "|" + arrow.slice(0, width) + "|";
    row = time(m.time) + row.slice(12);
    lines.push(`${row}  ${m.transport.toUpperCase()}`);
  }
  for (const [i, m] of view.messages.entries()) {
    lines.push("", `#${i + 1} ${m.time} ${m.transport.toUpperCase()} ${m.source} -> ${m.destination}${m.retransmission ? " (retransmission)" : ""}`);
    lines.push(m.message.replace(/\r\n/g, "\n").trimEnd());
  }
  return lines.join("\n") + "\n";
}

/** A request's method or a response's status and reason, "(SDP)" with an SDP body, "(again)" when retransmitted. */
function ladderLabel(m: TraceMessageView): string {
  const words = m.summary.split(" ");
  const name = words[0] === "SIP/2.0" ? words.slice(1).join(" ") : (words[0] ?? "");
  const sdp = /^content-type[ \t]*:[ \t]*application\/sdp/im.test(m.message) || /^c[ \t]*:[ \t]*application\/sdp/im.test(m.message);
  return `${name}${sdp ? " (SDP)" : ""}${m.retransmission ? " (again)" : ""}`.slice(0, COLUMN - 6);
}

const LINKTYPE_RAW = 101;
const encoder = new TextEncoder();

/** The trace as a classic libpcap file (microsecond timestamps). */
export function tracePcap(trace: SipTrace): Uint8Array<ArrayBuffer> {
  const tcpSequence = new Map<string, number>();
  const records: Uint8Array[] = [];
  const header = new DataView(new ArrayBuffer(24));
  header.setUint32(0, 0xa1b2c3d4, true);
  header.setUint16(4, 2, true);
  header.setUint16(6, 4, true);
  header.setUint32(16, 65535, true); // snaplen
  header.setUint32(20, LINKTYPE_RAW, true);
  records.push(new Uint8Array(header.buffer));
  for (const m of trace.messages) {
    const payload = encoder.encode(m.message).subarray(0, 65000);
    let transportHeader: Uint8Array;
    let protocol: number;
    if (m.transport === "udp") {
      protocol = 17;
      transportHeader = udpHeader(m, payload.length);
    } else {
      protocol = 6;
      const flow = `${endpointText(m.source)}>${endpointText(m.destination)}`;
      const seq = tcpSequence.get(flow) ?? 1;
      tcpSequence.set(flow, (seq + payload.length) >>> 0);
      const ack = tcpSequence.get(`${endpointText(m.destination)}>${endpointText(m.source)}`) ?? 1;
      transportHeader = tcpHeader(m, seq, ack);
    }
    const packet = ipPacket(m, protocol, concat(transportHeader, payload));
    const rec = new DataView(new ArrayBuffer(16));
    const seconds = Math.floor(m.time / 1000);
    rec.setUint32(0, seconds, true);
    rec.setUint32(4, Math.min(999_999, Math.round((m.time - seconds * 1000) * 1000)), true);
    rec.setUint32(8, packet.length, true);
    rec.setUint32(12, packet.length, true);
    records.push(new Uint8Array(rec.buffer), packet);
  }
  return concat(...records);
}

function udpHeader(m: TracedMessage, payloadLength: number): Uint8Array {
  const v = new DataView(new ArrayBuffer(8));
  v.setUint16(0, m.source.port);
  v.setUint16(2, m.destination.port);
  v.setUint16(4, 8 + payloadLength);
  return new Uint8Array(v.buffer); // checksum 0: none (RFC 768)
}

function tcpHeader(m: TracedMessage, seq: number, ack: number): Uint8Array {
  const v = new DataView(new ArrayBuffer(20));
  v.setUint16(0, m.source.port);
  v.setUint16(2, m.destination.port);
  v.setUint32(4, seq);
  v.setUint32(8, ack);
  v.setUint8(12, 5 << 4); // data offset: 5 words
  v.setUint8(13, 0x18); // PSH, ACK
  v.setUint16(14, 65535); // window
  return new Uint8Array(v.buffer);
}

function ipPacket(m: TracedMessage, protocol: number, segment: Uint8Array): Uint8Array {
  const v6 = m.source.address.includes(":") || m.destination.address.includes(":");
  if (!v6) {
    const v = new DataView(new ArrayBuffer(20));
    v.setUint8(0, 0x45);
    v.setUint16(2, 20 + segment.length);
    v.setUint8(8, 64); // TTL
    v.setUint8(9, protocol);
    new Uint8Array(v.buffer).set(ipv4Bytes(m.source.address), 12);
    new Uint8Array(v.buffer).set(ipv4Bytes(m.destination.address), 16);
    v.setUint16(10, ipv4Checksum(new Uint8Array(v.buffer)));
    return concat(new Uint8Array(v.buffer), segment);
  }
  const v = new DataView(new ArrayBuffer(40));
  v.setUint32(0, 0x60000000);
  v.setUint16(4, segment.length);
  v.setUint8(6, protocol);
  v.setUint8(7, 64); // hop limit
  new Uint8Array(v.buffer).set(ipv6Bytes(m.source.address), 8);
  new Uint8Array(v.buffer).set(ipv6Bytes(m.destination.address), 24);
  return concat(new Uint8Array(v.buffer), segment);
}

function ipv4Checksum(header: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < header.length; i += 2) sum += ((header[i] ?? 0) << 8) | (header[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}
