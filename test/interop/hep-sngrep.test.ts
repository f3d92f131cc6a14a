// HEP v3 export against a real capture server: sngrep listening for HEP (-L) receives a SIPp call's
// whole dialog (INVITE … BYE/200) mirrored by Trunkline and writes it to a pcap that tshark decodes.
// A relay in front of sngrep also reads every HEP packet itself: capture id and auth key chunks, SIP
// payloads, and the RTCP reports as JSON correlated to the call by its SIP Call-ID.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import dgram from "node:dgram";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findCall, sippLobbyYaml, startCallsApp, type CallsApp } from "../helpers/callsApp.ts";
import { decodeHep3, type HepPacket } from "../helpers/hep.ts";
import { startRtpPeer } from "../helpers/rtpPeer.ts";
import { freePort, runSipp } from "../helpers/sipp.ts";
import { until } from "../helpers/until.ts";

const CAPTURE_ID = 4711;
const HEP_KEY = "hep-test-key";

let app: CallsApp;
let dir: string;
let sngrep: ChildProcess;
let sngrepOutput = "";
let sngrepPort: number;
let relay: dgram.Socket;
const received: HepPacket[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "trunkline-hep-"));
  sngrepPort = await freePort();
  sngrep = spawn("sngrep", ["-N", "-L", `udp:127.0.0.1:${sngrepPort}`, "-O", join(dir, "sngrep.pcap")], { stdio: ["ignore", "pipe", "pipe"] });
  sngrep.stdout!.on("data", (chunk: Buffer) => (sngrepOutput += chunk.toString()));
  sngrep.stderr!.on("data", (chunk: Buffer) => (sngrepOutput += chunk.toString()));
  await until(() => spawnSync("ss", ["-Hlun", `sport = :${sngrepPort}`], { encoding: "utf8" }).stdout.trim() !== "", { what: () => `sngrep never listened: ${sngrepOutput}` });
  relay = dgram.createSocket("udp4");
  relay.on("message", (data) => {
    const packet = decodeHep3(new Uint8Array(data));
    if (packet) received.push(packet);
    relay.send(data, sngrepPort, "127.0.0.1");
  });
  await new Promise<void>((resolve) => relay.bind(0, "127.0.0.1", resolve));
  app = await startCallsApp(`
rtp: { portMin: 45000, portMax: 45999, mediaTimeoutSec: 0 }
hep: { address: "127.0.0.1:${relay.address().port}", captureId: ${CAPTURE_ID}, password: ${HEP_KEY} }
${sippLobbyYaml}
`);
});

