// Real peer: SIPp places INVITEs faster than a deliberately tiny overload limit admits
// (limits.maxUnansweredInvites = 2, src/sip/overload.ts). The answering user holds the INVITEs it
// gets unanswered until the stack has refused one, so the limit is reached by condition, not by
// timing. Every call ends one of two ways, both a success for SIPp: a stateless 503 carrying
// Retry-After (SIPp checks the header and ACKs), or admitted and completed (180, 200, ACK, BYE, 200).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Dialog, type DialogTermination } from "../../src/sip/dialog.ts";
import { SipStack } from "../../src/sip/stack.ts";
import type { ServerTransaction } from "../../src/sip/transaction.ts";
import type { SipRequest } from "../../src/sip/message.ts";
import type { InboundContext } from "../../src/sip/transport.ts";
import { hostPort } from "../../src/sip/transport.ts";
import { loopbackIsTrunk } from "../helpers/loopbackTrunks.ts";
import { runSipp } from "../helpers/sipp.ts";

const SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";
const CALLS = 30;
const RETRY_AFTER_SEC = 3;

const UAC_XML = `<?xml version="1.0" encoding="UTF-8"?>
<scenario name="overload-uac">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [local_ip]
t=0 0
m=audio 6000 RTP/AVP 0
]]></send>
  <recv response="100" optional="true"/>
  <recv response="503" optional="true" next="refused">
    <action>
      <ereg regexp="[0-9]+" search_in="hdr" header="Retry-After:" check_it="true" assign_to="retry"/>
      <log message="refused [call_id] retry-after=[$retry]"/>
    </action>
  </recv>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0
]]></send>
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0
]]></send>
  <recv response="200">
    <action><log message="completed [call_id]"/></action>
  </recv>
  <nop next="end"/>
  <label id="refused"/>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
[last_Via:]
From: <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0
]]></send>
  <label id="end"/>
  <Reference variables="retry"/>
</scenario>
`;

let stack: SipStack;
const held: { req: SipRequest; tx: ServerTransaction; ctx: InboundContext }[] = [];
const ended: DialogTermination[] = [];
let admitted = 0;
let releaser: ReturnType<typeof setInterval>;

function answer({ req, tx, ctx }: (typeof held)[number]): void {
  tx.respond(180);
  const dialog = Dialog.answer(stack, req, tx, ctx, {
    contact: stack.contactFor("answer", ctx.local.transport),
    body: SDP,
    contentType: "application/sdp",
  });
  dialog.on("terminated", (reason: DialogTermination) => void ended.push(reason));
}

beforeAll(async () => {
  stack = new SipStack({
    isKnownSource: loopbackIsTrunk,
    listen: [{ transport: "udp", host: "127.0.0.1", port: 0 }],
    limits: { maxUnansweredInvites: 2, retryAfterSec: RETRY_AFTER_SEC },
  });
  stack.onRequest((req, tx, ctx) => {
    admitted++;
    held.push({ req, tx, ctx });
  });
  // Admitted INVITEs wait for their answer until the stack has refused one: the limit is then
  // known to have been reached while they waited.
  releaser = setInterval(() => {
    if (stack.counters.overloaded.unanswered_invites === 0) return;
    for (const call of held.splice(0)) answer(call);
  }, 5);
  await stack.start();
});

afterAll(async () => {
  clearInterval(releaser);
  await stack.stop();
});

test("INVITEs beyond the overload limit get 503 with Retry-After from SIPp's view; the admitted calls complete", async () => {
  const port = stack.boundEndpoints.find((e) => e.transport === "udp")!.port;
  const result = await runSipp({
    scenario: UAC_XML,
    remote: hostPort("127.0.0.1", port),
    service: "answer",
    calls: CALLS,
    timeoutSec: 30,
    extraArgs: ["-r", "200", "-l", "100"],
  });
  expect(result.exitCode, result.summary).toBe(0);
  const refused = result.logs.split("\n").filter((l) => l.startsWith("refused "));
  const completed = result.logs.split("\n").filter((l) => l.startsWith("completed "));
  expect(refused.length).toBeGreaterThan(0);
  for (const line of refused) expect(line).toEndWith(`retry-after=${RETRY_AFTER_SEC}`);
  expect(refused.length + completed.length, result.logs).toBe(CALLS);
  // Every call the stack admitted was answered and hung up by SIPp's BYE.
  expect(completed.length).toBe(admitted);
  expect(ended.filter((r) => r === "bye")).toHaveLength(admitted);
  expect(stack.counters.overloaded.unanswered_invites).toBeGreaterThanOrEqual(refused.length);
  expect(stack.transactions.invitesAwaitingTu).toBe(0);
}, 60_000);
