// SIP headers for applications, against SIPp: the dial API's X- headers and the caller ID's
// P-Asserted-Identity / Privacy reach the UAS (its regexp actions require and log them); bad
// headers are refused naming the field; an inbound caller's X-Customer-Id becomes an attribute of
// its participant (participants list, participant.joined) and of its call record.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { subscribeEvents, type AnyEvent } from "../../src/events.ts";
import { callUntil, findCall, startCallsApp, testApplicationYaml, type CallsApp } from "../helpers/callsApp.ts";
import { startRtpPeer } from "../helpers/rtpPeer.ts";
import { freePort, runSipp, startSipp } from "../helpers/sipp.ts";
import { until } from "../helpers/until.ts";

const fixture = (name: string) => join(import.meta.dir, "../fixtures/sipp", name);

let app: CallsApp;
let uasPort: number;

beforeAll(async () => {
  uasPort = await freePort();
  app = await startCallsApp(`
rtp: { portMin: 55000, portMax: 55999, mediaTimeoutSec: 0 }
calls:
  headersToAttributes: { X-Customer-Id: customerId, X-Not-Sent: absent }
trunks:
  - { id: headers, domain: 127.0.0.1, port: ${uasPort}, username: trunkuser, optionsIntervalSec: 0 }
${testApplicationYaml({ "2000": "room" }, '    channels:\n      room: { callerId: { assertedIdentity: "sip:{userId}@127.0.0.1", privacy: "id" } }')}
`);
});

afterAll(async () => {
  await app?.close();
});

const dialPath = "/api/v1/applications/app1/channels/room/calls";

async function dialWith(headers: Record<string, string>): Promise<string> {
  const res = await app.harness.call("POST", dialPath, { to: "+15557654321", client: { id: "c1", userId: "agent7" }, headers });
  expect(res.status, res.text).toBe(201);
  return res.json.id;
}

describe("outbound headers", () => {
  test("X- headers from the dial request and the caller ID's P-Asserted-Identity and Privacy reach the UAS", async () => {
    const uas = await startSipp({ scenario: fixture("calls-uas-headers.xml"), localPort: uasPort, timeoutSec: 10 });
    await uas.ready();
    const id = await dialWith({ "X-Customer-Id": "cust-42", "X-Campaign": "spring sale" });
    const r = await uas.done;
    expect(r.exitCode, r.summary).toBe(0);
    expect(r.logs).toMatch(/X-CUSTOMER-ID\s+cust-42\s*$/m);
    expect(r.logs).toMatch(/X-CAMPAIGN\s+spring sale\s*$/m);
    expect(r.logs).toMatch(/PAI\s+<sip:agent7@127\.0\.0\.1>\s*$/m);
    expect(r.logs).toMatch(/PRIVACY\s+id\s*$/m);
    expect(await callUntil(app, id, (x) => x.state === "ended")).toMatchObject({ endReason: "rejected", sipStatus: 486 });
  }, 20_000);

  test("the dial request's P-Asserted-Identity and Privacy replace the caller ID's", async () => {
    const uas = await startSipp({ scenario: fixture("calls-uas-headers.xml"), localPort: uasPort, timeoutSec: 10 });
    await uas.ready();
    await dialWith({ "X-Customer-Id": "c", "X-Campaign": "k", "p-asserted-identity": '"Desk" <tel:+15550009999>', Privacy: "none" });
    const r = await uas.done;
    expect(r.exitCode, r.summary).toBe(0);
    expect(r.logs).toMatch(/PAI\s+"Desk" <tel:\+15550009999>\s*$/m);
    expect(r.logs).toMatch(/PRIVACY\s+none\s*$/m);
    // One of each in the trace (only the INVITE carries them): the caller ID's were replaced, not repeated.
    expect(r.messages.match(/^P-Asserted-Identity:/gim)).toHaveLength(1);
    expect(r.messages.match(/^Privacy:/gim)).toHaveLength(1);
  }, 20_000);

  test("headers outside the allowed set, with CR/LF, too long or too many are refused naming the field", async () => {
    const refused = async (headers: unknown, field: string) => {
      const res = await app.harness.call("POST", dialPath, { to: "+15557654321", client: { id: "c1" }, headers });
      expect(res.status, res.text).toBe(400);
      expect(res.json.error.field).toBe(field);
    };
    await refused({ Route: "<sip:evil@127.0.0.1>" }, "headers.Route");
    await refused({ "X-Bad Name": "1" }, "headers.X-Bad Name");
    await refused({ "X-Ok": "a\r\nVia: evil" }, "headers.X-Ok");
    await refused({ "X-Ok": "a".repeat(513) }, "headers.X-Ok");
    await refused({ "X-": "1" }, "headers.X-");
    await refused(Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`X-H${i}`, "v"])), "headers");
    await refused({ "X-Ok": 7 }, "headers.X-Ok");
  });
});

describe("inbound headers as attributes", () => {
  test("a caller's X-Customer-Id shows as an attribute in the participants list, participant.joined and GET /calls/:id", async () => {
    const joined: AnyEvent[] = [];
    const stop = subscribeEvents((event) => {
      if (event.type === "participant.joined") joined.push(event);
    });
    const peer = await startRtpPeer(440, { replyToSender: true });
    try {
      const run = runSipp({
        scenario: fixture("calls-uac-customer-id.xml"),
        remote: `127.0.0.1:${app.sipPort}`,
        service: "2000",
        keys: { rtpport: peer.port, testcase: "attributes", customer: "cust-77" },
        extraArgs: ["-d", "3000"],
        timeoutSec: 15,
      });
      const call = await findCall(app, (c) => c.direction === "inbound" && c.state === "answered");
      await until(() => app.registry.participants("app1", "room").some((p) => p.callId === call.id), { what: () => app.registry.participants("app1", "room") });
      const participant = app.registry.participants("app1", "room").find((p) => p.callId === call.id);
      expect(participant?.attributes).toEqual({ customerId: "cust-77" });
      expect(call.attributes).toEqual({ customerId: "cust-77" });
      const event = joined.find((e) => e.type === "participant.joined" && e.data.callId === call.id);
      expect(event?.data).toMatchObject({ callId: call.id, attributes: { customerId: "cust-77" } });
      const r = await run;
      expect(r.exitCode, r.summary).toBe(0);
      expect(await callUntil(app, call.id, (x) => x.state === "ended")).toMatchObject({ endReason: "remote_bye", attributes: { customerId: "cust-77" } });
    } finally {
      stop();
      peer.close();
    }
  }, 30_000);
});
