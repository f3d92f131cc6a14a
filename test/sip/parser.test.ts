import { describe, expect, test } from "bun:test";
import {
  BRANCH_COOKIE, SipRequest, SipResponse, createRequest, createResponse, formatNameAddr, formatUri, formatVia,
  keepAlivePrefix, newBranch, newCallId, newTag, nextMessageLength, NO_PARAMS, NO_URI_HEADERS, parseMessage, parseNameAddr, parseUri,
  parseVia, resolveHeaderName, serializeMessage, splitTopLevel, uriEquals, type ParseResult,
} from "../../src/sip/message.ts";
import { mulberry32 } from "./random.ts";
import { trunkAck, trunkInvite, trunkOk } from "./samples.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

function ok(r: ParseResult): SipRequest | SipResponse {
  if (!r.ok) throw new Error(`rejected: ${r.error.status} ${r.error.reason}`);
  return r.message;
}

function req(text: string, framing: "datagram" | "stream" = "datagram"): SipRequest {
  const m = ok(parseMessage(enc(text), framing));
  if (!(m instanceof SipRequest)) throw new Error("not a request");
  return m;
}

function rejected(text: string | Uint8Array, framing: "datagram" | "stream" = "datagram") {
  const r = parseMessage(typeof text === "string" ? enc(text) : text, framing);
  if (r.ok) throw new Error("accepted");
  return r.error;
}

const base = [
  "OPTIONS sip:bob@example.com SIP/2.0",
  "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc",
  "From: <sip:alice@example.com>;tag=1",
  "To: <sip:bob@example.com>",
  "Call-ID: c1@192.0.2.1",
  "CSeq: 1 OPTIONS",
  "Max-Forwards: 70",
];
const msg = (...extra: string[]) => [...base, ...extra, "", ""].join("\r\n");

