// Cost of a full INVITE transaction through the stack on loopback: two SipStack instances in this
// process, caller and callee. One call = INVITE → 200 (callee dialog, at once: no 100) → ACK (caller dialog)
// → BYE → 200, i.e. two client and two server transactions, five messages parsed and serialized
// each way. Reported: sequential latency, and throughput/CPU per call with many calls in flight;
// then an OPTIONS flood (what a scanner on port 5060 sends) and the cost of denied sources.
import { Dialog } from "../src/sip/dialog.ts";
import { parseUri } from "../src/sip/message.ts";
import { SipStack } from "../src/sip/stack.ts";
import type { TransportName } from "../src/sip/message.ts";
import type { Endpoint } from "../src/sip/transport.ts";
import { loopbackIsTrunk } from "../test/helpers/loopbackTrunks.ts";

const SDP = [
  "v=0",
  "o=- 3724394 3724394 IN IP4 127.0.0.1",
  "s=-",
  "c=IN IP4 127.0.0.1",
  "t=0 0",
  "m=audio 40000 RTP/AVP 0 8 101",
  "a=rtpmap:0 PCMU/8000",
  "a=rtpmap:8 PCMA/8000",
  "a=rtpmap:101 telephone-event/8000",
  "a=fmtp:101 0-16",
  "a=sendrecv",
  "",
].join("\r\n");

async function pair(transport: TransportName): Promise<{ caller: SipStack; callee: SipStack; dest: Endpoint }> {
  // Unlimited message rate: this measures the stack's own cost, not the per-source budget.
  const options = { isKnownSource: loopbackIsTrunk, limits: { trunkMessagesPerSecond: 0 } };
  const caller = new SipStack({ ...options, listen: [{ transport, host: "127.0.0.1", port: 0 }] });
  const callee = new SipStack({ ...options, listen: [{ transport, host: "127.0.0.1", port: 0 }] });
  await caller.start();
  await callee.start();
  callee.onRequest((req, tx, ctx) => {
    Dialog.answer(callee, req, tx, ctx, { contact: callee.contactFor("bench", transport), body: SDP, contentType: "application/sdp" });
  });
  return { caller, callee, dest: callee.boundEndpoints[0]! };
}

