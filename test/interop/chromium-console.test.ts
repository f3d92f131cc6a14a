// The admin console (/console/) in headless Chromium on the app composed as in production: log in
// (a wrong token is refused, the token never shows in a URL), create a trunk through the form and
// see it listed, edit caller-ID templates validated as typed, send a test webhook event, watch a
// SIPp call appear in the channels and calls screens, mute it and send DTMF, open its SIP ladder as
// the server recorded it (INVITE, 180/200, ACK), hang it up from the page (SIPp receives the BYE),
// see the stored trace end with BYE and 200, and download its pcap, which tshark reads.
// Screenshots of each screen go to test-artifacts/.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { ADMIN_TOKEN, startHarness, type Harness } from "../api/harness.ts";
import { composeCalls } from "../helpers/callsApp.ts";
import { startRtpPeer } from "../helpers/rtpPeer.ts";
import { CALLER_UNTIL_BYE, startSipp } from "../helpers/sipp.ts";
import { until } from "../helpers/until.ts";
import { startWebhookServer, type WebhookServer } from "../helpers/webhookServer.ts";

let harness: Harness;
let registry: ReturnType<typeof composeCalls>["registry"];
let sipPort: number;
let dir: string;
let browser: BrowserContext;
let page: Page;
let hooks: WebhookServer;
/** Every URL the page asked for or navigated to, to prove the token never travels in one. */
const urls: string[] = [];
/** Uncaught exceptions in the page and Content-Security-Policy refusals. */
const pageProblems: string[] = [];

