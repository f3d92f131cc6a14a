// Real peer: Kamailio 5.6 running the cluster front shipped in deploy/kamailio/kamailio.cfg, on
// 127.0.0.1, dispatching SIPp's calls (from 127.0.0.5) to two scripted nodes on 127.0.0.2 and
// 127.0.0.3 (test/helpers/frontNode.ts). Node state changes are read from the front's own log
// (the dispatcher's dst-down / dst-up event routes), never waited for with a sleep.
import { afterEach, expect, test } from "bun:test";
import { startFrontNode, type FrontNode } from "../helpers/frontNode.ts";
import { startKamailio, type KamailioRun } from "../helpers/kamailio.ts";
import { freePort, runSipp } from "../helpers/sipp.ts";
import { sippCall } from "../helpers/sippCall.ts";
import { until } from "../helpers/until.ts";

const CALLER_IP = "127.0.0.5";

/** Calls [service] through the front, hangs up at once with a BYE along the Record-Route set. */
const CALL_AND_HANG_UP = sippCall({ name: "call-through-front", requestUri: "sip:[service]@[remote_ip]:[remote_port]", user: "caller", tag: "front", ending: "hang-up" });

let front: KamailioRun | undefined;
let nodes: FrontNode[] = [];

afterEach(async () => {
  await front?.stop();
  front = undefined;
  for (const node of nodes) node.close();
  nodes = [];
});

async function startCluster(): Promise<[FrontNode, FrontNode]> {
  nodes = [await startFrontNode("127.0.0.2"), await startFrontNode("127.0.0.3")];
  front = await startKamailio({
    config: "deploy/kamailio/kamailio.cfg",
    files: { "dispatcher.list": () => nodes.map((n) => `1 ${n.uri}\n`).join("") },
    defines: { DISPATCHER_LIST: (dir) => `${dir}/dispatcher.list`, CTL_SOCKET: (dir) => `unix:${dir}/ctl`, PROBE_INTERVAL: 1 },
  });
  return [nodes[0]!, nodes[1]!];
}

async function call(calls: number): Promise<void> {
  const r = await runSipp({ scenario: CALL_AND_HANG_UP, remote: `127.0.0.1:${front!.port}`, localIp: CALLER_IP, service: "15550199", calls, timeoutSec: 20, extraArgs: ["-l", "1"] });
  expect(r.exitCode, `${r.summary}\n${front!.lines.filter((l) => l.includes("FRONT")).join("\n")}`).toBe(0);
}

/** Calls the node got a BYE for (retransmissions counted once). */
const byes = (node: FrontNode) => new Set(node.received.filter((r) => r.method === "BYE").map((r) => r.callId)).size;

test("calls through the front are spread over the nodes, carry the caller's address, and end along the Record-Route", async () => {
  const [a, b] = await startCluster();
  await call(4);
  expect(a.invitesReceived().length).toBeGreaterThanOrEqual(1);
  expect(b.invitesReceived().length).toBeGreaterThanOrEqual(1);
  expect(a.invitesReceived().length + b.invitesReceived().length).toBe(4);
  for (const invite of [...a.invitesReceived(), ...b.invitesReceived()]) {
    expect(invite.getHeaders("X-Trunkline-Source")).toEqual([expect.stringMatching(new RegExp(`^${CALLER_IP.replaceAll(".", "\\.")}:\\d+;udp$`))]);
    expect(invite.getHeader("Record-Route")).toContain(`127.0.0.1:${front!.port}`);
  }
  // Each node got the BYE of each call it answered: in-dialog requests stay on the front's route.
  expect(byes(a)).toBe(a.invitesReceived().length);
  expect(byes(b)).toBe(b.invitesReceived().length);
});

test("a caller's own X-Trunkline-Source never reaches a node: the front writes the real one", async () => {
  const [a, b] = await startCluster();
  const forged = CALL_AND_HANG_UP.replace("Max-Forwards: 70\nContent-Length: 0\n\n]]></send>\n  <recv response=\"100\"", "Max-Forwards: 70\nX-Trunkline-Source: 203.0.113.9:5060;udp\nContent-Length: 0\n\n]]></send>\n  <recv response=\"100\"");
  expect(forged).toContain("203.0.113.9");
  const r = await runSipp({ scenario: forged, remote: `127.0.0.1:${front!.port}`, localIp: CALLER_IP, service: "15550199", calls: 1, timeoutSec: 20 });
  expect(r.exitCode, r.summary).toBe(0);
  const [invite] = [...a.invitesReceived(), ...b.invitesReceived()];
  expect(invite!.getHeaders("X-Trunkline-Source")).toEqual([expect.stringMatching(/^127\.0\.0\.5:\d+;udp$/)]);
});

