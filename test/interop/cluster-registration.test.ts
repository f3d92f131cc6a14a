// Registration once per cluster and outbound calls through the front, with real peers only: a real
// PostgreSQL, Kamailio running deploy/kamailio/kamailio.cfg as the front on 127.0.0.1, a second
// Kamailio as the carrier's registrar (test/fixtures/kamailio/registrar.cfg: digest, usrloc, one
// log line per saved REGISTER with the AOR's binding count), three Trunkline nodes as processes of
// their own (main.ts serve) on 127.0.0.2, .3 and .4 with `cluster.front` at the front, and SIPp on
// 127.0.0.6 as the carrier answering an outbound call (and on 127.0.0.1, the registrar's address,
// as the carrier calling the binding). Each node's REGISTER carries a Call-ID ending in its own
// address, which tells the registrar's log lines apart by node.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { startKamailio, type KamailioRun } from "../helpers/kamailio.ts";
import { createDatabase, startPostgres, type Postgres } from "../helpers/postgres.ts";
import { freePort, runSipp, startSipp } from "../helpers/sipp.ts";
import { until } from "../helpers/until.ts";
import { sippCall } from "../helpers/sippCall.ts";

const repo = resolve(import.meta.dir, "../..");
const TOKEN = "cluster-registration-token-0123";
const NODE_IPS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
const CARRIER_IP = "127.0.0.6";

interface Node {
  nodeId: string;
  ip: string;
  sipPort: number;
  api: string;
  proc: Subprocess;
  log: string;
}

/** The carrier: answers with the INVITE's Record-Route (RFC 3261 §12.1.1), waits for the node's BYE. Logs the top Via of each request and the Record-Route. */
const CARRIER_ANSWERS = `<?xml version="1.0" encoding="UTF-8"?>
<scenario name="carrier-behind-front">
  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="[^,]*" search_in="hdr" header="Via:" check_it="true" assign_to="top_via"/>
      <ereg regexp=".*" search_in="hdr" header="Record-Route:" check_it="true" assign_to="record_route"/>
      <log message="TOP_VIA [$top_via]"/>
      <log message="RECORD_ROUTE [$record_route]"/>
    </action>
  </recv>
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_Record-Route:]
[last_From:]
[last_To:];tag=[pid]carrier[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:carrier@[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 2 2 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio [rtpport] RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=sendrecv
]]></send>
  <recv request="ACK" crlf="true">
    <action>
      <ereg regexp="[^,]*" search_in="hdr" header="Via:" check_it="true" assign_to="ack_via"/>
      <log message="ACK_VIA [$ack_via]"/>
    </action>
  </recv>
  <recv request="BYE">
    <action>
      <ereg regexp="[^,]*" search_in="hdr" header="Via:" check_it="true" assign_to="bye_via"/>
      <log message="BYE_VIA [$bye_via]"/>
    </action>
  </recv>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>`;

/** The carrier calling the trunk's binding (its Contact, the Request-URI) with an offer, then hanging up along the Record-Route set. */
const CARRIER_CALLS_BINDING = sippCall({ name: "carrier-calls-binding", requestUri: "[contact]", to: "<sip:alice@127.0.0.1>", user: "+15550001111", contactUser: "carrier", tag: "cb", offerPort: "[rtpport]", ending: "hang-up" });

let pg: Postgres;
let registrar: KamailioRun;
let front: KamailioRun;
let dir: string;
let carrierPort: number;
const nodes: Node[] = [];