describe("parseMessage", () => {
  test("reads the start line and the mandatory headers of a trunk INVITE", () => {
    const m = req(trunkInvite);
    expect(m.method).toBe("INVITE");
    expect(m.uri).toEqual({
      scheme: "sip", user: "+4930123456", host: "192.0.2.20", port: 5060,
      params: new Map([["transport", "udp"]]), headers: new Map(),
    });
    expect(m.vias).toEqual([{
      protocol: "SIP/2.0", transport: "UDP", host: "203.0.113.10", port: 5060,
      params: new Map<string, string | null>([["branch", "z9hG4bK5f1c2a8e7d3b4c"], ["rport", null]]),
    }]);
    expect(m.from.displayName).toBe("+4915112345678");
    expect(m.from.params.get("tag")).toBe("as7d9f0e21");
    expect(m.to.params.has("tag")).toBe(false);
    expect(m.callId).toBe("7b3f0c2e4d5a6b7c8d9e0f1a2b3c4d5e@203.0.113.10");
    expect(m.cseq).toEqual({ seq: 102, method: "INVITE" });
    expect(m.maxForwards).toBe(69);
    expect(m.contentType).toBe("application/sdp");
    expect(m.bodyText.startsWith("v=0\r\n")).toBe(true);
    expect(m.body.length).toBe(m.contentLength!);
    expect(m.contacts[0]?.uri.port).toBe(5060);
    expect(m.getHeaders("Allow")).toEqual(["INVITE", "ACK", "CANCEL", "OPTIONS", "BYE", "REFER", "NOTIFY", "INFO", "UPDATE"]);
    expect(m.supported).toEqual(["replaces", "timer"]);
  });

  test("a response whose From or To URI does not parse keeps its tags (it still matches its transaction); a request gets 400", () => {
    const odd = trunkOk.replace(/^From: .*$/m, "From: <sip:@127.0.0.1>;tag=ft1").replace(/^To: .*$/m, "To: <sip:a b@127.0.0.1>;tag=tt2");
    const m = ok(parseMessage(enc(odd), "datagram"));
    if (!(m instanceof SipResponse)) throw new Error("not a response");
    expect(m.from.params.get("tag")).toBe("ft1");
    expect(m.to.params.get("tag")).toBe("tt2");
    expect(m.from.uri.host).toBe("");
    expect(rejected(trunkInvite.replace(/^From: .*$/m, "From: <sip:@127.0.0.1>;tag=ft1")).reason).toBe("Malformed From header");
    expect(rejected(trunkOk.replace(/^From: .*$/m, "From: <sip:@127.0.0.1;tag=ft1")).reason).toBe("Malformed From header");
  });

  test("reads a response's status, reason, received and rport", () => {
    const m = ok(parseMessage(enc(trunkOk), "datagram"));
    if (!(m instanceof SipResponse)) throw new Error("not a response");
    expect([m.status, m.reason]).toEqual([200, "OK"]);
    expect(m.vias[0]?.params.get("received")).toBe("192.0.2.20");
    expect(m.vias[0]?.params.get("rport")).toBe("5060");
    expect(m.to.params.get("tag")).toBe("as1b2c3d4e");
  });

  test("expands compact forms and matches names case-insensitively", () => {
    const m = req([
      "INVITE sip:bob@example.com SIP/2.0", "v: SIP/2.0/UDP h;branch=z9hG4bK1", "f: <sip:a@b>;tag=9", "t: sip:bob@example.com",
      "i: abc", "CSEQ: 5 INVITE", "m: <sip:a@192.0.2.9>", "c: application/sdp", "k: timer", "s: hi", "e: gzip",
      "o: dialog", "u: refer", "r: <sip:x@y>", "b: <sip:z@y>", "x: 90", "y: sig", "l: 0", "", "",
    ].join("\r\n"));
    expect(m.headerFields.map((f) => f.name)).toEqual([
      "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Content-Type", "Supported", "Subject", "Content-Encoding",
      "Event", "Allow-Events", "Refer-To", "Referred-By", "Session-Expires", "Identity", "Content-Length",
    ]);
    expect(m.getHeader("call-id")).toBe("abc");
    expect(m.getHeader("I")).toBe("abc");
    expect(m.getHeader("CALL-ID")).toBe("abc");
    expect(m.getHeader("refer-to")).toBe("<sip:x@y>");
  });

  test("unfolds continuation lines into one space", () => {
    const m = req(msg("Subject: first", "  second\tpart", "\tthird"));
    expect(m.getHeader("Subject")).toBe("first second\tpart third");
  });

  test("splits list headers at top-level commas only", () => {
    const m = req(msg(
      'Contact: "Doe, John" <sip:j,k@h;x=a>;q=0.5, <sip:k@h>',
      "Contact: sip:l@h",
      "Route: <sip:p1;lr>, <sip:p2;lr>",
      'WWW-Authenticate: Digest realm="a,b", nonce="1"',
      "Date: Sat, 13 Nov 2010 23:29:00 GMT",
    ));
    expect(m.getHeaders("contact")).toEqual(['"Doe, John" <sip:j,k@h;x=a>;q=0.5', "<sip:k@h>", "sip:l@h"]);
    expect(m.contacts.map((c) => c.displayName ?? null)).toEqual(["Doe, John", null, null]);
    expect(m.contacts[0]?.params.get("q")).toBe("0.5");
    expect(m.routes.map((r) => r.uri.host)).toEqual(["p1", "p2"]);
    expect(m.getHeaders("www-authenticate")).toEqual(['Digest realm="a,b", nonce="1"']);
    expect(m.getHeader("date")).toBe("Sat, 13 Nov 2010 23:29:00 GMT");
  });

  test("datagram: the body is cut at Content-Length, or runs to the end without one", () => {
    expect(dec(req(msg("Content-Length: 3").replace(/\r\n\r\n$/, "\r\n\r\nabcdef")).body)).toBe("abc");
    expect(dec(req(msg().replace(/\r\n\r\n$/, "\r\n\r\nabcdef")).body)).toBe("abcdef");
  });

  test("datagram: Content-Length beyond the datagram is a 400 with a partial request", () => {
    const e = rejected(msg("Content-Length: 10").replace(/\r\n\r\n$/, "\r\n\r\nabc"));
    expect([e.status, e.reason]).toEqual([400, "Content-Length larger than datagram"]);
    expect(e.request?.callId).toBe("c1@192.0.2.1");
  });

  test("stream: Content-Length is required", () => {
    expect(rejected(msg(), "stream").reason).toBe("Missing Content-Length header");
    expect(req(msg("Content-Length: 0"), "stream").body.length).toBe(0);
  });

  test("leading CRLFs before the start line are ignored", () => {
    expect(req("\r\n\r\n" + msg()).method).toBe("OPTIONS");
  });

  test("bare LF line endings are accepted", () => {
    expect(req(msg("Content-Length: 2").replace(/\r\n/g, "\n") + "hi").bodyText).toBe("hi");
  });

  test("limits: over 64 KiB is 413, a too long line or too many headers is 400", () => {
    const big = msg(`Content-Length: 70000`).replace(/\r\n\r\n$/, "\r\n\r\n" + "x".repeat(70000));
    const e = rejected(big);
    expect([e.status, e.reason]).toEqual([413, "Message too large"]);
    expect(e.request).toBeDefined();
    expect(rejected(msg(`X-Long: ${"a".repeat(9000)}`)).reason).toBe("Header line too long");
    expect(rejected(msg(...Array.from({ length: 300 }, (_, i) => `X-H${i}: v`))).reason).toBe("Too many header fields");
  });

  test("errors are values with a reason naming the defect", () => {
    expect(rejected("").reason).toBe("Empty message");
    expect(rejected(msg("Max-Forwards: 256").replace("Max-Forwards: 70\r\n", "")).reason).toBe("Malformed Max-Forwards header");
    expect(rejected(msg("Max-Forwards: 1")).reason).toBe("Multiple Max-Forwards headers");
    expect(rejected(msg().replace("Via:", "Via : nonsense\r\nX:")).reason).toBe("Malformed Via header");
    expect(rejected(msg().replace("Call-ID: c1@192.0.2.1", "Call-ID: a b")).reason).toBe("Malformed Call-ID header");
    expect(rejected(msg("bad header line")).reason).toBe("Malformed header line");
    expect(rejected(msg("Bad Name: x")).reason).toBe("Malformed header name");
    expect(rejected(msg().replace("SIP/2.0\r\n", "SIP/3.0\r\n")).status).toBe(505);
    expect(rejected("SIP/2.0 99 Too Small\r\n\r\n").kind).toBe("response");
    expect(rejected(msg().replace("Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc\r\n", "")).request).toBeUndefined();
  });

  test("never answers a request whose Via is unusable", () => {
    const e = rejected(msg().replace("SIP/2.0/UDP 192.0.2.1:5060", "garbage"));
    expect(e.status).toBe(400);
    expect(e.request).toBeUndefined();
  });

  test("the body is a copy, independent of the input buffer", () => {
    const bytes = enc(msg("Content-Length: 2") + "hi");
    const m = req(dec(bytes));
    bytes.fill(0);
    expect(m.bodyText).toBe("hi");
  });
});

