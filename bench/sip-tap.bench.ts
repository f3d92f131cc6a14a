// What the SIP message tap costs (src/sip/tap.ts): two SipStacks on loopback UDP in this process
// place full calls (INVITE → 200 → ACK → BYE → 200; every message is tapped twice, sent by one
// stack and received by the other), 50 in flight, in alternating rounds of four setups measured
// side by side:
//   none      nobody listens (the production default when neither traces nor HEP are on)
//   no-op     a listener that does nothing: the tap's own plumbing (event object, clock read)
//   traces    the per-call SIP trace recorder (Call-ID read, copy, per-call buffer; at the end of
//             the call the messages are masked and written to an in-memory SQLite store)
//   hep       the HEP exporter sending every message to a UDP sink on loopback
// Reported: CPU µs per call for both stacks together (fastest and median round), and the difference
// of the fastest rounds to "none" per tapped message. On a shared machine the rounds spread widely,
// so the same work is also timed without sockets: what each listener costs per message (CPU µs,
// fastest of several batches, bench/cpu-time.ts).
import dgram from "node:dgram";
import { Dialog } from "../src/sip/dialog.ts";
import { parseUri } from "../src/sip/message.ts";
import { SipStack } from "../src/sip/stack.ts";
import type { Endpoint } from "../src/sip/transport.ts";
import { openStore } from "../src/store/index.ts";
import { HepExporter } from "../src/traces/hep.ts";
import { SipTraceRecorder } from "../src/traces/sipTrace.ts";
import { loopbackIsTrunk } from "../test/helpers/loopbackTrunks.ts";
import { measure } from "./cpu-time.ts";
import { encodeHep3 } from "../src/traces/hep.ts";
import { maskedMessage } from "../src/traces/mask.ts";
import { tapTime, type TappedMessage } from "../src/sip/tap.ts";

const SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";
const CALLS_PER_ROUND = 1000;
const IN_FLIGHT = 50;
const ROUNDS = 7;
/** INVITE, 100, 200, ACK, BYE, 200, each seen by both stacks. */
const TAPS_PER_CALL = 12;

type Setup = "none" | "no-op" | "traces" | "hep";

/** Each listener's own work per message, without sockets: an 800-byte INVITE with SDP. */
function perMessage(store: ReturnType<typeof openStore>): void {
  const invite = new TextEncoder().encode(
    `INVITE sip:bench@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-bench;rport\r\nMax-Forwards: 70\r\nFrom: <sip:caller@127.0.0.1>;tag=a73kszlfl\r\nTo: <sip:bench@127.0.0.1>\r\nCall-ID: 7d5f1b2c9e0a4f3d@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@127.0.0.1:5070>\r\nUser-Agent: Trunkline\r\nContent-Type: application/sdp\r\nContent-Length: ${SDP.length}\r\n\r\n${SDP}`,
  );
  const local = { address: "127.0.0.1", port: 5060 };
  const peer = { address: "127.0.0.1", port: 5070 };
  let event: TappedMessage | undefined;
  const plumbing = measure(() => {
    event = { direction: "received", data: invite, transport: "udp", source: peer, destination: local, time: tapTime() };
  }, 20_000);
  if (!event) throw new Error("no event built");
  const message: TappedMessage = { direction: "received", data: invite, transport: "udp", source: peer, destination: local, time: tapTime() };
  const unclaimed = new SipTraceRecorder({ store: store.sipTraces, maxBytes: () => 256 * 1024 });
  const claimed = new SipTraceRecorder({ store: store.sipTraces, maxBytes: () => 64 * 1024 * 1024 });
  store.calls.create({ id: "bench-call", direction: "inbound", from: "a", to: "b" });
  const stack = { tapMessages: () => () => {} } as unknown as SipStack;
  claimed.attach(stack, store.calls);
  store.calls.update("bench-call", { sipCallId: "7d5f1b2c9e0a4f3d@127.0.0.1" });
  const traced = measure(() => claimed.message(message), 2_000, 5);
  claimed.stop();
  const stray = measure(() => unclaimed.message(message), 20_000);
  const hepBuild = measure(
    () =>
      encodeHep3({ source: peer, destination: local, ipProtocol: 17, time: message.time, protocolType: 1, captureId: 1, payload: new TextEncoder().encode(maskedMessage(invite)) }),
    20_000,
  );
  console.log(
    `per message without sockets (${invite.length}-byte INVITE): tap event ${plumbing.toFixed(3)} µs; trace recorder ${traced.toFixed(2)} µs for a traced call, ` +
      `${stray.toFixed(2)} µs for a Call-ID no call claims; HEP packet (mask + encode) ${hepBuild.toFixed(2)} µs`,
  );
}

