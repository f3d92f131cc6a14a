// HEP v3 export (the HEP3 / EEP spec, as Homer's heplify and sngrep read it): every SIP message the
// stack sends or admits, and every RTCP report (as JSON, protocol type 5, correlated to its call by
// the SIP Call-ID), mirrored over UDP to a capture server.
//
// Best effort and off the hot path: the taps only push the message onto a bounded queue; packets are
// built and sent on a later turn of the event loop. A full queue, or too many datagrams the kernel
// has not taken yet, drops the message and counts it (trunkline_hep_dropped_total). Secrets are
// masked as in the logs and traces (mask.ts). RTCP finds its call through the SDP of our own SIP
// messages: the RTP port we offered or answered names the Call-ID.
import dgram from "node:dgram";
import { lookup } from "node:dns/promises";
import { createLogger } from "../log.ts";
import { metrics } from "../metrics.ts";
import { parseCompound, type RtcpPacket } from "../media/rtcp.ts";
import type { TappedRtcp } from "../media/rtcp-tap.ts";
import type { TappedMessage } from "../sip/tap.ts";
import { ipv4Bytes, ipv6Bytes } from "./ip.ts";
import { maskedMessage } from "./mask.ts";
import { callIdOf } from "./sipTrace.ts";

const log = createLogger("hep");

const sentPackets = metrics.counter("trunkline_hep_sent_total", "HEP packets sent to the capture server (hep.address), by payload.", ["payload"]);
const droppedPackets = metrics.counter(
  "trunkline_hep_dropped_total",
  "SIP messages and RTCP reports not mirrored to the capture server: the HEP queue was full, or the socket refused them.",
  ["reason"],
);

export interface HepOptions {
  host: string;
  port: number;
  captureId: number;
  password?: string;
  /** Messages waiting to be sent (default 10,000); beyond, new ones are dropped. */
  maxQueued?: number;
  /** Datagrams handed to the socket and not yet sent (default 2,000); beyond, new ones are dropped. */
  maxInFlight?: number;
}

type Pending = { kind: "sip"; message: TappedMessage } | { kind: "rtcp"; packet: TappedRtcp };

/** HEP3 chunk types (vendor 0x0000, the generic chunks). */
const CHUNK = {
  ipFamily: 0x0001,
  ipProtocol: 0x0002,
  ipv4Source: 0x0003,
  ipv4Destination: 0x0004,
  ipv6Source: 0x0005,
  ipv6Destination: 0x0006,
  sourcePort: 0x0007,
  destinationPort: 0x0008,
  seconds: 0x0009,
  microseconds: 0x000a,
  protocolType: 0x000b,
  captureId: 0x000c,
  authKey: 0x000e,
  payload: 0x000f,
  correlationId: 0x0011,
} as const;

export const HEP_PROTOCOL_SIP = 1;
export const HEP_PROTOCOL_RTCP_JSON = 5;

/** RTP ports our SDP named, newest last, with the Call-ID and the address we advertised. */
const MAX_MEDIA_PORTS = 4096;

export class HepExporter {
  private readonly socket: dgram.Socket;
  private queue: Pending[] = [];
  private scheduled = false;
  private inFlight = 0;
  private closed = false;
  private readonly mediaPorts = new Map<number, { callId: string; address: string }>();
  private readonly maxQueued: number;
  private readonly maxInFlight: number;

  private constructor(
    private readonly options: HepOptions,
    private readonly target: { address: string; family: 4 | 6 },
  ) {
    this.maxQueued = options.maxQueued ?? 10_000;
    this.maxInFlight = options.maxInFlight ?? 2_000;
    this.socket = dgram.createSocket(target.family === 6 ? "udp6" : "udp4");
    this.socket.on("error", (error) => log.debug("hep socket error", { error: String(error) }));
    this.socket.unref();
  }

  /** Resolves the capture server's name once. */
  static async open(options: HepOptions): Promise<HepExporter> {
    const resolved = await lookup(options.host);
    return new HepExporter(options, { address: resolved.address, family: resolved.family === 6 ? 6 : 4 });
  }

