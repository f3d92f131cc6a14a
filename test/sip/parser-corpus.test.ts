// Every RFC 4475 and RFC 5118 torture message, judged by ../shared/corpus/rfc4475/EXPECT.tsv and
// the RFC 5118 text: valid → the fields a UA needs; invalid → the right rejection; semantic → the
// properties the stack needs to apply the expected handling.
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  SipRequest, SipResponse, createResponse, formatUri, parseMessage, serializeMessage,
  type ParseResult, type SipMessage,
} from "../../src/sip/message.ts";

const corpus = join(import.meta.dir, "..", "..", "..", "shared", "corpus");
const rfc4475 = join(corpus, "rfc4475");
const rfc5118 = join(corpus, "rfc5118");

function load(dir: string, name: string): Uint8Array {
  return new Uint8Array(readFileSync(join(dir, name)));
}

function parsed(r: ParseResult): SipRequest | SipResponse {
  if (!r.ok) throw new Error(`rejected: ${r.error.status} ${r.error.reason}`);
  return r.message;
}

function request(r: ParseResult): SipRequest {
  const m = parsed(r);
  if (!(m instanceof SipRequest)) throw new Error("not a request");
  return m;
}

const expectRows = readFileSync(join(rfc4475, "EXPECT.tsv"), "latin1")
  .split("\n")
  .slice(1)
  .filter((line) => line.trim() !== "")
  .map((line) => {
    const [name, cls, section, handling] = line.split("\t");
    return { name: name ?? "", cls: cls ?? "", section: section ?? "", handling: handling ?? "" };
  });

interface Fields {
  start: string; // "METHOD uri" or "status reason"
  branch?: string;
  fromTag?: string;
  toTag?: string;
  callId: string;
  cseq: string;
  contentLength?: number;
  body: number;
  bodyStart?: string;
}

/** RFC 4475 §3.1.1 valid messages and the fields they must parse to. */
const valid: Record<string, Fields> = {
  wsinv: {
    start: "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam", branch: "390skdjuw", fromTag: "98asjd8",
    toTag: "1918181833n", callId: "wsinv.ndaksdj@192.0.2.1", cseq: "9 INVITE", contentLength: 150, body: 150, bodyStart: "v=0\r\n",
  },
  intmeth: {
    start: "!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
    branch: "z9hG4bK-.!%66*_+`'~", fromTag: "_token~1'+`*%!-.", callId: "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{",
    cseq: "139122385 !interesting-Method0123456789_*+`.%indeed'~", contentLength: 0, body: 0,
  },
  esc01: {
    start: "INVITE sip:sips%3Auser%40example.com@example.net", branch: "z9hG4bKkdjuw", fromTag: "938",
    callId: "esc01.239409asdfakjkn23onasd0-3234", cseq: "234234 INVITE", contentLength: 150, body: 150, bodyStart: "v=0\r\n",
  },
  escnull: {
    start: "REGISTER sip:example.com", branch: "z9hG4bKkdjuw", fromTag: "839923423",
    callId: "escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd", cseq: "14398234 REGISTER", contentLength: 0, body: 0,
  },
  esc02: {
    start: "RE%47IST%45R sip:registrar.example.com", branch: "z9hG4bK209%fzsnel234", fromTag: "f232jadfj23",
    callId: "esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf", cseq: "29344 RE%47IST%45R", contentLength: 0, body: 0,
  },
  lwsdisp: {
    start: "OPTIONS sip:user@example.com", branch: "z9hG4bKkdjuw", fromTag: "323",
    callId: "lwsdisp.1234abcd@funky.example.com", cseq: "60 OPTIONS", contentLength: 0, body: 0,
  },
  longreq: {
    start: "INVITE sip:user@example.com",
    fromTag: "12982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982424",
    callId: "longreq.onereallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallylongcallid",
    cseq: "3882340 INVITE", contentLength: 150, body: 150, bodyStart: "v=0\r\n",
  },
  dblreq: {
    start: "REGISTER sip:example.com", branch: "z9hG4bKkdjuw23492", fromTag: "43251j3j324",
    callId: "dblreq.0ha0isndaksdj99sdfafnl3lk233412", cseq: "8 REGISTER", contentLength: 0, body: 0,
  },
  semiuri: {
    start: "OPTIONS sip:user;par=u%40example.net@example.com", branch: "z9hG4bKkdjuw", fromTag: "33242",
    callId: "semiuri.0ha0isndaksdj", cseq: "8 OPTIONS", contentLength: 0, body: 0,
  },
  transports: {
    start: "OPTIONS sip:user@example.com", branch: "z9hG4bKkdjuw", fromTag: "323",
    callId: "transports.kijh4akdnaqjkwendsasfdj", cseq: "60 OPTIONS", contentLength: 0, body: 0,
  },
  mpart01: {
    start: "MESSAGE sip:kumiko@example.org", branch: "z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-", fromTag: "2fb0dcc9",
    callId: "3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..", cseq: "1 MESSAGE", contentLength: 553, body: 553,
  },
  unreason: {
    start: "200 = 2**3 * 5**2 но сто девяносто девять - простое", branch: "z9hG4bK1324923", fromTag: "11141343",
    toTag: "2229", callId: "unreason.1234ksdfak3j2erwedfsASdf", cseq: "35 INVITE", contentLength: 154, body: 154, bodyStart: "v=0\r\n",
  },
  noreason: {
    start: "100 ", branch: "z9hG4bK2398ndaoe", fromTag: "39ansfi3", toTag: "902jndnke3",
    callId: "noreason.asndj203insdf99223ndf", cseq: "35 INVITE", contentLength: 0, body: 0,
  },
};

