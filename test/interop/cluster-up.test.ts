// `make cluster` end to end: scripts/cluster.sh up starts a real PostgreSQL, the Kamailio front
// (deploy/kamailio/kamailio.cfg) and three nodes of the compiled executable on 127.0.0.2-.4, on
// ports chosen here so it never collides with someone's own `make cluster`. A trunk created through
// node 1's API is seen through node 3's within a second; SIPp's OPTIONS from that trunk's address,
// through the front, are answered by every node (a node that did not know the trunk would drop them
// as a stranger's); `up` again says it is up; `down` leaves no process, no directory, no bound port.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { freePort, runSipp } from "../helpers/sipp.ts";
import { until } from "../helpers/until.ts";

const repo = resolve(import.meta.dir, "../..");
const NODE_ADDRS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
const TRUNK_IP = "127.0.0.5";
const TOKEN = "cluster-test-token-0123456789";

const OPTIONS_FROM_TRUNK = `<?xml version="1.0" encoding="UTF-8"?>
<scenario name="options-through-front">
  <send retrans="500"><![CDATA[
OPTIONS sip:ping@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:carrier@[local_ip]:[local_port]>;tag=[pid]cl[call_number]
To: <sip:ping@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 OPTIONS
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200">
    <action>
      <ereg regexp="Trunkline" search_in="hdr" header="Server:" check_it="true" assign_to="server"/>
    </action>
  </recv>
  <Reference variables="server"/>
</scenario>`;

let dir: string;
let statePath: string;
let env: Record<string, string>;
let keys: Record<string, string>;
let state: Record<string, string>;
const ports = { pg: 0, front: 0, nodeSip: 0, httpBase: 0 };

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

const admin = (url: string, init: RequestInit = {}) =>
  fetch(url, { ...init, headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" } });

/** Running: a zombie (exited, waiting for whoever inherited it to reap it) is not. */
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

async function udpFree(host: string, port: number): Promise<boolean> {
  try {
    (await Bun.udpSocket({ hostname: host, port })).close();
    return true;
  } catch {
    return false;
  }
}

function tcpFree(host: string, port: number): boolean {
  try {
    Bun.listen({ hostname: host, port, socket: { data() {} } }).stop(true);
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "trunkline-cluster-test-"));
  statePath = join(dir, "cluster.state");
  // As the Makefile's build target builds it.
  const binary = join(dir, "trunkline");
  const build = Bun.spawnSync([process.execPath, "build", "--compile", "--minify", "main.ts", "src/media-worker.ts", "--outfile", binary], { cwd: repo, stdout: "pipe", stderr: "pipe" });
  if (build.exitCode !== 0) throw new Error(`build failed: ${build.stderr.toString()}`);
  ports.pg = await freePort();
  ports.front = await freePort();
  ports.nodeSip = await freePort();
  // Node N's HTTP port is base+N, each on its own address.
  ports.httpBase = (await freePort()) - 1;
  env = {
    PATH: process.env.PATH ?? "",
    TRUNKLINE_BIN: binary,
    CLUSTER_STATE: statePath,
    CLUSTER_PG_PORT: String(ports.pg),
    CLUSTER_FRONT_PORT: String(ports.front),
    CLUSTER_NODE_SIP_PORT: String(ports.nodeSip),
    CLUSTER_HTTP_PORT_BASE: String(ports.httpBase),
    CLUSTER_ADMIN_TOKEN: TOKEN,
  };
  const up = await cluster("up");
  if (up.code !== 0) throw new Error(`cluster up failed (${up.code}):\n${up.stderr}`);
  keys = readKeyValues(up.stdout);
  state = readKeyValues(readFileSync(statePath, "utf8"));
});

afterAll(async () => {
  if (existsSync(statePath)) await cluster("down");
  rmSync(dir, { recursive: true, force: true });
});

