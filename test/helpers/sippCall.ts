// A SIPp caller's scenario, the one template of the tests and benches that call through the cluster
// front or straight at a node: INVITE (with a PCMU offer, or none), 200 with its Record-Route set,
// ACK, then either our BYE at once or the far end's BYE answered. The INVITE's responses name their
// transaction (start_txn/response_txn): a front with several UDP workers may forward a 180 after the
// 200 that followed it, and SIPp ignores a late provisional of a known transaction instead of failing
// the call on an unexpected message.
//
//   const xml = sippCall({ name: "call", requestUri: "sip:[service]@[remote_ip]:[remote_port]", user: "+15550001111", tag: "hm",
//     offerPort: "[rtpport]", ending: "until-bye" });
export interface SippCallOptions {
  name: string;
  /** The INVITE's Request-URI, in SIPp keywords ("sip:[service]@[remote_ip]:[remote_port]", "[contact]"). */
  requestUri: string;
  /** The To header; default the Request-URI in angle brackets. */
  to?: string;
  /** From user (the caller's number). */
  user: string;
  /** Contact user; default `user`. */
  contactUser?: string;
  /** Makes the From tag unique per scenario: tag=[pid]TAG[call_number]. */
  tag: string;
  /** A preloaded Route header (the front as a node's outbound proxy). */
  route?: string;
  /** A PCMU offer with this media port ("[rtpport]" for SIPp's own RTP, "9" for none); no body without it. */
  offerPort?: string;
  /** The offer's direction attribute (RFC 3264 §5.1); default sendrecv. "sendonly": the answerer sends nothing. */
  direction?: "sendrecv" | "sendonly";
  /** "hang-up": our BYE at once (or after `holdMs`), waiting for its 200; "until-bye": the far end's BYE, answered 200. */
  ending: "hang-up" | "until-bye";
  /** With "hang-up": how long the call stays up after the ACK before our BYE (default 0). */
  holdMs?: number;
  /** Measures INVITE→200 as SIPp's response time 1 (benches). */
  measureAnswer?: boolean;
  /** XML added before </scenario> (a ResponseTimeRepartition, say). */
  trailer?: string;
}

export function sippCall(o: SippCallOptions): string {
  const from = `From: <sip:${o.user}@[local_ip]:[local_port]>;tag=[pid]${o.tag}[call_number]`;
  const inDialog = (method: string, cseq: number) => `${method} [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
${from}
[last_To:]
[routes]
Call-ID: [call_id]
CSeq: ${cseq} ${method}
Max-Forwards: 70
Content-Length: 0
`;
  const offer =
    o.offerPort === undefined
      ? "Content-Length: 0\n"
      : `Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [local_ip]
t=0 0
m=audio ${o.offerPort} RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=${o.direction ?? "sendrecv"}`;
  const ending =
    o.ending === "hang-up"
      ? `${o.holdMs ? `  <pause milliseconds="${o.holdMs}"/>\n` : ""}  <send retrans="500"><![CDATA[
${inDialog("BYE", 2)}
]]></send>
  <recv response="200"/>`
      : `  <recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>`;
  return `<?xml version="1.0" encoding="UTF-8"?>
<scenario name="${o.name}">
  <send retrans="500" start_txn="invite"><![CDATA[
INVITE ${o.requestUri} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
${o.route ? `Route: ${o.route}\n` : ""}${from}
To: ${o.to ?? `<${o.requestUri}>`}
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:${o.contactUser ?? o.user}@[local_ip]:[local_port]>
Max-Forwards: 70
${offer}
]]></send>
  <recv response="100" optional="true" response_txn="invite"/>
  <recv response="180" optional="true" response_txn="invite"/>
  <recv response="200" rrs="true" response_txn="invite"${o.measureAnswer ? ` rtd="true"` : ""}/>
  <send ack_txn="invite"><![CDATA[
${inDialog("ACK", 1)}
]]></send>
${ending}
${o.trailer ?? ""}</scenario>`;
}