function startOf(m: SipMessage): string {
  return m instanceof SipRequest ? `${m.method} ${formatUri(m.uri)}` : `${(m as SipResponse).status} ${(m as SipResponse).reason}`;
}

function expectFields(m: SipMessage, f: Fields): void {
  expect(startOf(m)).toBe(f.start);
  expect(m.vias[0]?.params.get("branch") ?? undefined).toBe(f.branch);
  expect(m.from.params.get("tag") ?? undefined).toBe(f.fromTag);
  expect(m.to.params.get("tag") ?? undefined).toBe(f.toTag);
  expect(m.callId).toBe(f.callId);
  expect(`${m.cseq.seq} ${m.cseq.method}`).toBe(f.cseq);
  expect(m.contentLength).toBe(f.contentLength);
  expect(m.body.length).toBe(f.body);
  if (f.bodyStart) expect(new TextDecoder().decode(m.body.subarray(0, f.bodyStart.length))).toBe(f.bodyStart);
  expect(m.checkHeaders()).toBeUndefined(); // nothing for the UA core to answer 400 to
  // what the parser reads, the serializer writes back
  const again = parsed(parseMessage(serializeMessage(m as SipRequest | SipResponse), "datagram"));
  expect(startOf(again)).toBe(f.start);
  expect(again.headerFields).toEqual(m.headerFields);
  expect(again.body).toEqual(m.body);
}

/** RFC 4475 §3.1.2 invalid messages: the expected status, and whether a 400 can be built. */
const invalid: Record<string, { status: number; answerable: boolean; reason: RegExp }> = {
  badinv01: { status: 400, answerable: true, reason: /Via/ },
  clerr: { status: 400, answerable: true, reason: /Content-Length/ },
  ncl: { status: 400, answerable: true, reason: /Content-Length/ },
  scalar02: { status: 400, answerable: true, reason: /CSeq|Max-Forwards/ },
  quotbal: { status: 400, answerable: true, reason: /To/ },
  ltgtruri: { status: 400, answerable: true, reason: /Request-URI/ },
  lwsruri: { status: 400, answerable: true, reason: /Request-URI/ },
  lwsstart: { status: 400, answerable: true, reason: /Request-Line/ },
  escruri: { status: 400, answerable: true, reason: /Request-URI/ },
  badaspec: { status: 400, answerable: true, reason: /To/ },
  baddn: { status: 400, answerable: true, reason: /From/ },
  badvers: { status: 505, answerable: true, reason: /Version/ },
  mismatch01: { status: 400, answerable: true, reason: /CSeq/ },
  mismatch02: { status: 400, answerable: true, reason: /CSeq/ },
};