describe("URIs, name-addr and Via", () => {
  test("parses user, password, IPv6 host, port, params and headers", () => {
    const u = parseUri("sips:alice:secret@[2001:db8::1]:5061;transport=tcp;lr;Maddr=x?subject=hi&priority=urgent");
    expect(u).toEqual({
      scheme: "sips", user: "alice", password: "secret", host: "2001:db8::1", port: 5061,
      params: new Map<string, string | null>([["transport", "tcp"], ["lr", null], ["maddr", "x"]]),
      headers: new Map([["subject", "hi"], ["priority", "urgent"]]),
    });
    expect(formatUri(u!)).toBe("sips:alice:secret@[2001:db8::1]:5061;transport=tcp;lr;maddr=x?subject=hi&priority=urgent");
  });

  test("URIs and name-addrs without parameters or headers share the empty maps; the others have their own", () => {
    const bare = parseUri("sip:alice@192.0.2.1")!;
    expect([bare.params, bare.headers]).toEqual([NO_PARAMS, NO_URI_HEADERS]);
    expect(bare.params).toBe(NO_PARAMS);
    expect(bare.headers).toBe(NO_URI_HEADERS);
    const full = parseUri("sip:alice@192.0.2.1;transport=tcp?subject=hi")!;
    expect([full.params.get("transport"), full.headers.get("subject")]).toEqual(["tcp", "hi"]);
    expect(NO_PARAMS.size + NO_URI_HEADERS.size).toBe(0);
    const to = parseNameAddr("Bob <sip:bob@192.0.2.2>")!;
    expect(to.params).toBe(NO_PARAMS);
    expect(to.uri.params).toBe(NO_PARAMS);
    expect(parseNameAddr("<sip:bob@192.0.2.2> ;tag=x")!.params.get("tag")).toBe("x");
    // A request built from a dialog's URIs adds its tag to a map of its own (dialog.ts, stack.ts).
    const res = parseMessage(new TextEncoder().encode(trunkInvite), "datagram");
    if (!res.ok) throw new Error(res.error.reason);
    expect(res.message.to.params).toBe(NO_PARAMS);
  });

  test("keeps %-escapes as received", () => {
    expect(parseUri("sip:%61lice@h")?.user).toBe("%61lice");
    expect(parseUri("sip:a%zz@h")).toBeUndefined();
  });

  test("tel and unknown schemes", () => {
    const tel = parseUri("tel:+4930123;phone-context=example.com");
    expect([tel?.user, tel?.params.get("phone-context")]).toEqual(["+4930123", "example.com"]);
    expect(formatUri(tel!)).toBe("tel:+4930123;phone-context=example.com");
    expect(parseUri("urn:service:sos")?.opaque).toBe("service:sos");
  });

  test("rejects broken URIs", () => {
    for (const s of ["sip:", "sip:@h", "sip:h:99999", "sip:h:", "sip:[::1", "sip:[1:2:3]", "sip:a b", "nocolon", "1sip:h", "sip:h;", "sip:h?"]) {
      expect(parseUri(s)).toBeUndefined();
    }
  });

  test("name-addr: quoted and token display names, addr-spec params belong to the header", () => {
    expect(parseNameAddr('"A \\"B\\"" <sip:a@h>;tag=1')).toEqual({
      displayName: 'A "B"', uri: parseUri("sip:a@h")!, params: new Map([["tag", "1"]]),
    });
    expect(parseNameAddr("Alice  Smith<sip:a@h>")?.displayName).toBe("Alice Smith");
    const spec = parseNameAddr("sip:a@h;tag=2 ; foo");
    expect(spec?.uri.params.size).toBe(0);
    expect([...spec!.params]).toEqual([["tag", "2"], ["foo", null]]);
    expect(parseNameAddr("sip:a@h?x=1")).toBeUndefined(); // RFC 3261 §20: needs <>
    expect(parseNameAddr("< sip:a@h>")).toBeUndefined();
    expect(parseNameAddr('"open <sip:a@h>')).toBeUndefined();
  });

  test("formatNameAddr round-trips", () => {
    const n = parseNameAddr('"Doe, J\\\\" <sip:j@h;lr>;tag=x;expires=60')!;
    expect(parseNameAddr(formatNameAddr(n))).toEqual(n);
  });

  test("Via with LWS, IPv6, received and rport", () => {
    const v = parseVia("SIP / 2.0 / tcp [2001:db8::9] : 5070 ; branch = z9hG4bKx ; rport ; received=2001:db8::1");
    expect(v).toEqual({
      protocol: "SIP/2.0", transport: "TCP", host: "2001:db8::9", port: 5070,
      params: new Map<string, string | null>([["branch", "z9hG4bKx"], ["rport", null], ["received", "2001:db8::1"]]),
    });
    expect(formatVia(v!)).toBe("SIP/2.0/TCP [2001:db8::9]:5070;branch=z9hG4bKx;rport;received=2001:db8::1");
    expect(parseVia("SIP/2.0/UDP")).toBeUndefined();
    expect(parseVia("SIP/2.0/UDP h;;")).toBeUndefined();
  });

  test("splitTopLevel respects quotes, escapes and angle brackets", () => {
    expect(splitTopLevel('"a,\\"b," <sip:x,y@h>, c')).toEqual(['"a,\\"b," <sip:x,y@h>', "c"]);
  });
});

