// Differential tests: our URI and name-addr grammar against sip.js's PEG Grammar, over every URI
// and name-addr of the torture corpora and over generated and mutated inputs (fixed seed).
// Where the two disagree, the disagreement must be one of the documented places where sip.js
// departs from the RFC 3261 §25.1 ABNF; anything else fails the test.
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Grammar } from "sip.js";
import { formatHost, parseMessage, parseNameAddr, parseUri, unescapeUri, type NameAddr, type SipUri } from "../../src/sip/message.ts";
import { isToken } from "../../src/sip/uri.ts";
import { mulberry32 } from "./random.ts";

const corpus = join(import.meta.dir, "..", "..", "..", "shared", "corpus");

interface UriView {
  scheme: string;
  user: string | null;
  host: string;
  port: number | null;
  params: Record<string, string | null>;
  headers: Record<string, string>;
}

// sip.js lower-cases token values of these parameters and moves a numeric ttl out of the URI; lr
// is always valueless; a maddr parameter overwrites its host field, so the host is not compared
// then; of repeated URI headers it keeps all, we keep the last.
const SIPJS_LOWERCASED = new Set(["transport", "user"]);
const MADDR_HOST = "(host replaced by maddr in sip.js)";

function ourView(u: SipUri): UriView {
  const params: Record<string, string | null> = {};
  for (const [k, v] of u.params) {
    if (k === "ttl" && v !== null && /^\d{1,3}$/.test(v)) continue;
    params[k] = k === "lr" || v === null ? null : SIPJS_LOWERCASED.has(k) && isToken(v) ? v.toLowerCase() : v;
  }
  const headers: Record<string, string> = {};
  for (const [k, v] of u.headers) headers[k.toLowerCase()] = v;
  const user = u.user === undefined ? null : unescapeUri(u.user) + (u.password === undefined ? "" : `:${unescapeUri(u.password)}`);
  const host = u.params.has("maddr") ? MADDR_HOST : formatHost(u.host).toLowerCase();
  return { scheme: u.scheme, user, host, port: u.port ?? null, params, headers };
}

// biome-ignore lint: sip.js's URI type is loose
function theirView(u: any): UriView {
  const params: Record<string, string | null> = {};
  for (const [k, v] of Object.entries(u.parameters as Record<string, string | null>)) params[k] = v;
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(u.headers as Record<string, string[]>)) headers[k.toLowerCase()] = v.at(-1) ?? "";
  const host = "maddr" in params ? MADDR_HOST : String(u.host).toLowerCase();
  return { scheme: u.scheme, user: u.user ?? null, host, port: u.port ?? null, params, headers };
}

function theirUri(s: string): UriView | undefined {
  const u = Grammar.URIParse(s);
  return u ? theirView(u) : undefined;
}

interface NameAddrView {
  displayName: string | null;
  uri: UriView;
  params: Record<string, string | null>;
}

function ourNameAddr(n: NameAddr): NameAddrView {
  const params: Record<string, string | null> = {};
  for (const [k, v] of n.params) params[k] = v;
  return { displayName: n.displayName ?? null, uri: ourView(n.uri), params };
}

function theirNameAddr(s: string): NameAddrView | undefined {
  // name-addr form through the Name_Addr_Header rule; addr-spec form through "From", which takes both
  const nameAddrForm = /^\s*"/.test(s) || /^[^:]*</.test(s);
  const n = Grammar.parse(s, nameAddrForm ? "Name_Addr_Header" : "From");
  if (n === -1) return undefined;
  const raw: string | undefined = n.displayName || undefined;
  // sip.js keeps quoted-pair escapes and the inner whitespace of token display names
  const displayName = raw === undefined ? null : /^\s*"/.test(s) ? raw.replace(/\\(.)/g, "$1") : raw.replace(/\s+/g, " ");
  const params: Record<string, string | null> = {};
  for (const [k, v] of Object.entries(n.parameters as Record<string, string | null>)) params[k] = v;
  // sip.js moves a URI's ttl parameter into the header parameters
  const unquoted = s.replace(/^\s*"(\\.|[^"\\])*"/, "");
  if (/<[^>]*;ttl=/i.test(unquoted) && !/>.*;ttl=/i.test(unquoted)) delete params.ttl;
  return { displayName, uri: theirView(n.uri), params };
}