const admin = async (url: string, method = "GET", body?: unknown): Promise<{ status: number; json: any; text: string }> => {
  const res = await fetch(url, {
    method,
    headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON (204)
  }
  return { status: res.status, json, text };
};

const alive = () => nodes.filter((n) => n.proc.exitCode === null && n.proc.signalCode === null);
const registration = async (node: Node) => (await admin(`${node.api}/api/v1/trunks/reg/status`)).json;

/** The registrar's saved REGISTERs so far: the binding count after each, its Contact, and the node that sent it (its Call-ID's host). */
function savedRegisters(): { bindings: number; contact: string; node: string | undefined }[] {
  return registrar.lines
    .map((line) => /TRUNKLINE saved bindings=(\d+) aor=sip:alice@\S+ .*contact=(\S+) expires=(\S+) callid=\S+@(\S+) /.exec(line))
    .filter((m): m is RegExpExecArray => m !== null && m[3] !== "0")
    .map((m) => ({ bindings: Number(m[1]), contact: m[2]!, node: nodes.find((n) => n.ip === m[4])?.nodeId }));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "trunkline-cluster-reg-"));
  pg = await startPostgres();
  const databaseUrl = await createDatabase(pg, "cluster_registration");
  registrar = await startKamailio({ config: "test/fixtures/kamailio/registrar.cfg" });
  const sipPorts = [await freePort(), await freePort(), await freePort()];
  const httpPorts = [await freePort(), await freePort(), await freePort()];
  front = await startKamailio({
    config: "deploy/kamailio/kamailio.cfg",
    files: { "dispatcher.list": () => NODE_IPS.map((ip, i) => `1 sip:${ip}:${sipPorts[i]}\n`).join("") },
    defines: { DISPATCHER_LIST: (d) => `${d}/dispatcher.list`, CTL_SOCKET: (d) => `unix:${d}/ctl`, PROBE_INTERVAL: 1 },
  });
  for (const [i, ip] of NODE_IPS.entries()) {
    const nodeId = `node${i + 1}`;
    const config = join(dir, `${nodeId}.yaml`);
    writeFileSync(
      config,
      `sip:
  listen: [{ transport: udp, host: ${ip}, port: ${sipPorts[i]} }]
  trustedFronts: ["127.0.0.1"]
rtp: { portMin: ${40000 + i * 2000}, portMax: ${41998 + i * 2000} }
http: { host: ${ip}, port: ${httpPorts[i]} }
adminToken: ${TOKEN}
database: { url: "${databaseUrl}" }
cluster: { nodeId: ${nodeId}, front: "sip:127.0.0.1:${front.port}", heartbeatMs: 200, deadAfterMs: 3000 }
logLevel: info
`,
    );
    const log = join(dir, `${nodeId}.log`);
    const proc = Bun.spawn([process.execPath, "main.ts", "serve", "--config", config], { cwd: repo, stdout: Bun.file(log), stderr: Bun.file(`${log}.err`), stdin: "ignore" });
    nodes.push({ nodeId, ip, sipPort: sipPorts[i]!, api: `http://${ip}:${httpPorts[i]}`, proc, log });
  }
  for (const node of nodes) {
    await until(() => fetch(`${node.api}/readyz`).then((r) => r.ok, () => false), { timeoutMs: 30_000, pollMs: 100, what: () => `${node.nodeId} not ready` });
  }
  carrierPort = await freePort();
  // The carrier first: the first available trunk takes outbound calls.
  const carrier = await admin(`${nodes[0]!.api}/api/v1/trunks`, "POST", {
    id: "carrier", domain: CARRIER_IP, port: carrierPort, transport: "udp", canTerminate: true, username: "acme", optionsIntervalSec: 0,
  });
  expect(carrier.status, carrier.text).toBe(201);
  const reg = await admin(`${nodes[0]!.api}/api/v1/trunks`, "POST", {
    id: "reg", domain: "127.0.0.1", port: registrar.port, transport: "udp", register: true, canTerminate: true,
    username: "alice", password: "trunk-secret", registerExpires: 60, optionsIntervalSec: 0,
  });
  expect(reg.status, reg.text).toBe(201);
  const app = await admin(`${nodes[0]!.api}/api/v1/applications`, "POST", { id: "acme", name: "Acme", sharedSecret: "a-long-random-secret-please" });
  expect(app.status, app.text).toBe(201);
  const route = await admin(`${nodes[0]!.api}/api/v1/applications/acme/inbound-routes`, "POST", { sipUsername: "alice", channelId: "lobby" });
  expect(route.status, route.text).toBe(201);
}, 90_000);