describe("message editing and serializing", () => {
  test("serializeMessage round-trips parsed messages and rewrites Content-Length", () => {
    for (const text of [trunkInvite, trunkOk, trunkAck]) {
      const m = ok(parseMessage(enc(text), "datagram"));
      expect(dec(serializeMessage(m))).toBe(text);
    }
    const m = req(trunkInvite);
    m.body = enc("v=0\r\n");
    const again = req(dec(serializeMessage(m)));
    expect([again.contentLength, again.bodyText]).toEqual([5, "v=0\r\n"]);
  });

  test("setHeader, addHeader (prepend) and removeHeader keep order and refresh parsed views", () => {
    const m = req(msg("Contact: <sip:a@h>"));
    expect(m.vias.length).toBe(1);
    m.addHeader("v", "SIP/2.0/TCP proxy.example.com;branch=z9hG4bKtop", { prepend: true });
    expect(m.vias.map((v) => v.host)).toEqual(["proxy.example.com", "192.0.2.1"]);
    expect(m.headerFields[0]?.name).toBe("Via");
    m.setHeader("contact", ["<sip:b@h>", "<sip:c@h>"]);
    expect(m.contacts.map((c) => c.uri.user)).toEqual(["b", "c"]);
    m.setHeader("To", "<sip:bob@example.com>;tag=t9");
    expect(m.to.params.get("tag")).toBe("t9");
    m.removeHeader("Max-Forwards");
    expect(m.maxForwards).toBeUndefined();
    m.setHeader("CSeq", "7 OPTIONS");
    expect(m.cseq.seq).toBe(7);
    const again = req(dec(serializeMessage(m)));
    expect(again.headerFields.slice(0, -1)).toEqual([...m.headerFields]);
    expect(again.headerFields.at(-1)).toEqual({ name: "Content-Length", key: "content-length", value: "0" });
  });

  test("createRequest builds a parseable request from typed values", () => {
    const r = createRequest({
      method: "INVITE", uri: parseUri("sip:+4930123@trunk.example.org")!,
      from: { displayName: "Trunkline", uri: parseUri("sip:tl@example.com")!, params: new Map([["tag", "f1"]]) },
      to: { uri: parseUri("sip:+4930123@trunk.example.org")!, params: new Map() },
      callId: "cid-1", cseq: 1,
      via: [{ protocol: "SIP/2.0", transport: "UDP", host: "192.0.2.5", port: 5062, params: new Map([["branch", "z9hG4bKq"], ["rport", null]]) }],
      contact: { uri: parseUri("sip:tl@192.0.2.5:5062")!, params: new Map() },
      headers: [["Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS"]],
      body: "v=0\r\n", contentType: "application/sdp",
    });
    const text = dec(serializeMessage(r));
    expect(text).toBe([
      "INVITE sip:+4930123@trunk.example.org SIP/2.0",
      "Via: SIP/2.0/UDP 192.0.2.5:5062;branch=z9hG4bKq;rport",
      "Max-Forwards: 70",
      'From: "Trunkline" <sip:tl@example.com>;tag=f1',
      "To: <sip:+4930123@trunk.example.org>",
      "Call-ID: cid-1",
      "CSeq: 1 INVITE",
      "Contact: <sip:tl@192.0.2.5:5062>",
      "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS",
      "Content-Type: application/sdp",
      "Content-Length: 5",
      "",
      "v=0",
      "",
    ].join("\r\n"));
    expect(req(text).cseq).toEqual({ seq: 1, method: "INVITE" });
  });

  test("createResponse copies Via, From, To (+ tag), Call-ID and CSeq (RFC 3261 §8.2.6.2)", () => {
    const r = req(trunkInvite);
    const res = createResponse(r, 180, undefined, { toTag: "tt1" });
    expect(res.reason).toBe("Ringing");
    expect(res.headerFields.map((f) => f.name)).toEqual(["Via", "From", "To", "Call-ID", "CSeq"]);
    expect(res.getHeader("Via")).toBe(r.getHeader("Via"));
    expect(res.to.params.get("tag")).toBe("tt1");
    const again = ok(parseMessage(serializeMessage(res), "datagram")) as SipResponse;
    expect([again.status, again.cseq.method, again.callId]).toEqual([180, "INVITE", r.callId]);
    // an existing To tag is kept
    r.setHeader("To", "<sip:x@y>;tag=keep");
    expect(createResponse(r, 200, "OK", { toTag: "new" }).to.params.get("tag")).toBe("keep");
  });
});