export async function run(): Promise<void> {
  const options = { isKnownSource: loopbackIsTrunk, limits: { trunkMessagesPerSecond: 0, maxServerTransactions: 1_000_000 } };
  const caller = new SipStack({ ...options, listen: [{ transport: "udp", host: "127.0.0.1", port: 0 }] });
  const callee = new SipStack({ ...options, listen: [{ transport: "udp", host: "127.0.0.1", port: 0 }] });
  await caller.start();
  await callee.start();
  callee.onRequest((req, tx, ctx) => {
    Dialog.answer(callee, req, tx, ctx, { contact: callee.contactFor("bench", "udp"), body: SDP, contentType: "application/sdp" });
  });
  const dest = callee.boundEndpoints[0]!;
  const store = openStore(":memory:");
  const sink = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => sink.bind(0, "127.0.0.1", resolve));
  sink.on("message", () => {});
  const hep = await HepExporter.open({ host: "127.0.0.1", port: sink.address().port, captureId: 1 });
  let callNumber = 0;

  // Every setup writes the call records, as the app does, so the rounds differ only by the listener.
  const oneCall = async () => {
    const invite = caller.createOutOfDialogRequest({
      method: "INVITE",
      uri: parseUri(`sip:bench@127.0.0.1:${dest.port}`)!,
      from: { uri: parseUri("sip:caller@127.0.0.1")!, params: new Map() },
      to: { uri: parseUri("sip:bench@127.0.0.1")!, params: new Map() },
      transport: "udp",
      body: SDP,
      contentType: "application/sdp",
    });
    const id = `call_${++callNumber}`;
    // As the call layer does: the record names its SIP Call-ID before the INVITE leaves.
    store.calls.create({ id, direction: "outbound", from: "a", to: "b", sipCallId: invite.callId });
    const tx = caller.sendRequest(invite, dest as Endpoint);
    const outcome = await tx.outcome;
    if (outcome.kind !== "final" || outcome.response.status !== 200) throw new Error(`call failed: ${outcome.kind}`);
    const dialog = Dialog.fromInvite2xx(caller, invite, outcome.response, tx, dest);
    await dialog.bye();
    store.calls.update(id, { state: "ended" });
  };

  const round = async (setup: Setup): Promise<number> => {
    const detach: (() => void)[] = [];
    let recorder: SipTraceRecorder | undefined;
    if (setup === "no-op") for (const s of [caller, callee]) detach.push(s.tapMessages(() => {}));
    if (setup === "traces") {
      recorder = new SipTraceRecorder({ store: store.sipTraces, maxBytes: () => 256 * 1024, lingerMs: 0 });
      // One recorder per process in production; here both stacks feed it, as both ends are in this process.
      recorder.attach(caller, store.calls);
      const traces = recorder;
      detach.push(callee.tapMessages((m) => traces.message(m)));
    }
    if (setup === "hep") for (const s of [caller, callee]) detach.push(s.tapMessages((m) => hep.sip(m)));
    Bun.gc(true);
    let started = 0;
    const cpu0 = process.cpuUsage();
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (started < CALLS_PER_ROUND) {
          started++;
          await oneCall();
        }
      }),
    );
    // Lingering traces are written by a timer; HEP packets go out on the next turns of the loop.
    await new Promise((resolve) => setTimeout(resolve, 20));
    const cpu = process.cpuUsage(cpu0);
    for (const off of detach) off();
    recorder?.stop();
    return (cpu.user + cpu.system) / CALLS_PER_ROUND;
  };

  try {
    for (let i = 0; i < 300; i++) await oneCall(); // warm-up
    const setups: Setup[] = ["none", "no-op", "traces", "hep"];
    const results = new Map<Setup, number[]>(setups.map((s) => [s, []]));
    for (let r = 0; r < ROUNDS; r++) {
      for (const setup of r % 2 === 0 ? setups : [...setups].reverse()) results.get(setup)!.push(await round(setup));
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const none = Math.min(...results.get("none")!);
    for (const setup of setups) {
      const xs = results.get(setup)!;
      const extra = setup === "none" ? "" : `; fastest over none: ${((Math.min(...xs) - none) / TAPS_PER_CALL).toFixed(2)} µs per tapped message`;
      console.log(`${setup.padEnd(7)} CPU per call: fastest ${Math.min(...xs).toFixed(0)} µs, median ${median(xs).toFixed(0)} µs${extra}`);
    }
    perMessage(store);
  } finally {
    hep.close();
    sink.close();
    await caller.stop();
    await callee.stop();
    await store.close();
  }
}
