// A lossy link: a UDP relay between two stacks loses datagrams each way, and INVITE/200/ACK/BYE
// still completes through the transactions' and dialogs' retransmissions. Timers scaled to T1=40 ms
// so a few calls fit in a few seconds.
//
// Which datagrams are lost depends only on which message each one is and which transmission of it,
// never on timing: a loss pattern drawn from the order of arrival would shift with every scheduling
// hiccup (one more retransmission moves every later draw), and a run could then lose the same
// message over and over. Here each message's first and second transmission are lost with
// probability 0.3 each (seeded), and the third always passes.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Dialog } from "../../src/sip/dialog.ts";
import { parseUri } from "../../src/sip/message.ts";
import { SipStack } from "../../src/sip/stack.ts";
import type { Endpoint } from "../../src/sip/transport.ts";
import { loopbackIsTrunk } from "../helpers/loopbackTrunks.ts";

/** mulberry32: a tiny seeded PRNG; one draw per (seed, message, transmission). */
function draw(seed: number): number {
  let t = (seed + 0x6d2b79f5) >>> 0;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

/** FNV-1a, 32 bits. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

interface Relay {
  port: number;
  /** Set once the callee listens (it advertises the relay, so the relay exists first). */
  callee: Endpoint | undefined;
  stats: { toCallee: number; toCaller: number; droppedToCallee: number; droppedToCaller: number };
  close(): void;
}

/** Forwards datagrams from anyone to the callee and from the callee back to the last caller. */
async function lossyRelay(lossRate: number, seed: number): Promise<Relay> {
  const stats = { toCallee: 0, toCaller: 0, droppedToCallee: 0, droppedToCaller: 0 };
  const calls = new Map<string, number>(); // Call-ID → call number, in order of first sight
  const copies = new Map<string, number>(); // message → transmissions seen
  let caller: { address: string; port: number } | undefined;
  /** Lost? Decided by direction, call number, method or status, CSeq, and transmission number. */
  const lose = (toCallee: boolean, data: Uint8Array): boolean => {
    const text = new TextDecoder().decode(data);
    const callId = /^(?:Call-ID|i)\s*:\s*(\S+)/im.exec(text)?.[1] ?? "";
    if (!calls.has(callId)) calls.set(callId, calls.size);
    const first = text.slice(0, text.indexOf("\r\n"));
    const what = first.startsWith("SIP/2.0 ") ? first.split(" ")[1]! : first.split(" ")[0]!;
    const cseq = /^CSeq\s*:\s*(.+?)\s*$/im.exec(text)?.[1] ?? "";
    const key = `${toCallee ? ">" : "<"}|${calls.get(callId)}|${what}|${cseq}`;
    const copy = copies.get(key) ?? 0;
    copies.set(key, copy + 1);
    return copy < 2 && draw(hash(`${seed}|${key}|${copy}`)) < lossRate;
  };
  const relay: Relay = {
    port: 0,
    callee: undefined,
    stats,
    close: () => socket.close(),
  };
  const socket = await Bun.udpSocket({
    hostname: "127.0.0.1",
    port: 0,
    binaryType: "uint8array",
    socket: {
      data(sock, data, port, address) {
        const callee = relay.callee;
        if (!callee) return;
        const fromCallee = port === callee.port && address === callee.address;
        if (!fromCallee) caller = { address, port };
        const lost = lose(!fromCallee, data);
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
  relay.port = socket.port;
  return relay;
}

const timers = { T1: 40, T2: 320, T4: 400 };
let caller: SipStack;
let callee: SipStack;
let relay: Relay;
const acked = new Map<string, (how: "ack" | "gave up") => void>();

beforeAll(async () => {
  caller = new SipStack({ isKnownSource: loopbackIsTrunk, listen: [{ transport: "udp", host: "127.0.0.1", port: 0 }], timers });
  await caller.start();
  relay = await lossyRelay(0.3, 20261126);
  // The callee advertises the relay, so its Contact (the target of ACK and BYE) leads through it.
  callee = new SipStack({
    isKnownSource: loopbackIsTrunk,
    listen: [{ transport: "udp", host: "127.0.0.1", port: 0 }],
    advertised: { host: "127.0.0.1", port: relay.port },
    timers,
  });
  await callee.start();
  relay.callee = callee.boundEndpoints[0]!;
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

test("INVITE/200/ACK/BYE completes across a link losing datagrams each way (each message's first two transmissions, 30% each)", async () => {
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
  // The callee ended each dialog as it answered the BYE, before that answer reached the caller.
  expect(callee.dialogs.size).toBe(0);
  expect(caller.dialogs.size).toBe(0);
  // The link really was lossy in both directions.
  expect(relay.stats.droppedToCallee).toBeGreaterThan(0);
  expect(relay.stats.droppedToCaller).toBeGreaterThan(0);
}, 20_000);