describe("stream framing", () => {
  const one = msg("Content-Length: 4").replace(/\r\n\r\n$/, "\r\n\r\nbody");
  test("frames coalesced and split messages", () => {
    const two = enc(one + one);
    expect(nextMessageLength(two, 65536)).toBe(enc(one).length);
    expect(nextMessageLength(two.subarray(0, 20), 65536)).toBe("incomplete");
    expect(nextMessageLength(enc(one).subarray(0, enc(one).length - 1), 65536)).toBe("incomplete");
  });
  test("compact l: and leading CRLFs count", () => {
    const m = "\r\n" + msg("l : 2") + "hi";
    expect(nextMessageLength(enc(m), 65536)).toBe(enc(m).length);
    expect(keepAlivePrefix(enc("\r\n\r\nINVITE"))).toBe(4);
  });
  test("errors: missing, malformed or conflicting Content-Length, oversize", () => {
    expect(nextMessageLength(enc(msg()), 65536)).toEqual({ error: "Missing Content-Length header", status: 400 });
    expect(nextMessageLength(enc(msg("Content-Length: x")), 65536)).toEqual({ error: "Malformed Content-Length header", status: 400 });
    expect(nextMessageLength(enc(msg("Content-Length: 1", "l: 2")), 65536)).toEqual({ error: "Multiple Content-Length headers", status: 400 });
    expect(nextMessageLength(enc(msg("Content-Length: 100000")), 65536)).toEqual({ error: "Message too large", status: 413 });
    expect(nextMessageLength(enc("A".repeat(70000)), 65536)).toEqual({ error: "Message too large", status: 413 });
  });
  test("X-Content-Length and similar names are not Content-Length", () => {
    expect(nextMessageLength(enc(msg("Content-Lengthy: 9", "Content-Length: 0")), 65536)).toBe(enc(msg("Content-Length: 0")).length + "Content-Lengthy: 9\r\n".length);
  });
});