afterAll(async () => {
  await app?.close();
  relay?.close();
  if (sngrep && sngrep.exitCode === null) sngrep.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

const sipOf = (callId: string) => received.filter((p) => p.protocolType === 1 && p.payload.includes(`Call-ID: ${callId}\r\n`));
const firstLine = (p: HepPacket) => p.payload.slice(0, p.payload.indexOf("\r\n")).replace(/ sip:\S+ SIP\/2\.0$/, "").replace(/^SIP\/2\.0 /, "");

test("sngrep receives a SIPp call's whole dialog over HEP and writes it to a pcap; RTCP arrives as JSON with the Call-ID", async () => {
  const peer = await startRtpPeer(440, { replyToSender: true });
  const sippPort = await freePort();
  try {
    const result = await runSipp({
      scenario: join(import.meta.dir, "../fixtures/sipp/calls-uac-early-offer.xml"),
      remote: `127.0.0.1:${app.sipPort}`,
      localPort: sippPort,
      service: "1000",
      keys: { rtpport: peer.port, testcase: "hep" },
      extraArgs: ["-d", "300"],
      timeoutSec: 15,
    });
    expect(result.exitCode, result.summary).toBe(0);
  } finally {
    peer.close();
  }
  const call = await findCall(app, (c) => c.direction === "inbound" && c.state === "ended");
  const sipCallId = call.sipCallId as string;
  // The BYE's 200 is the dialog's last message; the session's closing RTCP (BYE) comes with the hang-up.
  await until(() => sipOf(sipCallId).map(firstLine).at(-1) === "200 OK" && sipOf(sipCallId).some((p) => firstLine(p) === "BYE"), {
    what: () => sipOf(sipCallId).map(firstLine),
  });
  const rtcp = () => received.filter((p) => p.protocolType === 5 && p.correlationId === sipCallId);
  await until(() => rtcp().length > 0, { what: () => received.map((p) => [p.protocolType, p.correlationId]) });

  const ladder = sipOf(sipCallId).map((p) => `${p.source}>${p.destination} ${firstLine(p)}`);
  const us = `127.0.0.1:${app.sipPort}`;
  const them = `127.0.0.1:${sippPort}`;
  expect(ladder[0]).toBe(`${them}>${us} INVITE`);
  expect(ladder).toContain(`${us}>${them} 200 OK`);
  expect(ladder).toContain(`${them}>${us} ACK`);
  expect(ladder.slice(-2)).toEqual([`${them}>${us} BYE`, `${us}>${them} 200 OK`]);
  for (const p of received) {
    expect(p.captureId).toBe(CAPTURE_ID);
    expect(p.authKey).toBe(HEP_KEY);
  }
  const report = JSON.parse(rtcp()[0]!.payload);
  expect(typeof report.ssrc).toBe("number");
  expect([200, 201]).toContain(report.type);

  // A last message proves sngrep has written everything before it: it reads one socket in order and
  // writes each packet to its pcap as it takes it, so once the marker is in the file, so is the call.
  const marker = "marker-" + Date.now();
  const sender = dgram.createSocket("udp4");
  const markerSip = `INVITE sip:marker@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKmarker\r\nFrom: <sip:m@127.0.0.1>;tag=m\r\nTo: <sip:marker@127.0.0.1>\r\nCall-ID: ${marker}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n`;
  const { encodeHep3 } = await import("../../src/traces/hep.ts");
  const packet = encodeHep3({ source: { address: "127.0.0.1", port: 9 }, destination: { address: "127.0.0.1", port: 9 }, ipProtocol: 17, time: Date.now(), protocolType: 1, captureId: CAPTURE_ID, payload: new TextEncoder().encode(markerSip) });
  await new Promise<void>((resolve) => sender.send(packet, sngrepPort, "127.0.0.1", () => resolve()));
  sender.close();
  const pcapPath = join(dir, "sngrep.pcap");
  await until(() => existsSync(pcapPath) && readFileSync(pcapPath).includes(marker), { what: () => ({ sngrep: sngrepOutput.slice(-200) }) });
  const exited = new Promise((resolve) => sngrep.once("exit", resolve));
  sngrep.kill("SIGINT");
  await exited;

  const tshark = spawnSync("tshark", ["-r", join(dir, "sngrep.pcap"), "-Y", `sip.Call-ID == "${sipCallId}"`, "-T", "fields", "-e", "ip.src", "-e", "udp.srcport", "-e", "sip.Method", "-e", "sip.Status-Code", "-E", "separator=|"], { encoding: "utf8" });
  expect(tshark.status, tshark.stderr).toBe(0);
  const rows = tshark.stdout.trim().split("\n");
  const fromUs = (what: string) => `127.0.0.1|${app.sipPort}|${what}`;
  const fromThem = (what: string) => `127.0.0.1|${sippPort}|${what}`;
  expect(rows[0]).toBe(fromThem("INVITE|"));
  expect(rows).toContain(fromUs("|100"));
  expect(rows).toContain(fromUs("|200"));
  expect(rows).toContain(fromThem("ACK|"));
  expect(rows.slice(-2)).toEqual([fromThem("BYE|"), fromUs("|200")]);
  expect(rows).toHaveLength(sipOf(sipCallId).length);
}, 40_000);