afterAll(async () => {
  for (const node of nodes) node.proc.kill("SIGTERM");
  await Promise.all(nodes.map((n) => Promise.race([n.proc.exited, Bun.sleep(10_000).then(() => n.proc.kill("SIGKILL"))])));
  await front?.stop();
  await registrar?.stop();
  await pg?.stop();
  for (const node of nodes) {
    const problems = (await Bun.file(node.log).text()).split("\n").filter((l) => /"level":"(warn|error)"/.test(l));
    if (problems.length > 0) console.log(`${node.nodeId} warnings and errors:\n${problems.join("\n")}`);
  }
  rmSync(dir, { recursive: true, force: true });
});

test("a registering trunk has one binding, its Contact at the front, registered by one node that every node names", async () => {
  let statuses: any[] = [];
  await until(
    async () => {
      statuses = await Promise.all(nodes.map(registration));
      return statuses.every((s) => s.registration.state === "registered" && s.registration.nodeId === statuses[0].registration.nodeId);
    },
    { timeoutMs: 15_000, what: () => `statuses: ${JSON.stringify(statuses.map((s) => s.registration))}` },
  );
  const holder = statuses[0].registration.nodeId as string;
  expect(nodes.map((n) => n.nodeId)).toContain(holder);
  // Every node may place calls on it: the holder's state is the cluster's.
  expect(statuses.every((s) => s.available === true)).toBe(true);
  const saved = savedRegisters();
  expect(saved.length).toBeGreaterThan(0);
  expect(saved.every((r) => r.bindings === 1 && r.node === holder)).toBe(true);
  expect(saved[0]!.contact).toBe(`<sip:alice@127.0.0.1:${front.port}>`);
});

test("an outbound call from a node that does not hold the registration reaches the carrier through the front, Record-Routed", async () => {
  const holder = (await registration(nodes[0]!)).registration.nodeId as string;
  const dialler = nodes.find((n) => n.nodeId !== holder)!;
  const carrier = await startSipp({ scenario: CARRIER_ANSWERS, localIp: CARRIER_IP, localPort: carrierPort, keys: { rtpport: await freePort() }, timeoutSec: 30 });
  await carrier.ready();
  const dial = await admin(`${dialler.api}/api/v1/applications/acme/channels/lobby/calls`, "POST", {
    to: "+15551234567", client: { id: "c1", userId: "alice", userAlias: "Alice" },
  });
  expect(dial.status, dial.text).toBe(201);
  const id = dial.json.id as string;
  let call: any;
  try {
    await until(async () => {
      call = (await admin(`${dialler.api}/api/v1/calls/${id}`)).json;
      return call.state === "answered" || call.state === "ended";
    }, { timeoutMs: 15_000, what: () => `call: ${JSON.stringify(call)}` });
  } catch (error) {
    carrier.kill();
    const r = await carrier.done;
    throw new Error(`${(error as Error).message}\ncarrier: ${r.summary}\n${r.messages.slice(-4000)}\nfront:\n${front.lines.slice(-30).join("\n")}`);
  }
  expect(call.state, JSON.stringify(call)).toBe("answered");
  expect(call.trunkId).toBe("carrier");
  expect((await admin(`${dialler.api}/api/v1/calls/${id}`, "DELETE")).status).toBe(204);
  const r = await carrier.done;
  expect(r.exitCode, `${r.summary}\n${front.lines.filter((l) => l.includes("FRONT")).join("\n")}`).toBe(0);
  // The carrier's INVITE came from the front (its Via on top), and so did the ACK and the BYE.
  expect(r.logs).toMatch(new RegExp(`^TOP_VIA\\s+SIP/2\\.0/UDP 127\\.0\\.0\\.1:${front.port};`, "m"));
  expect(r.logs).toMatch(new RegExp(`^RECORD_ROUTE\\s+<sip:127\\.0\\.0\\.1:${front.port};lr`, "m"));
  for (const request of ["ACK", "BYE"]) expect(r.logs).toMatch(new RegExp(`^${request}_VIA\\s+SIP/2\\.0/UDP 127\\.0\\.0\\.1:${front.port};`, "m"));
  await front.waitFor(new RegExp(`FRONT outbound method=INVITE ruri=sip:\\+15551234567@${CARRIER_IP.replaceAll(".", "\\.")}\\S* from=${dialler.ip.replaceAll(".", "\\.")}:`));
}, 60_000);

