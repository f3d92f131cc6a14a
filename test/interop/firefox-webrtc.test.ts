// Headless Firefox (Debian's firefox-esr, driven over WebDriver BiDi) loads /ui/ of the app composed
// as in production, joins a channel with its fake microphone (a 1000 Hz tone), and must hear a SIPp
// caller's 440 Hz tone (WebAudio analyser in the page) while the caller hears the browser's tone —
// and neither hears itself. The Chromium test (chromium-webrtc.test.ts) proves the same for Chromium.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { launchFirefox, type Firefox } from "../helpers/bidi.ts";
import { startPulseAudio, type PulseAudio } from "../helpers/pulseaudio.ts";
import { peerHears } from "../helpers/hearing.ts";
import { startRtpPeer, toneShareOf } from "../helpers/rtpPeer.ts";
import { CALLER_UNTIL_BYE, freePort, runSipp } from "../helpers/sipp.ts";
import { until } from "../helpers/until.ts";
import { BROWSER_HZ, PHONE_HZ, hangUpPhone, leaveReasons, levelFramesNow, pageHearing, pageLevelAt, startWebRtcTestApp, type WebRtcTestApp } from "../helpers/webrtcPage.ts";

const SECRET = "firefox-test-secret-0123456789";

// Functions that run in the page (sent as source, so each stands alone; no DOM types here).
type PageDom = { document: { getElementById(id: string): { textContent: string | null; click(): void } | null } };
const pageText = (id: string) => (globalThis as unknown as PageDom).document.getElementById(id)?.textContent ?? "";
const pageHasText = (id: string, text: string) => ((globalThis as unknown as PageDom).document.getElementById(id)?.textContent ?? "").includes(text);
const pageClick = (id: string) => (globalThis as unknown as PageDom).document.getElementById(id)?.click();

let app: WebRtcTestApp;
let pulse: PulseAudio;
let firefox: Firefox;

beforeAll(async () => {
  app = await startWebRtcTestApp({ secret: SECRET, phonePort: await freePort() });
  pulse = await startPulseAudio();
  firefox = await launchFirefox({
    env: { PULSE_SERVER: pulse.server },
    viewport: { width: 1100, height: 760 },
    prefs: {
      // A fake microphone playing a sine of BROWSER_HZ, granted without a prompt.
      "media.navigator.streams.fake": true,
      "media.navigator.audio.fake_frequency": BROWSER_HZ,
      "media.navigator.permission.disabled": true,
      "media.autoplay.default": 0,
      // ICE on loopback only, with real host addresses (not mDNS names) in the offer.
      "media.peerconnection.ice.loopback": true,
      "media.peerconnection.ice.obfuscate_host_addresses": false,
    },
  });
}, 30_000); // Firefox takes 3 to 5 s to start

afterAll(async () => {
  await firefox?.close();
  await pulse?.close();
  await app?.harness.close();
});

test("Firefox on /ui/ and a SIPp caller hear each other's tone and not their own", async () => {
  const token = app.token({ clientId: "firefox", userId: "ada", userAlias: "Ada Lovelace" });
  await firefox.navigate(`${app.harness.app.url}/ui/#token=${token}`);
  await firefox.call(pageClick, "join");
  await firefox.waitFor("connected", pageHasText, "status", "Connected to “room1”").catch(async (e: Error) => {
    throw new Error(`${e.message}; status: ${await firefox.call(pageText, "status")}; console: ${JSON.stringify(firefox.log)}`);
  });

  const levelFramesBefore = levelFramesNow();
  const phone = await startRtpPeer(PHONE_HZ, { replyToSender: true });
  try {
    // The caller stays until hung up below, once both directions have been heard.
    const call = runSipp({ scenario: CALLER_UNTIL_BYE, remote: `127.0.0.1:${app.sipPort}`, service: "1000", keys: { rtpport: phone.port, testcase: "firefox" }, timeoutSec: 25 });
    await firefox.waitFor("the phone in the list", pageHasText, "people", "Phone");

    // The page hears the caller's tone, not its own.
    const { heard, own } = await pageHearing((hz) => firefox.call(pageLevelAt, hz), PHONE_HZ, BROWSER_HZ);
    expect(heard).toBeGreaterThan(-50);
    expect(own).toBeLessThan(heard - 30);

    // The caller hears the browser's tone, not its own (in the same stretch).
    expect(toneShareOf(await peerHears(phone, BROWSER_HZ), 8000, PHONE_HZ)).toBeLessThan(0.1);
    // The browser sends its audio's level (RFC 6464, accepted in our answer): the mixer ranks it by that.
    await until(() => levelFramesNow() >= levelFramesBefore + 50, { what: () => ({ levelFrames: levelFramesNow() - levelFramesBefore }) });

    await firefox.waitFor("Ada in the list", pageHasText, "people", "Ada Lovelace");
    await firefox.screenshot("test-artifacts/webrtc-ui-firefox.png");
    await hangUpPhone(app);
    const result = await call;
    expect(result.exitCode, result.summary).toBe(0);

    // Closing the page's RTCPeerConnection (DTLS close_notify) takes the browser out of the channel
    // at once: the leave is the close's ("closed"), not the media timeout's or ICE's.
    const inChannel = () => app.registry.participants("app1", "room1").some((p) => p.id === "firefox");
    expect(inChannel()).toBe(true);
    const leaves = leaveReasons("firefox");
    try {
      await firefox.call(() => (globalThis as unknown as { trunkline: { pc: { close(): void } } }).trunkline.pc.close());
      await until(() => !inChannel(), { what: () => leaves.reasons });
      expect(leaves.reasons).toEqual(["closed"]);
    } finally {
      leaves.stop();
    }
  } finally {
    phone.close();
  }
}, 30_000);