async function oneCall(caller: SipStack, dest: Endpoint): Promise<void> {
  const invite = caller.createOutOfDialogRequest({
    method: "INVITE",
    uri: parseUri(`sip:bench@127.0.0.1:${dest.port}`)!,
    from: { uri: parseUri("sip:caller@127.0.0.1")!, params: new Map() },
    to: { uri: parseUri("sip:bench@127.0.0.1")!, params: new Map() },
    transport: dest.transport,
    body: SDP,
    contentType: "application/sdp",
  });
  const tx = caller.sendRequest(invite, dest);
  const outcome = await tx.outcome;
  if (outcome.kind !== "final" || outcome.response.status !== 200) throw new Error(`call failed: ${outcome.kind}`);
  const dialog = Dialog.fromInvite2xx(caller, invite, outcome.response, tx, dest);
  const bye = await dialog.bye();
  if (bye?.kind !== "final" || bye.response.status !== 200) throw new Error("BYE failed");
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

async function measure(transport: TransportName): Promise<void> {
  const { caller, callee, dest } = await pair(transport);
  try {
    for (let i = 0; i < 200; i++) await oneCall(caller, dest); // warm-up

    const sequential = 1000;
    const latencies: number[] = [];
    for (let i = 0; i < sequential; i++) {
      const t0 = performance.now();
      await oneCall(caller, dest);
      latencies.push(performance.now() - t0);
    }
    latencies.sort((a, b) => a - b);

    const total = 5000;
    const inFlight = 50;
    let started = 0;
    Bun.gc(true);
    const heapBefore = process.memoryUsage().heapUsed;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const worker = async () => {
      while (started < total) {
        started++;
        await oneCall(caller, dest);
      }
    };
    await Promise.all(Array.from({ length: inFlight }, worker));
    const elapsed = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const cpuPerCallUs = (cpu.user + cpu.system) / total;
    Bun.gc(true);
    // Over UDP, finished transactions stay for 64*T1 (32 s) to absorb retransmissions (timers J, K, D, L, M).
    const live = caller.transactions.size.clients + callee.transactions.size.servers;
    const heapMb = (process.memoryUsage().heapUsed - heapBefore) / 1e6;

    console.log(
      `${transport.toUpperCase()}: sequential call (INVITE/200/ACK/BYE/200) p50 ${percentile(latencies, 50).toFixed(3)} ms, ` +
        `p99 ${percentile(latencies, 99).toFixed(3)} ms over ${sequential} calls`,
    );
    console.log(
      `${transport.toUpperCase()}: ${inFlight} in flight: ${(total / elapsed).toFixed(0)} calls/s, ` +
        `CPU ${cpuPerCallUs.toFixed(0)} µs per call for both sides together ` +
        `(user ${(cpu.user / total).toFixed(0)} µs, system ${(cpu.system / total).toFixed(0)} µs)`,
    );
    console.log(
      `${transport.toUpperCase()}: afterwards ${live} transactions still in their wait states, heap +${heapMb.toFixed(1)} MB ` +
        `(${live > 0 ? ((heapMb * 1e6) / live / 1000).toFixed(1) : "0"} KB each)`,
    );
  } finally {
    await caller.stop();
    await callee.stop();
  }
}

/**
 * Scanner-flood view: OPTIONS (the usual scanner probe) answered per second over UDP, each one a
 * parse and a serialized 200 (stateless, §8.2.7); and how fast a stranger's requests are dropped
 * (sip.strangers: drop) before parsing.
 */
async function optionsFlood(): Promise<void> {
  let deny = false;
  // Unlimited message rate: this measures the stack's own cost, not the per-source budget.
  const stack = new SipStack({ listen: [{ transport: "udp", host: "127.0.0.1", port: 0 }], isKnownSource: () => !deny, limits: { trunkMessagesPerSecond: 0 } });
  await stack.start();
  const target = stack.boundEndpoints[0]!;
  let answered = 0;
  const client = await Bun.udpSocket({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data() {
        answered++;
      },
    },
  });
  const probe = (i: number) =>
    [
      `OPTIONS sip:100@127.0.0.1:${target.port} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${client.port};branch=z9hG4bK-flood${i};rport`,
      `From: "sipvicious"<sip:100@1.1.1.1>;tag=${i}`,
      "To: \"sipvicious\"<sip:100@1.1.1.1>",
      `Call-ID: flood-${i}`,
      "CSeq: 1 OPTIONS",
      "Max-Forwards: 70",
      "Accept: application/sdp",
      "Content-Length: 0",
      "",
      "",
    ].join("\r\n");
  try {
    const total = 20_000;
    const window = 100; // outstanding probes, so loopback buffers never overflow
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let sent = 0;
    while (answered < total) {
      while (sent < total && sent - answered < window) client.send(probe(sent++), target.port, "127.0.0.1");
      await Bun.sleep(0);
      if (performance.now() - t0 > 30_000) break;
    }
    const elapsed = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    console.log(
      `UDP OPTIONS flood: ${(answered / elapsed).toFixed(0)} answered/s, CPU ${((cpu.user + cpu.system) / answered).toFixed(1)} µs per probe ` +
        `(answered ${answered}/${total}, both the probing socket and the stack in this process)`,
    );

    deny = true;
    const denied = 200_000;
    const bytes = new TextEncoder().encode(probe(0));
    const d0 = performance.now();
    for (let i = 0; i < denied; i++) {
      client.send(bytes, target.port, "127.0.0.1");
      if (i % 200 === 0) await Bun.sleep(0);
    }
    await Bun.sleep(50);
    console.log(
      `UDP flood from a stranger: ${(denied / ((performance.now() - d0) / 1000)).toFixed(0)} datagrams/s sent and dropped before parsing`,
    );
  } finally {
    client.close();
    await stack.stop();
  }
}

export async function run(): Promise<void> {
  await measure("udp");
  await measure("tcp");
  await optionsFlood();
}

if (import.meta.main) await run();
