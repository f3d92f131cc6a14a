// One channel, one mixer, on a real cluster: scripts/cluster.sh starts a real PostgreSQL, the
// Kamailio front (deploy/kamailio/kamailio.cfg) and three Trunkline processes on 127.0.0.2-.4, on
// ports of its own. SIPp phones call in from the trunk's address (127.0.0.5) through the front.
//   - 12 calls for 3 channels land on at least two nodes, yet every channel lives on one node (the
//     others answered 302 and the front followed), and each caller hears only other callers of its
//     own channel (at least two: the channel mixes its three loudest), a tone of its own per caller,
//     judged by Goertzel.
//   - A forged route ticket sent straight to a node is refused with 403 and the reason.
//   - A werift WebRTC client joining through a node that is not the channel's home is sent there
//     (307, same path) and hears the phone, which hears it. A page asks GET /client/home first (a
//     browser drops Authorization on a cross-origin redirect); /ui/'s CSP lets it reach the nodes.
//   - kill -9 of a channel's home: its calls' records end `interrupted`, the front takes it out of
//     rotation, and within 10 s a new call to that channel is answered on another node while the
//     dead node's address receives no INVITE.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { signClientToken } from "../../src/webrtc/tokens.ts";
import { clientHears } from "../helpers/hearing.ts";
import { isResponse, udpPeer } from "../helpers/rawSipPeer.ts";
import { startRtpPeer, toneShareOf, type RtpPeer } from "../helpers/rtpPeer.ts";
import { freePort, startSipp, type SippRun } from "../helpers/sipp.ts";
import { until } from "../helpers/until.ts";
import { createTestClient, type TestClient } from "../helpers/weriftClient.ts";
import { sippCall } from "../helpers/sippCall.ts";

const repo = resolve(import.meta.dir, "../..");
const NODE_ADDRS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
const TRUNK_IP = "127.0.0.5";
const TOKEN = "cluster-homing-token-0123456789";
const APP_SECRET = "cluster-homing-app-secret-0123456789";
const CHANNELS = ["ch-a", "ch-b", "ch-c"];
/** Caller i sends TONES[i], 150 Hz apart (whole 50 Hz Goertzel bins of a 20 ms frame), so they tell apart. */
const TONES = Array.from({ length: 12 }, (_, i) => 400 + 150 * i);
/**
 * Caller i calls channel CHANNEL_OF[i]. The front deals new calls round-robin over the three nodes;
 * each channel's calls fall on every position of the rotation, so most reach a node that is not
 * the channel's home (a plain i % 3 would send each channel's calls to one node every time).
 */
const CHANNEL_OF = [0, 1, 2, 1, 2, 0, 2, 0, 1, 0, 1, 2];
const WEB_PHONE_HZ = 440;
const BROWSER_HZ = 1000;

/** Calls [service] through the front (PCMU at -key rtpport), ACKs along the Record-Route, waits for Trunkline's BYE. */
const CALL_UNTIL_BYE = sippCall({ name: "call-through-front-until-bye", requestUri: "sip:[service]@[remote_ip]:[remote_port]", user: "+15550001111", contactUser: "caller", tag: "hm", offerPort: "[rtpport]", ending: "until-bye" });

interface ClusterNode {
  id: string;
  api: string;
  sip: string;
  pid: number;
}

interface CallRecordView {
  id: string;
  state: string;
  channelId?: string;
  endReason?: string;
  sipStatus?: number;
  sipCallId?: string;
}

interface ClusterView {
  nodes: { nodeId: string; health: string; lastHeartbeatAt: string; load: { activeCalls: number; mediaLegs: number } }[];
  channels: { applicationId: string; channelId: string; nodeId: string }[];
}

let dir: string;
let env: Record<string, string>;
let keys: Record<string, string>;
let state: Record<string, string>;
let nodes: ClusterNode[];
let frontSip: string;
const phones: { peer: RtpPeer; run: SippRun }[] = [];
const clients: TestClient[] = [];

function readKeyValues(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split("\n")
      .map((line) => /^([A-Z0-9_]+)=(.*)$/.exec(line))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1]!, m[2]!]),
  );
}

