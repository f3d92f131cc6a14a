// Headless Chromium loads /ui/, joins a channel with its fake microphone playing a 1000 Hz tone,
// and must hear a werift client's 600 Hz tone (WebAudio analyser in the page) while the werift
// client hears the browser's tone — and neither hears itself.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext } from "playwright-core";
import { goertzelPower } from "../../src/media/goertzel.ts";
import { writeToneWav } from "../helpers/toneWav.ts";
import { createTestClient, type TestClient } from "../helpers/weriftClient.ts";
import { startHarness, type Harness } from "../webrtc/harness.ts";

const BROWSER_HZ = 1000;
const PHONE_HZ = 600;

/** Runs in the page: the level (dB) of `hz` in what the page receives from the channel. */
const pageLevelAt = (hz: number) => (globalThis as unknown as { trunkline: { levelAt(hz: number): number } }).trunkline.levelAt(hz);

let h: Harness;
let dir: string;
let browser: BrowserContext;
let peer: TestClient;

beforeAll(async () => {
  h = startHarness();
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
  await peer?.close();
  await h?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test("a browser on /ui/ and a werift client hear each other's tone and not their own", async () => {
  peer = createTestClient("opus");
  const res = await h.join(h.token({ clientId: "phone-like", userId: "werift", userAlias: "Test peer" }), await peer.offer());
  await peer.accept(((await res.json()) as { sdp: string }).sdp);
  await peer.connected();
  peer.startSending(PHONE_HZ);

  const page = await browser.newPage();
  const token = h.token({ clientId: "browser", userId: "ada", userAlias: "Ada (browser)" });
  await page.goto(`${h.url}/ui/#token=${token}`);
  await page.getByRole("button", { name: "Join channel" }).click();
  await page.getByText("Connected to “room1”").waitFor({ timeout: 10_000 });

  // The page hears the werift client's tone.
  let heard = -Infinity;
  for (let i = 0; i < 40 && heard < -50; i++) {
    await Bun.sleep(100);
    heard = await page.evaluate(pageLevelAt, PHONE_HZ);
  }
  const own = await page.evaluate(pageLevelAt, BROWSER_HZ);
  expect(heard).toBeGreaterThan(-50);
  expect(own).toBeLessThan(heard - 30);

  // The werift client hears the browser's tone.
  peer.takeReceived();
  await Bun.sleep(1000);
  const pcm = peer.takeReceived();
  const db = (hz: number) => 10 * Math.log10(goertzelPower(pcm, 48000, hz) / (32767 * 32767 * 0.5) + 1e-12);
  expect(db(BROWSER_HZ)).toBeGreaterThan(-30);
  expect(db(PHONE_HZ)).toBeLessThan(db(BROWSER_HZ) - 30);

  await page.locator("#people").getByText("Ada (browser)").waitFor();
  await page.locator("#people").getByText("Test peer").waitFor();
  mkdirSync("test-artifacts", { recursive: true });
  await page.screenshot({ path: "test-artifacts/webrtc-ui.png", fullPage: true });
});
