// Per-call SIP traces against real peers: a SIPp caller's whole dialog (INVITE … BYE/200) is in the
// call's trace with addresses and transports, as JSON, as a text ladder, and as a pcap that tshark
// decodes as SIP (also over TCP); the trace reaches the database once the call has ended; an outbound call's 407
// challenge and answer are in its trace with the Proxy-Authorization credentials masked.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ADMIN_TOKEN } from "../api/harness.ts";
import { callUntil, findCall, startCallsApp, testApplicationYaml, type CallsApp } from "../helpers/callsApp.ts";
import { startRtpPeer } from "../helpers/rtpPeer.ts";
import { freePort, runSipp, startSipp } from "../helpers/sipp.ts";
import { until } from "../helpers/until.ts";

const fixture = (name: string) => join(import.meta.dir, "../fixtures/sipp", name);

let app: CallsApp;
let authPort: number;
let dir: string;
const seenCalls = new Set<string>();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "trunkline-trace-"));
  authPort = await freePort();
  app = await startCallsApp(
    `
rtp: { portMin: 46000, portMax: 46999, mediaTimeoutSec: 0 }
trunks:
  - { id: sipp, domain: 127.0.0.1, canTerminate: false, optionsIntervalSec: 0 }
  - { id: auth, domain: 127.0.0.1, port: ${authPort}, username: trunkuser, password: trunkpass, earlyOffer: true, optionsIntervalSec: 0 }
${testApplicationYaml({ "1000": "lobby" })}
`,
    { traceLingerMs: 300 },
  );
});

