// Typical trunk traffic used by the parser tests and bench/parser.bench.ts.

const crlf = (lines: string[]) => lines.join("\r\n");

const sdp = crlf([
  "v=0",
  "o=- 1732640000 1732640000 IN IP4 203.0.113.10",
  "s=-",
  "c=IN IP4 203.0.113.10",
  "t=0 0",
  "m=audio 31000 RTP/AVP 0 8 9 101",
  "a=rtpmap:0 PCMU/8000",
  "a=rtpmap:8 PCMA/8000",
  "a=rtpmap:9 G722/8000",
  "a=rtpmap:101 telephone-event/8000",
  "a=fmtp:101 0-16",
  "a=ptime:20",
  "a=sendrecv",
  "",
]);

export const trunkInvite = crlf([
  "INVITE sip:+4930123456@192.0.2.20:5060;transport=udp SIP/2.0",
  "Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK5f1c2a8e7d3b4c;rport",
  "Max-Forwards: 69",
  "From: \"+4915112345678\" <sip:+4915112345678@sbc.carrier.example;user=phone>;tag=as7d9f0e21",
  "To: <sip:+4930123456@trunk.example.org;user=phone>",
  "Contact: <sip:+4915112345678@203.0.113.10:5060;transport=udp>",
  "Call-ID: 7b3f0c2e4d5a6b7c8d9e0f1a2b3c4d5e@203.0.113.10",
  "CSeq: 102 INVITE",
  "User-Agent: CarrierSBC 4.2",
  "Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, INFO, UPDATE",
  "Supported: replaces, timer",
  "Session-Expires: 1800;refresher=uac",
  "Min-SE: 90",
  "P-Asserted-Identity: <sip:+4915112345678@sbc.carrier.example;user=phone>",
  "Content-Type: application/sdp",
  `Content-Length: ${sdp.length}`,
  "",
  sdp,
]);

export const trunkOk = crlf([
  "SIP/2.0 200 OK",
  "Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bK77a1b2c3d4e5f6;rport=5060;received=192.0.2.20",
  "From: <sip:trunkline@trunk.example.org>;tag=8f2e1d0c",
  "To: <sip:+4915112345678@sbc.carrier.example;user=phone>;tag=as1b2c3d4e",
  "Call-ID: 0a1b2c3d4e5f60718293a4b5c6d7e8f9@192.0.2.20",
  "CSeq: 1 INVITE",
  "Contact: <sip:+4915112345678@203.0.113.10:5060;transport=udp>",
  "Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, INFO, UPDATE",
  "Supported: replaces, timer",
  "Content-Type: application/sdp",
  `Content-Length: ${sdp.length}`,
  "",
  sdp,
]);

export const trunkAck = crlf([
  "ACK sip:+4915112345678@203.0.113.10:5060;transport=udp SIP/2.0",
  "Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bK0c9d8e7f6a5b4c;rport",
  "Max-Forwards: 70",
  "From: <sip:trunkline@trunk.example.org>;tag=8f2e1d0c",
  "To: <sip:+4915112345678@sbc.carrier.example;user=phone>;tag=as1b2c3d4e",
  "Call-ID: 0a1b2c3d4e5f60718293a4b5c6d7e8f9@192.0.2.20",
  "CSeq: 1 ACK",
  "Content-Length: 0",
  "",
  "",
]);

export const trunkBye = crlf([
  "BYE sip:trunkline@192.0.2.20:5060 SIP/2.0",
  "Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK1a2b3c4d5e6f70;rport",
  "Max-Forwards: 70",
  "From: <sip:+4915112345678@sbc.carrier.example;user=phone>;tag=as1b2c3d4e",
  "To: <sip:trunkline@trunk.example.org>;tag=8f2e1d0c",
  "Call-ID: 0a1b2c3d4e5f60718293a4b5c6d7e8f9@192.0.2.20",
  "CSeq: 103 BYE",
  "User-Agent: CarrierSBC 4.2",
  "Content-Length: 0",
  "",
  "",
]);