describe("identifiers", () => {
  test("branches carry the magic cookie; tags and Call-IDs are unique", () => {
    expect(newBranch().startsWith(BRANCH_COOKIE)).toBe(true);
    const tags = new Set(Array.from({ length: 1000 }, () => newTag()));
    expect(tags.size).toBe(1000);
    expect(newCallId("192.0.2.1")).toMatch(/^[0-9a-f]{32}@192\.0\.2\.1$/);
  });
});

describe("display names beyond ASCII", () => {
  test("quoted and unquoted UTF-8 display names are read as text", () => {
    expect(parseNameAddr('"Jürgen Müller" <sip:j@h>')?.displayName).toBe("Jürgen Müller");
    expect(parseNameAddr("Jürgen Müller <sip:j@h>")?.displayName).toBe("Jürgen Müller");
    const m = req(msg().replace("From: <sip:alice@example.com>;tag=1", 'From: "Zoë" <sip:alice@example.com>;tag=1'));
    expect(m.from.displayName).toBe("Zoë");
  });
});

describe("configurable limits", () => {
  test("a smaller maxSize, maxHeaders or maxLineLength applies; the others keep their defaults", () => {
    const text = msg("Content-Length: 10") + "0123456789";
    expect(parseMessage(enc(text), "datagram").ok).toBe(true);
    const small = parseMessage(enc(text), "datagram", { maxSize: 100 });
    expect(small.ok ? "accepted" : [small.error.status, small.error.reason]).toEqual([413, "Message too large"]);
    const fewHeaders = parseMessage(enc(text), "datagram", { maxHeaders: 4 });
    expect(fewHeaders.ok ? "accepted" : fewHeaders.error.reason).toBe("Too many header fields");
    const shortLines = parseMessage(enc(text), "datagram", { maxLineLength: 40 });
    expect(shortLines.ok ? "accepted" : shortLines.error.reason).toBe("Header line too long");
  });
});

