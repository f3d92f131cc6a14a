// Real peer, the other way round: our stack places the call (INVITE, ACK for the 2xx, BYE) and a
// SIPp UAS answers it, over UDP and TCP. Also proves startSipp's server mode.
import { afterEach, expect, test } from "bun:test";
import { Dialog } from "../../src/sip/dialog.ts";
import { parseUri } from "../../src/sip/message.ts";
import { SipStack } from "../../src/sip/stack.ts";
import type { Endpoint } from "../../src/sip/transport.ts";
import { startSipp } from "../helpers/sipp.ts";
import { loopbackIsTrunk } from "../helpers/loopbackTrunks.ts";

// SIPp's built-in "uas" minus its 4 s closing timewait; [last_*] echo the request's headers.
const UAS_XML = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="answer">
  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=- 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
</scenario>
`;

let stack: SipStack | undefined;
afterEach(() => stack?.stop());

for (const transport of ["udp", "tcp"] as const) {
  test(`the stack calls SIPp (uas) over ${transport}: INVITE/200/ACK/BYE/200`, async () => {
    stack = new SipStack({ isKnownSource: loopbackIsTrunk, listen: [{ transport, host: "127.0.0.1", port: 0 }] });
    await stack.start();
    const peer = await startSipp({ scenario: UAS_XML, transport, timeoutSec: 8 });
    await peer.ready();
    const dest: Endpoint = { transport, address: "127.0.0.1", port: peer.localPort };
    const invite = stack.createOutOfDialogRequest({
      method: "INVITE",
      uri: parseUri(`sip:service@127.0.0.1:${peer.localPort}`)!,
      from: { uri: parseUri("sip:trunkline@127.0.0.1")!, params: new Map() },
      to: { uri: parseUri("sip:service@127.0.0.1")!, params: new Map() },
      transport,
      body: "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n",
      contentType: "application/sdp",
    });
    const tx = stack.sendRequest(invite, dest);
    const provisional: number[] = [];
    tx.on("provisional", (res) => provisional.push(res.status));
    const outcome = await tx.outcome;
    if (outcome.kind !== "final") throw new Error(`INVITE ended with ${outcome.kind}`);
    expect(outcome.response.status).toBe(200);
    expect(provisional).toContain(180);
    const dialog = Dialog.fromInvite2xx(stack, invite, outcome.response, tx, dest);
    const bye = await dialog.bye();
    expect(bye?.kind === "final" && bye.response.status).toBe(200);
    const result = await peer.done;
    expect(result.exitCode, result.summary).toBe(0);
  }, 20_000);
}
