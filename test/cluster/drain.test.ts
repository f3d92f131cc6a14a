// SIGTERM's drain on the real process (main.ts, composed as in production) with SIPp as the
// phones: OPTIONS, a new INVITE and an API dial get 503 at once, a live call keeps its media and ends normally
// within cluster.drainGraceSec while the process waits for it, a call still up when the grace
// ends gets a BYE with a Reason header, its record is closed, and the process exits 0.
import { afterAll, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { ADMIN_TOKEN } from "../api/harness.ts";
import { sippLobbyYaml } from "../helpers/callsApp.ts";
import { isResponse, udpPeer } from "../helpers/rawSipPeer.ts";
import { startRtpPeer } from "../helpers/rtpPeer.ts";
import { CALLER_UNTIL_BYE, freePort, runSipp, startSipp } from "../helpers/sipp.ts";
import { until } from "../helpers/until.ts";

const repo = resolve(import.meta.dir, "../..");
const UAC = join(repo, "test/fixtures/sipp/calls-uac-early-offer.xml");
/** Longer than the live call's hold after SIGTERM, shorter than the test's patience. */
const GRACE_SEC = 10;
/** The call that ends by itself during the drain holds this long after its ACK. */
const SHORT_CALL_MS = 5000;

/** A new call during the drain: the INVITE must be answered 503 (then ACKed, RFC 3261 §17.1.1.3). */
const INVITE_EXPECTING_503 = `<?xml version="1.0" encoding="UTF-8"?>
<scenario name="invite-while-draining">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:+15550002222@[local_ip]:[local_port]>;tag=[pid]dr[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:caller@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [local_ip]
t=0 0
m=audio [rtpport] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
  <recv response="100" optional="true"/>
  <recv response="503">
    <action>
      <ereg regexp="Retry-After: [0-9]+" search_in="msg" check_it="true" assign_to="retry"/>
    </action>
  </recv>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:+15550002222@[local_ip]:[local_port]>;tag=[pid]dr[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  <Reference variables="retry"/>
</scenario>`;

const dir = mkdtempSync(join(tmpdir(), "trunkline-drain-"));
const children: Subprocess[] = [];
afterAll(() => {
  for (const child of children) child.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

async function api(url: string, path: string): Promise<any> {
  const res = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  return res.json();
}

/** Starts `bun main.ts serve` and resolves once it logs its HTTP address. */
async function serve(configPath: string): Promise<{ proc: Subprocess<"ignore", "pipe", "inherit">; url: string; lines: string[] }> {
  const proc = Bun.spawn([process.execPath, join(repo, "main.ts"), "serve", "--config", configPath, "--log-level", "info"], {
    cwd: dir,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "inherit",
  });
  children.push(proc);
  const lines: string[] = [];
  const reader = proc.stdout.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  let url: string | undefined;
  // Keeps reading to the end so the log is there for assertion messages.
  void (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffered += decoder.decode(value, { stream: true });
      let newline;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        lines.push(line);
        const started = /"msg":"trunkline started".*"http":"[^"]*:(\d+)"/.exec(line);
        if (started) url = `http://127.0.0.1:${started[1]}`;
      }
    }
  })();
  await until(
    () => {
      if (proc.exitCode !== null) throw new Error(`exited early: ${lines.join("\n")}`);
      return url !== undefined;
    },
    { timeoutMs: 15_000, pollMs: 20, what: () => lines.slice(-10) },
  );
  return { proc, url: url!, lines };
}