// ---------------------------------------------------------------------------------------------
// Where sip.js departs from the ABNF (each checked on the input, so an unexplained disagreement fails)

/** host [":" port] of a sip/sips URI (text between "@" or ":" and the first ";" or "?"). */
function hostport(s: string): string {
  const rest = s.replace(/^[a-z]+:/i, "");
  const at = rest.lastIndexOf("@");
  return (at >= 0 ? rest.slice(at + 1) : rest).split(/[;?]/)[0] ?? "";
}

/** sip.js accepts these although RFC 3261 §25.1 does not. */
function sipjsTooLenient(s: string): string | undefined {
  if (/^[^\[]*:.*\D|^\[.*\]:.*\D/.test(hostport(s))) return "port with non-digits (an IPv6 address without brackets)";
  if (/(^|\.)-|-(\.|:|$)/.test(hostport(s))) return "hostname label starting or ending with '-'";
  if (/:\d*$/.test(hostport(s)) && Number(hostport(s).split(":").at(-1)) > 65535) return "port above 65535";
  if (/:(?=[;?>]|$)/.test(s.replace(/^[a-z]+:/i, ""))) return "empty port";
  if (hostport(s).includes(":::")) return "IPv6 reference with three colons (RFC 5118 §4.10)";
  if (/%(?![0-9a-fA-F]{2})/.test(s)) return "'%' not followed by two hex digits";
  if (/;[^;?=]*=(?=[;?]|$)|;(?=[;?]|$)/.test(s)) return "empty parameter or parameter value";
  if (/_/.test(hostport(s))) return "'_' in a hostname";
  return undefined;
}

/** sip.js rejects these although RFC 3261 §25.1 accepts them. */
function sipjsTooStrict(s: string): string | undefined {
  // PEG ordered choice: transport-param / user-param / method-param / ttl-param / maddr-param / lr-param
  // are tried before other-param and never backtrack into it.
  if (/;(transport|user|method|ttl|maddr|lr)(?=[=;?]|$)/i.test(s) || /;lr[^=;?]/i.test(s)) {
    return "recognised URI parameter with a value only other-param matches";
  }
  if (/(^|[.@\[:])0\d/.test(s.replace(/^[^@]*@/, "@"))) return "IPv4 octet with a leading zero";
  if (/\.(:|$)/.test(hostport(s))) return "hostname with the trailing dot of a fully qualified name";
  if (/^[a-z]+:[^@]*[;?/][^@]*@/i.test(s) && !/^[a-z]+:[^@:]*:/i.test(s)) return "';', '?' or '/' in the user part";
  if (/^[a-z]+:[^@]*%[0-9a-fA-F]{2}[^@]*@/i.test(s)) return "escaped characters in the user part";
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Inputs

function corpusValues(): { uris: string[]; nameAddrs: string[] } {
  const uris = new Set<string>();
  const nameAddrs = new Set<string>();
  for (const dir of ["rfc4475", "rfc5118"]) {
    for (const file of readdirSync(join(corpus, dir))) {
      if (file.endsWith(".tsv")) continue;
      const bytes = new Uint8Array(readFileSync(join(corpus, dir, file)));
      const r = parseMessage(bytes, "datagram");
      const m = r.ok ? r.message : r.error.request;
      const startLine = new TextDecoder().decode(bytes.subarray(0, bytes.indexOf(13))).split(" ");
      if (!startLine[0]?.startsWith("SIP/") && startLine[1]) uris.add(startLine[1]);
      if (!m) continue;
      for (const h of ["from", "to", "contact", "route", "record-route"]) {
        for (const v of m.getHeaders(h)) nameAddrs.add(v);
      }
    }
  }
  return { uris: [...uris], nameAddrs: [...nameAddrs] };
}

function generator(seed: number) {
  const rnd = mulberry32(seed);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)] as T;
  const chars = (set: string, min: number, max: number) => {
    let s = "";
    const n = min + Math.floor(rnd() * (max - min + 1));
    for (let i = 0; i < n; i++) s += rnd() < 0.1 ? pick(["%41", "%20", "%7e", "%00"]) : pick([...set]);
    return s;
  };
  const uri = () => {
    let s = pick(["sip:", "sips:", "SIP:"]);
    if (rnd() < 0.8) {
      s += chars("abcXYZ019-_.!~*'()&=+$,", 1, 8);
      if (rnd() < 0.15) s += `:${chars("abc019-_.!~*'()&=+$,", 1, 6)}`;
      s += "@";
    }
    s += pick(["example.com", "a.b-c.example", "192.0.2.1", "[2001:db8::1]", "[::ffff:192.0.2.3]", "h", "x1.y2.", "Host.EXAMPLE"]);
    if (rnd() < 0.4) s += `:${Math.floor(rnd() * 65536)}`;
    const n = Math.floor(rnd() * 3);
    for (let i = 0; i < n; i++) s += `;${pick(["transport=tcp", "transport=TLS", "lr", "user=phone", "maddr=192.0.2.9", "x-a=b", "method=INVITE", "ttl=5", "foo", "x=%41b"])}`;
    if (rnd() < 0.2) s += `?${pick(["subject=hi", "x=1&y=2", "Route=%3Csip:a%3E", "h=%20"])}`;
    return s;
  };
  const nameAddr = () => {
    const u = uri();
    const params = rnd() < 0.7 ? `;${pick(["tag=abc123", "tag=1;q=0.5", "expires=60", "x", "tag=z9;foo=bar"])}` : "";
    switch (Math.floor(rnd() * 4)) {
      case 0: return `<${u}>${params}`;
      case 1: return `"${chars("abc XYZ,;:<>@", 0, 10).replace(/%../g, "")}" <${u}>${params}`;
      case 2: return `${pick(["Alice", "Bob Smith", "x.y-z", "A  B"])} <${u}>${params}`;
      default: return /[;?,]/.test(u.slice(4)) ? `<${u}>${params}` : `${u}${params}`;
    }
  };
  const mutate = (s: string) => {
    const i = Math.floor(rnd() * (s.length + 1));
    const op = rnd();
    if (op < 0.4) return s.slice(0, i) + pick([..." <>\"@:;?=%[]#^{}|\\,\t", "a", "5", "-"]) + s.slice(i);
    if (op < 0.7) return s.slice(0, i) + s.slice(i + 1);
    return s.slice(0, i) + s.slice(i, i + 3) + s.slice(i);
  };
  return { uri, nameAddr, mutate };
}

// ---------------------------------------------------------------------------------------------

describe("URIs: ours vs sip.js Grammar", () => {
  const { uris, nameAddrs } = corpusValues();
  const sipUris = [
    ...uris,
    ...nameAddrs.map((n) => n.match(/<([^>]*)>/)?.[1] ?? n.split(/[;\s]/)[0] ?? ""),
  ].filter((u) => /^sips?:/i.test(u));

  test("every SIP URI of the corpus reads the same", () => {
    expect(sipUris.length).toBeGreaterThan(40);
    for (const s of sipUris) {
      const ours = parseUri(s);
      const theirs = theirUri(s);
      if (!ours || !theirs) {
        expect({ s, why: ours ? sipjsTooStrict(s) : sipjsTooLenient(s) }).toEqual({ s, why: expect.any(String) });
        continue;
      }
      expect({ s, v: ourView(ours) }).toEqual({ s, v: theirs });
    }
  });

  test("generated SIP URIs: both accept and read the same fields", () => {
    const gen = generator(1);
    for (let i = 0; i < 800; i++) {
      const s = gen.uri();
      const ours = parseUri(s);
      const theirs = theirUri(s);
      if (!ours || !theirs) {
        expect({ s, why: ours ? sipjsTooStrict(s) : "ours rejects a generated URI" }).toEqual({ s, why: expect.any(String) });
        continue;
      }
      expect({ s, v: ourView(ours) }).toEqual({ s, v: theirs });
    }
  });

  test("mutated SIP URIs: same verdict, or a documented departure of sip.js from the ABNF", () => {
    const gen = generator(2);
    let agreed = 0;
    for (let i = 0; i < 800; i++) {
      const s = gen.mutate(gen.uri());
      const ours = parseUri(s);
      const accepted = ours !== undefined && (ours.scheme === "sip" || ours.scheme === "sips");
      const theirs = theirUri(s);
      if (accepted === (theirs !== undefined)) {
        agreed++;
        if (ours && theirs) expect({ s, v: ourView(ours) }).toEqual({ s, v: theirs });
        continue;
      }
      const why = accepted ? sipjsTooStrict(s) : sipjsTooLenient(s) ?? (ours && !accepted ? "not a sip/sips URI" : undefined);
      expect({ s, why }).toEqual({ s, why: expect.any(String) });
    }
    expect(agreed).toBeGreaterThan(600);
  });
});

describe("name-addr / addr-spec: ours vs sip.js Grammar", () => {
  const { nameAddrs } = corpusValues();

  test("every From/To/Contact/Route value of the corpus reads the same", () => {
    for (const s of nameAddrs) {
      const ours = parseNameAddr(s);
      const theirs = theirNameAddr(s);
      if (!ours || !theirs || !/^sips?$/.test(ours.uri.scheme)) continue;
      expect({ s, v: ourNameAddr(ours) }).toEqual({ s, v: theirs });
    }
  });

  test("corpus values that only one side accepts are the documented cases", () => {
    const verdicts = nameAddrs.map((s) => [s, parseNameAddr(s) !== undefined, theirNameAddr(s) !== undefined] as const);
    const differing = verdicts.filter(([, a, b]) => a !== b).map(([s, a]) => `${a ? "ours" : "sip.js"} accepts ${s}`);
    // sip.js's From rule takes only sip/sips URIs and absolute URIs with "//" (RFC 4475 §3.3.4 unksm2)
    expect(differing.sort()).toEqual([
      "ours accepts <http://www.example.com>;tag=3234233",
      "ours accepts <name:John_Smith>",
      "ours accepts isbn:2983792873",
    ]);
  });

  test("generated and mutated name-addrs: same verdict and fields, or a documented departure", () => {
    const gen = generator(3);
    let agreed = 0;
    for (let i = 0; i < 800; i++) {
      const s = i % 2 === 0 ? gen.nameAddr() : gen.mutate(gen.nameAddr());
      const ours = parseNameAddr(s);
      const theirs = theirNameAddr(s);
      if ((ours !== undefined) === (theirs !== undefined)) {
        agreed++;
        if (ours && theirs && /^sips?$/.test(ours.uri.scheme)) expect({ s, v: ourNameAddr(ours) }).toEqual({ s, v: theirs });
        continue;
      }
      const unquoted = s.replace(/^\s*"(\\.|[^"\\])*"/, "");
      const uriText = unquoted.match(/<([^>]*)>/)?.[1] ?? unquoted.split(/[;\s]/)[0] ?? "";
      const why = ours
        ? s !== s.trim()
          ? "whitespace around the value (header LWS, which getHeaders() trims)"
          : /^sips?$/.test(ours.uri.scheme) ? sipjsTooStrict(uriText) : "absolute URI, which sip.js's From rule does not take"
        : sipjsTooLenient(uriText) ?? sipjsNameAddrLeniency(s);
      expect({ s, why }).toEqual({ s, why: expect.any(String) });
    }
    expect(agreed).toBeGreaterThan(600);
  });
});

/** name-addr level leniency of sip.js (RFC 3261 §25.1 name-addr, display-name). */
function sipjsNameAddrLeniency(s: string): string | undefined {
  if (/<\s|\s>/.test(s)) return "whitespace inside < >";
  if (/^\s*"(\\.|[^"\\])*"\s*[^\s<]/.test(s)) return "display name mixing a quoted string and tokens";
  if (/^[^"<]+"/.test(s)) return "'\"' inside an unquoted display name";
  if (!s.includes("<") && /^[^;]*;[^;]*@/.test(s)) return "addr-spec with ';' in its user part (RFC 3261 §20: needs < >)";
  return undefined;
}
