// Spare RTP port pairs (src/media/spare-ports.ts): how many the main thread asks a worker to bind
// ahead of need, and that every port goes back to its range; the host's side (media-engine.ts) with
// real sockets. A spare taken by a leg whose media then flows is in media-plane.test.ts.
import { afterEach, expect, test } from "bun:test";
import { createSocket } from "node:dgram";
import { MediaEngine } from "../../src/media/media-engine.ts";
import type { FromHost, ToHost } from "../../src/media/media-protocol.ts";
import { RtpPortAllocator } from "../../src/media/ports.ts";
import { SparePorts } from "../../src/media/spare-ports.ts";
import { metricSample } from "../helpers/metricSample.ts";
import { until } from "../helpers/until.ts";

const made: SparePorts[] = [];
afterEach(() => {
  for (const spares of made.splice(0)) spares.clear();
});

function sparePorts(): { spares: SparePorts; sent: ToHost[] } {
  const sent: ToHost[] = [];
  const spares = new SparePorts((m) => void sent.push(m));
  made.push(spares);
  return { spares, sent };
}

const asked = (sent: ToHost[]) => sent.flatMap((m) => (m.t === "spare" ? [m.port] : []));
const closed = (sent: ToHost[]) => sent.flatMap((m) => (m.t === "unspare" ? [m.port] : []));

const idleSpares = () => metricSample("trunkline_rtp_spare_pairs") ?? NaN;

test("a leg finds none the first time and one is bound for the next, which takes it; the gauge counts the idle ones", () => {
  const { spares, sent } = sparePorts();
  const ports = new RtpPortAllocator({ min: 20000, max: 29999 });
  const before = idleSpares();
  expect(spares.take(ports, "127.0.0.1")).toBeUndefined();
  const [port] = asked(sent);
  expect(sent).toEqual([{ t: "spare", host: "127.0.0.1", port: port! }]);
  expect(ports.used).toBe(1);
  spares.onSpared(port!);
  expect(idleSpares()).toBe(before + 1);
  expect(spares.take(ports, "127.0.0.1")).toBe(port);
  expect(idleSpares()).toBe(before);
  // Taken, it is the leg's; two legs asked in this window, so two are bound for the next ones.
  expect(asked(sent)).toHaveLength(3);
  expect(ports.used).toBe(3);
  // Another address or range has a pool of its own.
  expect(spares.take(ports, "127.0.0.2")).toBeUndefined();
  expect(sent.at(-1)).toMatchObject({ t: "spare", host: "127.0.0.2" });
});

test("as many as legs asked for in a window, at most 64 and a sixteenth of the range", () => {
  const { spares, sent } = sparePorts();
  const wide = new RtpPortAllocator({ min: 20000, max: 39999 });
  for (let i = 0; i < 200; i++) spares.take(wide, "0.0.0.0");
  expect(asked(sent)).toHaveLength(64);

  const small = sparePorts();
  const range = new RtpPortAllocator({ min: 20000, max: 20063 }); // 32 pairs: 2 spares at most
  for (let i = 0; i < 10; i++) small.spares.take(range, "0.0.0.0");
  expect(asked(small.sent)).toHaveLength(2);

  const tiny = sparePorts();
  const fifteen = new RtpPortAllocator({ min: 20000, max: 20029 }); // 15 pairs: none held idle
  for (let i = 0; i < 10; i++) tiny.spares.take(fifteen, "0.0.0.0");
  expect(tiny.sent).toEqual([]);
  expect(fifteen.used).toBe(0);
});

test("when legs stop coming, the spares are closed and their ports go back to the range", async () => {
  const { spares, sent } = sparePorts();
  const ports = new RtpPortAllocator({ min: 20000, max: 29999 });
  for (let i = 0; i < 3; i++) spares.take(ports, "0.0.0.0");
  const bound = asked(sent);
  expect(bound).toHaveLength(3);
  for (const port of bound) spares.onSpared(port);
  expect(ports.used).toBe(3);
  await until(() => ports.used === 0, { timeoutMs: 10_000 });
  expect(closed(sent).sort()).toEqual([...bound].sort());
});

test("a pair the worker could not bind, and every pair of a worker that is gone, go back to the range", () => {
  const { spares, sent } = sparePorts();
  const ports = new RtpPortAllocator({ min: 20000, max: 29999 });
  for (let i = 0; i < 3; i++) spares.take(ports, "0.0.0.0");
  const [failed, ready, opening] = asked(sent);
  spares.onSpareFailed(failed!);
  spares.onSpared(ready!);
  expect(ports.used).toBe(2);
  spares.clear();
  expect(ports.used).toBe(0);
  // A late answer for a pair given back is ignored.
  spares.onSpared(opening!);
  expect(ports.used).toBe(0);
  expect(spares.take(ports, "0.0.0.0")).toBeUndefined();
});

/** Whether this process can bind `port` on 127.0.0.1 now (the host closed its socket there). */
function bindable(port: number): Promise<boolean> {
  const socket = createSocket("udp4");
  return new Promise((resolve) => {
    socket.once("error", () => resolve(false));
    socket.bind(port, "127.0.0.1", () => socket.close(() => resolve(true)));
  });
}

test("the host binds a spare, closes it when told, and refuses a leg for a spare it does not hold, with the reason", async () => {
  const posted: FromHost[] = [];
  const engine = new MediaEngine((m) => void posted.push(m), false);
  const ports = new RtpPortAllocator({ min: 20000, max: 59999 });
  const port = ports.reserve()!;
  engine.handle({ t: "spare", host: "127.0.0.1", port });
  await until(() => posted.length === 1);
  expect(posted[0]).toEqual({ t: "spared", port });
  expect(await bindable(port)).toBe(false);
  expect(await bindable(port + 1)).toBe(false);
  engine.handle({ t: "unspare", port });
  await until(async () => (await bindable(port)) && (await bindable(port + 1)));

  engine.handle({ t: "bind", leg: 1, slot: 0, channel: "room", participantId: "alice", host: "127.0.0.1", port, options: {}, spare: true });
  await until(() => posted.length === 2);
  expect(posted[1]).toEqual({ t: "bindFailed", leg: 1, error: `no spare RTP port pair at ${port}` });
  engine.handle({ t: "exit" });
});
