// Runs SIPp (3.6) as a real peer in tests: scenario XML (text or file) in a temp dir, bounded by
// -timeout and a hard kill, always loopback. Collects exit code, stderr, the unexpected-message
// trace (-trace_err), the message trace (-trace_msg) and <log> actions (-trace_logs).
//
//   const r = await runSipp({ scenario: OPTIONS_XML, remote: `127.0.0.1:${port}`, transport: "udp" });
//   expect(r.exitCode, r.summary).toBe(0);
//
//   // SIPp as the answering side: start it, call its port, then await the result.
//   const peer = await startSipp({ scenario: "test/fixtures/sipp/some-uas.xml" });
//   ...send INVITE to 127.0.0.1:peer.localPort...
//   const r = await peer.done;
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { until } from "./until.ts";

export interface SippOptions {
  /** Scenario XML text, or the path of an .xml file. */
  scenario: string;
  /** "host:port" to call (client scenarios); omit for a server scenario. */
  remote?: string;
  transport?: "udp" | "tcp";
  /** Local address SIPp binds and writes into [local_ip] (default 127.0.0.1; "::1" for IPv6). */
  localIp?: string;
  /** Local SIP port; default: a free port picked before the run. */
  localPort?: number;
  /** -s: the [service] (user part) of the Request-URI. */
  service?: string;
  /** -key name value: scenario keywords such as [rtpport]. */
  keys?: Record<string, string | number>;
  /** -m: calls to place / answer before exiting (default 1). */
  calls?: number;
  /** -timeout in seconds (default 10); the process is killed 5 s after that regardless. */
  timeoutSec?: number;
  extraArgs?: string[];
}

export interface SippResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** Unexpected messages and failures (-trace_err). */
  errors: string;
  /** Every message sent and received (-trace_msg). */
  messages: string;
  /** Output of the scenario's <log> actions (-trace_logs). */
  logs: string;
  /** True when the hard kill had to stop SIPp. */
  killed: boolean;
  /** A compact explanation for assertion messages. */
  summary: string;
}

export interface SippRun {
  localPort: number;
  done: Promise<SippResult>;
  /** Resolves once SIPp has bound its port (server scenarios: call it before sending). */
  ready(): Promise<void>;
  kill(): void;
}

/** Whether a local socket is bound to the port (Linux /proc/net tables; hex port after the colon). */
function portBound(port: number, transport: "udp" | "tcp"): boolean {
  const suffix = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  const tables = transport === "udp" ? ["/proc/net/udp", "/proc/net/udp6"] : ["/proc/net/tcp", "/proc/net/tcp6"];
  return tables.some(
    (t) => existsSync(t) && readFileSync(t, "utf8").split("\n").some((l) => l.trim().split(/\s+/)[1]?.endsWith(suffix)),
  );
}

/** The kernel's ephemeral port range: where port-0 binds and outgoing connections take their ports. */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    if (low && high) return [low, high];
  } catch {
    // not Linux: assume the IANA dynamic range
  }
  return [49152, 65535];
}

const handedOut = new Set<number>();

/**
 * A port free for both UDP and TCP a moment ago (SIPp needs a fixed -p to be reachable), never
 * the same twice in a run. It is drawn from the 10,000 ports below the ephemeral range: a port
 * from that range could be taken, between this check and the peer's bind, by any socket bound to
 * port 0 or connecting out — and the tests' RTP port ranges all lie inside it.
 */
export function freePort(): Promise<number> {
  return freePorts({ udp: 1, tcp: true });
}

/** An even port for SIPp's -mp, free on UDP with the three above it: SIPp binds audio RTP and RTCP there, video at +2 and +3. */
export function freeMediaPort(): Promise<number> {
  return freePorts({ udp: 4, tcp: false });
}

async function freePorts(o: { udp: number; tcp: boolean }): Promise<number> {
  const [ephemeralLow] = ephemeralRange();
  const low = Math.max(1024, ephemeralLow - 10_000);
  for (let attempt = 0; attempt < 50; attempt++) {
    let port = low + Math.floor(Math.random() * (ephemeralLow - low - o.udp));
    if (o.udp > 1) port -= port % 2;
    const span = Array.from({ length: o.udp }, (_, i) => port + i);
    if (span.some((p) => handedOut.has(p))) continue;
    const bound: Bun.udp.Socket<"buffer">[] = [];
    try {
      for (const p of span) bound.push(await Bun.udpSocket({ hostname: "127.0.0.1", port: p }));
      if (o.tcp) Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } }).stop(true);
    } catch {
      continue; // taken: try another
    } finally {
      for (const socket of bound) socket.close();
    }
    for (const p of span) handedOut.add(p);
    return port;
  }
  throw new Error("no free port");
}

