// Transports on loopback (IPv4 and IPv6): datagrams (the receive buffer, failed sends), stream
// framing of split and coalesced messages, connection reuse, idle timeout, RFC 5626 keep-alive, TLS certificate checks.
import { afterEach, expect, test } from "bun:test";
import type { Socket } from "bun";
import { readFileSync } from "node:fs";
import { type InboundContext, TransportError } from "../../src/sip/transport.ts";
import { StreamTransport } from "../../src/sip/transport-stream.ts";
import { UDP_RECEIVE_BUFFER_BYTES, UdpTransport } from "../../src/sip/transport-udp.ts";
import { until } from "../helpers/until.ts";

const CERT = new URL("../fixtures/tls/cert.pem", import.meta.url).pathname;
const KEY = new URL("../fixtures/tls/key.pem", import.meta.url).pathname;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function message(n: number, body = ""): string {
  return `OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nCall-ID: m${n}\r\nContent-Length: ${encoder.encode(body).length}\r\n\r\n${body}`;
}

interface Received {
  text: string;
  ctx: InboundContext;
  framing: string;
}

function collector() {
  const got: Received[] = [];
  const handler = (data: Uint8Array, ctx: InboundContext, framing: string) => {
    got.push({ text: decoder.decode(data), ctx, framing });
  };
  return { got, handler };
}

const closers: (() => unknown)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

for (const host of ["127.0.0.1", "::1"]) {
  test(`UDP on ${host}: a datagram arrives whole with its source; keep-alive CRLFs are ignored`, async () => {
    const a = collector();
    const b = collector();
    const ta = await UdpTransport.listen(host, 0, a.handler);
    const tb = await UdpTransport.listen(host, 0, b.handler);
    closers.push(() => ta.close(), () => tb.close());
    await ta.send(encoder.encode("\r\n\r\n"), tb.local);
    await ta.send(encoder.encode(message(1)), tb.local);
    await ta.send(encoder.encode("\r\n"), tb.local);
    await ta.send(encoder.encode(message(2)), tb.local);
    // One socket's datagrams arrive in order: once the last message is in, both keep-alives before
    // it were read, and dropped.
    await until(() => b.got.some((g) => g.text === message(2)), { what: () => b.got.map((g) => g.text) });
    expect(b.got.map((g) => g.text)).toEqual([message(1), message(2)]);
    expect(b.got[0]!.framing).toBe("datagram");
    expect(b.got[0]!.ctx.source).toEqual({ transport: "udp", address: host, port: ta.local.port });
  });

  test(`UDP on ${host}: a vanished peer's ICMP error does not fail or lose the next datagram to a live one`, async () => {
    const b = collector();
    const ta = await UdpTransport.listen(host, 0, () => {});
    const tb = await UdpTransport.listen(host, 0, b.handler);
    const gone = await UdpTransport.listen(host, 0, () => {});
    await gone.close();
    closers.push(() => ta.close(), () => tb.close());
    for (let i = 1; i <= 3; i++) {
      // Same tick: the port-unreachable for the first datagram is still pending on the socket.
      await ta.send(encoder.encode(message(100 + i)), gone.local);
      await ta.send(encoder.encode(message(i)), tb.local);
    }
    await until(() => b.got.length === 3);
    expect(b.got.map((g) => g.text)).toEqual([message(1), message(2), message(3)]);
  });

  test(`UDP on ${host}: the socket gets the large receive buffer, as far as net.core.rmem_max allows`, async () => {
    const t = await UdpTransport.listen(host, 0, () => {});
    closers.push(() => t.close());
    const rmemMax = Number(readFileSync("/proc/sys/net/core/rmem_max", "utf8"));
    expect(t.receiveBufferBytes).toBe(Math.min(UDP_RECEIVE_BUFFER_BYTES, rmemMax));
  });

  test(`UDP on ${host}: a port another socket holds is refused with an error naming the address and port`, async () => {
    const first = await UdpTransport.listen(host, 0, () => {});
    closers.push(() => first.close());
    const taken = first.local.port;
    const refused = await UdpTransport.listen(host, taken, () => {}).then(
      (second) => (closers.push(() => second.close()), undefined),
      (error: Error & { code?: string }) => error,
    );
    expect(refused?.message).toBe(`udp listen on ${host.includes(":") ? `[${host}]` : host}:${taken} failed: EADDRINUSE`);
    expect(refused?.code).toBe("EADDRINUSE");
  });

  test(`UDP on ${host}: a send to a name, or from a closed transport, fails with a TransportError`, async () => {
    const b = collector();
    const ta = await UdpTransport.listen(host, 0, () => {});
    const tb = await UdpTransport.listen(host, 0, b.handler);
    closers.push(() => tb.close());
    await expect(ta.send(encoder.encode(message(1)), { transport: "udp", address: "localhost", port: tb.local.port })).rejects.toBeInstanceOf(TransportError);
    await ta.send(encoder.encode(message(2)), tb.local);
    await until(() => b.got.length === 1);
    await ta.close();
    await expect(ta.send(encoder.encode(message(3)), tb.local)).rejects.toBeInstanceOf(TransportError);
    // The one datagram sent is all that arrived: the witness sent after the failures is read next.
    const witness = await UdpTransport.listen(host, 0, () => {});
    closers.push(() => witness.close());
    await witness.send(encoder.encode(message(4)), tb.local);
    await until(() => b.got.length === 2);
    expect(b.got.map((g) => g.text)).toEqual([message(2), message(4)]);
  });

  test(`TCP on ${host}: requests reuse one connection and the reply takes it back`, async () => {
    const a = collector();
    const b = collector();
    const ta = await StreamTransport.listen("tcp", host, 0, a.handler);
    const tb = await StreamTransport.listen("tcp", host, 0, b.handler);
    closers.push(() => ta.close(), () => tb.close());
    await Promise.all([ta.send(encoder.encode(message(1)), tb.local), ta.send(encoder.encode(message(2)), tb.local)]);
    await ta.send(encoder.encode(message(3)), tb.local);
    await until(() => b.got.length === 3);
    expect(ta.connectionCount).toBe(1);
    expect(tb.connectionCount).toBe(1);
    const connectionId = b.got[0]!.ctx.connectionId;
    expect(new Set(b.got.map((g) => g.ctx.connectionId))).toEqual(new Set([connectionId]));
    // The reply names a port nobody listens on; only the connection can carry it.
    await tb.send(encoder.encode(message(4)), { transport: "tcp", address: host, port: 9 }, { connectionId });
    await until(() => a.got.length === 1);
    expect(a.got[0]!.text).toBe(message(4));
    expect(ta.connectionCount).toBe(1);
  });
}

