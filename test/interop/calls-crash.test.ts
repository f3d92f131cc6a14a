// kill -9 with live calls: every call that ended before the kill keeps its full record, and the
// calls that were live are closed as `interrupted` when the process starts again.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { ADMIN_TOKEN } from "../api/harness.ts";
import { sippLobbyYaml } from "../helpers/callsApp.ts";
import { startRtpPeer } from "../helpers/rtpPeer.ts";
import { runSipp, startSipp, type SippRun } from "../helpers/sipp.ts";
import { until } from "../helpers/until.ts";

const UAC = join(import.meta.dir, "../fixtures/sipp/calls-uac-early-offer.xml");
const dir = mkdtempSync(join(tmpdir(), "trunkline-crash-"));
const configPath = join(dir, "config.yaml");
writeFileSync(
  configPath,
  `http: { host: 127.0.0.1, port: 0 }
adminToken: ${ADMIN_TOKEN}
database: { path: ${join(dir, "calls.db")} }
logLevel: warn
rtp: { portMin: 49000, portMax: 49999, mediaTimeoutSec: 0 }
${sippLobbyYaml}
`,
);

const children: Subprocess[] = [];
afterAll(() => {
  for (const child of children) child.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

async function startProcess(): Promise<{ child: Subprocess<"ignore", "pipe", "inherit">; sipPort: number; url: string }> {
  const child = Bun.spawn([process.execPath, join(import.meta.dir, "../helpers/callsProcess.ts"), configPath], { stdout: "pipe", stderr: "inherit" });
  children.push(child);
  const reader = child.stdout.getReader();
  let text = "";
  const ready = () => text.split("\n").some((l) => l.startsWith('{"sipPort"'));
  while (!ready()) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`app process exited early: ${text}`);
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  const line = text.split("\n").find((l) => l.startsWith('{"sipPort"'))!;
  return { child, ...(JSON.parse(line) as { sipPort: number; url: string }) };
}

async function calls(url: string, query = ""): Promise<any[]> {
  const res = await fetch(`${url}/api/v1/calls?limit=100${query}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  return ((await res.json()) as { calls: any[] }).calls;
}

test("kill -9 with live calls: ended calls keep their records, live ones are closed as interrupted at restart", async () => {
  const first = await startProcess();
  const peers = await Promise.all([startRtpPeer(440, { replyToSender: true }), startRtpPeer(500, { replyToSender: true }), startRtpPeer(600, { replyToSender: true })]);
  const live: SippRun[] = [];
  try {
    const done = await runSipp({ scenario: UAC, remote: `127.0.0.1:${first.sipPort}`, service: "1000", keys: { rtpport: peers[0]!.port, testcase: "done" }, extraArgs: ["-d", "300"] });
    expect(done.exitCode, done.summary).toBe(0);
    for (const peer of peers.slice(1)) {
      live.push(await startSipp({ scenario: UAC, remote: `127.0.0.1:${first.sipPort}`, service: "1000", keys: { rtpport: peer.port, testcase: "live" }, extraArgs: ["-d", "20000"], timeoutSec: 25 }));
    }
    let active: any[] = [];
    await until(async () => (active = await calls(first.url, "&state=active")).filter((c) => c.state === "answered").length >= 2, {
      pollMs: 25,
      what: () => ({ "live calls were never answered": active }),
    });
    const before = await calls(first.url);
    first.child.kill("SIGKILL");
    await first.child.exited;

    const second = await startProcess();
    const after = await calls(second.url);
    expect(after).toHaveLength(3);
    const ended = before.find((c) => c.state === "ended")!;
    expect(ended).toMatchObject({ endReason: "remote_bye", channelId: "lobby", codec: "PCMU" });
    expect(after.find((c) => c.id === ended.id)).toEqual(ended);
    const interrupted = after.filter((c) => c.id !== ended.id);
    for (const call of interrupted) {
      expect(call).toMatchObject({ state: "ended", endReason: "interrupted", applicationId: "app1", channelId: "lobby" });
      expect(call.answeredAt).toBeDefined();
      expect(call.endedAt).toBeDefined();
    }
    second.child.kill("SIGTERM");
    await second.child.exited;
  } finally {
    for (const run of live) run.kill();
    for (const peer of peers) peer.close();
  }
}, 30_000);
