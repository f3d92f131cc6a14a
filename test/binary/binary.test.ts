// The single-file executable: built with `bun build --compile`, copied alone into an empty
// directory (no node_modules), run with a temp config and database on free ports.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { SERVER_ALLOCATOR_ENV } from "../../src/allocator.ts";
import { Dialog } from "../../src/sip/dialog.ts";
import { parseUri } from "../../src/sip/message.ts";
import { SipStack } from "../../src/sip/stack.ts";
import { startRtpPeer } from "../helpers/rtpPeer.ts";
import { freePort } from "../helpers/sipp.ts";
import { until } from "../helpers/until.ts";
import { createTestClient } from "../helpers/weriftClient.ts";
import { signClientToken } from "../../src/webrtc/tokens.ts";
import { loopbackIsTrunk } from "../helpers/loopbackTrunks.ts";

const repo = resolve(import.meta.dir, "../..");
const bun = process.execPath;
const token = "binary-test-token-0123456789";
let dir: string;
let binary: string;

function build(entries: string[], out: string): void {
  const result = Bun.spawnSync([bun, "build", "--compile", "--minify", ...entries, "--outfile", out], { cwd: repo, stderr: "pipe", stdout: "pipe" });
  if (result.exitCode !== 0) throw new Error(`build failed: ${result.stderr.toString()}`);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "trunkline-bin-"));
  mkdirSync(join(dir, "build"));
  mkdirSync(join(dir, "run"));
  // As the Makefile builds it.
  build(["main.ts", "src/media-worker.ts"], join(dir, "build", "trunkline"));
  binary = join(dir, "run", "trunkline");
  copyFileSync(join(dir, "build", "trunkline"), binary);
  Bun.spawnSync(["chmod", "+x", binary]);
  writeFileSync(
    join(dir, "run", "config.yaml"),
    `http: { host: 127.0.0.1, port: 0 }\nsip: { listen: [{ transport: udp, host: 127.0.0.1, port: 0 }] }\nadminToken: \${TOKEN}\ndatabase: { path: data/t.db }\n`,
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Running {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  url: string;
  lines: string[];
}

/** Starts `trunkline serve` and resolves once it logs its bound HTTP address. */
async function serve(config = "config.yaml"): Promise<Running> {
  const proc = Bun.spawn([binary, "serve", "--config", config, "--log-level", "info"], {
    cwd: join(dir, "run"),
    env: { PATH: process.env.PATH ?? "", TOKEN: token },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const lines: string[] = [];
  const reader = proc.stdout.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  const url = await new Promise<string>((resolveUrl, reject) => {
    // Only a bound for a process that never comes up: a start on a machine as loaded as CI's can take
    // many seconds (the executable loads every module before its first line).
    const timer = setTimeout(() => reject(new Error(`no start-up line in ${lines.join("\n")}`)), 40_000);
    void (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return reject(new Error(`exited early: ${lines.join("\n")}`));
        buffered += decoder.decode(value, { stream: true });
        let newline;
        while ((newline = buffered.indexOf("\n")) >= 0) {
          const line = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          lines.push(line);
          const started = /"msg":"trunkline started".*"http":"[^"]*:(\d+)"/.exec(line);
          if (started) {
            clearTimeout(timer);
            resolveUrl(`http://127.0.0.1:${started[1]}`);
          }
        }
      }
    })();
  });
  return { proc, url, lines };
}