async function rawClient(port: number, onData: (d: Uint8Array) => void = () => {}): Promise<Socket<undefined>> {
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: { binaryType: "uint8array", data: (_s, d: Uint8Array) => onData(d) },
  });
  closers.push(() => socket.end());
  return socket;
}

/**
 * Bytes the transport has read but not yet framed into a message, over all its connections. Reads
 * StreamTransport's private state: the only way to know a byte was read on its own, not coalesced.
 */
function unframedBytes(t: StreamTransport): number {
  const connections = (t as unknown as { connections?: Map<string, { pending?: Uint8Array }> }).connections;
  if (!(connections instanceof Map)) throw new Error("StreamTransport no longer keeps `connections`: update unframedBytes()");
  let n = 0;
  for (const conn of connections.values()) n += conn.pending?.length ?? 0;
  return n;
}

test("TCP framing: a message split into single bytes is delivered once, whole", async () => {
  const b = collector();
  const tb = await StreamTransport.listen("tcp", "127.0.0.1", 0, b.handler);
  closers.push(() => tb.close());
  const socket = await rawClient(tb.local.port);
  socket.setNoDelay(true);
  const bytes = encoder.encode(message(1, "v=0\r\n"));
  for (let i = 0; i < bytes.length; i++) {
    socket.write(bytes.subarray(i, i + 1));
    socket.flush();
    // The transport read this byte by itself (and holds all so far) before the next one is written.
    if (i < bytes.length - 1) {
      await until(() => unframedBytes(tb) === i + 1, { pollMs: 0, what: () => ({ byte: i, unframed: unframedBytes(tb) }) });
    }
  }
  await until(() => b.got.length === 1);
  expect(unframedBytes(tb)).toBe(0);
  expect(b.got[0]!.text).toBe(message(1, "v=0\r\n"));
  expect(b.got[0]!.framing).toBe("stream");
});

test("TCP framing: coalesced messages (with CRLF between) come out one by one", async () => {
  const b = collector();
  const tb = await StreamTransport.listen("tcp", "127.0.0.1", 0, b.handler);
  closers.push(() => tb.close());
  const socket = await rawClient(tb.local.port);
  socket.write(message(1, "abc") + "\r\n" + message(2) + message(3, "é"));
  await until(() => b.got.length === 3);
  expect(b.got.map((g) => g.text)).toEqual([message(1, "abc"), message(2), message(3, "é")]);
});

test("TCP: CRLFCRLF keep-alive ping is answered with a CRLF pong (RFC 5626 §3.5.1)", async () => {
  const tb = await StreamTransport.listen("tcp", "127.0.0.1", 0, () => {});
  closers.push(() => tb.close());
  const replies: string[] = [];
  const socket = await rawClient(tb.local.port, (d) => replies.push(decoder.decode(d)));
  socket.write("\r\n\r\n");
  await until(() => replies.length > 0);
  expect(replies.join("")).toBe("\r\n");
});

