// The media threads' Outbox (src/media/media-protocol.ts): what one turn ("turn") or one pass of
// the event loop ("loop") posts goes as one batch, in order, after that work; transfers travel with
// their batch; flush posts at once.
import { expect, test } from "bun:test";
import { Outbox } from "../../src/media/media-protocol.ts";

test("the messages of one turn are posted once, in order, after the turn's synchronous work", async () => {
  const posted: { batch: string[]; transfer: Bun.Transferable[] }[] = [];
  const outbox = new Outbox<string>((batch, transfer) => posted.push({ batch, transfer }), "turn");
  outbox.add("bind");
  outbox.add("configure");
  outbox.add("signalling");
  expect(posted).toEqual([]);
  await Promise.resolve();
  expect(posted.map((p) => p.batch)).toEqual([["bind", "configure", "signalling"]]);
  // A later turn starts a new batch.
  outbox.add("close");
  await Promise.resolve();
  expect(posted.map((p) => p.batch)).toEqual([["bind", "configure", "signalling"], ["close"]]);
});

test("transfers go with the batch that carries their messages", async () => {
  const posted: { batch: string[]; transfer: Bun.Transferable[] }[] = [];
  const outbox = new Outbox<string>((batch, transfer) => posted.push({ batch, transfer }), "turn");
  const a = new ArrayBuffer(8);
  const b = new ArrayBuffer(8);
  outbox.add("mix 1", [a]);
  outbox.add("bound");
  outbox.add("mix 2", [b]);
  await Promise.resolve();
  expect(posted).toEqual([{ batch: ["mix 1", "bound", "mix 2"], transfer: [a, b] }]);
});

test("flush posts what is queued at once, and the turn's end then has nothing left to post", async () => {
  const posted: string[][] = [];
  const outbox = new Outbox<string>((batch) => posted.push(batch), "turn");
  outbox.add("close");
  outbox.add("exit");
  outbox.flush();
  expect(posted).toEqual([["close", "exit"]]);
  await Promise.resolve();
  expect(posted).toEqual([["close", "exit"]]);
  outbox.flush();
  expect(posted).toEqual([["close", "exit"]]);
});

test("a loop outbox gathers what several callbacks of one pass of the event loop add, and posts it after them", async () => {
  const posted: string[][] = [];
  const outbox = new Outbox<string>((batch) => posted.push(batch), "loop");
  // Two datagrams read in one pass: each is its own callback, with its microtasks drained after it.
  const received = Promise.withResolvers<void>();
  const socket = await Bun.udpSocket({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(_socket, data) {
        outbox.add(Buffer.from(data).toString());
        queueMicrotask(() => outbox.add("after " + Buffer.from(data).toString()));
        if (Buffer.from(data).toString() === "close") received.resolve();
      },
    },
  });
  const sender = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
  sender.sendMany(["bind", socket.port, "127.0.0.1", "close", socket.port, "127.0.0.1"]);
  await received.promise;
  // The microtasks after the last datagram's callback have run; the pass of the loop has not ended.
  await Promise.resolve();
  expect(posted).toEqual([]);
  await new Promise<void>((resolve) => setImmediate(resolve));
  expect(posted).toEqual([["bind", "after bind", "close", "after close"]]);
  sender.close();
  socket.close();
});
