// The media threads' Outbox (src/media/media-protocol.ts): what one turn posts goes as one batch,
// in order, after the turn's own work; transfers travel with their batch; flush posts at once.
import { expect, test } from "bun:test";
import { Outbox } from "../../src/media/media-protocol.ts";

test("the messages of one turn are posted once, in order, after the turn's synchronous work", async () => {
  const posted: { batch: string[]; transfer: Bun.Transferable[] }[] = [];
  const outbox = new Outbox<string>((batch, transfer) => posted.push({ batch, transfer }));
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
  const outbox = new Outbox<string>((batch, transfer) => posted.push({ batch, transfer }));
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
  const outbox = new Outbox<string>((batch) => posted.push(batch));
  outbox.add("close");
  outbox.add("exit");
  outbox.flush();
  expect(posted).toEqual([["close", "exit"]]);
  await Promise.resolve();
  expect(posted).toEqual([["close", "exit"]]);
  outbox.flush();
  expect(posted).toEqual([["close", "exit"]]);
});