test("TCP: an unframeable stream (no Content-Length) is closed; a throwing handler harms nothing", async () => {
  let calls = 0;
  const tb = await StreamTransport.listen("tcp", "127.0.0.1", 0, () => {
    calls++;
    throw new Error("handler bug");
  });
  closers.push(() => tb.close());
  const ok = await rawClient(tb.local.port);
  ok.write(message(1) + message(2));
  await until(() => calls === 2);
  let closed = false;
  const bad = await Bun.connect({
    hostname: "127.0.0.1",
    port: tb.local.port,
    socket: {
      data() {},
      close() {
        closed = true;
      },
    },
  });
  bad.write("OPTIONS sip:x@y SIP/2.0\r\nCall-ID: z\r\n\r\n");
  await until(() => closed);
  expect(tb.connectionCount).toBe(1);
});

test("TCP: each inbound connection keeps its own identity; replies reach the right peer", async () => {
  const b = collector();
  const tb = await StreamTransport.listen("tcp", "127.0.0.1", 0, b.handler);
  closers.push(() => tb.close());
  const heard: string[][] = [[], []];
  const first = await rawClient(tb.local.port, (d) => heard[0]!.push(decoder.decode(d)));
  const second = await rawClient(tb.local.port, (d) => heard[1]!.push(decoder.decode(d)));
  await until(() => tb.connectionCount === 2);
  first.write(message(1));
  await until(() => b.got.length === 1);
  second.write(message(2));
  await until(() => b.got.length === 2);
  const [fromFirst, fromSecond] = b.got;
  expect(fromFirst!.ctx.connectionId).not.toBe(fromSecond!.ctx.connectionId);
  expect(fromFirst!.ctx.source.port).toBe(first.localPort);
  expect(fromSecond!.ctx.source.port).toBe(second.localPort);
  await tb.send(encoder.encode("to-first"), fromFirst!.ctx.source, { connectionId: fromFirst!.ctx.connectionId! });
  await tb.send(encoder.encode("to-second"), fromSecond!.ctx.source, { connectionId: fromSecond!.ctx.connectionId! });
  await until(() => heard[0]!.length === 1 && heard[1]!.length === 1);
  expect(heard).toEqual([["to-first"], ["to-second"]]);
});

test("TCP: inbound connections beyond maxConnections are refused", async () => {
  const tb = await StreamTransport.listen("tcp", "127.0.0.1", 0, () => {}, { maxConnections: 2 });
  closers.push(() => tb.close());
  let closedCount = 0;
  const open = () =>
    Bun.connect({
      hostname: "127.0.0.1",
      port: tb.local.port,
      socket: {
        data() {},
        close() {
          closedCount++;
        },
      },
    });
  const sockets = [await open(), await open()];
  await until(() => tb.connectionCount === 2);
  sockets.push(await open());
  closers.push(() => sockets.forEach((s) => s.end()));
  await until(() => closedCount === 1);
  expect(tb.connectionCount).toBe(2);
});

test("TCP: dialling out counts against maxConnections too (responses may make us dial a peer-named address)", async () => {
  const ta = await StreamTransport.listen("tcp", "127.0.0.1", 0, () => {}, { maxConnections: 2 });
  const targets = await Promise.all([0, 1, 2].map(() => StreamTransport.listen("tcp", "127.0.0.1", 0, () => {})));
  closers.push(() => ta.close(), ...targets.map((t) => () => t.close()));
  await ta.send(encoder.encode(message(1)), targets[0]!.local);
  await ta.send(encoder.encode(message(2)), targets[1]!.local);
  await expect(ta.send(encoder.encode(message(3)), targets[2]!.local)).rejects.toThrow("connection limit reached");
  expect(ta.connectionCount).toBe(2);
  expect(ta.counters.refusedAtLimit).toBe(1);
});

test("TCP: only reads keep a connection alive; a peer we keep writing to but that never speaks is idle", async () => {
  const b = collector();
  const ta = await StreamTransport.listen("tcp", "127.0.0.1", 0, () => {}, { idleTimeoutMs: 100 });
  const tb = await StreamTransport.listen("tcp", "127.0.0.1", 0, b.handler, { idleTimeoutMs: 60_000 });
  closers.push(() => ta.close(), () => tb.close());
  let n = 0;
  const writer = setInterval(() => void ta.send(encoder.encode(message(++n)), tb.local).catch(() => {}), 10);
  closers.push(() => clearInterval(writer));
  // The writes went on all along, yet ta closed its idle connection and had to open another.
  await until(() => new Set(b.got.map((g) => g.ctx.source.port)).size >= 2);
});

