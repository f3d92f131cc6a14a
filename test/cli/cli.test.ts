// `trunkline calls` and `trunkline trunks` run as commands (bun main.ts …) against a running
// Trunkline process: a trunk kept registered and reachable by a SIPp carrier, a second trunk that
// neither registers nor is probed, two finished SIPp calls and one in progress. The tables must say
// what the admin API says, aligned; every failure (no token, wrong token, nobody listening, bad
// flag) is one clear line and a non-zero exit. The command runs as its own process (bun main.ts)
// where the exit code or the whole output matters; filters and error wording run in this process
// through runCliCommand, against the same running Trunkline (a process costs a second or more here).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join, resolve } from "node:path";
import { runCliCommand } from "../../src/cli/commands.ts";
import { startRtpPeer, type RtpPeer } from "../helpers/rtpPeer.ts";
import { freePort, runSipp, startSipp, type SippRun } from "../helpers/sipp.ts";
import { startTrunkline, type TrunklineProcess } from "../helpers/trunklineProcess.ts";
import { until } from "../helpers/until.ts";

const repo = resolve(import.meta.dir, "../..");
const token = "cli-test-token-0123456789";
let trunkline: TrunklineProcess;
let carrier: SippRun;
let ongoing: SippRun;
let media: RtpPeer;
let sipPort: number;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(args: string[], env: Record<string, string> = { TRUNKLINE_URL: trunkline.url, TRUNKLINE_ADMIN_TOKEN: token }): Promise<Run> {
  const proc = Bun.spawn([process.execPath, join(repo, "main.ts"), ...args], { env: { PATH: process.env.PATH ?? "", ...env }, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

/** The same command in this process. */
async function inProcess(args: string[], env: Record<string, string> = { TRUNKLINE_URL: trunkline.url, TRUNKLINE_ADMIN_TOKEN: token }): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const code = await runCliCommand(args[0] as "calls" | "trunks", args.slice(1), { env, out: (t) => (stdout += t), err: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

async function api(path: string): Promise<any> {
  return (await fetch(trunkline.url + path, { headers: { authorization: `Bearer ${token}` } })).json();
}

/** Rows as cells, cut at the header's column starts; also checks every row is aligned to them. */
function parseTable(text: string): Record<string, string>[] {
  const [header, ...rows] = text.trimEnd().split("\n");
  const titles = header!.split(/ {2,}/);
  const starts = titles.map((t) => header!.indexOf(t));
  return rows.map((row) => {
    for (const start of starts.slice(1)) expect(row.slice(start - 2, start).trim(), `row not aligned at column ${start}:\n${text}`).toBe("");
    return Object.fromEntries(titles.map((t, i) => [t, row.slice(starts[i], starts[i + 1]).trim()]));
  });
}

function sippCall(holdMs: number) {
  return {
    scenario: join(import.meta.dir, "../fixtures/sipp/calls-uac-early-offer.xml"),
    remote: `127.0.0.1:${sipPort}`,
    service: "1000",
    keys: { rtpport: media.port, testcase: "cli" },
    extraArgs: ["-d", String(holdMs)],
    timeoutSec: 40,
  };
}

beforeAll(async () => {
  media = await startRtpPeer(440, { replyToSender: true });
  carrier = await startSipp({ scenario: join(import.meta.dir, "../fixtures/sipp/carrier-registrar-options.xml"), calls: 100_000, timeoutSec: 300 });
  await carrier.ready();
  sipPort = await freePort();
  trunkline = await startTrunkline(
    `http: { host: 127.0.0.1, port: 0 }
sip: { listen: [{ transport: udp, host: 127.0.0.1, port: ${sipPort} }] }
adminToken: ${token}
database: { path: \${DIR}/trunkline.db }
trunks:
  - { id: carrier, domain: 127.0.0.1, port: ${carrier.localPort}, transport: udp, register: true, username: acme, password: carrier-secret, optionsIntervalSec: 1 }
  - { id: backup, domain: 127.0.0.2, transport: tcp, optionsIntervalSec: 0 }
applications:
  - { id: app, name: App, sharedSecret: app-secret-0123456789, inboundRoutes: [{ sipUsername: "1000", channelId: lobby }] }
`,
  );
  await until(async () => {
    const status = await api("/api/v1/trunks/carrier/status");
    return status.registration.state === "registered" && status.reachable === true;
  }, { timeoutMs: 20_000, pollMs: 50 });
  const finished = await runSipp({ ...sippCall(200), calls: 2 });
  expect(finished.exitCode, finished.summary).toBe(0);
  // Lasts until afterAll kills it, however slow the machine.
  ongoing = await startSipp({ ...sippCall(900_000), timeoutSec: 900 });
  await until(async () => (await api("/api/v1/calls?state=active")).calls.some((c: any) => c.state === "answered"), { timeoutMs: 15_000, pollMs: 50 });
}, 90_000);

afterAll(async () => {
  await trunkline?.stop();
  ongoing?.kill();
  carrier?.kill();
  await Promise.all([ongoing?.done, carrier?.done]);
  media?.close();
});

describe("trunkline calls", () => {
  test("prints every call the API lists, newest first, in aligned columns", async () => {
    const run = await cli(["calls"]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout.split("\n")[0]).toMatch(/^ID +DIRECTION +STATE +TRUNK +FROM +TO +STARTED \(UTC\) +DURATION +END REASON$/);
    const rows = parseTable(run.stdout);
    const records = (await api("/api/v1/calls")).calls as any[];
    expect(rows.map((r) => r.ID)).toEqual(records.map((c) => c.id));
    expect(rows.map((r) => [r.DIRECTION, r.STATE, r.TRUNK, r["END REASON"]])).toEqual([
      ["inbound", "answered", "carrier", "-"],
      ["inbound", "ended", "carrier", "remote_bye"],
      ["inbound", "ended", "carrier", "remote_bye"],
    ]);
    expect(rows.map((r) => [r.FROM, r.TO])).toEqual(records.map((c) => [c.from, c.to]));
    for (const [i, row] of rows.entries()) {
      expect(row["STARTED (UTC)"]).toBe(records[i].createdAt.slice(0, 19).replace("T", " "));
      expect(row.DURATION).toMatch(/^(\d+s|\d+m\d\ds)$/);
    }
  });

  test("--state, --trunk, --direction and --limit filter", async () => {
    const records = (await api("/api/v1/calls")).calls as any[];
    const answered = parseTable((await inProcess(["calls", "--state", "answered"])).stdout);
    expect(answered.map((r) => r.ID)).toEqual([records[0].id]);
    const active = parseTable((await inProcess(["calls", "--state=active"])).stdout);
    expect(active.map((r) => r.ID)).toEqual([records[0].id]);
    const newestEnded = parseTable((await inProcess(["calls", "--state", "ended", "--limit", "1"])).stdout);
    expect(newestEnded.map((r) => r.ID)).toEqual([records[1].id]);
    expect(parseTable((await inProcess(["calls", "--trunk", "carrier", "--direction", "inbound"])).stdout)).toHaveLength(3);
    for (const args of [["--trunk", "backup"], ["--direction", "outbound"], ["--state", "ringing"]]) {
      const none = await inProcess(["calls", ...args]);
      expect([none.code, none.stdout]).toEqual([0, "No calls.\n"]);
    }
  });

  test("a bad flag is a usage error (exit 2) that names it", async () => {
    const unknown = await cli(["calls", "--color"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toStartWith('trunkline calls: unknown argument "--color"\n');
    expect(unknown.stdout).toBe("");
    const state = await inProcess(["calls", "--state", "busy"]);
    expect(state.code).toBe(2);
    expect(state.stderr).toStartWith('trunkline calls: --state must be one of active, ended, trying, ringing, answered; got "busy"');
    expect((await inProcess(["calls", "--limit", "0"])).stderr).toStartWith('trunkline calls: --limit must be a number from 1 to 1000; got "0"');
    expect((await inProcess(["trunks", "extra"])).code).toBe(2);
  });
});

describe("trunkline trunks", () => {
  test("prints each trunk's transport, registration, reachability, availability and calls as the API reports them", async () => {
    const run = await cli(["trunks"]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    const statuses = (await api("/api/v1/trunks/status")) as any[];
    const available = (id: string) => (statuses.find((s) => s.id === id).available ? "yes" : "no");
    expect(parseTable(run.stdout)).toEqual([
      { ID: "carrier", TRANSPORT: "udp", REGISTRATION: "registered", REACHABLE: "yes", AVAILABLE: available("carrier"), "ACTIVE CALLS": "1" },
      { ID: "backup", TRANSPORT: "tcp", REGISTRATION: "unregistered", REACHABLE: "not probed", AVAILABLE: available("backup"), "ACTIVE CALLS": "0" },
    ]);
  });
});

describe("errors", () => {
  test("no token: says which variable to set, exit 1, before asking anything", async () => {
    const run = await cli(["trunks"], { TRUNKLINE_URL: trunkline.url });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.stderr).toBe(`trunkline trunks: TRUNKLINE_ADMIN_TOKEN is not set: export the admin token of the Trunkline at ${trunkline.url}\n`);
  });

  test("a wrong token: the API's 401 is named, exit 1", async () => {
    const run = await inProcess(["calls"], { TRUNKLINE_URL: trunkline.url, TRUNKLINE_ADMIN_TOKEN: "not-the-token-0123456789" });
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(`trunkline calls: Trunkline at ${trunkline.url} refused the admin token (401): check TRUNKLINE_ADMIN_TOKEN\n`);
  });

  test("nobody listening at TRUNKLINE_URL: says so, exit 1", async () => {
    const closed = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
    const url = `http://127.0.0.1:${closed.port}`;
    await closed.stop(true);
    const run = await inProcess(["trunks"], { TRUNKLINE_URL: url, TRUNKLINE_ADMIN_TOKEN: token });
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(`trunkline trunks: cannot reach Trunkline at ${url} (connection refused); is it running, and is TRUNKLINE_URL right?\n`);
  });

  test("TRUNKLINE_URL defaults to http://127.0.0.1:8080 and must be a URL", async () => {
    const run = await inProcess(["trunks"], { TRUNKLINE_URL: "localhost:8080", TRUNKLINE_ADMIN_TOKEN: token });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("TRUNKLINE_URL must be http:// or https://");
    const unset = await inProcess(["trunks"], {});
    expect(unset.stderr).toContain("admin token of the Trunkline at http://127.0.0.1:8080");
  });
});
