// Real peer: SIPp (uac) drives INVITE/(100)/200/ACK/BYE/200 against a minimal answering user of the
// stack, over UDP and TCP, on IPv4 and IPv6 loopback; the answering side sees the ACK and the BYE
// through its dialog.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Dialog, type DialogTermination } from "../../src/sip/dialog.ts";
import { SipStack } from "../../src/sip/stack.ts";
import { hostPort } from "../../src/sip/transport.ts";
import { runSipp } from "../helpers/sipp.ts";
import { loopbackIsTrunk } from "../helpers/loopbackTrunks.ts";

const SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";

const UAC_XML = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="invite-uac">
  <send retrans="500">
    <![CDATA[
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
      o=- 1 1 IN IP[local_ip_type] [media_ip]
      s=-
      c=IN IP[local_ip_type] [media_ip]
      t=0 0
      m=audio 6000 RTP/AVP 0
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true" rrs="true">
    <action>
      <ereg regexp="application/sdp" search_in="hdr" header="Content-Type:" check_it="true" assign_to="ct"/>
    </action>
  </recv>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="100"/>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
  <Reference variables="ct"/>
</scenario>
`;

/** The text of the scenario's `send` that begins with `start`. */
const sentText = (start: string) => {
  const at = UAC_XML.indexOf(start);
  return UAC_XML.slice(at, UAC_XML.indexOf("]]>", at)).trim();
};
const resend = (start: string, branch: string) => `  <send>
    <![CDATA[
      ${sentText(start).replace("branch=[branch]", `branch=${branch}`)}

    ]]>
  </send>`;
// After the call: the INVITE again (element 0's branch) and the BYE again (element 6's), as a UAC
// whose 200s were lost would send them. The stack's lingering transactions answer: the INVITE's
// (Accepted, Timer L) absorbs it, the BYE's (Completed, Timer J) sends its 200 again.
const RETRANSMITTING_UAC_XML = UAC_XML.replace(
  '  <Reference variables="ct"/>',
  `${resend("INVITE sip:", "[branch-8]")}
${resend("BYE [next_url]", "[branch-3]")}
  <recv response="200" crlf="true"/>
  <Reference variables="ct"/>`,
);

let stack: SipStack;
const events: string[] = [];
const invitesHandled: string[] = [];

beforeAll(async () => {
  stack = new SipStack({
    isKnownSource: loopbackIsTrunk,
    listen: [
      { transport: "udp", host: "127.0.0.1", port: 0 },
      { transport: "tcp", host: "127.0.0.1", port: 0 },
      { transport: "udp", host: "::1", port: 0 },
      { transport: "tcp", host: "::1", port: 0 },
    ],
  });
  stack.onRequest((req, tx, ctx) => {
    if (req.method !== "INVITE") {
      tx.respond(405);
      return;
    }
    invitesHandled.push(req.callId);
    tx.respond(180);
    // The Contact names the listener the INVITE came in on, so IPv6 callers get an IPv6 target.
    const contact = stack.contactFor("answer", ctx.local.transport);
    contact.uri.host = ctx.local.address;
    contact.uri.port = ctx.local.port;
    const dialog = Dialog.answer(stack, req, tx, ctx, {
      contact,
      body: SDP,
      contentType: "application/sdp",
    });
    const where = `${ctx.local.transport}/${ctx.local.address}`;
    dialog.on("ack", () => events.push(`${where}:ack`));
    dialog.on("terminated", (reason: DialogTermination) => events.push(`${where}:${reason}`));
  });
  await stack.start();
});

afterAll(() => stack.stop());

for (const host of ["127.0.0.1", "::1"]) {
  for (const transport of ["udp", "tcp"] as const) {
    test(`SIPp completes INVITE/(100)/200/ACK/BYE/200 over ${transport} on ${host} against an answering stack user`, async () => {
      const port = stack.boundEndpoints.find((e) => e.transport === transport && e.address === host)!.port;
      const result = await runSipp({
        scenario: UAC_XML,
        remote: hostPort(host, port),
        localIp: host,
        transport,
        service: "answer",
        timeoutSec: 8,
      });
      expect(result.exitCode, result.summary).toBe(0);
      expect(events).toContain(`${transport}/${host}:ack`);
      expect(events).toContain(`${transport}/${host}:bye`);
      expect(stack.dialogs.size).toBe(0);
    }, 20_000);
  }
}

test("SIPp sends the INVITE and the BYE again after the call over UDP: the lingering transactions absorb the one and answer the other (RFC 6026 Accepted, RFC 3261 §17.2.2)", async () => {
  const port = stack.boundEndpoints.find((e) => e.transport === "udp" && e.address === "127.0.0.1")!.port;
  const before = invitesHandled.length;
  const result = await runSipp({
    scenario: RETRANSMITTING_UAC_XML,
    remote: hostPort("127.0.0.1", port),
    localIp: "127.0.0.1",
    transport: "udp",
    service: "answer",
    timeoutSec: 8,
  });
  // The BYE's second 200 came (SIPp waits for it, and fails on a 481 or a new call's 180/200), and
  // the INVITE sent before it, over the same socket, made no second call.
  expect(result.exitCode, result.summary).toBe(0);
  expect(invitesHandled.length - before).toBe(1);
  expect(stack.transactions.size.lingering).toBeGreaterThanOrEqual(2);
  expect(stack.dialogs.size).toBe(0);
}, 20_000);
