// A parsed request of one UDP call from 127.0.0.1:5999 (From tag a1; the BYE carries To tag b1),
// for transaction-layer tests that drive a call's server transactions by hand.
import { parseMessage, type SipRequest } from "../../src/sip/message.ts";

export function callRequest(method: "INVITE" | "ACK" | "BYE", branch: string, callId: string): SipRequest {
  const text = [
    `${method} sip:bob@127.0.0.1 SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:5999;branch=${branch}`,
    "From: <sip:alice@127.0.0.1>;tag=a1",
    `To: <sip:bob@127.0.0.1>${method === "INVITE" ? "" : ";tag=b1"}`,
    `Call-ID: ${callId}`,
    `CSeq: ${method === "BYE" ? 2 : 1} ${method}`,
    "Max-Forwards: 70",
    "Content-Length: 0",
    "",
    "",
  ].join("\r\n");
  const r = parseMessage(new TextEncoder().encode(text), "datagram");
  if (!r.ok || "status" in r.message) throw new Error("bad test request");
  return r.message;
}