test(
  "SIGTERM drains: 503 to OPTIONS, new INVITEs and API dials at once, a live call ends normally within the grace, the last one gets a BYE, exit 0",
  async () => {
    const sipPort = await freePort();
    const dbPath = join(dir, "drain.db");
    const configPath = join(dir, "config.yaml");
    writeFileSync(
      configPath,
      `http: { host: 127.0.0.1, port: 0 }
sip: { listen: [{ transport: udp, host: 127.0.0.1, port: ${sipPort} }] }
adminToken: ${ADMIN_TOKEN}
database: { path: ${dbPath} }
rtp: { portMin: 46000, portMax: 46999, mediaTimeoutSec: 0 }
cluster: { drainGraceSec: ${GRACE_SEC} }
${sippLobbyYaml}
`,
    );
    const node = await serve(configPath);
    // Both phones in one channel, each sending its own tone and hearing the other's.
    const longPeer = await startRtpPeer(500, { replyToSender: true });
    const shortPeer = await startRtpPeer(440, { replyToSender: true });
    const options = await udpPeer("127.0.0.1", sipPort);
    try {
      const remote = `127.0.0.1:${sipPort}`;
      const long = await startSipp({ scenario: CALLER_UNTIL_BYE, remote, service: "1000", keys: { rtpport: longPeer.port, testcase: "long" }, timeoutSec: GRACE_SEC + 30 });
      let active: any[] = [];
      await until(async () => (active = (await api(node.url, "/api/v1/calls?state=active")).calls).some((c: any) => c.state === "answered"), {
        pollMs: 25,
        what: () => active,
      });
      const longId = active[0].id as string;
      const short = await startSipp({
        scenario: UAC,
        remote,
        service: "1000",
        keys: { rtpport: shortPeer.port, testcase: "short" },
        extraArgs: ["-d", String(SHORT_CALL_MS)],
        timeoutSec: GRACE_SEC + 30,
      });
      await until(async () => (active = (await api(node.url, "/api/v1/calls?state=active")).calls).filter((c: any) => c.state === "answered").length === 2, {
        pollMs: 25,
        what: () => active,
      });
      const shortId = active.find((c: any) => c.id !== longId).id as string;

      node.proc.kill("SIGTERM");
      const packetsAtSigterm = shortPeer.packetsReceived;
      // OPTIONS: 503 as soon as the signal is handled (the process is still up: the API answers below).
      let sent = 0;
      await until(
        () => {
          options.send(
            `OPTIONS sip:probe@127.0.0.1:${sipPort} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:[port];branch=z9hG4bK-drain-${sent}\r\nFrom: <sip:probe@127.0.0.1>;tag=p${sent}\r\nTo: <sip:probe@127.0.0.1>\r\nCall-ID: drain-probe-${sent}\r\nCSeq: ${++sent} OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n`,
          );
          return options.received.some(isResponse(503));
        },
        { pollMs: 50, what: () => options.received.map((m) => ("status" in m ? m.status : m.method)) },
      );
      // A dial through the API is refused too, while the API itself still answers.
      const dial = await fetch(`${node.url}/api/v1/applications/app1/channels/lobby/calls`, {
        method: "POST",
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ to: "+15551234567", client: { id: "c1", userId: "alice" } }),
      });
      expect([dial.status, ((await dial.json()) as { error?: { code?: string } }).error?.code]).toEqual([503, "draining"]);
      const refused = await runSipp({ scenario: INVITE_EXPECTING_503, remote, service: "1000", keys: { rtpport: 9 } });
      expect(refused.exitCode, refused.summary).toBe(0);
      expect(refused.messages).toMatch(/SIP\/2\.0 503 Draining[\s\S]*Retry-After: 30/);

      // The short call was live when the drain began and its media keeps flowing: it hears the long call's tone.
      const stillLive = (await api(node.url, `/api/v1/calls/${shortId}`)) as { state: string };
      expect(stillLive.state).toBe("answered");
      await until(() => shortPeer.packetsReceived >= packetsAtSigterm + 50, { pollMs: 20, what: () => [packetsAtSigterm, shortPeer.packetsReceived] });
      expect(shortPeer.toneShare(500, 500)).toBeGreaterThan(0.5);

      // It hangs up by itself (its BYE answered 200) while the process waits for the other call.
      const shortResult = await short.done;
      expect(shortResult.exitCode, shortResult.summary).toBe(0);
      expect(node.proc.exitCode).toBeNull();
      expect(((await api(node.url, `/api/v1/calls/${shortId}`)) as { endReason?: string }).endReason).toBe("remote_bye");

      // The grace ends: the long call gets Trunkline's BYE saying why, then the process exits 0.
      const longResult = await long.done;
      expect(longResult.exitCode, longResult.summary).toBe(0);
      expect(longResult.messages).toMatch(/BYE sip:[^\n]*\n(?:[^\n]+\n)*?Reason: SIP;cause=503;text="shutting down"/);
      expect(await node.proc.exited).toBe(0);
      expect(node.lines.join("\n")).toContain("drain grace period over");

      const db = new Database(dbPath, { readonly: true });
      const rows = db.query("SELECT id, state, end_reason AS endReason FROM calls WHERE id IN (?, ?) ORDER BY id").all(longId, shortId) as any[];
      db.close();
      expect(Object.fromEntries(rows.map((r) => [r.id, [r.state, r.endReason]]))).toEqual({
        [longId]: ["ended", "shutdown"],
        [shortId]: ["ended", "remote_bye"],
      });
    } finally {
      options.close();
      longPeer.close();
      shortPeer.close();
    }
  },
  90_000,
);
