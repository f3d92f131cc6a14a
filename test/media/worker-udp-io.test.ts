import { afterAll, afterEach, describe, expect, test } from "bun:test";
import type { DatagramHandlers, DatagramSocket } from "../../src/media/udp-io.ts";
import { WorkerUdpIo } from "../../src/media/worker-udp-io.ts";
import { loopbackUdpQueue } from "../helpers/rtpPeer.ts";
import { freePort } from "../helpers/sipp.ts";
import { until } from "../helpers/until.ts";

const io = new WorkerUdpIo();
afterAll(() => io.close());
const opened: { close(): void }[] = [];
afterEach(() => { for (const s of opened.splice(0)) s.close(); });

interface Arrival { data: Uint8Array; port: number; address: string; arrivalMs: number; seenMs: number }

/** A worker socket that records what arrives (copied: the view's buffer is the batch's) and counts errors. */
async function workerSocket(o: { host?: string; port?: number; io?: WorkerUdpIo } = {}) {
  const arrivals: Arrival[] = [];
  let errors = 0;
  const handlers: DatagramHandlers = {
    data: (data, port, address, arrivalMs) => { arrivals.push({ data: data.slice(), port, address, arrivalMs, seenMs: performance.now() }); },
    error: () => { errors++; },
  };
  const socket = await (o.io ?? io).bind(o.host ?? "127.0.0.1", o.port ?? 0, handlers);
  opened.push(socket);
  return { socket, arrivals, errors: () => errors };
}

/** A plain Bun socket on this thread that records what it receives (and shrugs off ICMP errors). */
async function plainSocket(o: { host?: string } = {}) {
  const received: { data: Uint8Array; port: number; address: string }[] = [];
  const socket = await Bun.udpSocket({
    hostname: o.host ?? "127.0.0.1",
    binaryType: "uint8array",
    socket: { data: (_s, data, port, address) => { received.push({ data: data.slice(), port, address }); }, error() {} },
  });
  opened.push(socket);
  return { socket, received };
}

/** The message a bind fails with. (Not expect().rejects: it waits without taking the worker's messages.) */
async function bindError(on: WorkerUdpIo, port: number): Promise<string> {
  return on.bind("127.0.0.1", port, { data() {}, error() {} }).then(
    (socket) => { socket.close(); return "bound"; },
    (error: Error) => error.message,
  );
}

/** Datagram `n`: its number in the first two bytes, then `n & 0xff` repeated. */
function numbered(n: number, length = 172): Uint8Array {
  const d = new Uint8Array(length).fill(n & 0xff);
  d[0] = n >> 8;
  d[1] = n & 0xff;
  return d;
}

