// Headless Chromium loads /ui/ of the app composed as in production, joins a channel with its fake
// microphone playing a 1000 Hz tone, and must hear a SIPp caller's 440 Hz tone (WebAudio analyser
// in the page) while the caller hears the browser's tone — and neither hears itself. Then the page
// dials a phone (SIPp as the trunk) with its dial pad, sends a DTMF digit during the call and hangs up.
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
import { BROWSER_HZ, PHONE_HZ, hangUpPhone, leaveReasons, pageHearing, pageLevelAt, startWebRtcTestApp, type WebRtcTestApp } from "../helpers/webrtcPage.ts";

const SECRET = "chromium-test-secret-0123456789";

let app: WebRtcTestApp;
let phonePort: number;
let dir: string;
let browser: BrowserContext;

beforeAll(async () => {
  phonePort = await freePort();
  app = await startWebRtcTestApp({ secret: SECRET, phonePort });
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
  rmSync(dir, { recursive: true, force: true });
});

/** A new page on /ui/ with a token for these claims, joined to the channel. */
async function joinedPage(claims: { clientId: string; userId: string; userAlias: string }) {
  const page = await browser.newPage();
  await page.goto(`${app.harness.app.url}/ui/#token=${app.token(claims)}`);
  await page.getByRole("button", { name: "Join channel" }).click();
  await page.getByText("Connected to “room1”").waitFor({ timeout: 10_000 });
  return page;
}

test("a browser on /ui/ and a SIPp caller hear each other's tone and not their own", async () => {
  const page = await joinedPage({ clientId: "browser", userId: "ada", userAlias: "Ada Lovelace" });

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
