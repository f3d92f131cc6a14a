// Real peers: Kamailio 5.6 running deploy/kamailio/kamailio.cfg on 127.0.0.1 in front of one real
// Trunkline node (the app composed as in production, SIP on 127.0.0.2) whose only trunk is defined
// by the caller's own address, 127.0.0.5 (allowedAddresses), with `sip.trustedFronts: [127.0.0.1]`.
// SIPp calls from that address through the front; a stranger's call through the front and a
// stranger sending the front's header directly are both dropped; SIGTERM's drain takes the node out
// of the front's rotation at its next probe (a test service still at work during the stop stands
// for calls finishing within the grace period, keeping the node's sockets open meanwhile).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { findCall, startCallsApp, testApplicationYaml, type CallsApp } from "../helpers/callsApp.ts";
import { startKamailio, type KamailioRun } from "../helpers/kamailio.ts";
import { isResponse, udpPeer } from "../helpers/rawSipPeer.ts";
import { runSipp } from "../helpers/sipp.ts";
import { until } from "../helpers/until.ts";
import { sippCall } from "../helpers/sippCall.ts";

const NODE_IP = "127.0.0.2";
const TRUNK_IP = "127.0.0.5";

/** Calls [service] with an SDP offer through the front, then hangs up along the Record-Route set. */
const CALL_AND_HANG_UP = sippCall({ name: "call-node-through-front", requestUri: "sip:[service]@[remote_ip]:[remote_port]", user: "+15550001111", contactUser: "caller", tag: "fn", offerPort: "[rtpport]", ending: "hang-up" });

let app: CallsApp;
let front: KamailioRun;
const nodeDown = () => new RegExp(`FRONT node-down sip:${NODE_IP.replaceAll(".", "\\.")}:${app.sipPort} code=503 `);

beforeAll(async () => {
  app = await startCallsApp(
    `sip:
  trustedFronts: ["127.0.0.1"]
trunks:
  - { id: carrier, domain: 127.0.0.9, allowedAddresses: ["${TRUNK_IP}"], optionsIntervalSec: 0 }
${testApplicationYaml({ "15550199": "lobby" })}
`,
    { sipHost: NODE_IP, services: [{ name: "work-in-grace-period", stop: async () => void (await front.waitFor(nodeDown())) }] },
  );
  front = await startKamailio({
    config: "deploy/kamailio/kamailio.cfg",
    files: { "dispatcher.list": () => `1 sip:${NODE_IP}:${app.sipPort}\n` },
    defines: { DISPATCHER_LIST: (dir) => `${dir}/dispatcher.list`, CTL_SOCKET: (dir) => `unix:${dir}/ctl`, PROBE_INTERVAL: 1 },
  });
});

afterAll(async () => {
  await app?.close();
  await front?.stop();
});

function invite(from: string, callId: string, headers: string[] = []): string {
  return [
    "INVITE sip:15550199@127.0.0.1 SIP/2.0",
    `Via: SIP/2.0/UDP ${from}:[port];branch=z9hG4bK-${callId};rport`,
    `From: <sip:+15550002222@${from}>;tag=${callId}`,
    "To: <sip:15550199@127.0.0.1>",
    `Call-ID: ${callId}`,
    "CSeq: 1 INVITE",
    `Contact: <sip:stranger@${from}:[port]>`,
    "Max-Forwards: 70",
    ...headers,
    "Content-Length: 0",
    "",
    "",
  ].join("\r\n");
}

test("a trunk defined by the caller's own address calls in through the front", async () => {
  const r = await runSipp({ scenario: CALL_AND_HANG_UP, remote: `127.0.0.1:${front.port}`, localIp: TRUNK_IP, service: "15550199", keys: { rtpport: 40000 }, timeoutSec: 20 });
  expect(r.exitCode, `${r.summary}\n${front.lines.filter((l) => l.includes("FRONT")).join("\n")}`).toBe(0);
  const call = await findCall(app, (c) => c.trunkId === "carrier" && c.state === "ended");
  expect(call.direction).toBe("inbound");
  expect(call.channelId).toBe("lobby");
});

test("a stranger calling through the front is judged by its own address: the node drops it, the front gives up", async () => {
  const dropped = app.stack.counters.sources.strangersDropped;
  const stranger = await udpPeer("127.0.0.1", front.port, { localAddress: "127.0.0.7" });
  try {
    stranger.send(invite("127.0.0.7", "stranger-via-front"));
    await until(() => app.stack.counters.sources.strangersDropped > dropped);
    // The front's only node never answered: its transaction timer ends the call attempt.
    const final = await stranger.waitFor((m) => isResponse()(m) && m.status >= 400);
    expect(final.callId).toBe("stranger-via-front");
  } finally {
    stranger.close();
  }
  const calls = (await app.harness.call("GET", "/api/v1/calls?limit=500")).json.calls as { sipCallId?: string }[];
  expect(calls.some((c) => c.sipCallId === "stranger-via-front")).toBe(false);
});

test("the front's header sent straight to the node by a stranger names nobody: the stranger is dropped", async () => {
  const dropped = app.stack.counters.sources.strangersDropped;
  const stranger = await udpPeer(NODE_IP, app.sipPort, { localAddress: "127.0.0.6" });
  try {
    stranger.send(invite("127.0.0.6", "forged-source", [`X-Trunkline-Source: ${TRUNK_IP}:5060;udp`]));
    await until(() => app.stack.counters.sources.strangersDropped > dropped);
    expect(stranger.received).toHaveLength(0);
  } finally {
    stranger.close();
  }
  const calls = (await app.harness.call("GET", "/api/v1/calls?limit=500")).json.calls as { sipCallId?: string }[];
  expect(calls.some((c) => c.sipCallId === "forged-source")).toBe(false);
});

test("SIGTERM's drain: the node answers the front's probe 503 and the front takes it out", async () => {
  const stopping = app.harness.app.stop();
  // 503, not a timeout: the node said it is draining while its sockets were still open.
  await front.waitFor(nodeDown());
  await stopping;
});
