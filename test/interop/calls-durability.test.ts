// Call records are written behind (one transaction per window), yet nothing a caller was told is
// lost to a kill -9: the hang-up API's answer and the call.ended webhook come only once the end is
// committed. The window is set long here (3 s), so that a process answering before its commit
// would be killed with the end still queued, and restart with the call `interrupted`. At SIGTERM
// the calls ended for shutdown still reach the webhook: their ends commit before delivery stops.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { testApplicationYaml } from "../helpers/callsApp.ts";
import { startRtpPeer, type RtpPeer } from "../helpers/rtpPeer.ts";
import { freePort, startSipp, type SippRun } from "../helpers/sipp.ts";
import { startTrunkline, type TrunklineProcess } from "../helpers/trunklineProcess.ts";
import { until } from "../helpers/until.ts";
import { startWebhookServer, type WebhookServer } from "../helpers/webhookServer.ts";

const UAC = join(import.meta.dir, "../fixtures/sipp/calls-uac-early-offer.xml");
const TOKEN = "durability-admin-token-0123456789";
const WINDOW_MS = 3_000;
const dir = mkdtempSync(join(tmpdir(), "trunkline-durability-"));
let webhooks: WebhookServer;
let peer: RtpPeer;
const processes: TrunklineProcess[] = [];
const callers: SippRun[] = [];

beforeAll(async () => {
  webhooks = startWebhookServer();
  peer = await startRtpPeer(440, { replyToSender: true });
});
afterAll(async () => {
  for (const caller of callers) caller.kill();
  for (const p of processes) {
    p.proc.kill("SIGKILL");
    await p.proc.exited;
    rmSync(p.dir, { recursive: true, force: true });
  }
  peer?.close();
  await webhooks?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function start(extraYaml = ""): Promise<{ tl: TrunklineProcess; sipPort: number }> {
  const sipPort = await freePort();
  const tl = await startTrunkline(`http: { host: 127.0.0.1, port: 0 }
sip: { listen: [{ transport: udp, host: 127.0.0.1, port: ${sipPort} }] }
adminToken: ${TOKEN}
database: { path: ${join(dir, "calls.db")}, callRecordWindowMs: ${WINDOW_MS} }
rtp: { mediaTimeoutSec: 0 }
trunks:
  - { id: sipp, domain: 127.0.0.1, optionsIntervalSec: 0 }
webhooks: { eventsUrl: "${webhooks.url("/events")}", timeoutMs: 5000 }
${testApplicationYaml({ "1000": "lobby" })}
${extraYaml}`);
  processes.push(tl);
  return { tl, sipPort };
}

async function api(tl: TrunklineProcess, path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${tl.url}/api/v1${path}`, { ...init, headers: { authorization: `Bearer ${TOKEN}` } });
}

async function kill9(tl: TrunklineProcess): Promise<void> {
  tl.proc.kill("SIGKILL");
  await tl.proc.exited;
}

/** A phone calls in and holds for `holdMs`; resolves with the call's id once it is answered. */
async function answeredCall(tl: TrunklineProcess, sipPort: number, holdMs: number): Promise<string> {
  callers.push(await startSipp({ scenario: UAC, remote: `127.0.0.1:${sipPort}`, service: "1000", keys: { rtpport: peer.port, testcase: "durability" }, extraArgs: ["-d", String(holdMs)], timeoutSec: 30 }));
  let active: { id: string; state: string }[] = [];
  await until(async () => (active = ((await (await api(tl, "/calls?state=active")).json()) as { calls: typeof active }).calls).some((c) => c.state === "answered"), {
    pollMs: 25,
    what: () => active,
  });
  return active.find((c) => c.state === "answered")!.id;
}

test("the hang-up API answers once the end is committed: a kill -9 right after its 204 keeps the call ended", async () => {
  const { tl, sipPort } = await start();
  const id = await answeredCall(tl, sipPort, 30_000);
  const hangUp = await api(tl, `/calls/${id}`, { method: "DELETE" });
  expect(hangUp.status).toBe(204);
  await kill9(tl);

  const { tl: restarted } = await start();
  expect(await (await api(restarted, `/calls/${id}`)).json()).toMatchObject({ id, state: "ended", endReason: "local_hangup" });
  await kill9(restarted);
}, 60_000);

test("call.ended reaches the webhook once the end is committed: a kill -9 on its arrival keeps the call ended", async () => {
  const { tl, sipPort } = await start();
  const killed = new Promise<{ callId: string; reason: string }>((resolve) => {
    webhooks.handle("/events", (request) => {
      const event = request.json as { type: string; data: { callId: string; reason: string } };
      if (event.type === "call.ended") {
        // Before answering the webhook: the process dies the moment it has told.
        tl.proc.kill("SIGKILL");
        resolve(event.data);
      }
      return Response.json({});
    });
  });
  // The caller hangs up (BYE) shortly after the answer.
  const id = await answeredCall(tl, sipPort, 300);
  const told = await killed;
  expect(told).toMatchObject({ callId: id, reason: "remote_bye" });
  await tl.proc.exited;

  const { tl: restarted } = await start();
  expect(await (await api(restarted, `/calls/${id}`)).json()).toMatchObject({ id, state: "ended", endReason: "remote_bye" });
  await kill9(restarted);
}, 60_000);

test("SIGTERM: a call ended for shutdown is committed, and its call.ended reaches the webhook before the process exits", async () => {
  const { tl, sipPort } = await start("cluster: { drainGraceSec: 0 }\n");
  const ended: { callId: string; reason: string }[] = [];
  webhooks.handle("/events", (request) => {
    const event = request.json as { type: string; data: { callId: string; reason: string } };
    if (event.type === "call.ended") ended.push(event.data);
    return Response.json({});
  });
  const id = await answeredCall(tl, sipPort, 30_000);
  tl.proc.kill("SIGTERM");
  expect(await tl.proc.exited).toBe(0);
  expect(ended).toContainEqual(expect.objectContaining({ callId: id, reason: "shutdown" }));

  const { tl: restarted } = await start();
  expect(await (await api(restarted, `/calls/${id}`)).json()).toMatchObject({ id, state: "ended", endReason: "shutdown" });
  await kill9(restarted);
}, 60_000);