describe("RFC 4475 torture tests", () => {
  test("EXPECT.tsv lists every file of the corpus and nothing else", () => {
    const files = readdirSync(rfc4475).filter((f) => f.endsWith(".dat")).map((f) => f.slice(0, -4)).sort();
    expect(expectRows.map((r) => r.name).sort()).toEqual(files);
  });

  for (const row of expectRows) {
    const title = `${row.name} (${row.cls}, §${row.section}): ${row.handling}`;
    if (row.cls === "valid") {
      test(title, () => {
        const fields = valid[row.name];
        if (!fields) throw new Error(`no expectation for ${row.name}`);
        expectFields(parsed(parseMessage(load(rfc4475, `${row.name}.dat`), "datagram")), fields);
      });
    } else if (row.cls === "invalid") {
      test(title, () => judgeInvalid(row.name));
    } else {
      test(title, () => {
        const check = semantic[row.name];
        if (!check) throw new Error(`no expectation for ${row.name}`);
        check(parseMessage(load(rfc4475, `${row.name}.dat`), "datagram"));
      });
    }
  }
});

function judgeInvalid(name: string): void {
  const r = parseMessage(load(rfc4475, `${name}.dat`), "datagram");
  switch (name) {
    case "trws": {
      // accept or 400: we accept trailing whitespace after the version
      expect(startOf(parsed(r))).toBe("OPTIONS sip:remote-target@example.com");
      return;
    }
    case "baddate": {
      // 400 or ignore the Date header: we parse and leave Date to whoever reads it
      expect(request(r).getHeader("Date")).toBe("Fri, 01 Jan 2010 16:00:00 EST");
      return;
    }
    case "regbadct": {
      // Contact is parsed lazily; checkHeaders() names the defect the UA core answers 400 with
      const m = request(r);
      expect(m.checkHeaders()).toBe("Malformed Contact header");
      expect(m.contacts).toEqual([]);
      return;
    }
    case "scalarlg":
    case "bigcode": {
      // malformed responses are dropped: no partial request, kind "response"
      if (r.ok) throw new Error("accepted");
      expect(r.error.kind).toBe("response");
      expect(r.error.request).toBeUndefined();
      return;
    }
  }
  const want = invalid[name];
  if (!want) throw new Error(`no expectation for ${name}`);
  if (r.ok) throw new Error("accepted");
  expect(r.error.status).toBe(want.status);
  expect(r.error.reason).toMatch(want.reason);
  expect(r.error.kind).toBe("request");
  if (!want.answerable) {
    expect(r.error.request).toBeUndefined();
    return;
  }
  const partial = r.error.request;
  if (!partial) throw new Error("no partial request");
  if (name === "badvers") expect(partial.version).toBe("SIP/7.0");
  // the stack answers statelessly from the partial request, copying the headers as received
  const res = createResponse(partial, r.error.status, r.error.reason, { toTag: "x1" });
  const text = new TextDecoder().decode(serializeMessage(res));
  expect(text.startsWith(`SIP/2.0 ${want.status} ${r.error.reason}\r\n`)).toBe(true);
  expect(text).toContain(`\r\nCall-ID: ${partial.getHeader("call-id")}\r\n`);
  expect(text).toContain(`\r\nVia: ${partial.getHeaders("via")[0]}`);
  expect(partial.vias[0]?.host.length).toBeGreaterThan(0);
}

