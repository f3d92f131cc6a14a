// Headless Chromium loads /ui/ of the app composed as in production, joins a channel with its fake
// microphone playing a 1000 Hz tone, and must hear a SIPp caller's 440 Hz tone (WebAudio analyser
// in the page) while the caller hears the browser's tone — and neither hears itself. Then the page
// dials a phone (SIPp as the trunk) with its dial pad, sends a DTMF digit during the call and hangs up.
// A second node listens on 127.0.0.4, as scripts/cluster.sh runs nodes: Chromium's loopback
// candidate is 127.0.0.1 whatever the node's address, and the caller must still hear the page.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext } from "playwright-core";
import { peerHears } from "../helpers/hearing.ts";
import { startRtpPeer, toneShareOf } from "../helpers/rtpPeer.ts";
import { ANSWERER_UNTIL_BYE, CALLER_UNTIL_BYE, freePort, runSipp, startSipp } from "../helpers/sipp.ts";
import { writeToneWav } from "../helpers/toneWav.ts";
import { until } from "../helpers/until.ts";
import { BROWSER_HZ, PHONE_HZ, hangUpPhone, leaveReasons, levelFramesNow, pageHearing, pageLevelAt, startWebRtcTestApp, type WebRtcTestApp } from "../helpers/webrtcPage.ts";

const SECRET = "chromium-test-secret-0123456789";

/** A loopback address other than 127.0.0.1, like a node of scripts/cluster.sh. */
const OTHER_LOOPBACK = "127.0.0.4";

let app: WebRtcTestApp;
let otherLoopbackApp: WebRtcTestApp;
let phonePort: number;
let dir: string;
let browser: BrowserContext;

beforeAll(async () => {
  phonePort = await freePort();
  app = await startWebRtcTestApp({ secret: SECRET, phonePort });
  otherLoopbackApp = await startWebRtcTestApp({ secret: SECRET, phonePort: await freePort(), host: OTHER_LOOPBACK });
  dir = mkdtempSync(join(tmpdir(), "trunkline-chromium-"));
  const wav = join(dir, "tone.wav");
  writeToneWav(wav, { freq: BROWSER_HZ, seconds: 4 });
  browser = await chromium.launchPersistentContext(join(dir, "profile"), {
    executablePath: "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1100, height: 760 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--autoplay-policy=no-user-gesture-required",
      "--use-fake-ui-for-media-stream",
      "--use-fake-device-for-media-stream",
      `--use-file-for-fake-audio-capture=${wav}`,
    ],
  });
});