const api = (url: string, method: string, path: string, body?: unknown) =>
  fetch(url + path, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

describe("compiled binary", () => {
  test("--version and check-config work without node_modules", () => {
    const version = Bun.spawnSync([binary, "--version"], { cwd: join(dir, "run") });
    expect(version.stdout.toString().trim()).toMatch(/^trunkline \d+\.\d+\.\d+$/);

    writeFileSync(join(dir, "run", "bad.yaml"), "http:\n  port: x\ntrunks:\n  - id: a\n    domian: b\n");
    const bad = Bun.spawnSync([binary, "check-config", "--config", "bad.yaml"], { cwd: join(dir, "run") });
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr.toString().trim().split("\n")).toEqual([
      "bad.yaml:2:9: http.port: must be an integer, got a string",
      "bad.yaml:4:5: trunks[0].domain: is required",
      'bad.yaml:5:5: trunks[0].domian: unknown key (did you mean "domain"?)',
    ]);
    const good = Bun.spawnSync([binary, "check-config", "--config", "config.yaml"], { cwd: join(dir, "run"), env: { TOKEN: token } });
    expect(good.exitCode).toBe(0);

    const usage = Bun.spawnSync([binary, "serve"], { cwd: join(dir, "run") });
    expect(usage.exitCode).toBe(2);
    expect(usage.stderr.toString()).toContain("--config FILE is required");
  }, 90_000);

  test("serves /healthz, keeps API-made objects across a SIGTERM restart, reloads on SIGHUP", async () => {
    const first = await serve();
    expect(await (await fetch(`${first.url}/healthz`)).json()).toEqual({ status: "ok" });
    // The executable re-executed itself in place with the server's allocator settings (src/allocator.ts);
    // the signals below reach the process that serves.
    const environ = readFileSync(`/proc/${first.proc.pid}/environ`, "utf8").split("\0");
    for (const [name, value] of Object.entries(SERVER_ALLOCATOR_ENV)) expect(environ).toContain(`${name}=${value}`);
    expect((await api(first.url, "POST", "/api/v1/trunks", { id: "persisted", domain: "sip.example.com", password: "pw-secret" })).status).toBe(201);
    expect((await api(first.url, "POST", "/api/v1/applications", { id: "app", name: "A", sharedSecret: "app-secret-0123456789" })).status).toBe(201);

    writeFileSync(join(dir, "run", "config.yaml"), `${await Bun.file(join(dir, "run", "config.yaml")).text()}trunks: [{ id: from-yaml, domain: y.example.com }]\n`);
    first.proc.kill("SIGHUP");
    let reloaded = 0;
    await until(async () => (reloaded = (await api(first.url, "GET", "/api/v1/trunks/from-yaml")).status) === 200, {
      pollMs: 50,
      what: () => ({ "the SIGHUP reload never showed the trunk": reloaded, log: first.lines.slice(-10) }),
    });

    first.proc.kill("SIGTERM");
    expect(await first.proc.exited).toBe(0);

    const second = await serve();
    const trunks = (await (await api(second.url, "GET", "/api/v1/trunks")).json()) as { id: string; source: string }[];
    expect(trunks.map((t) => [t.id, t.source])).toEqual([
      ["from-yaml", "yaml"],
      ["persisted", "api"],
    ]);
    expect((await api(second.url, "GET", "/api/v1/applications/app")).status).toBe(200);
    second.proc.kill("SIGTERM");
    expect(await second.proc.exited).toBe(0);
    expect([...first.lines, ...second.lines].join("\n")).not.toContain("pw-secret");
  }, 90_000);

  test("serves the embedded console: page, script, style, and the server's caller-ID rules as a browser module", async () => {
    const run = await serve();
    try {
      const page = await fetch(`${run.url}/console/`);
      expect(page.headers.get("content-security-policy")).toContain("default-src 'self'");
      expect(await page.text()).toContain('<script type="module" src="console.js">');
      for (const [path, type] of [["console.js", "text/javascript"], ["console.css", "text/css"]]) {
        const res = await fetch(`${run.url}/console/${path}`);
        expect([res.status, res.headers.get("content-type")]).toEqual([200, `${type}; charset=utf-8`]);
      }
      const rules = join(dir, "callerIdTemplate.mjs");
      writeFileSync(rules, await (await fetch(`${run.url}/console/callerIdTemplate.js`)).text());
      const { parseTemplate } = await import(rules);
      expect(parseTemplate("{userAlias}").ok).toBe(true);
      expect(parseTemplate("{nickname}").error).toContain("unknown variable {nickname}");
    } finally {
      run.proc.kill("SIGTERM");
      await run.proc.exited;
    }
  }, 90_000);

  test("a call's RTP flows both ways through the compiled binary's media workers", async () => {
    const sipPort = await freePort();
    writeFileSync(
      join(dir, "run", "call.yaml"),
      `http: { host: 127.0.0.1, port: 0 }
sip: { listen: [{ transport: udp, host: 127.0.0.1, port: ${sipPort} }] }
rtp: { portMin: 52000, portMax: 52999 }
media: { workers: 2 }
adminToken: \${TOKEN}
database: { path: data/call.db }
trunks: [{ id: local, domain: 127.0.0.1, optionsIntervalSec: 0 }]
applications:
  - { id: app, name: A, sharedSecret: app-secret-0123456789, inboundRoutes: [{ sipUsername: "1000", channelId: lobby }] }
`,
    );
    const running = await serve("call.yaml");
    const phone = new SipStack({ isKnownSource: loopbackIsTrunk, listen: [{ transport: "udp", host: "127.0.0.1", port: 0 }], allow: ["INVITE", "ACK", "BYE"] });
    // Sends its tone back to wherever Trunkline's RTP comes from.
    const media = await startRtpPeer(440, { replyToSender: true });
    try {
      await phone.start();
      const dest = { transport: "udp" as const, address: "127.0.0.1", port: sipPort };
      const uri = parseUri(`sip:1000@127.0.0.1:${sipPort}`)!;
      const invite = phone.createOutOfDialogRequest({
        method: "INVITE", uri, transport: "udp", contactUser: "phone",
        from: { uri: parseUri("sip:+15551110000@127.0.0.1")!, params: new Map() },
        to: { uri, params: new Map() },
        body: `v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio ${media.port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n`,
        contentType: "application/sdp",
      });
      const tx = phone.sendRequest(invite, dest);
      const outcome = await tx.outcome;
      if (outcome.kind !== "final" || outcome.response.status !== 200) {
        throw new Error(`INVITE: ${outcome.kind === "final" ? outcome.response.status : outcome.kind}\n${running.lines.join("\n")}`);
      }
      const dialog = Dialog.fromInvite2xx(phone, invite, outcome.response, tx, dest);
      // The phone has sent twice what Trunkline must count below: a loaded machine may still hold the
      // last few hundred milliseconds of it in flight when the BYE ends the call.
      await until(() => media.packetsReceived > 25 && media.packetsSent > 40);
      await dialog.bye();
      type EndedCall = { sipCallId: string; mediaStats?: { packetsSent: number; packetsReceived: number } };
      let ended: EndedCall | undefined;
      await until(
        async () => {
          const { calls } = (await (await api(running.url, "GET", "/api/v1/calls?state=ended")).json()) as { calls: EndedCall[] };
          ended = calls.find((c) => c.sipCallId === invite.callId);
          return ended?.mediaStats !== undefined;
        },
        { pollMs: 25, what: () => ({ "the call never ended with media stats": ended }) },
      );
      // What Trunkline counted: the phone's RTP came in, and Trunkline's went out, through a media worker.
      expect(ended?.mediaStats?.packetsReceived).toBeGreaterThan(20);
      expect(ended?.mediaStats?.packetsSent).toBeGreaterThan(25);
    } finally {
      media.close();
      await phone.stop();
      running.proc.kill("SIGTERM");
    }
    expect(await running.proc.exited).toBe(0);
    expect(running.lines.join("\n")).not.toContain("media worker");
  }, 90_000);

  test("a WebRTC client joins through the compiled binary: its werift peer runs in a media worker and sends the mix", async () => {
    writeFileSync(
      join(dir, "run", "webrtc.yaml"),
      `http: { host: 127.0.0.1, port: 0 }
sip: { listen: [{ transport: udp, host: 127.0.0.1, port: 0 }] }
media: { workers: 1 }
adminToken: \${TOKEN}
database: { path: data/webrtc.db }
applications:
  - { id: app, name: A, sharedSecret: app-secret-0123456789 }
`,
    );
    const running = await serve("webrtc.yaml");
    const client = createTestClient("opus");
    try {
      const clientToken = signClientToken({ applicationId: "app", channelId: "lobby", roles: [], exp: Math.floor(Date.now() / 1000) + 600 }, "app-secret-0123456789");
      const res = await fetch(`${running.url}/api/v1/client/join`, {
        method: "POST",
        headers: { authorization: `Bearer ${clientToken}`, "content-type": "application/json" },
        body: JSON.stringify({ sdp: await client.offer() }),
      });
      expect(res.status, running.lines.join("\n")).toBe(200);
      await client.accept(((await res.json()) as { sdp: string }).sdp);
      await client.connected();
      // Nobody else talks: the worker's mixer sends the client Opus silence, 50 frames a second.
      await until(() => client.packetsReceived > 25);
    } finally {
      await client.close();
      running.proc.kill("SIGTERM");
    }
    expect(await running.proc.exited).toBe(0);
    expect(running.lines.join("\n")).not.toContain("media worker");
  }, 90_000);

  test("@evan/opus loads inside a compiled executable", () => {
    const probe = join(dir, "run", "opus-probe");
    build(["test/binary/opusProbe.ts"], probe);
    const run = Bun.spawnSync([probe], { cwd: join(dir, "run") });
    expect(run.exitCode).toBe(0);
    expect(JSON.parse(run.stdout.toString())).toEqual({ packetBytes: expect.any(Number), decodedBytes: 1920 });
  }, 90_000);
});