beforeAll(async () => {
  // A short linger: the ended call's trace reaches the database soon after its BYE is answered.
  const calls = composeCalls({ traceLingerMs: 1500 });
  registry = calls.registry;
  harness = await startHarness(
    `
rtp: { mediaTimeoutSec: 0 }
trunks:
  - { id: sipp, domain: 127.0.0.1, canTerminate: false, optionsIntervalSec: 0 }
applications:
  - id: app1
    name: Console test app
    sharedSecret: console-test-secret-0123456789
    inboundRoutes:
      - { sipUsername: "1000", channelId: room1 }
`,
    calls.compose,
  );
  sipPort = calls.sipPort();
  hooks = startWebhookServer();
  dir = mkdtempSync(join(tmpdir(), "trunkline-console-"));
  browser = await chromium.launchPersistentContext(join(dir, "profile"), {
    executablePath: "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  page = await browser.newPage();
  page.on("request", (request) => urls.push(request.url()));
  page.on("framenavigated", (frame) => urls.push(frame.url()));
  page.on("pageerror", (error) => pageProblems.push(error.message));
  page.on("console", (message) => {
    if (/Content Security Policy/i.test(message.text())) pageProblems.push(message.text());
  });
  mkdirSync("test-artifacts", { recursive: true });
});

afterAll(async () => {
  await browser?.close();
  await hooks?.stop();
  await harness?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Saves a screenshot of the screen, which must show no leaked "null", "undefined", "NaN" or "[object". */
async function shot(name: string): Promise<void> {
  expect((await page.locator("body").innerText()).match(/\bnull\b|\bundefined\b|\bNaN\b|\[object/g)).toBeNull();
  await page.screenshot({ path: `test-artifacts/console-${name}.png`, fullPage: true });
}
/** The call's SIP trace as the API serves it (JSON). */
async function traceOf(callId: string): Promise<{ direction: string; summary: string }[]> {
  const res = await harness.call("GET", `/api/v1/calls/${callId}/sip`);
  return res.status === 200 ? (res.json as { messages: { direction: string; summary: string }[] }).messages : [];
}

/** The ladder's rows on the page, "direction first-line" (request URIs and reasons cut), retransmissions left out. */
async function ladderRows(): Promise<string[]> {
  return page.locator("#ladder td.arrow:not(.retrans)").evaluateAll((cells) =>
    cells.map((cell) => {
      const direction = cell.classList.contains("sent") ? "sent" : "received";
      const line = (cell.textContent ?? "").replace(/^(SIP\/2\.0 \d{3}).*$/, "$1").replace(/^(\w+ sip:(1000@)?).*$/, "$1");
      return `${direction} ${line}`;
    }),
  );
}

/** tshark's reading of a pcap: one line per SIP message, "method|status". */
function tsharkSip(path: string): string[] {
  const run = spawnSync("tshark", ["-r", path, "-Y", "sip", "-T", "fields", "-e", "sip.Method", "-e", "sip.Status-Code", "-E", "separator=|"], { encoding: "utf8" });
  expect(run.status, run.stderr).toBe(0);
  return run.stdout.trim().split("\n").filter(Boolean);
}

const tokenIn = (text: string) => text.includes(ADMIN_TOKEN) || text.includes(encodeURIComponent(ADMIN_TOKEN));

test("a wrong token is refused with an error; the right one logs in; the token is in sessionStorage, never in a URL", async () => {
  await page.goto(`${harness.app.url}/console/`);
  await page.getByLabel("Admin token").fill("not-the-admin-token");
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByText("Wrong admin token: the server refused it (401).").waitFor();
  expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
  await shot("login-error");

  await page.getByLabel("Admin token").fill(ADMIN_TOKEN);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("link", { name: "Trunks" }).waitFor();
  expect(await page.evaluate(() => Object.values(sessionStorage))).toEqual([ADMIN_TOKEN]);
  expect(page.url()).toBe(`${harness.app.url}/console/`);

  // A reload keeps the session (sessionStorage), still without the token in the address.
  await page.reload();
  await page.getByRole("link", { name: "Trunks" }).waitFor();
  expect(urls.length).toBeGreaterThan(3);
  expect(urls.filter(tokenIn)).toEqual([]);
});

test("trunks: a 400 names the field, a new trunk appears in the list, YAML trunks are read-only with the reason", async () => {
  await page.goto(`${harness.app.url}/console/#/trunks`);
  const yamlRow = page.locator("tr", { hasText: "sipp" });
  await yamlRow.getByText("managed by config.yaml").waitFor();
  await expect(yamlRow.getByRole("button").count()).resolves.toBe(0);

  await page.getByRole("button", { name: "New trunk" }).click();
  await page.getByLabel("Id", { exact: true }).fill("carrier");
  await page.getByLabel("Domain or address").fill("bad domain!");
  await page.getByLabel("Username").fill("acme");
  await page.getByLabel("Password").fill("s3cret-password");
  await page.getByLabel("OPTIONS every (s)").fill("0");
  await page.getByRole("button", { name: "Create trunk" }).click();
  await page.locator(".field-error", { hasText: "domain" }).first().waitFor();
  expect(await page.getByLabel("Domain or address").getAttribute("class")).toContain("invalid");

  // The trunk registers with a SIPp registrar: its row turns "registered" without a reload.
  const registrar = await startSipp({ scenario: REGISTRAR, timeoutSec: 30 });
  await registrar.ready();
  await page.getByLabel("Domain or address").fill("127.0.0.1");
  await page.getByLabel("Port", { exact: true }).fill(String(registrar.localPort));
  await page.getByLabel("Register", { exact: true }).check();
  await page.getByRole("button", { name: "Create trunk" }).click();
  const row = page.locator("tbody tr", { hasText: "carrier" });
  await row.getByText(`127.0.0.1:${registrar.localPort}`).waitFor();
  await row.getByRole("button", { name: "Edit carrier" }).waitFor();
  const stored = harness.app.ctx.store.trunks.get("carrier");
  expect(stored).toMatchObject({ domain: "127.0.0.1", port: registrar.localPort, register: true, username: "acme", password: "s3cret-password", optionsIntervalSec: 0, source: "api" });
  await row.getByText("registered", { exact: true }).waitFor();
  await row.getByText("available", { exact: true }).waitFor();
  await shot("trunks");

  // Edit through PATCH: the password stays when left empty.
  await row.getByRole("button", { name: "Edit carrier" }).click();
  await page.getByLabel("Max calls").fill("4");
  await page.getByRole("button", { name: "Save trunk" }).click();
  await row.getByText("0 / 4").waitFor();
  expect(harness.app.ctx.store.trunks.get("carrier")).toMatchObject({ maxConcurrentCalls: 4, password: "s3cret-password" });

  // Delete (after the confirmation): the row goes and the trunk un-registers (SIPp sees expires 0).
  page.once("dialog", (dialog) => void dialog.accept());
  await row.getByRole("button", { name: "Delete carrier" }).click();
  await page.getByText("Trunk carrier deleted.").waitFor();
  await row.waitFor({ state: "detached" });
  expect(harness.app.ctx.store.trunks.get("carrier")).toBeUndefined();
  const result = await registrar.done;
  expect(result.exitCode, result.summary).toBe(0);
  expect(result.logs).toContain("UNREGISTER");
});

test("applications: routes and caller-ID templates, the template checked as typed by the server's rules", async () => {
  // The trunks screen's poll is still in flight when the screen changes: the new screen loads anyway.
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  await page.route("**/api/v1/trunks", async (route) => {
    await held;
    await route.continue().catch(() => {});
  });
  await page.waitForRequest("**/api/v1/trunks");
  await page.goto(`${harness.app.url}/console/#/applications`);
  await page.locator("tbody tr", { hasText: "app1" }).waitFor();
  release();
  await page.unroute("**/api/v1/trunks");
  await page.getByText("Inbound routes of app1").waitFor();
  await page.locator("tr", { hasText: "room1" }).getByText("managed by config.yaml").waitFor();

  await page.getByRole("button", { name: "New application" }).click();
  await page.getByLabel("Id", { exact: true }).fill("acme");
  await page.getByLabel("Name", { exact: true }).fill("Acme Corp");
  await page.getByLabel("Shared secret").fill("a-long-random-secret-please");
  await page.getByRole("button", { name: "Create application" }).click();
  await page.getByText("Inbound routes of acme").waitFor();

  await page.getByLabel("SIP username").fill("15550199");
  await page.getByLabel("Channel", { exact: true }).first().fill("lobby");
  await page.getByRole("button", { name: "Add route" }).click();
  await page.locator("tr", { hasText: "15550199" }).getByRole("button", { name: "Delete route 15550199" }).waitFor();

  const cidForm = page.locator("form", { has: page.getByRole("button", { name: "Save caller ID" }) });
  await cidForm.getByLabel("Channel").fill("lobby");
  await cidForm.getByLabel("Display name").fill("{nickname}");
  await cidForm.getByText("unknown variable {nickname}").waitFor();
  await shot("applications-invalid-template");
  expect(await cidForm.getByRole("button", { name: "Save caller ID" }).isDisabled()).toBe(true);
  await cidForm.getByLabel("Display name").fill("{userAlias} (support");
  await cidForm.getByLabel("Username").fill("{userId");
  await cidForm.getByText('unclosed "{" at position 0').waitFor();
  await cidForm.getByLabel("Username").fill("{userId}");
  await cidForm.getByText('"Alice Liddell (support" <sip:alice@').waitFor();
  expect(await cidForm.getByRole("button", { name: "Save caller ID" }).isEnabled()).toBe(true);
  await cidForm.getByRole("button", { name: "Save caller ID" }).click();
  await page.getByRole("button", { name: "Edit caller ID lobby" }).waitFor();
  expect(harness.app.ctx.store.callerIds.get("acme", "lobby")).toMatchObject({ displayName: "{userAlias} (support", username: "{userId}" });
  await shot("applications");
});

test("webhooks: settings saved, 'Send test event' delivers a webhook.test event and shows the outcome", async () => {
  await page.goto(`${harness.app.url}/console/#/webhooks`);
  const send = page.getByRole("button", { name: "Send test event" });
  await send.waitFor();
  expect(await send.isDisabled()).toBe(true);
  await page.getByLabel("Events URL").fill(hooks.url("/events"));
  await page.getByLabel("Signing secret").fill("webhook-signing-secret");
  await page.getByRole("button", { name: "Save webhooks" }).click();
  await page.getByText("Webhook settings saved.").waitFor();
  await until(() => send.isEnabled(), { what: () => "the test button stays disabled after saving an events URL" });
  await send.click();
  await page.locator("#webhook-test-result").getByText("delivered", { exact: true }).waitFor();
  const received = hooks.received.filter((r) => r.path === "/events");
  expect(received.map((r) => (r.json as { type: string }).type)).toEqual(["webhook.test"]);
  await page.locator("#webhook-test-result").getByText((received[0]!.json as { id: string }).id).waitFor();
  await shot("webhooks");
});

test("a SIPp call shows up live in channels and calls; mute, DTMF, its SIP ladder, and hang-up from the page (SIPp gets the BYE)", async () => {
  const phone = await startRtpPeer(440, { replyToSender: true });
  try {
    await page.goto(`${harness.app.url}/console/#/channels`);
    await page.getByText("No live channels on this node.").waitFor();
    const caller = await startSipp({ scenario: CALLER_UNTIL_BYE, remote: `127.0.0.1:${sipPort}`, service: "1000", keys: { rtpport: phone.port, testcase: "console" }, timeoutSec: 40 });

    // Channels: the caller appears without a reload; mute it, send digits.
    const participant = page.locator("tbody tr", { hasText: "room1" });
    await participant.getByText("phone").waitFor();
    await participant.getByText("+15550001111").first().waitFor();
    const callId = registry.participants("app1", "room1")[0]!.callId!;
    await participant.getByRole("button", { name: /^Mute / }).click();
    await participant.getByText("muted", { exact: true }).waitFor();
    expect(registry.participants("app1", "room1")[0]!.muted).toBe(true);
    await participant.getByRole("button", { name: /^DTMF to / }).click();
    await page.getByRole("textbox", { name: "Digits" }).fill("12#");
    const dtmf = page.waitForResponse((r) => r.url().endsWith(`/calls/${callId}/dtmf`));
    await page.getByRole("button", { name: "Send digits" }).click();
    expect((await dtmf).status()).toBe(204);
    await page.getByText("Sent 12#.").waitFor();
    await shot("channels");

    // Trunks: the call counts on its trunk, live.
    await page.getByRole("link", { name: "Trunks" }).click();
    await page.locator('tbody tr[data-key="sipp"] td.num', { hasText: /^1$/ }).waitFor();
    await shot("trunks-live-call");

    // Calls: the live call is listed; its detail shows the SIP ladder the server recorded.
    await page.getByRole("link", { name: "Calls" }).click();
    const callRow = page.locator(`tbody tr[data-key="${callId}"]`);
    await callRow.getByText("answered").waitFor();
    await page.getByLabel("State").selectOption("active");
    await page.getByLabel("Direction").selectOption("outbound");
    await page.getByText("No calls match.").waitFor();
    await page.getByLabel("Direction").selectOption("inbound");
    await page.getByLabel("Trunk").selectOption("sipp");
    // The ACK is in the server's live trace before the page asks for it.
    await until(async () => (await traceOf(callId)).some((m) => m.summary.startsWith("ACK ")), { what: () => "the live trace never showed the ACK" });
    await callRow.click();
    const ladder = page.locator("#ladder");
    await ladder.locator("table.ladder").waitFor();
    // The 100 goes only when the 180 takes over 100 ms (RFC 3261 §17.2.1): a first call often does.
    expect((await ladderRows()).filter((row) => row !== "sent SIP/2.0 100")).toEqual([
      "received INVITE sip:1000@",
      "sent SIP/2.0 180",
      "sent SIP/2.0 200",
      "received ACK sip:1000@",
    ]);
    await ladder.getByText(`← 127.0.0.1:${caller.localPort}`).first().waitFor();
    await ladder.getByText(/^INVITE sip:1000@/).first().click();
    await ladder.locator("pre", { hasText: "X-Test-Case: console" }).first().waitFor();
    await ladder.getByText(/^SIP\/2\.0 200 /).first().click();
    await ladder.locator("pre", { hasText: /^SIP\/2\.0 200 / }).filter({ hasText: "v=0" }).first().waitFor();
    await shot("calls-ladder");

    await page.getByRole("button", { name: "Hang up this call" }).click();
    const result = await caller.done;
    expect(result.exitCode, result.summary).toBe(0);
    expect(result.messages).toContain("BYE sip:");

    // The ended call's trace, written to the database after the linger, shows the BYE and its 200.
    await until(async () => (await harness.app.ctx.store.sipTraces.get(callId)) !== undefined, { what: () => "the trace was never stored" });
    await page.getByLabel("State").selectOption("all");
    await callRow.getByText("ended").waitFor();
    await callRow.getByText("local_hangup").waitFor();
    await shot("calls-ended");
    await callRow.click();
    await ladder.locator("td.arrow", { hasText: /^BYE sip:/ }).first().waitFor();
    expect((await ladderRows()).slice(-2)).toEqual(["sent BYE sip:", "received SIP/2.0 200"]);
    await shot("calls-ladder-ended");

    // "Download pcap" fetches ?format=pcap with the token in the Authorization header (never in
    // the URL); the file it saves, and the same URL fetched here, are pcaps tshark reads.
    const pcapRequest = page.waitForRequest((r) => r.url().endsWith(`/api/v1/calls/${callId}/sip?format=pcap`));
    const download = page.waitForEvent("download");
    await ladder.getByRole("button", { name: "Download pcap" }).click();
    expect((await pcapRequest).headers()["authorization"]).toBe(`Bearer ${ADMIN_TOKEN}`);
    const saved = join(dir, "console.pcap");
    await (await download).saveAs(saved);
    const fetched = await fetch(`${harness.app.url}/api/v1/calls/${callId}/sip?format=pcap`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(fetched.status).toBe(200);
    expect(fetched.headers.get("content-type")).toBe("application/vnd.tcpdump.pcap");
    const fetchedPath = join(dir, "fetched.pcap");
    writeFileSync(fetchedPath, new Uint8Array(await fetched.arrayBuffer()));
    for (const path of [saved, fetchedPath]) {
      const decoded = tsharkSip(path);
      expect(decoded[0]).toBe("INVITE|");
      expect(decoded).toContain("BYE|");
      expect(decoded.at(-1)).toBe("|200");
    }
    expect(readFileSync(saved)).toEqual(readFileSync(fetchedPath));

    await page.getByRole("link", { name: "Channels" }).click();
    await page.getByText("No live channels on this node.").waitFor();
    expect(urls.filter(tokenIn)).toEqual([]);
    expect(pageProblems).toEqual([]);
  } finally {
    phone.close();
  }
}, 90_000);

test("a call recorded with SIP traces off (records.sipTraceMaxBytes 0, reloaded) opens with 'No SIP trace recorded'", async () => {
  appendFileSync(harness.configPath, "\nrecords: { sipTraceMaxBytes: 0 }\n");
  expect(await harness.app.reload()).toEqual({ ok: true });
  const phone = await startRtpPeer(440, { replyToSender: true });
  try {
    const caller = await startSipp({ scenario: CALLER_UNTIL_BYE, remote: `127.0.0.1:${sipPort}`, service: "1000", keys: { rtpport: phone.port, testcase: "untraced" }, timeoutSec: 40 });
    await until(() => registry.participants("app1", "room1").length === 1, { what: () => "the second SIPp call never joined room1" });
    const callId = registry.participants("app1", "room1")[0]!.callId!;
    expect((await harness.call("DELETE", `/api/v1/calls/${callId}`)).status).toBeLessThan(300);
    const result = await caller.done;
    expect(result.exitCode, result.summary).toBe(0);
    const trace = await harness.call("GET", `/api/v1/calls/${callId}/sip`);
    expect(trace.status).toBe(404);
    expect(trace.text).toContain("has no SIP trace");

    await page.goto(`${harness.app.url}/console/#/calls`);
    const callRow = page.locator(`tbody tr[data-key="${callId}"]`);
    await callRow.getByText("ended").waitFor();
    await callRow.click();
    await page.locator("#ladder").getByText("No SIP trace recorded for this call.").waitFor();
    expect(await page.locator("#ladder table.ladder").count()).toBe(0);
    await shot("calls-no-trace");
    expect(pageProblems).toEqual([]);
  } finally {
    phone.close();
  }
}, 60_000);

/** A registrar granting an hour, then answering the un-REGISTER (any expires of 0) and logging it. */
const REGISTRAR = `<?xml version="1.0" encoding="UTF-8"?>
<scenario name="console-registrar">
  <recv request="REGISTER" crlf="true"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]reg
[last_Call-ID:]
[last_CSeq:]
[last_Contact:]
Expires: 3600
Content-Length: 0

]]></send>
  <recv request="REGISTER" crlf="true">
    <action>
      <ereg regexp="expires=0|Expires: *0" search_in="msg" check_it="true" assign_to="unregister"/>
      <log message="UNREGISTER [$unregister]"/>
    </action>
  </recv>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]reg
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>`;