afterAll(async () => {
  await browser?.close();
  await app?.harness.close();
  await otherLoopbackApp?.harness.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A new page on /ui/ of `on` with a token for these claims, joined to the channel. */
async function joinedPage(claims: { clientId: string; userId: string; userAlias: string }, on = app) {
  const page = await browser.newPage();
  await page.goto(`${on.harness.app.url}/ui/#token=${on.token(claims)}`);
  await page.getByRole("button", { name: "Join channel" }).click();
  await page.getByText("Connected to “room1”").waitFor({ timeout: 10_000 });
  return page;
}

test("a browser on /ui/ and a SIPp caller hear each other's tone and not their own", async () => {
  const page = await joinedPage({ clientId: "browser", userId: "ada", userAlias: "Ada Lovelace" });

  const levelFramesBefore = levelFramesNow();
  const phone = await startRtpPeer(PHONE_HZ, { replyToSender: true });
  try {
    // The caller stays until hung up below, once both directions have been heard.
    const call = runSipp({ scenario: CALLER_UNTIL_BYE, remote: `127.0.0.1:${app.sipPort}`, service: "1000", keys: { rtpport: phone.port, testcase: "chromium" }, timeoutSec: 25 });
    await page.locator("#people").getByText("Phone").waitFor({ timeout: 10_000 });

    // The page hears the caller's tone, not its own.
    const { heard, own } = await pageHearing((hz) => page.evaluate(pageLevelAt, hz), PHONE_HZ, BROWSER_HZ);
    expect(heard).toBeGreaterThan(-50);
    expect(own).toBeLessThan(heard - 30);

    // The caller hears the browser's tone, not its own (in the same stretch).
    expect(toneShareOf(await peerHears(phone, BROWSER_HZ), 8000, PHONE_HZ)).toBeLessThan(0.1);
    // The browser sends its audio's level (RFC 6464, accepted in our answer): the mixer ranks it by that.
    await until(() => levelFramesNow() >= levelFramesBefore + 50, { what: () => ({ levelFrames: levelFramesNow() - levelFramesBefore }) });

    await page.locator("#people").getByText("Ada Lovelace").waitFor();
    mkdirSync("test-artifacts", { recursive: true });
    await page.screenshot({ path: "test-artifacts/webrtc-ui.png", fullPage: true });
    await hangUpPhone(app);
    const result = await call;
    expect(result.exitCode, result.summary).toBe(0);

    // Closing the page's RTCPeerConnection (DTLS close_notify) takes the browser out of the channel
    // at once: the leave is the close's ("closed"), not the media timeout's or ICE's.
    const inChannel = () => app.registry.participants("app1", "room1").some((p) => p.id === "browser");
    expect(inChannel()).toBe(true);
    const leaves = leaveReasons("browser");
    try {
      await page.evaluate(() => (globalThis as unknown as { trunkline: { pc: { close(): void } } }).trunkline.pc.close());
      await until(() => !inChannel(), { what: () => leaves.reasons });
      expect(leaves.reasons).toEqual(["closed"]);
    } finally {
      leaves.stop();
    }
  } finally {
    phone.close();
    await page.close();
  }
}, 30_000);

test("the page dials a phone with its dial pad, sends a digit during the call and hangs up", async () => {
  const page = await joinedPage({ clientId: "dialler", userId: "grace", userAlias: "Grace Hopper" });

  const phone = await startRtpPeer(PHONE_HZ, { replyToSender: true });
  try {
    const answering = await startSipp({ scenario: ANSWERER_UNTIL_BYE, localPort: phonePort, keys: { rtpport: phone.port }, timeoutSec: 15 });
    await answering.ready();
    for (const key of ["5", "5", "5", "0", "1", "0", "0"]) await page.getByRole("button", { name: key, exact: true }).click();
    expect(await page.inputValue("#number")).toBe("5550100");
    await page.getByRole("button", { name: "Call", exact: true }).click();
    const calls = page.locator("#calls");
    await calls.getByText("answered").waitFor({ timeout: 10_000 });
    await calls.getByText("5550100").waitFor();

    const dtmf = page.waitForResponse((r) => r.url().endsWith("/dtmf"));
    await page.getByRole("button", { name: "pound" }).click();
    expect((await dtmf).status()).toBe(204);
    expect(await page.inputValue("#number")).toBe("5550100"); // during a call the pad sends tones
    await page.screenshot({ path: "test-artifacts/webrtc-ui-dialling.png", fullPage: true });

    await peerHears(phone, BROWSER_HZ);
    await calls.getByRole("button", { name: "Hang up 5550100" }).click();
    await calls.getByText(/ended/).waitFor({ timeout: 10_000 });
    const result = await answering.done;
    expect(result.exitCode, result.summary).toBe(0);
  } finally {
    phone.close();
  }
}, 30_000);

test("Chromium reads our sender reports: their counts are what it was sent, their NTP time is when each was sent (RFC 3550 §6.4.1)", async () => {
  // Exact packet and octet counts are test/webrtc/rtcp.test.ts's (a werift client); here, what a browser makes of the reports.
  const page = await joinedPage({ clientId: "reports", userId: "ada", userAlias: "Ada Lovelace" });
  const reports = new Map<number, SenderReportSeen>();
  await until(async () => {
    const seen = await page.evaluate(senderReportSeen);
    if (seen) reports.set(seen.reportsSent, seen);
    return reports.size >= 3;
  }, { timeoutMs: 20_000, pollMs: 200, what: () => [...reports.values()] });
  for (const r of reports.values()) {
    expect(r.bytesSent).toBeGreaterThanOrEqual(3 * r.packetsSent); // no Opus frame we send is shorter (RFC 6716 §3.1)
    // A report counts what was sent before it (a few packets may precede the browser's DTLS being ready); the page counted on since.
    expect(r.packetsSent).toBeLessThanOrEqual(r.packetsReceivedNow + 25);
    expect(r.packetsSent).toBeGreaterThan(r.packetsReceivedNow - 150);
    // The report's NTP time is its last packet's sending time: next to when the report arrived.
    expect(Math.abs(r.arrivedAt - r.remoteTimestamp)).toBeLessThan(500);
  }
});

interface SenderReportSeen {
  reportsSent: number;
  packetsSent: number;
  bytesSent: number;
  /** the report's NTP time as Unix milliseconds */
  remoteTimestamp: number;
  /** when the report arrived (the stats' own timestamp) */
  arrivedAt: number;
  packetsReceivedNow: number;
}

/** Runs in the page: what the latest sender report on the page's incoming audio said, beside what the page has received. */
async function senderReportSeen(): Promise<SenderReportSeen | undefined> {
  const pc = (globalThis as unknown as { trunkline: { pc: { getStats(): Promise<Map<string, unknown>> } } }).trunkline.pc;
  type Stat = { type: string; kind?: string; reportsSent?: number; packetsSent?: number; bytesSent?: number; remoteTimestamp?: number; timestamp: number; packetsReceived?: number };
  const stats = [...(await pc.getStats()).values()] as Stat[];
  const report = stats.find((s) => s.type === "remote-outbound-rtp" && s.kind === "audio");
  const inbound = stats.find((s) => s.type === "inbound-rtp" && s.kind === "audio");
  if (!report?.reportsSent || report.remoteTimestamp === undefined || !inbound) return undefined;
  return { reportsSent: report.reportsSent, packetsSent: report.packetsSent ?? 0, bytesSent: report.bytesSent ?? 0, remoteTimestamp: report.remoteTimestamp, arrivedAt: report.timestamp, packetsReceivedNow: inbound.packetsReceived ?? 0 };
}

/** Runs in the page: the remote candidate of the page's selected ICE candidate pair. */
async function selectedRemoteCandidate(): Promise<{ candidateType?: string; address?: string }> {
  const pc = (globalThis as unknown as { trunkline: { pc: { getStats(): Promise<Map<string, unknown>> } } }).trunkline.pc;
  const stats = [...(await pc.getStats()).values()] as { id: string; type: string; selectedCandidatePairId?: string; remoteCandidateId?: string; candidateType?: string; address?: string }[];
  const transport = stats.find((s) => s.type === "transport");
  const pair = stats.find((s) => s.id === transport?.selectedCandidatePairId);
  const remote = stats.find((s) => s.id === pair?.remoteCandidateId);
  return { candidateType: remote?.candidateType, address: remote?.address };
}

test(`a caller hears the page of a node on ${OTHER_LOOPBACK}, and the node keeps the page`, async () => {
  const page = await joinedPage({ clientId: "far-browser", userId: "ada", userAlias: "Ada Lovelace" }, otherLoopbackApp);
  const leaves = leaveReasons("far-browser");
  const phone = await startRtpPeer(PHONE_HZ, { replyToSender: true });
  try {
    const call = runSipp({
      scenario: CALLER_UNTIL_BYE,
      remote: `${OTHER_LOOPBACK}:${otherLoopbackApp.sipPort}`,
      service: "1000",
      keys: { rtpport: phone.port, testcase: "chromium-other-loopback" },
      timeoutSec: 25,
    });
    await page.locator("#people").getByText("Phone").waitFor({ timeout: 10_000 });
    expect(toneShareOf(await peerHears(phone, BROWSER_HZ), 8000, PHONE_HZ)).toBeLessThan(0.1);
    const { heard } = await pageHearing((hz) => page.evaluate(pageLevelAt, hz), PHONE_HZ, BROWSER_HZ);
    expect(heard).toBeGreaterThan(-50);
    // The page sends to the host candidate the node advertised, not to a peer-reflexive address
    // the node's answers happened to come from.
    expect(await page.evaluate(selectedRemoteCandidate)).toEqual({ candidateType: "host", address: OTHER_LOOPBACK });
    expect(leaves.reasons).toEqual([]);
    expect(otherLoopbackApp.registry.participants("app1", "room1").some((p) => p.id === "far-browser")).toBe(true);
    await hangUpPhone(otherLoopbackApp);
    const result = await call;
    expect(result.exitCode, result.summary).toBe(0);
  } finally {
    leaves.stop();
    phone.close();
    await page.close();
  }
}, 30_000);