test("the carrier's call to the binding's Contact reaches the front, which hands it to a node: the trunk's inbound call", async () => {
  const contact = savedRegisters()[0]!.contact.replace(/^<|>$/g, "");
  // From the registrar's address: the trunk's own (its domain), which the front names to the node.
  const r = await runSipp({ scenario: CARRIER_CALLS_BINDING, remote: `127.0.0.1:${front.port}`, localIp: "127.0.0.1", keys: { contact, rtpport: await freePort() }, timeoutSec: 20 });
  expect(r.exitCode, `${r.summary}\n${front.lines.filter((l) => l.includes("FRONT")).join("\n")}`).toBe(0);
  const callId = /Call-ID: (\S+)/.exec(r.messages)![1]!;
  let calls: any[] = [];
  await until(async () => {
    calls = (await admin(`${nodes[0]!.api}/api/v1/calls?limit=50`)).json.calls;
    return calls.some((c) => c.sipCallId === callId && c.state === "ended");
  }, { what: () => `calls: ${JSON.stringify(calls)}` });
  expect(calls.find((c) => c.sipCallId === callId)).toMatchObject({ direction: "inbound", trunkId: "reg", channelId: "lobby" });
  await front.waitFor(new RegExp(`FRONT inbound method=INVITE to=sip:127\\.0\\.0\\.[234]:\\d+ source=127\\.0\\.0\\.1:\\d+;udp callid=${callId.replaceAll(".", "\\.")}`));
}, 60_000);

test("kill -9 of the registering node: another node takes the lease and refreshes the same binding, still one", async () => {
  const holderId = (await registration(nodes[0]!)).registration.nodeId as string;
  const holder = nodes.find((n) => n.nodeId === holderId)!;
  const before = savedRegisters().length;
  holder.proc.kill("SIGKILL");
  await holder.proc.exited;
  const survivors = alive();
  expect(survivors).toHaveLength(2);
  await until(() => savedRegisters().slice(before).some((r) => r.node !== undefined && r.node !== holderId), {
    timeoutMs: 20_000,
    what: () => `registrar saw: ${JSON.stringify(savedRegisters())}`,
  });
  const saved = savedRegisters();
  const successor = saved.at(-1)!.node!;
  expect(survivors.map((n) => n.nodeId)).toContain(successor);
  // One node at a time: the dead holder's REGISTERs, then only its successor's; always one binding at the front.
  const firstOfSuccessor = saved.findIndex((r) => r.node === successor);
  expect(saved.slice(0, firstOfSuccessor).every((r) => r.node === holderId)).toBe(true);
  expect(saved.slice(firstOfSuccessor).every((r) => r.node === successor)).toBe(true);
  expect(saved.every((r) => r.bindings === 1 && r.contact === `<sip:alice@127.0.0.1:${front.port}>`)).toBe(true);
  let statuses: any[] = [];
  await until(
    async () => {
      statuses = await Promise.all(survivors.map(registration));
      return statuses.every((s) => s.registration.state === "registered" && s.registration.nodeId === successor);
    },
    { timeoutMs: 10_000, what: () => `statuses: ${JSON.stringify(statuses.map((s) => s.registration))}` },
  );
}, 60_000);
