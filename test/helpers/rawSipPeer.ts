// A hand-driven SIP peer on loopback for wire-level tests: sends raw text (UDP datagrams or one TCP
// connection) and collects what comes back, parsed. `[port]` in sent text becomes the peer's own port.
// settled(peer) is how a test proves that something did NOT come: see there.
import type { Socket } from "bun";
import { parseMessage, type SipRequest, type SipResponse } from "../../src/sip/message.ts";
import { nextMessageLength } from "../../src/sip/framing.ts";

export interface RawSipPeer {
  readonly port: number;
  readonly transport: "udp" | "tcp";
  readonly received: (SipRequest | SipResponse)[];
  /** Raw bytes as received (TCP: the stream; UDP: datagrams joined). */
  readonly raw: Uint8Array[];
  send(text: string | Uint8Array): void;
  /** Waits until a message satisfying `match` arrived (already or later). */
  waitFor<T extends SipRequest | SipResponse>(match: (m: SipRequest | SipResponse) => m is T, timeoutMs?: number): Promise<T>;
  waitFor(match: (m: SipRequest | SipResponse) => boolean, timeoutMs?: number): Promise<SipRequest | SipResponse>;
  close(): void;
}

export function isResponse(status?: number) {
  return (m: SipRequest | SipResponse): m is SipResponse => "status" in m && (status === undefined || m.status === status);
}

const encoder = new TextEncoder();

function toBytes(text: string | Uint8Array, port: number): Uint8Array {
  if (typeof text !== "string") return text;
  return encoder.encode(text.replaceAll("[port]", String(port)));
}

function peer(port: number, transport: "udp" | "tcp", close: () => void, transmit: (b: Uint8Array) => void) {
  const received: (SipRequest | SipResponse)[] = [];
  const raw: Uint8Array[] = [];
  const waiters = new Set<() => void>();
  const deliver = (bytes: Uint8Array, framing: "datagram" | "stream") => {
    const r = parseMessage(bytes, framing);
    if (r.ok) received.push(r.message);
    for (const w of [...waiters]) w();
  };
  const waitFor = (match: (m: SipRequest | SipResponse) => boolean, timeoutMs = 10_000) =>
    new Promise<SipRequest | SipResponse>((resolve, reject) => {
      let seen = 0;
      const check = () => {
        for (; seen < received.length; seen++) {
          const m = received[seen]!;
          if (match(m)) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(m);
            return;
          }
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no matching message within ${timeoutMs} ms; got ${received.length} messages`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  const api = {
    port,
    transport,
    received,
    raw,
    send: (text: string | Uint8Array) => transmit(toBytes(text, port)),
    waitFor,
    close,
  } as RawSipPeer;
  return { api, deliver, raw };
}

/** A UDP peer whose send() goes to address:port, bound to `localAddress` (default: `address`) and `localPort` (default: any). */
export async function udpPeer(address: string, port: number, o: { localAddress?: string; localPort?: number } = {}): Promise<RawSipPeer> {
  let deliver: (b: Uint8Array, f: "datagram") => void = () => {};
  let rawList: Uint8Array[] = [];
  const socket = await Bun.udpSocket({
    hostname: o.localAddress ?? address,
    port: o.localPort ?? 0,
    binaryType: "uint8array",
    socket: {
      data(_s, data) {
        rawList.push(data);
        deliver(data, "datagram");
      },
    },
  });
  const built = peer(socket.port, "udp", () => socket.close(), (b) => void socket.send(b, port, address));
  deliver = built.deliver;
  rawList = built.raw;
  return built.api;
}

export async function tcpPeer(address: string, port: number): Promise<RawSipPeer> {
  let buffer = new Uint8Array(0);
  let handle: ReturnType<typeof peer> | undefined;
  const socket: Socket<undefined> = await Bun.connect({
    hostname: address,
    port,
    socket: {
      binaryType: "uint8array",
      data(_s, chunk: Uint8Array) {
        handle?.raw.push(chunk);
        const merged = new Uint8Array(buffer.length + chunk.length);
        merged.set(buffer);
        merged.set(chunk, buffer.length);
        buffer = merged;
        for (;;) {
          const n = nextMessageLength(buffer, 65536);
          if (typeof n !== "number") break;
          handle?.deliver(buffer.subarray(0, n), "stream");
          buffer = buffer.slice(n);
        }
      },
    },
  });
  handle = peer(socket.localPort, "tcp", () => socket.end(), (b) => void socket.write(b));
  return handle.api;
}

let markers = 0;

/**
 * Returns once everything a SipStack sent this peer before it read the marker has arrived: sends an
 * OPTIONS (which the stack answers at once and statelessly) and waits for its answer. The stack reads
 * one peer's datagrams (or its stream) in order and sends what each causes before reading the next, and
 * loopback keeps the order of one socket's packets; so a response or retransmission that was sent at
 * all before the marker was read is in `received` by now. A test proves an absence this way ("no
 * further retransmission", "the dropped request got no answer"), never by sleeping.
 */
export async function settled(p: RawSipPeer): Promise<void> {
  const n = ++markers;
  const callId = `marker-${n}@settled`;
  p.send(
    [
      "OPTIONS sip:marker@127.0.0.1 SIP/2.0",
      `Via: SIP/2.0/${p.transport.toUpperCase()} 127.0.0.1:[port];branch=z9hG4bK-marker-${n}`,
      `From: <sip:marker@127.0.0.1>;tag=marker-${n}`,
      "To: <sip:marker@127.0.0.1>",
      `Call-ID: ${callId}`,
      "CSeq: 1 OPTIONS",
      "Max-Forwards: 70",
      "Content-Length: 0",
      "",
      "",
    ].join("\r\n"),
  );
  await p.waitFor((m) => "status" in m && m.callId === callId);
}

/** Whether a message (or a raw datagram) is the answer to a settled() marker rather than to the test. */
export function isMarkerReply(m: SipRequest | SipResponse | Uint8Array): boolean {
  if (m instanceof Uint8Array) return /^Call-ID: marker-\d+@settled\r$/m.test(new TextDecoder().decode(m));
  return m.callId.endsWith("@settled");
}