describe("stream reassembly", () => {
  test("messages split at random points and joined with keep-alives come out whole and in order", () => {
    const rnd = mulberry32(7);
    const originals = [trunkInvite, trunkOk, trunkAck, msg("Content-Length: 0"), msg("l: 3") + "abc"].map(enc);
    const order = Array.from({ length: 40 }, () => originals[Math.floor(rnd() * originals.length)]!);
    const stream = Buffer.concat(order.flatMap((m) => (rnd() < 0.3 ? [enc("\r\n\r\n"), m] : [m])));
    const received: Uint8Array[] = [];
    let pending: Uint8Array = new Uint8Array(0);
    for (let at = 0; at < stream.length; ) {
      const chunk = stream.subarray(at, at + 1 + Math.floor(rnd() * 700));
      at += chunk.length;
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        pending = pending.subarray(keepAlivePrefix(pending));
        const length = nextMessageLength(pending, 65536);
        if (length === "incomplete") break;
        if (typeof length !== "number") throw new Error(length.error);
        received.push(pending.slice(0, length));
        pending = pending.subarray(length);
      }
    }
    expect(pending.length).toBe(0);
    expect(received.map(dec)).toEqual(order.map(dec));
    for (const m of received) expect(parseMessage(m, "stream").ok).toBe(true);
  });
});

describe("uriEquals (RFC 3261 §19.1.4)", () => {
  const eq = (a: string, b: string) => uriEquals(parseUri(a)!, parseUri(b)!);
  test("the RFC's equivalent pairs", () => {
    expect(eq("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp")).toBe(true);
    expect(eq("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5")).toBe(true);
    expect(eq("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;newparam=5")).toBe(true);
    expect(eq("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com", "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com")).toBe(true);
    expect(eq("sip:alice@atlanta.com?subject=project%20x&priority=urgent", "sip:alice@atlanta.com?priority=urgent&subject=project%20x")).toBe(true);
  });
  test("the RFC's non-equivalent pairs", () => {
    expect(eq("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP")).toBe(false);
    expect(eq("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060")).toBe(false);
    expect(eq("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp")).toBe(false);
    expect(eq("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp")).toBe(false);
    expect(eq("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting")).toBe(false);
    expect(eq("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4")).toBe(false);
    expect(eq("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off")).toBe(false);
    expect(eq("sips:a@h", "sip:a@h")).toBe(false);
  });
});

test("the cache of header-name spellings is bounded: a flood of invented names stops being remembered", () => {
  // Every name is resolved once per spelling and the result kept, up to a cap (2048); an identical
  // object on a second lookup means it was cached.
  for (let i = 0; i < 3000; i++) resolveHeaderName(`X-Invented-${i}`);
  expect(resolveHeaderName("X-After-The-Flood")).not.toBe(resolveHeaderName("X-After-The-Flood"));
  expect(resolveHeaderName("Via")).toBe(resolveHeaderName("Via"));
  expect(resolveHeaderName("X-After-The-Flood")).toEqual({ name: "X-After-The-Flood", key: "x-after-the-flood" });
});