test("TCP: idle connections are closed after the idle timeout", async () => {
  const a = collector();
  const ta = await StreamTransport.listen("tcp", "127.0.0.1", 0, a.handler, { idleTimeoutMs: 100 });
  const tb = await StreamTransport.listen("tcp", "127.0.0.1", 0, () => {}, { idleTimeoutMs: 60_000 });
  closers.push(() => ta.close(), () => tb.close());
  const sent = Date.now(); // no later than the connection's last activity
  await ta.send(encoder.encode(message(1)), tb.local);
  expect(ta.connectionCount).toBe(1);
  await until(() => ta.connectionCount === 0);
  // Closed for being idle 100 ms, not sooner (timers never fire early).
  expect(Date.now() - sent).toBeGreaterThanOrEqual(100);
  await until(() => tb.connectionCount === 0);
});

test("TLS: a client trusting the CA connects; the system store rejects a self-signed server; verify=false accepts it", async () => {
  const b = collector();
  const server = await StreamTransport.listen("tls", "127.0.0.1", 0, b.handler, { tls: { certFile: CERT, keyFile: KEY } });
  const trusting = await StreamTransport.listen("tls", "127.0.0.1", 0, () => {}, {
    tls: { certFile: CERT, keyFile: KEY, caFile: CERT },
  });
  const strict = await StreamTransport.listen("tls", "127.0.0.1", 0, () => {}, { tls: { certFile: CERT, keyFile: KEY } });
  closers.push(() => server.close(), () => trusting.close(), () => strict.close());

  await trusting.send(encoder.encode(message(1)), server.local);
  await until(() => b.got.length === 1);
  expect(b.got[0]!.text).toBe(message(1));
  expect(b.got[0]!.ctx.source.transport).toBe("tls");

  await expect(strict.send(encoder.encode(message(2)), server.local)).rejects.toThrow(/certificate/);
  await strict.send(encoder.encode(message(3)), server.local, { verify: false });
  await until(() => b.got.length === 2);
  expect(b.got[1]!.text).toBe(message(3));
});

test("TLS: a verifying send never reuses a connection opened without verification", async () => {
  const b = collector();
  const server = await StreamTransport.listen("tls", "127.0.0.1", 0, b.handler, { tls: { certFile: CERT, keyFile: KEY } });
  const client = await StreamTransport.listen("tls", "127.0.0.1", 0, () => {}, { tls: { certFile: CERT, keyFile: KEY } });
  closers.push(() => server.close(), () => client.close());

  await client.send(encoder.encode(message(1)), server.local, { verify: false });
  await until(() => b.got.length === 1);
  await expect(client.send(encoder.encode(message(2)), server.local)).rejects.toThrow(/certificate/);
  await client.send(encoder.encode(message(3)), server.local, { verify: false });
  await until(() => b.got.length === 2);
  expect(b.got.map((g) => g.text)).toEqual([message(1), message(3)]);
  expect(client.connectionCount).toBe(1);
});

test("TLS without certificate and key dials out but does not listen", async () => {
  const b = collector();
  const server = await StreamTransport.listen("tls", "127.0.0.1", 0, b.handler, { tls: { certFile: CERT, keyFile: KEY } });
  const clientOnly = await StreamTransport.listen("tls", "127.0.0.1", 0, () => {}, { tls: { caFile: CERT } });
  closers.push(() => server.close(), () => clientOnly.close());
  expect(clientOnly.local.port).toBe(0);
  await clientOnly.send(encoder.encode(message(1)), server.local);
  await until(() => b.got.length === 1);
  expect(b.got[0]!.text).toBe(message(1));
});

test("TLS: the certificate must name the host dialled", async () => {
  const server = await StreamTransport.listen("tls", "127.0.0.1", 0, () => {}, { tls: { certFile: CERT, keyFile: KEY } });
  const client = await StreamTransport.listen("tls", "127.0.0.1", 0, () => {}, {
    tls: { certFile: CERT, keyFile: KEY, caFile: CERT },
  });
  closers.push(() => server.close(), () => client.close());
  await expect(client.send(encoder.encode(message(1)), server.local, { serverName: "sip.example.com" })).rejects.toThrow(
    /certificate/,
  );
});

test("a connect to a closed port fails with a TransportError", async () => {
  const ta = await StreamTransport.listen("tcp", "127.0.0.1", 0, () => {});
  closers.push(() => ta.close());
  await expect(ta.send(encoder.encode(message(1)), { transport: "tcp", address: "127.0.0.1", port: 9 })).rejects.toThrow(
    /connect/,
  );
});