describe("WorkerUdpIo", () => {
  test("binds the port asked for; a port another socket holds rejects with the error", async () => {
    const port = await freePort();
    const { socket } = await workerSocket({ port });
    expect(socket.port).toBe(port);
    const squatter = await plainSocket();
    expect(await bindError(io, squatter.socket.port)).toMatch(/EADDRINUSE/);
  });

  test("a datagram from a plain socket arrives with its bytes, source port and address, stamped on this thread's clock", async () => {
    for (const host of ["127.0.0.1", "::1"]) {
      const w = await workerSocket({ host });
      const peer = await plainSocket({ host });
      const sentMs = performance.now();
      peer.socket.send(numbered(7), w.socket.port, host);
      peer.socket.send(numbered(8, 20), w.socket.port, host);
      await until(() => w.arrivals.length === 2);
      expect(w.arrivals.map((a) => [a.data, a.port, a.address])).toEqual([
        [numbered(7), peer.socket.port, host],
        [numbered(8, 20), peer.socket.port, host],
      ]);
      for (const a of w.arrivals) {
        // Stamped in the worker, after the send and before this thread saw it. The threads' clocks
        // start at different instants: unconverted, the stamp would be off by the worker's start-up.
        expect(a.arrivalMs).toBeGreaterThanOrEqual(sentMs);
        expect(a.arrivalMs).toBeLessThanOrEqual(a.seenMs);
      }
    }
  });

  test("sends reach a plain socket with their bytes and in order", async () => {
    const w = await workerSocket();
    const peer = await plainSocket();
    for (let i = 0; i < 20; i++) expect(w.socket.send(numbered(i, 20 + i), peer.socket.port, "127.0.0.1")).toBe(true);
    await until(() => peer.received.length === 20);
    expect(peer.received.map((r) => r.data)).toEqual(Array.from({ length: 20 }, (_, i) => numbered(i, 20 + i)));
    expect(peer.received.every((r) => r.port === w.socket.port && r.address === "127.0.0.1")).toBe(true);
  });

  test("500 sends queued in one macrotask (a mixer tick for 500 legs) all arrive, each destination's in order", async () => {
    // Ten receivers, so no kernel receive buffer overflows while this thread reads them.
    const w = await workerSocket();
    const peers = await Promise.all(Array.from({ length: 10 }, () => plainSocket()));
    const send = (socket: DatagramSocket) => {
      for (let i = 0; i < 500; i++) socket.send(numbered(i), peers[i % 10]!.socket.port, "127.0.0.1");
    };
    send(w.socket);
    await until(() => peers.every((p) => p.received.length === 50));
    peers.forEach((p, k) => expect(p.received.map((r) => r.data)).toEqual(Array.from({ length: 50 }, (_, j) => numbered(j * 10 + k))));
  });

  test("a socket closed in its handler sees nothing more, even datagrams the worker had already read", async () => {
    const peer = await plainSocket();
    let calls = 0;
    const socket = await io.bind("127.0.0.1", 0, { data: () => { calls++; socket.close(); }, error() {} });
    opened.push(socket);
    // A burst: the worker reads most of it before the close reaches it, many in the first batch.
    for (let i = 0; i < 50; i++) peer.socket.send(numbered(i), socket.port, "127.0.0.1");
    await until(() => calls > 0);
    // The worker handles the close before this bind, so anything it read from the closed socket is
    // in a batch that arrives no later than the one carrying this datagram.
    const other = await workerSocket();
    peer.socket.send(numbered(1), other.socket.port, "127.0.0.1");
    await until(() => other.arrivals.length === 1);
    expect(calls).toBe(1);
    expect(socket.send(numbered(1), peer.socket.port, "127.0.0.1")).toBe(false);
  });

  test("failed sends reach the error handler: ICMP port unreachable, an address of the other family, a bad port", async () => {
    const w = await workerSocket();
    const port = await freePort();
    // One datagram per poll until the ICMP error comes back.
    let sent = 0;
    await until(() => { w.socket.send(numbered(sent++), port, "127.0.0.1"); return w.errors() >= 1; }, { what: () => ({ sent, errors: w.errors() }) });
    // A socket of its own, so no late ICMP error passes for this one.
    const v = await workerSocket();
    expect(v.socket.send(numbered(1), 5004, "::1")).toBe(true);
    await until(() => v.errors() === 1);
    expect(v.socket.send(numbered(1), 70000, "127.0.0.1")).toBe(false);
    expect(v.errors()).toBe(2);
  });

  test("a worker that dies takes its sockets' sends to the error handler; the next bind starts a new worker", async () => {
    const own = new WorkerUdpIo();
    try {
      const w = await workerSocket({ io: own });
      const peer = await plainSocket();
      // What a crash looks like from here: the worker thread ends without being asked to.
      own["worker"]["worker"].terminate();
      await until(() => !w.socket.send(numbered(1), peer.socket.port, "127.0.0.1"));
      expect(w.errors()).toBe(1);
      const again = await workerSocket({ io: own });
      const laterPeer = await plainSocket();
      again.socket.send(numbered(2), laterPeer.socket.port, "127.0.0.1");
      await until(() => laterPeer.received.length === 1);
      expect(laterPeer.received[0]!.data).toEqual(numbered(2));
    } finally {
      own.close();
    }
  });

  test("a main thread that falls behind makes the worker drop datagrams beyond its unread limit, count them, and recover", async () => {
    const limit = 4096;
    const own = new WorkerUdpIo({ maxUnreadBytes: limit });
    try {
      const w = await workerSocket({ io: own });
      const peer = await plainSocket();
      // This thread stalls (a synchronous loop: no message from the worker is read) while 60
      // datagrams of 172 bytes, twice the limit's worth, arrive one at a time. Each is sent only once
      // the worker has taken the one before out of the kernel, so none is lost to a full socket
      // buffer: whatever does not reach this thread, the worker dropped.
      const sent = 60;
      const stallDeadline = performance.now() + 30_000;
      for (let i = 0; i < sent; i++) {
        peer.socket.send(numbered(i), w.socket.port, "127.0.0.1");
        while (loopbackUdpQueue(w.socket.port).rxQueue > 0) {
          if (performance.now() > stallDeadline) throw new Error(`the worker did not read datagram ${i}`);
        }
      }
      // Reading again, this thread sends a marker until one gets through (those sent while the
      // worker still counts the stall's batches unread are dropped too). Drops are counted in the
      // worker and reported with the next batch, so the marker's batch carries them all.
      const marker = numbered(999);
      const isMarker = (a: Arrival) => a.data[0] === marker[0] && a.data[1] === marker[1];
      let markersSent = 0;
      let lastMarkerMs = -Infinity;
      await until(() => {
        if (w.arrivals.some(isMarker)) return true;
        if (performance.now() - lastMarkerMs >= 50) {
          peer.socket.send(marker, w.socket.port, "127.0.0.1");
          markersSent++;
          lastMarkerMs = performance.now();
        }
        return false;
      }, { what: () => ({ arrivals: w.arrivals.length, dropped: own.droppedDatagrams, markersSent }) });
      // Every datagram is accounted for: delivered or counted as dropped by the worker.
      await until(() => w.arrivals.length + own.droppedDatagrams === sent + markersSent, {
        what: () => ({ arrivals: w.arrivals.length, dropped: own.droppedDatagrams, sent, markersSent }),
      });
      expect(loopbackUdpQueue(w.socket.port).drops).toBe(0);
      const beforeMarker = w.arrivals.slice(0, w.arrivals.findIndex(isMarker));
      // What got through during the stall is the first datagrams, up to the limit (the record that
      // crosses it is taken): the rest was dropped and counted.
      expect(beforeMarker.length).toBeGreaterThan(0);
      expect(beforeMarker.length * 172).toBeLessThanOrEqual(limit + 172);
      expect(beforeMarker.map((a) => a.data)).toEqual(Array.from({ length: beforeMarker.length }, (_, i) => numbered(i)));
      expect(own.droppedDatagrams).toBeGreaterThanOrEqual(sent - beforeMarker.length);
      expect(w.arrivals.slice(beforeMarker.length).every(isMarker)).toBe(true);
    } finally {
      own.close();
    }
  });

  test("close() ends the worker: binds fail, and the sockets' ports are free again", async () => {
    const own = new WorkerUdpIo();
    const w = await workerSocket({ io: own });
    own.close();
    expect(await bindError(own, 0)).toMatch(/closed/);
    // The worker closes its sockets when it takes the exit message, a moment later.
    let lastError: unknown;
    await until(async () => {
      try {
        (await Bun.udpSocket({ hostname: "127.0.0.1", port: w.socket.port })).close();
        return true;
      } catch (error) {
        lastError = error;
        return false;
      }
    }, { timeoutMs: 5000, what: () => String(lastError) });
  });
});
