// A lossy link: a UDP relay between two stacks drops 30% of datagrams each way (seeded), and
// INVITE/200/ACK/BYE still completes through the transactions' and dialogs' retransmissions.
// Timers scaled to T1=40 ms so a few calls fit in a few seconds.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Dialog } from "../../src/sip/dialog.ts";
import { parseUri } from "../../src/sip/message.ts";
import { SipStack } from "../../src/sip/stack.ts";
import type { Endpoint } from "../../src/sip/transport.ts";
import { loopbackIsTrunk } from "../helpers/loopbackTrunks.ts";

/** mulberry32: a tiny seeded PRNG so the loss pattern is reproducible. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Relay {
  port: number;
  stats: { toCallee: number; toCaller: number; droppedToCallee: number; droppedToCaller: number };
  close(): void;
}

/** Forwards datagrams from anyone to the callee and from the callee back to the last caller. */
async function lossyRelay(callee: Endpoint, lossRate: number, seed: number): Promise<Relay> {
  // One stream per direction, so the drop pattern does not depend on how the directions interleave.
  const towardsCallee = seeded(seed);
  const towardsCaller = seeded(seed + 1);
  const stats = { toCallee: 0, toCaller: 0, droppedToCallee: 0, droppedToCaller: 0 };
  let caller: { address: string; port: number } | undefined;
  const socket = await Bun.udpSocket({
    hostname: "127.0.0.1",
    port: 0,
    binaryType: "uint8array",
    socket: {
      data(sock, data, port, address) {
        const fromCallee = port === callee.port && address === callee.address;
        if (!fromCallee) caller = { address, port };
        const lost = (fromCallee ? towardsCaller : towardsCallee)() < lossRate;
        if (fromCallee) {
          if (lost) stats.droppedToCaller++;
          else if (caller) {
            stats.toCaller++;
            sock.send(data, caller.port, caller.address);
          }
        } else if (lost) stats.droppedToCallee++;
        else {
          stats.toCallee++;
          sock.send(data, callee.port, callee.address);
        }
      },
    },
  });
  return { port: socket.port, stats, close: () => socket.close() };
}

const timers = { T1: 40, T2: 320, T4: 400 };
let caller: SipStack;
let callee: SipStack;
let relay: Relay;
const acked = new Map<string, (how: "ack" | "gave up") => void>();

beforeAll(async () => {
  caller = new SipStack({ isKnownSource: loopbackIsTrunk, listen: [{ transport: "udp", host: "127.0.0.1", port: 0 }], timers });
  await caller.start();
  // The callee advertises the relay, so its Contact (the target of ACK and BYE) leads through it.
  const calleePort = await (async () => {
    const probe = new SipStack({ isKnownSource: loopbackIsTrunk, listen: [{ transport: "udp", host: "127.0.0.1", port: 0 }] });
    await probe.start();
    const port = probe.boundEndpoints[0]!.port;
    await probe.stop();
    return port;
  })();
  relay = await lossyRelay({ transport: "udp", address: "127.0.0.1", port: calleePort }, 0.3, 20261126);
  callee = new SipStack({
    isKnownSource: loopbackIsTrunk,
    listen: [{ transport: "udp", host: "127.0.0.1", port: calleePort }],
    advertised: { host: "127.0.0.1", port: relay.port },
    timers,
  });
  await callee.start();
  callee.onRequest((req, tx, ctx) => {
    tx.respond(180);
    const dialog = Dialog.answer(callee, req, tx, ctx, {
      contact: callee.contactFor("callee", "udp"),
      body: "v=0\r\n",
      contentType: "application/sdp",
    });
    dialog.on("ack", () => acked.get(req.callId)?.("ack"));
    dialog.on("terminated", () => acked.get(req.callId)?.("gave up"));
  });
});

afterAll(async () => {
  await caller.stop();
  await callee.stop();
  relay.close();
});

test("INVITE/200/ACK/BYE completes across a link losing 30% of datagrams each way", async () => {
  const dest: Endpoint = { transport: "udp", address: "127.0.0.1", port: relay.port };
  for (let i = 0; i < 6; i++) {
    const invite = caller.createOutOfDialogRequest({
      method: "INVITE",
      uri: parseUri(`sip:callee@127.0.0.1:${relay.port}`)!,
      from: { uri: parseUri("sip:caller@127.0.0.1")!, params: new Map() },
      to: { uri: parseUri("sip:callee@127.0.0.1")!, params: new Map() },
      transport: "udp",
      body: "v=0\r\n",
      contentType: "application/sdp",
    });
    const ackSeen = new Promise<"ack" | "gave up">((resolve) => acked.set(invite.callId, resolve));
    const tx = caller.sendRequest(invite, dest);
    const outcome = await tx.outcome;
    if (outcome.kind !== "final") throw new Error(`call ${i}: INVITE ended with ${outcome.kind}`);
    expect(outcome.response.status).toBe(200);
    const dialog = Dialog.fromInvite2xx(caller, invite, outcome.response, tx, dest);
    // The callee's 2xx retransmissions pull the ACK through.
    expect(await ackSeen).toBe("ack");
    const bye = await dialog.bye();
    expect(bye?.kind === "final" && bye.response.status).toBe(200);
  }
  await Bun.sleep(50);
  expect(callee.dialogs.size).toBe(0);
  // The link really was lossy in both directions.
  expect(relay.stats.droppedToCallee).toBeGreaterThan(0);
  expect(relay.stats.droppedToCaller).toBeGreaterThan(0);
}, 20_000);