async function cluster(command: "up" | "down"): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = Bun.spawn([join(repo, "scripts/cluster.sh"), command], { cwd: repo, env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

async function admin<T = unknown>(url: string, init: RequestInit = {}): Promise<{ status: number; json: T }> {
  const res = await fetch(url, { ...init, headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" } });
  const text = await res.text();
  return { status: res.status, json: (text ? JSON.parse(text) : undefined) as T };
}

const clusterView = async (node: ClusterNode) => (await admin<ClusterView>(`${node.api}/api/v1/cluster`)).json;
const frontLog = () => readFileSync(join(state.DIR!, "kamailio", "kamailio.log"), "utf8");
const nodeById = (id: string) => nodes.find((n) => n.id === id)!;

async function activeCalls(node: ClusterNode): Promise<CallRecordView[]> {
  return (await admin<{ calls: CallRecordView[] }>(`${node.api}/api/v1/calls?state=active&limit=500`)).json.calls;
}

/** A phone calling `service` through the front, its RTP at TRUNK_IP sending `toneHz`. */
async function callIn(service: string, toneHz: number, timeoutSec = 120): Promise<{ peer: RtpPeer; run: SippRun }> {
  const peer = await startRtpPeer(toneHz, { replyToSender: true, host: TRUNK_IP, amplitude: 6000 });
  const run = await startSipp({ scenario: CALL_UNTIL_BYE, remote: frontSip, localIp: TRUNK_IP, service, keys: { rtpport: peer.port }, timeoutSec });
  const phone = { peer, run };
  phones.push(phone);
  return phone;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "trunkline-homing-test-"));
  // The nodes run from source (`bun main.ts serve`), as real processes of their own.
  const bin = join(dir, "trunkline");
  writeFileSync(bin, `#!/bin/sh\nexec ${process.execPath} ${join(repo, "main.ts")} "$@"\n`);
  chmodSync(bin, 0o755);
  const httpBase = (await freePort()) - 1;
  env = {
    PATH: process.env.PATH ?? "",
    TRUNKLINE_BIN: bin,
    CLUSTER_STATE: join(dir, "cluster.state"),
    CLUSTER_PG_PORT: String(await freePort()),
    CLUSTER_FRONT_PORT: String(await freePort()),
    CLUSTER_NODE_SIP_PORT: String(await freePort()),
    CLUSTER_HTTP_PORT_BASE: String(httpBase),
    CLUSTER_ADMIN_TOKEN: TOKEN,
  };
  const up = await cluster("up");
  if (up.code !== 0) throw new Error(`cluster up failed (${up.code}):\n${up.stderr}`);
  keys = readKeyValues(up.stdout);
  state = readKeyValues(readFileSync(env.CLUSTER_STATE!, "utf8"));
  frontSip = keys.FRONT_SIP!.replace(/^sip:/, "");
  nodes = NODE_ADDRS.map((addr, i) => ({
    id: `node${i + 1}`,
    api: keys[`NODE${i + 1}_API`]!,
    sip: `${addr}:${env.CLUSTER_NODE_SIP_PORT}`,
    pid: Number(state[`NODE${i + 1}_PID`]),
  }));

  // The trunk (the phones' address), one application, a number per channel.
  const node1 = nodes[0]!;
  expect((await admin(`${node1.api}/api/v1/trunks`, { method: "POST", body: JSON.stringify({ id: "carrier", domain: "127.0.0.9", allowedAddresses: [TRUNK_IP], optionsIntervalSec: 0 }) })).status).toBe(201);
  expect((await admin(`${node1.api}/api/v1/applications`, { method: "POST", body: JSON.stringify({ id: "app1", name: "Homing", sharedSecret: APP_SECRET }) })).status).toBe(201);
  for (const [i, channelId] of [...CHANNELS, "ch-web", "ch-kill"].entries()) {
    const route = await admin(`${node1.api}/api/v1/applications/app1/inbound-routes`, { method: "POST", body: JSON.stringify({ sipUsername: `200${i + 1}`, channelId }) });
    expect(route.status).toBe(201);
  }
  for (const node of nodes) {
    await until(async () => (await admin(`${node.api}/api/v1/applications/app1/inbound-routes/2005`)).status === 200, { timeoutMs: 5000 });
    await until(async () => (await admin(`${node.api}/api/v1/trunks/carrier`)).status === 200, { timeoutMs: 5000 });
  }
}, 120_000);

afterAll(async () => {
  for (const client of clients) await client.close();
  for (const phone of phones) phone.peer.close();
  // HOMING_KEEP_LOGS=/some/dir keeps the cluster's logs (nodes, front, PostgreSQL) for a failed run.
  if (process.env.HOMING_KEEP_LOGS && state?.DIR) Bun.spawnSync(["cp", "-r", state.DIR, process.env.HOMING_KEEP_LOGS]);
  if (env && existsSync(env.CLUSTER_STATE!)) await cluster("down");
  for (const phone of phones) phone.run.kill();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * Waits until the last half second a phone heard carries at least `atLeast` of the tones in
 * `present` (each a fair share) and none in `absent`.
 */
async function hearsOnly(peer: RtpPeer, present: number[], atLeast: number, absent: number[], label: string): Promise<void> {
  const samples = 8000 / 2;
  let shares: Record<number, number> = {};
  await until(
    () => {
      const all = peer.received();
      if (all.length < samples) return false;
      const window = all.subarray(all.length - samples);
      shares = Object.fromEntries([...present, ...absent].map((hz) => [hz, Math.round(toneShareOf(window, 8000, hz) * 1000) / 1000]));
      return present.filter((hz) => shares[hz]! > 0.15).length >= atLeast && absent.every((hz) => shares[hz]! < 0.03);
    },
    { timeoutMs: 20_000, pollMs: 50, what: () => ({ label, present, atLeast, shares, packets: peer.packetsReceived }) },
  );
}

test("12 calls for 3 channels through the front land on at least two nodes; each caller hears only callers of its channel", async () => {
  const callers: { channel: number; tone: number; peer: RtpPeer }[] = [];
  for (let i = 0; i < 12; i++) {
    const channel = CHANNEL_OF[i]!;
    const { peer } = await callIn(`200${channel + 1}`, TONES[i]!);
    callers.push({ channel, tone: TONES[i]!, peer });
    // Answered (Trunkline's media reaches the phone) before the next call, as phones trickle in.
    await until(() => peer.packetsReceived > 0, { timeoutMs: 15_000, what: () => ({ caller: i, frontLog: frontLog().slice(-2000) }) });
  }

  // Every channel has one home, and the homes are on at least two nodes.
  const view = await clusterView(nodes[0]!);
  const homes = new Map(view.channels.filter((c) => CHANNELS.includes(c.channelId)).map((c) => [c.channelId, c.nodeId]));
  expect([...homes.keys()].sort()).toEqual(CHANNELS);
  expect(new Set(homes.values()).size).toBeGreaterThanOrEqual(2);
  // The front dispatched calls to nodes that were not the channel's home: they answered 302, it followed.
  expect(frontLog()).toMatch(/FRONT redirect from=sip:[\d.:]+ to=sip:2\d{3}@[\d.:]+;tl-home=/);
  // Each node carries the calls of the channels it homes, and only those.
  for (const node of nodes) {
    const mine = [...homes.entries()].filter(([, id]) => id === node.id).map(([channel]) => channel).sort();
    // Every node's API lists every node's calls (one database): twelve answered, whoever asks.
    const answered = (await activeCalls(node)).filter((c) => c.state === "answered" && CHANNELS.includes(c.channelId ?? ""));
    expect(answered).toHaveLength(12);
    await until(async () => (await clusterView(node)).nodes.find((n) => n.nodeId === node.id)!.load.mediaLegs === mine.length * 4, {
      timeoutMs: 5000,
      what: async () => ({ node: node.id, mine, load: (await clusterView(node)).nodes.find((n) => n.nodeId === node.id)!.load }),
    });
  }

  // Each caller hears other callers of its channel, and neither itself nor anyone else. All four
  // talk at once and a channel mixes its three loudest talkers (media.maxSpeakers): those three hear
  // each other, the fourth hears all three, so everyone hears at least two of its channel.
  await Promise.all(
    callers.map((caller, i) => {
      const others = callers.filter((c) => c !== caller);
      const present = others.filter((c) => c.channel === caller.channel).map((c) => c.tone);
      const absent = [caller.tone, ...others.filter((c) => c.channel !== caller.channel).map((c) => c.tone)];
      return hearsOnly(caller.peer, present, 2, absent, `caller ${i} in ${CHANNELS[caller.channel]}`);
    }),
  );
}, 180_000);

test("a forged route ticket sent straight to a node is refused with 403 and the reason", async () => {
  const node = nodes[1]!;
  const [host, port] = node.sip.split(":");
  const peer = await udpPeer(host!, Number(port), { localAddress: TRUNK_IP });
  try {
    peer.send(`INVITE sip:2001@${node.sip};tl-home=eyJmb3JnZWQiOnRydWV9.AAAA SIP/2.0\r
Via: SIP/2.0/UDP ${TRUNK_IP}:[port];branch=z9hG4bK-forged-1\r
From: <sip:+15550001111@${TRUNK_IP}>;tag=forged\r
To: <sip:2001@${node.sip}>\r
Call-ID: forged-ticket-1@${TRUNK_IP}\r
CSeq: 1 INVITE\r
Contact: <sip:caller@${TRUNK_IP}:[port]>\r
Max-Forwards: 70\r
Content-Length: 0\r
\r
`);
    const refused = await peer.waitFor(isResponse(403), 5000);
    expect(refused.reason).toBe("Bad Home Ticket Signature");
  } finally {
    peer.close();
  }
});

test("a WebRTC client joining through a node that is not the channel's home is sent there (307) and hears the phone; GET /client/home names the home", async () => {
  const phone = await callIn("2004", WEB_PHONE_HZ);
  await until(() => phone.peer.packetsReceived > 0, { timeoutMs: 15_000 });
  let home: string | undefined;
  await until(async () => (home = (await clusterView(nodes[0]!)).channels.find((c) => c.channelId === "ch-web")?.nodeId) !== undefined);
  const via = nodes.find((n) => n.id !== home)!;
  const homeNode = nodeById(home!);

  const token = signClientToken({ applicationId: "app1", channelId: "ch-web", clientId: "web-1", userId: "alice", roles: [], exp: Math.floor(Date.now() / 1000) + 600 }, APP_SECRET);
  const client = createTestClient("opus");
  clients.push(client);
  const body = JSON.stringify({ sdp: await client.offer() });
  const join = (url: string) => fetch(url, { method: "POST", redirect: "manual", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body });
  const redirected = await join(`${via.api}/api/v1/client/join?from=test`);
  expect(redirected.status).toBe(307);
  const location = redirected.headers.get("location");
  expect(location).toBe(`${homeNode.api}/api/v1/client/join?from=test`);
  expect(redirected.headers.get("access-control-allow-origin")).toBe("*");
  expect(((await redirected.json()) as { error: { code: string } }).error.code).toBe("channel_homed_elsewhere");

  // What the /ui/ page does instead (browsers drop Authorization on a redirect to another origin):
  // ask where the channel lives, then talk to that node; its CSP lets it connect to the other nodes.
  const asked = await fetch(`${via.api}/api/v1/client/home`, { headers: { authorization: `Bearer ${token}` } });
  expect(asked.status).toBe(200);
  expect(await asked.json()).toEqual({ nodeId: homeNode.id, url: homeNode.api });
  const policy = (await fetch(`${via.api}/ui/`)).headers.get("content-security-policy") ?? "";
  for (const node of nodes.filter((n) => n !== via)) expect(policy).toContain(`${node.api} ${node.api.replace("http:", "ws:")}`);

  const joined = await join(location!);
  expect(joined.status).toBe(200);
  await client.accept(((await joined.json()) as { sdp: string }).sdp);
  await client.connected();
  client.startSending(BROWSER_HZ);
  const [heard, heardByPhone] = await Promise.all([clientHears(client, WEB_PHONE_HZ, { timeoutMs: 20_000 }), hearsTone(phone.peer, BROWSER_HZ)]);
  expect(toneShareOf(heard, client.codec.sampleRate, BROWSER_HZ)).toBeLessThan(0.1);
  expect(toneShareOf(heardByPhone, 8000, WEB_PHONE_HZ)).toBeLessThan(0.1);
}, 60_000);

async function hearsTone(peer: RtpPeer, hz: number, share = 0.5): Promise<Int16Array> {
  let window: Int16Array = new Int16Array(0);
  await until(
    () => {
      const all = peer.received();
      window = all.subarray(Math.max(0, all.length - 4000));
      return window.length === 4000 && toneShareOf(window, 8000, hz) > share;
    },
    { timeoutMs: 20_000, pollMs: 50, what: () => ({ hz, share: toneShareOf(window, 8000, hz) }) },
  );
  return window.slice();
}

test("kill -9 of a channel's home: its calls end interrupted, the front drops it, a new call to the channel is answered elsewhere within 10 s", async () => {
  // The channel's first call homes it on some node: that node is killed.
  const first = await callIn("2005", 700);
  await until(() => first.peer.packetsReceived > 0, { timeoutMs: 15_000 });
  let homeId: string | undefined;
  await until(async () => (homeId = (await clusterView(nodes[0]!)).channels.find((c) => c.channelId === "ch-kill")?.nodeId) !== undefined);
  const home = nodeById(homeId!);
  const survivors = nodes.filter((n) => n !== home);
  const homedThere = (await clusterView(survivors[0]!)).channels.filter((c) => c.nodeId === home.id).map((c) => c.channelId);
  const doomed = (await activeCalls(survivors[0]!)).filter((c) => homedThere.includes(c.channelId ?? ""));
  expect(doomed.length).toBeGreaterThanOrEqual(1);

  const logBeforeKill = frontLog().length;
  process.kill(home.pid, "SIGKILL");
  const killedAt = Date.now();
  await until(() => {
    try {
      process.kill(home.pid, 0);
      return false;
    } catch {
      return true;
    }
  });
  // Stand in for the dead node's SIP address (its port is free now) to see what still reaches it.
  const [host, port] = home.sip.split(":");
  const deadAddress = await udpPeer("127.0.0.1", 9, { localAddress: host, localPort: Number(port) });
  try {
    // The front's probe takes it out; the survivors see its heartbeat stop and close its calls' records.
    const nodeDown = new RegExp(`FRONT node-down sip:${home.sip.replaceAll(".", "\\.")} `);
    await until(() => nodeDown.test(frontLog().slice(logBeforeKill)), { timeoutMs: 10_000 });
    let deadSeenAt = "";
    await until(async () => {
      const view = await clusterView(survivors[0]!);
      deadSeenAt = view.nodes.map((n) => n.lastHeartbeatAt).sort().at(-1)!;
      return view.nodes.find((n) => n.nodeId === home.id)!.health === "dead";
    }, { timeoutMs: 10_000 });
    // Each survivor has beaten (and so refreshed what it knows of the homes) since then.
    await until(async () => (await clusterView(survivors[0]!)).nodes.filter((n) => survivors.some((s) => s.id === n.nodeId)).every((n) => n.lastHeartbeatAt > deadSeenAt), { timeoutMs: 10_000 });
    await until(async () => (await clusterView(survivors[0]!)).nodes.filter((n) => survivors.some((s) => s.id === n.nodeId)).every((n) => Date.parse(n.lastHeartbeatAt) > Date.parse(deadSeenAt) + 1000), { timeoutMs: 10_000 });

    // A new call to the channel: answered, on a survivor, which now homes the channel.
    const again = await callIn("2005", 900);
    await until(() => again.peer.packetsReceived > 0, { timeoutMs: 10_000 });
    const answeredAfterMs = Date.now() - killedAt;
    expect(answeredAfterMs).toBeLessThan(10_000);
    const newHome = (await clusterView(survivors[0]!)).channels.find((c) => c.channelId === "ch-kill")!.nodeId;
    expect(survivors.map((s) => s.id)).toContain(newHome);
    // The dead node's address got probes at most, never the INVITE: the call was answered without it,
    // and a probe arriving since shows the front still reaches this address.
    const probes = () => deadAddress.received.filter((m) => "method" in m && m.method === "OPTIONS").length;
    const probesAtAnswer = probes();
    await until(() => probes() > probesAtAnswer, { timeoutMs: 5000 });
    const invites = deadAddress.received.filter((m) => "method" in m && m.method === "INVITE");
    expect(invites).toEqual([]);

    // Every call that lived on the dead node is closed as interrupted by a survivor.
    for (const call of doomed) {
      await until(async () => (await admin<CallRecordView>(`${survivors[0]!.api}/api/v1/calls/${call.id}`)).json.endReason === "interrupted", { timeoutMs: 10_000 });
    }
  } finally {
    deadAddress.close();
  }
}, 90_000);