const semantic: Record<string, (r: ParseResult) => void> = {
  badbranch: (r) => {
    // RFC 2543 matching applies: the branch lacks anything after the magic cookie... or the cookie
    const m = request(r);
    expect(m.vias[0]?.params.get("branch")).toBe("z9hG4bK");
  },
  insuf: (r) => {
    if (r.ok) throw new Error("accepted");
    expect(r.error.status).toBe(400);
    expect(r.error.reason).toMatch(/Missing (From|To|Call-ID)/);
    expect(r.error.request).toBeUndefined(); // no From/To/Call-ID: a response cannot be built
  },
  unkscm: (r) => {
    const m = request(r);
    expect(m.uri.scheme).toBe("nobodyknowsthisscheme");
    expect(m.uri.opaque).toBe("totallyopaquecontent");
  },
  novelsc: (r) => {
    const m = request(r);
    expect(m.uri.scheme).toBe("soap.beep");
    expect(m.checkHeaders()).toBeUndefined();
  },
  unksm2: (r) => {
    const m = request(r);
    expect(m.uri.scheme).toBe("sip");
    expect(m.to.uri.scheme).toBe("isbn");
    expect(m.from.uri.scheme).toBe("http");
    expect(m.contacts[0]?.uri.scheme).toBe("name");
    expect(m.checkHeaders()).toBeUndefined();
  },
  bext01: (r) => {
    const m = request(r);
    expect(m.require).toEqual(["nothingSupportsThis", "nothingSupportsThisEither"]);
    expect(m.getHeaders("proxy-require")).toEqual(["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]);
  },
  invut: (r) => {
    const m = request(r);
    expect(m.contentType).toBe("application/unknownformat");
    expect(m.body.length).toBe(40);
  },
  regaut01: (r) => {
    const m = request(r);
    expect(m.getHeader("Authorization")).toBe("NoOneKnowsThisScheme opaque-data=here");
    expect(m.checkHeaders()).toBeUndefined();
  },
  multi01: (r) => {
    if (r.ok) throw new Error("accepted");
    expect(r.error.status).toBe(400);
    expect(r.error.reason).toMatch(/^Multiple (CSeq|Call-ID|To|From) headers$/);
    expect(r.error.request).toBeDefined();
  },
  mcl01: (r) => {
    if (r.ok) throw new Error("accepted");
    expect(r.error.status).toBe(400);
    expect(r.error.reason).toBe("Multiple Content-Length headers");
    expect(r.error.request).toBeDefined();
  },
  bcast: (r) => {
    const m = parsed(r);
    expect(m).toBeInstanceOf(SipResponse);
    expect(m.vias.map((v) => v.host)).toEqual(["192.0.2.198", "255.255.255.255"]);
  },
  zeromf: (r) => {
    expect(request(r).maxForwards).toBe(0);
  },
  cparam01: (r) => {
    const m = request(r);
    expect(m.checkHeaders()).toBeUndefined();
    // addr-spec form: the parameter belongs to the header, not the URI
    expect(formatUri(m.contacts[0]!.uri)).toBe("sip:+19725552222@gw1.example.net");
    expect(m.contacts[0]?.params.has("unknownparam")).toBe(true);
  },
  cparam02: (r) => {
    const m = request(r);
    expect(m.contacts[0]?.uri.params.has("unknownparam")).toBe(true);
    expect(m.contacts[0]?.params.size).toBe(0);
  },
  regescrt: (r) => {
    const m = request(r);
    expect(m.checkHeaders()).toBeUndefined();
    expect(m.contacts[0]?.uri.headers.get("Route")).toBe("%3Csip:sip.example.com%3E");
  },
  sdp01: (r) => {
    const m = request(r);
    expect(m.getHeaders("accept")).toEqual(["text/nobodyKnowsThis"]);
    expect(m.contentType).toBe("application/sdp");
  },
  inv2543: (r) => {
    const m = request(r);
    expect(m.vias[0]?.params.has("branch")).toBe(false);
    expect(m.from.params.has("tag")).toBe(false);
    expect(m.contentLength).toBeUndefined();
    expect(m.body.length).toBeGreaterThan(0); // no Content-Length over UDP: the rest of the datagram
    expect(m.maxForwards).toBeUndefined();
  },
};

describe("RFC 5118 IPv6 torture tests", () => {
  const ok = (name: string) => request(parseMessage(load(rfc5118, name), "datagram"));

  test("every file has a verdict", () => {
    const judged = [
      "ipv4-mapped-ipv6", "ipv6-bad", "ipv6-bug-abnf-3-colons", "ipv6-correct-abnf-2-colons", "ipv6-good",
      "ipv6-in-sdp", "mult-ip-in-header", "mult-ip-in-sdp", "port-ambiguous", "port-unambiguous",
      "via-received-param-no-delim", "via-received-param-with-delim",
    ];
    expect(readdirSync(rfc5118).sort()).toEqual(judged);
  });
  test("ipv6-good (§4.1): IPv6 reference in the Request-URI, Via and Contact", () => {
    const m = ok("ipv6-good");
    expect(m.uri.host).toBe("2001:db8::10");
    expect(m.vias[0]?.host).toBe("2001:db8::9:1");
    expect(m.contacts[0]?.uri.host).toBe("2001:db8::1");
    expect(formatUri(m.uri)).toBe("sip:[2001:db8::10]");
  });
  test("ipv6-bad (§4.2): IPv6 address without brackets is rejected with 400", () => {
    const r = parseMessage(load(rfc5118, "ipv6-bad"), "datagram");
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.status).toBe(400);
      expect(r.error.reason).toBe("Malformed Request-URI");
      expect(r.error.request).toBeDefined();
    }
  });
  test("port-ambiguous (§4.3): [2001:db8::10:5070] is an address without a port", () => {
    const m = ok("port-ambiguous");
    expect(m.uri.host).toBe("2001:db8::10:5070");
    expect(m.uri.port).toBeUndefined();
  });
  test("port-unambiguous (§4.4): [2001:db8::10]:5070 has port 5070", () => {
    const m = ok("port-unambiguous");
    expect(m.uri.host).toBe("2001:db8::10");
    expect(m.uri.port).toBe(5070);
  });
  test("via-received-param-with-delim / no-delim (§4.5): received with and without brackets", () => {
    expect(ok("via-received-param-with-delim").vias[0]?.params.get("received")).toBe("[2001:db8::9:255]");
    expect(ok("via-received-param-no-delim").vias[0]?.params.get("received")).toBe("2001:db8::9:255");
  });
  test("ipv6-in-sdp / mult-ip-in-sdp (§4.6, §4.8): body read by Content-Length", () => {
    expect(new TextDecoder().decode(ok("ipv6-in-sdp").body)).toContain("IN IP6 2001:db8::20");
    expect(ok("mult-ip-in-sdp").body.length).toBe(181);
  });
  test("mult-ip-in-header (§4.7): IPv4 and IPv6 Vias with ports and received", () => {
    const m = ok("mult-ip-in-header");
    expect(m.vias.map((v) => [v.host, v.port ?? null])).toEqual([
      ["2001:db8::9:1", 6050], ["192.0.2.1", null], ["2001:db8::9:255", null],
    ]);
    expect(m.vias[2]?.params.get("received")).toBe("192.0.2.200");
  });
  test("ipv4-mapped-ipv6 (§4.9): ::ffff:192.0.2.10 references", () => {
    const m = ok("ipv4-mapped-ipv6");
    expect(m.vias[0]?.host).toBe("::ffff:192.0.2.10");
    expect(m.vias[0]?.port).toBe(19823);
    expect(m.contacts[0]?.uri.host).toBe("::ffff:192.0.2.2");
  });
  test("ipv6-correct-abnf-2-colons (§4.10): 2001:db8::192.0.2.1 is valid", () => {
    expect(ok("ipv6-correct-abnf-2-colons").uri.host).toBe("2001:db8::192.0.2.1");
  });
  test("ipv6-bug-abnf-3-colons (§4.10): three colons are rejected with 400", () => {
    const r = parseMessage(load(rfc5118, "ipv6-bug-abnf-3-colons"), "datagram");
    expect(r.ok ? "accepted" : r.error.status).toBe(400);
  });
});