for (const failure of ["503", "silent"] as const) {
  test(`a node answering ${failure === "503" ? "503" : "nothing"} before an answer: the call fails over to the other node`, async () => {
    const [a, b] = await startCluster();
    a.invites = failure;
    // Round robin starts one of the two calls on each node, so one of them meets the failing node.
    await call(2);
    expect(a.invitesReceived().length).toBeGreaterThanOrEqual(1);
    expect(b.invitesReceived().length).toBe(2);
    expect(byes(b)).toBe(2);
    expect(byes(a)).toBe(0);
    await front!.waitFor(new RegExp(`FRONT failover from=sip:127\\.0\\.0\\.2:${a.port} status=${failure === "503" ? "503" : "408"}`));
  });
}

test("a node's 302 to another node is followed by the front; the caller never sees it", async () => {
  const [a, b] = await startCluster();
  a.invites = { redirectTo: `sip:15550199@127.0.0.3:${b.port}` };
  await call(2);
  expect(a.invitesReceived().length).toBeGreaterThanOrEqual(1);
  expect(b.invitesReceived().length).toBe(2);
  const redirected = b.invitesReceived().find((i) => i.callId === a.invitesReceived()[0]!.callId)!;
  expect(redirected.uri.host).toBe("127.0.0.3");
  expect(redirected.getHeaders("X-Trunkline-Source")).toEqual([expect.stringMatching(/^127\.0\.0\.5:\d+;udp$/)]);
  await front!.waitFor(new RegExp(`FRONT redirect from=sip:127\\.0\\.0\\.2:${a.port} to=sip:15550199@127\\.0\\.0\\.3:${b.port}`));
});

test("a node answering the OPTIONS probe with 503 (draining) gets no calls until a probe gets 200 again", async () => {
  const [a, b] = await startCluster();
  a.options = 503;
  await front!.waitFor(new RegExp(`FRONT node-down sip:127\\.0\\.0\\.2:${a.port} code=503 `));
  await call(4);
  expect(a.invitesReceived().length).toBe(0);
  expect(b.invitesReceived().length).toBe(4);
  a.options = 200;
  await front!.waitFor(new RegExp(`FRONT node-up sip:127\\.0\\.0\\.2:${a.port} code=200`));
  await call(2);
  expect(a.invitesReceived().length).toBe(1);
});

/** A node's outbound call: INVITE to the carrier with the front as outbound proxy (preloaded Route), then BYE. */
const NODE_CALLS_OUT = sippCall({
  name: "node-calls-out", requestUri: "sip:+15551234567@[carrier]", user: "node", tag: "out", route: "<sip:[remote_ip]:[remote_port];lr>", ending: "hang-up",
});

test("a node's outbound call leaves through the front: the carrier sees only the front's address, Record-Routed", async () => {
  // SIPp plays the node (listed in the front's dispatcher set; -aa answers the probes), a scripted carrier answers.
  const sippNodePort = await freePort();
  const carrier = await startFrontNode("127.0.0.8");
  nodes = [carrier];
  front = await startKamailio({
    config: "deploy/kamailio/kamailio.cfg",
    files: { "dispatcher.list": () => `1 sip:127.0.0.2:${sippNodePort}\n` },
    defines: { DISPATCHER_LIST: (dir) => `${dir}/dispatcher.list`, CTL_SOCKET: (dir) => `unix:${dir}/ctl`, PROBE_INTERVAL: 1 },
  });
  const r = await runSipp({
    scenario: NODE_CALLS_OUT, remote: `127.0.0.1:${front.port}`, localIp: "127.0.0.2", localPort: sippNodePort,
    keys: { carrier: `127.0.0.8:${carrier.port}` }, timeoutSec: 20, extraArgs: ["-aa"],
  });
  expect(r.exitCode, `${r.summary}\n${front.lines.filter((l) => l.includes("FRONT")).join("\n")}`).toBe(0);
  const [invite] = carrier.invitesReceived();
  expect(invite!.uri.user).toBe("+15551234567");
  expect(invite!.getHeaders("Route")).toEqual([]);
  expect(invite!.getHeaders("X-Trunkline-Source")).toEqual([]);
  expect(invite!.getHeader("Record-Route")).toContain(`127.0.0.1:${front.port}`);
  // The front's processes relay the ACK and the BYE side by side: either may arrive first.
  await until(() => carrier.received.some((m) => m.method === "ACK"));
  expect([...new Set(carrier.received.map((m) => m.method))].sort()).toEqual(["ACK", "BYE", "INVITE"]);
  expect(new Set(carrier.receivedFrom)).toEqual(new Set([`127.0.0.1:${front.port}`]));
  await front.waitFor(/FRONT outbound method=INVITE ruri=sip:\+15551234567@127\.0\.0\.8/);
});
