// Real peer: SIPp sends OPTIONS over UDP and over TCP, on IPv4 and IPv6 loopback, from addresses the
// stack knows as a trunk's; the stack answers 200 with its capabilities.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { SipStack } from "../../src/sip/stack.ts";
import { hostPort } from "../../src/sip/transport.ts";
import { runSipp } from "../helpers/sipp.ts";
import { loopbackIsTrunk } from "../helpers/loopbackTrunks.ts";

const OPTIONS_XML = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="options">
  <send retrans="500">
    <![CDATA[
      OPTIONS sip:ping@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      To: <sip:ping@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 OPTIONS
      Max-Forwards: 70
      Accept: application/sdp
      Content-Length: 0

    ]]>
  </send>
  <recv response="200">
    <action>
      <ereg regexp="INVITE" search_in="hdr" header="Allow:" check_it="true" assign_to="allow"/>
      <ereg regexp="application/sdp" search_in="hdr" header="Accept:" check_it="true" assign_to="accept"/>
      <ereg regexp="100rel" search_in="hdr" header="Supported:" check_it="true" assign_to="supported"/>
    </action>
  </recv>
  <Reference variables="allow,accept,supported"/>
</scenario>
`;

let stack: SipStack;

beforeAll(async () => {
  stack = new SipStack({
    isKnownSource: loopbackIsTrunk,
    listen: [
      { transport: "udp", host: "127.0.0.1", port: 0 },
      { transport: "tcp", host: "127.0.0.1", port: 0 },
      { transport: "udp", host: "::1", port: 0 },
      { transport: "tcp", host: "::1", port: 0 },
    ],
    supported: ["100rel", "replaces"],
  });
  await stack.start();
});

afterAll(() => stack.stop());

for (const host of ["127.0.0.1", "::1"]) {
  for (const transport of ["udp", "tcp"] as const) {
    test(`SIPp OPTIONS over ${transport} on ${host} gets 200 with Allow, Accept and Supported`, async () => {
      const port = stack.boundEndpoints.find((e) => e.transport === transport && e.address === host)!.port;
      const result = await runSipp({ scenario: OPTIONS_XML, remote: hostPort(host, port), localIp: host, transport, timeoutSec: 5 });
      expect(result.exitCode, result.summary).toBe(0);
    }, 15_000);
  }
}