  sip(message: TappedMessage): void {
    // The tapped bytes may be a view into a buffer the transport reuses.
    this.enqueue({ kind: "sip", message: { ...message, data: message.data.slice() } });
  }

  rtcp(packet: TappedRtcp): void {
    this.enqueue({ kind: "rtcp", packet });
  }

  close(): void {
    this.closed = true;
    this.queue = [];
    this.socket.close();
  }

  private enqueue(item: Pending): void {
    if (this.closed) return;
    if (this.queue.length >= this.maxQueued) return droppedPackets.inc({ reason: "queue_full" });
    this.queue.push(item);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    for (const item of batch) {
      if (this.closed) return;
      if (this.inFlight >= this.maxInFlight) {
        droppedPackets.inc({ reason: "socket_busy" });
        continue;
      }
      let packet: Uint8Array | undefined;
      try {
        packet = item.kind === "sip" ? this.sipPacket(item.message) : this.rtcpPacket(item.packet);
      } catch (error) {
        log.error("building a hep packet failed", { error });
      }
      if (!packet) continue;
      const payload = item.kind;
      this.inFlight++;
      this.socket.send(packet, this.options.port, this.target.address, (error) => {
        this.inFlight--;
        if (error) droppedPackets.inc({ reason: "send_failed" });
        else sentPackets.inc({ payload });
      });
    }
  }

  private sipPacket(m: TappedMessage): Uint8Array {
    const text = maskedMessage(m.data);
    if (m.direction === "sent") this.noteMediaPort(text, m.data);
    return encodeHep3({
      source: m.source,
      destination: m.destination,
      ipProtocol: m.transport === "udp" ? 17 : 6,
      time: m.time,
      protocolType: HEP_PROTOCOL_SIP,
      captureId: this.options.captureId,
      ...(this.options.password ? { authKey: this.options.password } : {}),
      payload: textEncoder.encode(text),
    });
  }

  /** Our SDP's audio port (RFC 4566 §5.14 m=, §5.7 c=) names the call its RTCP belongs to. */
  private noteMediaPort(text: string, data: Uint8Array): void {
    const port = /^m=audio (\d+)/m.exec(text)?.[1];
    if (!port) return;
    const callId = callIdOf(data);
    if (!callId) return;
    const address = /^c=IN IP[46] (\S+)/m.exec(text)?.[1] ?? "0.0.0.0";
    this.mediaPorts.delete(Number(port));
    this.mediaPorts.set(Number(port), { callId, address });
    if (this.mediaPorts.size > MAX_MEDIA_PORTS) this.mediaPorts.delete(this.mediaPorts.keys().next().value!);
  }

  private rtcpPacket(p: TappedRtcp): Uint8Array | undefined {
    const reports = parseCompound(p.data);
    if (!reports) return undefined;
    const call = this.mediaPorts.get(p.rtpPort);
    const us = { address: call?.address ?? (p.remote.address.includes(":") ? "::" : "0.0.0.0"), port: p.localPort };
    return encodeHep3({
      source: p.direction === "sent" ? us : p.remote,
      destination: p.direction === "sent" ? p.remote : us,
      ipProtocol: 17,
      time: p.time,
      protocolType: HEP_PROTOCOL_RTCP_JSON,
      captureId: this.options.captureId,
      ...(this.options.password ? { authKey: this.options.password } : {}),
      ...(call ? { correlationId: call.callId } : {}),
      payload: textEncoder.encode(JSON.stringify(rtcpJson(reports))),
    });
  }
}