afterAll(async () => {
  await app?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** tshark's reading of a pcap: one line per SIP message, "method|status|call-id". */
function tsharkSip(pcap: Uint8Array, name: string): string[] {
  const path = join(dir, name);
  writeFileSync(path, pcap);
  const run = spawnSync("tshark", ["-r", path, "-Y", "sip", "-T", "fields", "-e", "sip.Method", "-e", "sip.Status-Code", "-e", "sip.Call-ID", "-E", "separator=|"], {
    encoding: "utf8",
  });
  expect(run.status, run.stderr).toBe(0);
  return run.stdout.trim().split("\n").filter(Boolean);
}

const methodsOf = (trace: any) => trace.messages.map((m: any) => `${m.direction} ${m.summary.replace(/ sip:\S+ SIP\/2\.0$/, "").replace(/^SIP\/2\.0 /, "")}`);

describe("SIP trace of a call", () => {
  test("a SIPp caller's dialog: JSON with addresses and directions, a text ladder, a pcap tshark decodes, then stored", async () => {
    const peer = await startRtpPeer(440, { replyToSender: true });
    let callId: string;
    let sippPort: number;
    try {
      sippPort = await freePort();
      const result = await runSipp({
        scenario: fixture("calls-uac-early-offer.xml"),
        remote: `127.0.0.1:${app.sipPort}`,
        localPort: sippPort,
        service: "1000",
        keys: { rtpport: peer.port, testcase: "trace" },
        extraArgs: ["-d", "300"],
        timeoutSec: 15,
      });
      expect(result.exitCode, result.summary).toBe(0);
      callId = (await findCall(app, (c) => c.direction === "inbound" && c.state === "ended")).id;
      seenCalls.add(callId);
    } finally {
      peer.close();
    }
    const call = await callUntil(app, callId, (c) => c.state === "ended");

    let trace: any;
    await until(
      async () => {
        const res = await app.harness.call("GET", `/api/v1/calls/${callId}/sip`);
        trace = res.json;
        return res.status === 200 && methodsOf(trace).includes("sent 200 OK") && methodsOf(trace).at(-1) === "sent 200 OK" && methodsOf(trace).includes("received BYE");
      },
      { what: () => JSON.stringify(trace && methodsOf(trace)) },
    );
    const ladder = methodsOf(trace);
    expect(ladder[0]).toBe("received INVITE");
    expect(ladder).toContain("sent 180 Ringing");
    expect(ladder).toContain("received ACK");
    expect(ladder.indexOf("received ACK")).toBeGreaterThan(ladder.indexOf("sent 200 OK"));
    expect(ladder.slice(-2)).toEqual(["received BYE", "sent 200 OK"]);
    const us = `127.0.0.1:${app.sipPort}`;
    const them = `127.0.0.1:${sippPort!}`;
    for (const m of trace.messages) {
      expect(m.transport).toBe("udp");
      expect(m.message).toContain(`Call-ID: ${call.sipCallId}`);
      expect([m.source, m.destination]).toEqual(m.direction === "sent" ? [us, them] : [them, us]);
      expect(Number.isNaN(Date.parse(m.time))).toBe(false);
    }
    expect(trace.truncated).toBe(false);

    const text = await app.harness.call("GET", `/api/v1/calls/${callId}/sip?format=text`);
    expect(text.status).toBe(200);
    expect(text.headers.get("content-type")).toContain("text/plain");
    expect(text.text).toContain(`SIP trace of call ${callId}`);
    expect(text.text).toMatch(/\|-+ INVITE \(SDP\) -+>\|  UDP/);
    expect(text.text).toMatch(/\|<-+ 200 OK \(SDP\) -+\|  UDP/);
    expect(text.text).toMatch(/\|-+ BYE -+>\|  UDP\n\S+ \|<-+ 200 OK -+\|  UDP/);

    const pcap = await fetch(`${app.harness.app.url}/api/v1/calls/${callId}/sip?format=pcap`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(pcap.status).toBe(200);
    expect(pcap.headers.get("content-type")).toBe("application/vnd.tcpdump.pcap");
    const decoded = tsharkSip(new Uint8Array(await pcap.arrayBuffer()), "inbound.pcap");
    expect(decoded).toHaveLength(trace.messages.length);
    expect(decoded[0]).toBe(`INVITE||${call.sipCallId}`);
    expect(decoded.at(-2)).toBe(`BYE||${call.sipCallId}`);
    expect(decoded.at(-1)).toBe(`|200|${call.sipCallId}`);

    // After the call's linger the trace is in the database, and served from there.
    await until(async () => (await app.harness.app.ctx.store.sipTraces.get(callId)) !== undefined, { what: () => "trace never stored" });
    const stored = await app.harness.app.ctx.store.sipTraces.get(callId);
    expect(stored!.messages.map((m) => m.message)).toEqual(trace.messages.map((m: any) => m.message));
    const again = await app.harness.call("GET", `/api/v1/calls/${callId}/sip`);
    expect(again.json).toEqual(trace);
  }, 30_000);

  test("over TCP: the trace names the transport and the pcap carries the dialog as TCP segments tshark decodes", async () => {
    const peer = await startRtpPeer(440, { replyToSender: true });
    try {
      const result = await runSipp({
        scenario: fixture("calls-uac-early-offer.xml"),
        remote: `127.0.0.1:${app.sipTcpPort}`,
        transport: "tcp",
        service: "1000",
        keys: { rtpport: peer.port, testcase: "trace-tcp" },
        extraArgs: ["-d", "300"],
        timeoutSec: 15,
      });
      expect(result.exitCode, result.summary).toBe(0);
    } finally {
      peer.close();
    }
    const call = await findCall(app, (c) => c.direction === "inbound" && c.state === "ended" && c.sipCallId && !seenCalls.has(c.id));
    seenCalls.add(call.id);
    let trace: any;
    await until(
      async () => {
        trace = (await app.harness.call("GET", `/api/v1/calls/${call.id}/sip`)).json;
        return trace.messages !== undefined && methodsOf(trace).at(-1) === "sent 200 OK" && methodsOf(trace).includes("received BYE");
      },
      { what: () => JSON.stringify(trace && methodsOf(trace)) },
    );
    expect(new Set(trace.messages.map((m: any) => m.transport))).toEqual(new Set(["tcp"]));
    const pcap = await fetch(`${app.harness.app.url}/api/v1/calls/${call.id}/sip?format=pcap`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    const path = join(dir, "tcp.pcap");
    writeFileSync(path, new Uint8Array(await pcap.arrayBuffer()));
    const run = spawnSync("tshark", ["-r", path, "-Y", "sip", "-T", "fields", "-e", "tcp.dstport", "-e", "sip.Method", "-e", "sip.Status-Code", "-E", "separator=|"], { encoding: "utf8" });
    expect(run.status, run.stderr).toBe(0);
    const rows = run.stdout.trim().split("\n");
    expect(rows).toHaveLength(trace.messages.length);
    expect(rows[0]).toBe(`${app.sipTcpPort}|INVITE|`);
    expect(rows.at(-1)).toMatch(/^\d+\|\|200$/);
  }, 30_000);

  test("an outbound call's 407 and retry are traced with the credentials masked", async () => {
    {
      const callee = await startRtpPeer(1000, { replyToSender: true });
      try {
        const uas = await startSipp({ scenario: fixture("calls-uas-auth.xml"), localPort: authPort, keys: { rtpport: callee.port }, timeoutSec: 15 });
        await uas.ready();
        const dial = await app.harness.call("POST", "/api/v1/applications/app1/channels/lobby/calls", { to: "sip:bob@example.net", client: { id: "c1" } });
        expect(dial.status, dial.text).toBe(201);
        const id = dial.json.id as string;
        await callUntil(app, id, (x) => x.state === "answered");
        expect((await app.harness.call("DELETE", `/api/v1/calls/${id}`)).status).toBe(204);
        const r = await uas.done;
        expect(r.exitCode, r.summary).toBe(0);
        const credentials = /CREDENTIALS (.*)/.exec(r.logs)?.[1] ?? "";
        const response = /response="?([0-9a-f]{32})/.exec(credentials)?.[1];
        expect(response).toBeDefined();
        let trace: any;
        await until(
          async () => {
            trace = (await app.harness.call("GET", `/api/v1/calls/${id}/sip`)).json;
            return trace.messages !== undefined && methodsOf(trace).at(-1) === "received 200 OK" && methodsOf(trace).includes("sent BYE");
          },
          { what: () => JSON.stringify(trace) },
        );
        const ladder = methodsOf(trace);
        expect(ladder.slice(0, 4)).toEqual(["sent INVITE", "received 407 Proxy Authentication Required", "sent ACK", "sent INVITE"]);
        const retry = trace.messages[3].message as string;
        expect(retry).toContain("Proxy-Authorization: [redacted]");
        expect(JSON.stringify(trace)).not.toContain(response!);
      } finally {
        callee.close();
      }
    }
  }, 30_000);
});