export async function startSipp(o: SippOptions): Promise<SippRun> {
  const dir = mkdtempSync(join(tmpdir(), "sipp-"));
  let scenarioArgs: string[];
  if (o.scenario.trimStart().startsWith("<")) {
    scenarioArgs = ["-sf", join(dir, "scenario.xml")];
    writeFileSync(join(dir, "scenario.xml"), o.scenario);
  } else if (existsSync(o.scenario)) scenarioArgs = ["-sf", o.scenario];
  else throw new Error(`SIPp scenario not found: ${o.scenario}`);
  const localPort = o.localPort ?? (await freePort());
  const timeoutSec = o.timeoutSec ?? 10;
  const files = {
    errors: join(dir, "errors.log"),
    messages: join(dir, "messages.log"),
    logs: join(dir, "logs.log"),
    screen: join(dir, "screen.log"),
  };
  const args = [
    "sipp",
    ...(o.remote ? [o.remote] : []),
    ...scenarioArgs,
    "-i", o.localIp ?? "127.0.0.1",
    "-p", String(localPort),
    "-t", o.transport === "tcp" ? "t1" : "u1",
    "-m", String(o.calls ?? 1),
    "-timeout", `${timeoutSec}s`,
    "-timeout_error",
    "-nostdin",
    "-trace_err", "-error_file", files.errors,
    "-trace_msg", "-message_file", files.messages,
    "-trace_logs", "-log_file", files.logs,
    "-trace_screen", "-screen_file", files.screen,
    ...(o.service ? ["-s", o.service] : []),
    ...Object.entries(o.keys ?? {}).flatMap(([k, v]) => ["-key", k, String(v)]),
    ...(o.extraArgs ?? []),
  ];
  const proc = Bun.spawn(args, { cwd: dir, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  let killed = false;
  const hardKill = setTimeout(() => {
    killed = true;
    proc.kill("SIGKILL");
  }, (timeoutSec + 5) * 1000);
  const done = (async (): Promise<SippResult> => {
    const [stdout, stderr, exitCode] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    clearTimeout(hardKill);
    const read = (path: string) => (existsSync(path) ? readFileSync(path, "utf8") : "");
    const result = {
      exitCode,
      stdout,
      stderr,
      errors: read(files.errors),
      messages: read(files.messages),
      logs: read(files.logs),
      killed,
    };
    rmSync(dir, { recursive: true, force: true });
    const summary = [
      `sipp exit ${exitCode}${killed ? " (killed)" : ""}`,
      result.stderr.trim() && `stderr: ${result.stderr.trim().slice(0, 2000)}`,
      result.errors.trim() && `errors: ${result.errors.trim().slice(0, 2000)}`,
      exitCode !== 0 && result.messages && `messages: ${result.messages.slice(-3000)}`,
    ]
      .filter(Boolean)
      .join("\n");
    return { ...result, summary };
  })();
  const ready = async () => {
    await until(
      () => {
        if (proc.exitCode !== null) throw new Error(`SIPp exited (${proc.exitCode}) before binding port ${localPort}`);
        return portBound(localPort, o.transport ?? "udp");
      },
      { timeoutMs: 10_000, pollMs: 10, what: () => `SIPp did not bind port ${localPort}` },
    );
  };
  return { localPort, done, ready, kill: () => proc.kill("SIGTERM") };
}

export async function runSipp(o: SippOptions): Promise<SippResult> {
  return (await startSipp(o)).done;
}

// Phones whose calls last until the test hangs up (BYE from Trunkline), so a test measures for as
// long as it needs and ends the call when done, instead of guessing a duration with -d.

/** Calls [service] with an SDP offer (media at -key rtpport, PCMU and telephone-event), then waits for Trunkline's BYE. */
export const CALLER_UNTIL_BYE = `<?xml version="1.0" encoding="UTF-8"?>
<scenario name="caller-until-bye">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Caller" <sip:+15550001111@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:caller@[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
X-Test-Case: [testcase]
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 1 IN IP[local_ip_type] [media_ip]
s=-
c=IN IP[local_ip_type] [media_ip]
t=0 0
m=audio [rtpport] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=sendrecv
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Caller" <sip:+15550001111@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: <sip:caller@[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv request="BYE"/>
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

/** Answers a (delayed-offer) INVITE with 180 and a 200 offering PCMU at -key rtpport, then waits for Trunkline's BYE. */
export const ANSWERER_UNTIL_BYE = `<?xml version="1.0" encoding="UTF-8"?>
<scenario name="answer-until-bye">
  <recv request="INVITE" crlf="true"/>
  <send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]ui[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:phone@[local_ip]:[local_port];transport=[transport]>
Content-Length: 0

]]></send>
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]ui[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:phone@[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 3 3 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio [rtpport] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=sendrecv
]]></send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE"/>
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