/** The RTCP compound as the JSON heplify sends and Homer reads (sender_information, report_blocks, …). */
export function rtcpJson(packets: RtcpPacket[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const p of packets) {
    if (p.type === "sr" || p.type === "rr") {
      out.ssrc = p.ssrc;
      out.type = p.type === "sr" ? 200 : 201;
      out.report_count = p.reports.length;
      if (p.type === "sr") {
        out.sender_information = {
          ntp_timestamp_sec: p.sender.ntpSec,
          ntp_timestamp_usec: Math.floor((p.sender.ntpFrac / 2 ** 32) * 1e6),
          rtp_timestamp: p.sender.rtpTimestamp,
          packets: p.sender.packetCount,
          octets: p.sender.octetCount,
        };
      }
      out.report_blocks = p.reports.map((b) => ({
        source_ssrc: b.ssrc,
        fraction_lost: b.fractionLost,
        packets_lost: b.cumulativeLost,
        highest_seq_no: b.extendedHighestSeq,
        ia_jitter: b.jitter,
        lsr: b.lastSr,
        dlsr: b.delaySinceLastSr,
      }));
    } else if (p.type === "sdes") {
      out.sdes_ssrc = p.chunks[0]?.ssrc;
      const cname = p.chunks[0]?.cname;
      if (cname !== undefined) out.sdes_information = [{ type: 1, text: cname }];
    } else if (p.type === "bye") {
      out.bye_ssrc = p.ssrcs;
    }
  }
  return out;
}

export interface Hep3Fields {
  source: { address: string; port: number };
  destination: { address: string; port: number };
  ipProtocol: number;
  /** Epoch milliseconds. */
  time: number;
  protocolType: number;
  captureId: number;
  authKey?: string;
  correlationId?: string;
  payload: Uint8Array;
}

const textEncoder = new TextEncoder();

/** One HEP3 packet: "HEP3", total length, then type-length-value chunks (vendor 0), in one buffer. */
export function encodeHep3(f: Hep3Fields): Uint8Array {
  const v6 = f.source.address.includes(":") || f.destination.address.includes(":");
  const seconds = Math.floor(f.time / 1000);
  const authKey = f.authKey !== undefined ? textEncoder.encode(f.authKey) : undefined;
  const correlationId = f.correlationId !== undefined ? textEncoder.encode(f.correlationId) : undefined;
  const addressLength = v6 ? 16 : 4;
  const length =
    6 + 7 + 7 + 2 * (6 + addressLength) + 2 * 8 + 2 * 10 + 7 + 10 +
    (authKey ? 6 + authKey.length : 0) + (correlationId ? 6 + correlationId.length : 0) + 6 + f.payload.length;
  const out = new Uint8Array(length);
  const view = new DataView(out.buffer);
  out.set([0x48, 0x45, 0x50, 0x33]); // "HEP3"
  view.setUint16(4, length);
  let offset = 6;
  const header = (type: number, valueLength: number) => {
    view.setUint16(offset, 0x0000); // vendor: generic
    view.setUint16(offset + 2, type);
    view.setUint16(offset + 4, 6 + valueLength);
    offset += 6;
  };
  const u8 = (type: number, value: number) => {
    header(type, 1);
    view.setUint8(offset, value);
    offset += 1;
  };
  const u16 = (type: number, value: number) => {
    header(type, 2);
    view.setUint16(offset, value);
    offset += 2;
  };
  const u32 = (type: number, value: number) => {
    header(type, 4);
    view.setUint32(offset, value >>> 0);
    offset += 4;
  };
  const bytes = (type: number, value: Uint8Array) => {
    header(type, value.length);
    out.set(value, offset);
    offset += value.length;
  };
  u8(CHUNK.ipFamily, v6 ? 10 : 2);
  u8(CHUNK.ipProtocol, f.ipProtocol);
  bytes(v6 ? CHUNK.ipv6Source : CHUNK.ipv4Source, v6 ? ipv6Bytes(f.source.address) : ipv4Bytes(f.source.address));
  bytes(v6 ? CHUNK.ipv6Destination : CHUNK.ipv4Destination, v6 ? ipv6Bytes(f.destination.address) : ipv4Bytes(f.destination.address));
  u16(CHUNK.sourcePort, f.source.port);
  u16(CHUNK.destinationPort, f.destination.port);
  u32(CHUNK.seconds, seconds);
  u32(CHUNK.microseconds, Math.min(999_999, Math.floor((f.time - seconds * 1000) * 1000)));
  u8(CHUNK.protocolType, f.protocolType);
  u32(CHUNK.captureId, f.captureId);
  if (authKey) bytes(CHUNK.authKey, authKey);
  if (correlationId) bytes(CHUNK.correlationId, correlationId);
  bytes(CHUNK.payload, f.payload);
  return out;
}
