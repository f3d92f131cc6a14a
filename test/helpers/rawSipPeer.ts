// A hand-driven SIP peer on loopback for wire-level tests: sends raw text (UDP datagrams or one TCP
// connection) and collects what comes back, parsed. `[port]` in sent text becomes the peer's own port.
import type { Socket } from "bun";
import { parseMessage, type SipRequest, type SipResponse } from "../../src/sip/message.ts";
import { nextMessageLength } from "../../src/sip/framing.ts";

export interface RawSipPeer {
  readonly port: number;
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

function peer(port: number, close: () => void, transmit: (b: Uint8Array) => void) {
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
  const built = peer(socket.port, () => socket.close(), (b) => void socket.send(b, port, address));
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
  handle = peer(socket.localPort, () => socket.end(), (b) => void socket.write(b));
  return handle.api;
}