test("up prints where everything is", () => {
  expect(keys).toEqual({
    FRONT_SIP: `sip:127.0.0.1:${ports.front}`,
    NODE1_API: `http://127.0.0.2:${ports.httpBase + 1}`,
    NODE2_API: `http://127.0.0.3:${ports.httpBase + 2}`,
    NODE3_API: `http://127.0.0.4:${ports.httpBase + 3}`,
    ADMIN_TOKEN: TOKEN,
    DATABASE_URL: `postgres://postgres@127.0.0.1:${ports.pg}/trunkline`,
  });
});

test("a trunk created through node 1 is seen through node 3 within a second", async () => {
  const created = await admin(`${keys.NODE1_API}/api/v1/trunks`, {
    method: "POST",
    body: JSON.stringify({ id: "carrier", domain: "127.0.0.9", allowedAddresses: [TRUNK_IP], optionsIntervalSec: 0 }),
  });
  expect(created.status).toBe(201);
  await until(async () => (await admin(`${keys.NODE3_API}/api/v1/trunks/carrier`)).status === 200, { timeoutMs: 1000, pollMs: 20 });
  const seen = (await (await admin(`${keys.NODE3_API}/api/v1/trunks/carrier`)).json()) as { allowedAddresses: string[] };
  expect(seen.allowedAddresses).toEqual([TRUNK_IP]);
});

test("OPTIONS from the trunk's address through the front are answered by every node", async () => {
  // Every node knows the trunk (the API's answer on node 3 alone does not say so for node 2).
  for (const api of [keys.NODE1_API, keys.NODE2_API, keys.NODE3_API]) {
    await until(async () => (await admin(`${api}/api/v1/trunks/carrier`)).status === 200, { timeoutMs: 1000, pollMs: 20 });
  }
  const front = keys.FRONT_SIP!.replace(/^sip:/, "");
  const r = await runSipp({ scenario: OPTIONS_FROM_TRUNK, remote: front, localIp: TRUNK_IP, calls: 6, timeoutSec: 15 });
  const frontLog = () => readFileSync(join(state.DIR!, "kamailio", "kamailio.log"), "utf8");
  expect(r.exitCode, `${r.summary}\n${frontLog()}`).toBe(0);
  // Round-robin: the front's log names the node each OPTIONS went to.
  const destinations = () => [...frontLog().matchAll(/FRONT inbound method=OPTIONS to=sip:([\d.]+):\d+ source=127\.0\.0\.5:/g)].map((m) => m[1]);
  await until(() => destinations().length === 6, { what: destinations });
  expect(new Set(destinations())).toEqual(new Set(NODE_ADDRS));
});

test("up again says it is already up and changes nothing", async () => {
  const again = await cluster("up");
  expect(again.code).toBe(0);
  expect(again.stderr).toContain("already up");
  expect(readKeyValues(again.stdout)).toEqual(keys);
  expect(readKeyValues(readFileSync(statePath, "utf8"))).toEqual(state);
});

test("down stops every process, removes the temporary directory and frees every port", async () => {
  const pids = ["PG_PID", "KAMAILIO_PID", "NODE1_PID", "NODE2_PID", "NODE3_PID"].map((k) => Number(state[k]));
  expect(pids.every((pid) => pid > 0 && isAlive(pid))).toBe(true);
  expect(existsSync(state.DIR!)).toBe(true);

  const down = await cluster("down");
  expect(down.code, down.stderr).toBe(0);
  expect(pids.filter(isAlive)).toEqual([]);
  expect(existsSync(state.DIR!)).toBe(false);
  expect(existsSync(statePath)).toBe(false);
  expect(tcpFree("127.0.0.1", ports.pg)).toBe(true);
  expect(await udpFree("127.0.0.1", ports.front)).toBe(true);
  expect(tcpFree("127.0.0.1", ports.front)).toBe(true);
  for (const [i, host] of NODE_ADDRS.entries()) {
    expect(await udpFree(host, ports.nodeSip)).toBe(true);
    expect(tcpFree(host, ports.nodeSip)).toBe(true);
    expect(tcpFree(host, ports.httpBase + i + 1)).toBe(true);
  }

  const again = await cluster("down");
  expect(again.code).toBe(0);
  expect(again.stderr).toContain("not up");
});
