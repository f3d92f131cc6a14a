// SIP message model (RFC 3261 §7) and builders. This module is the entry point of the wire format:
// it re-exports the parser, serializer, URI grammar, stream framing and identifier generators.
//
//   parseMessage(bytes, "datagram" | "stream", limits?) → ParseResult   (never throws; parser.ts)
//     ok: SipRequest | SipResponse; error: { status 400/413/505, reason naming the defect,
//     kind "request" | "response" | "unknown", request?: partial SipRequest }. The partial request
//     is there when Via (top entry), From, To, Call-ID and CSeq were present, so the stack can
//     answer with createResponse(partial, status, reason); on it only the raw header values, the
//     method and vias[0] are reliable. A "response"/"unknown" error is dropped, never answered.
//   serializeMessage(msg) → Uint8Array                                    (serializer.ts)
//   parseUri / formatUri / uriEquals / parseNameAddr / formatNameAddr / parseVia / formatVia (uri.ts)
//   nextMessageLength(buf, maxSize), keepAlivePrefix(buf)                 (framing.ts)
//   newBranch() / newTag() / newCallId(host)                              (ids.ts)
//   createRequest({...}) / createResponse(req, status, reason?, {...}), reasonPhrase(status)
//
// SipRequest { method, uri, version }, SipResponse { status, reason, version }; both SipMessage:
// header fields in order as { name, key, value } with canonical names (compact forms expanded:
// "v" → "Via"), one entry per header line (folded lines joined with one space).
// getHeader/getHeaders/hasHeader take any spelling ("call-id", "I"); getHeaders() splits
// list-valued headers at top-level commas; headers that legitimately contain commas (Date,
// Authorization, WWW-Authenticate, From, To, ...) are never split. setHeader/addHeader
// ({ prepend } puts a Via on top)/removeHeader edit the list and drop the parsed view.
//
// Parsed views (vias, from, to, callId, cseq, maxForwards, contentLength) come from the eager pass
// of parseMessage, which rejects a message whose mandatory headers are malformed. Everything else
// (contacts, isWildcardContact, routes, recordRoutes, expires, contentType, require, supported,
// bodyText) is parsed on first access and cached. Lazy getters never throw: a malformed lazy
// header reads as absent/empty. checkHeaders() reports the first malformed lazily-parsed header
// as a reason phrase so the UA core can answer 400 (RFC 4475 §3.1.2.13 regbadct).
//
// URIs and parameters keep their text as received (escapes, quotes; keys lower-cased); IPv6 hosts
// are stored without brackets; see uri.ts. The body is always bytes; Content-Length is written by
// the serializer from body.length.

import type { NameAddr, SipUri, Via } from "./uri.ts";
import { formatNameAddr, formatVia, isToken, NO_PARAMS, NO_URI_HEADERS, parseNameAddr, parseVia, skipWs, splitTopLevel } from "./uri.ts";

export type { NameAddr, Params, SipUri, Via } from "./uri.ts";
export {
  formatHost, formatNameAddr, formatUri, formatVia, isHostname, isIPv4, isIPv6, NO_PARAMS, NO_URI_HEADERS, parseNameAddr,
  parseUri, parseVia, quote, splitTopLevel, unescapeUri, unquote, uriEquals,
} from "./uri.ts";
export { parseMessage, isResponseBytes, DEFAULT_LIMITS } from "./parser.ts";
export type { ParseResult, ParseError, ParseLimits } from "./parser.ts";
export { serializeMessage } from "./serializer.ts";
export { nextMessageLength, keepAlivePrefix } from "./framing.ts";
export { newBranch, newCallId, newTag, BRANCH_COOKIE } from "./ids.ts";

export type TransportName = "udp" | "tcp" | "tls";

export interface CSeq {
  seq: number;
  method: string;
}

export interface HeaderField {
  /** Canonical spelling for known headers ("Call-ID", "CSeq", "WWW-Authenticate"), else as received. */
  readonly name: string;
  /** Lower-cased canonical name used for lookups ("call-id"; compact forms expanded). */
  readonly key: string;
  readonly value: string;
}

// Known headers: lower-case long name → canonical spelling.
const CANONICAL = new Map<string, string>();
for (const name of [
  "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Allow-Events",
  "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact", "Content-Disposition",
  "Content-Encoding", "Content-Language", "Content-Length", "Content-Type", "CSeq", "Date", "Diversion",
  "Error-Info", "Event", "Expires", "From", "History-Info", "Identity", "In-Reply-To", "Max-Forwards",
  "MIME-Version", "Min-Expires", "Min-SE", "Organization", "P-Asserted-Identity", "P-Preferred-Identity",
  "Path", "Priority", "Privacy", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "RAck",
  "Reason", "Record-Route", "Refer-To", "Referred-By", "Reject-Contact", "Replaces", "Reply-To",
  "Request-Disposition", "Require", "Retry-After", "Route", "RSeq", "Server", "Service-Route",
  "Session-Expires", "Subject", "Subscription-State", "Supported", "Timestamp", "To", "Unsupported",
  "User-Agent", "Via", "Warning", "WWW-Authenticate",
]) {
  CANONICAL.set(name.toLowerCase(), name);
}

// RFC 3261 §7.3.3 compact forms, plus RFC 3841 (a, j, d), RFC 3265 (o, u), RFC 3515/3892 (r, b),
// RFC 4028 (x), RFC 8224 (y).
const COMPACT: Record<string, string> = {
  i: "call-id", m: "contact", v: "via", f: "from", t: "to", l: "content-length", c: "content-type",
  k: "supported", s: "subject", e: "content-encoding", o: "event", u: "allow-events", r: "refer-to",
  b: "referred-by", x: "session-expires", y: "identity", a: "accept-contact", j: "reject-contact",
  d: "request-disposition",
};

// Headers whose values contain commas that are not list separators, or that are single-valued.
const NOT_A_LIST = new Set([
  "authentication-info", "authorization", "call-id", "content-disposition", "content-length",
  "content-type", "cseq", "date", "event", "expires", "from", "identity", "max-forwards", "mime-version",
  "min-expires", "min-se", "organization", "priority", "proxy-authenticate", "proxy-authorization",
  "rack", "refer-to", "referred-by", "replaces", "reply-to", "retry-after", "rseq", "server",
  "session-expires", "subject", "subscription-state", "timestamp", "to", "user-agent", "www-authenticate",
]);

/** Lower-cased canonical key of a header name (compact forms expanded). */
/**
 * A copy of `value` that shares nothing with the text it was cut from. A parsed message's values
 * are JavaScriptCore substrings of the datagram's whole text, and each keeps all of it alive: what
 * outlives the message (a transaction's keys and tags, for 64*T1 after the call) is copied.
 */
export function unshared(value: string): string {
  return JSON.parse(JSON.stringify(value)) as string;
}

export function headerKey(name: string): string {
  // The usual spellings, the code's own ("Record-Route", "call-id") among them, without lower-casing anew.
  const known = resolvedNames.get(name);
  if (known) return known.key;
  const lower = name.toLowerCase();
  if (lower.length === 1) return COMPACT[lower] ?? lower;
  return lower;
}

/** Canonical spelling of a header name: known names normalised, compact forms expanded. */
export function canonicalHeaderName(name: string): string {
  return CANONICAL.get(headerKey(name)) ?? name;
}

// Raw spelling → resolved name, so the parser lower-cases each distinct spelling once. Bounded so
// a flood of invented header names cannot grow it without limit.
const resolvedNames = new Map<string, { name: string; key: string }>();

// Known spellings indexed by (first char, length) so the parser can recognise a header name in
// place, without slicing and hashing a new string for every header line.
const SPELLINGS: ({ spelling: string; resolved: { name: string; key: string } }[] | undefined)[] = new Array(128 * 64);
function addSpelling(spelling: string, resolved: { name: string; key: string }): void {
  const slot = (spelling.charCodeAt(0) & 127) * 64 + (spelling.length & 63);
  (SPELLINGS[slot] ??= []).push({ spelling, resolved });
  resolvedNames.set(spelling, resolved);
}
for (const name of CANONICAL.values()) {
  const resolved = { name, key: name.toLowerCase() };
  addSpelling(name, resolved);
  if (resolved.key !== name) addSpelling(resolved.key, resolved);
}
for (const [letter, key] of Object.entries(COMPACT)) {
  const resolved = { name: CANONICAL.get(key) ?? key, key };
  addSpelling(letter, resolved);
  addSpelling(letter.toUpperCase(), resolved);
}

/** resolveHeaderName for the name at text[from, to), recognising the usual spellings in place. */
export function resolveHeaderNameAt(text: string, from: number, to: number): { name: string; key: string } | undefined {
  const candidates = SPELLINGS[(text.charCodeAt(from) & 127) * 64 + ((to - from) & 63)];
  if (candidates) {
    for (const c of candidates) {
      if (c.spelling.length === to - from && text.startsWith(c.spelling, from)) return c.resolved;
    }
  }
  return resolveHeaderName(text.slice(from, to));
}

/** Resolves a header name as received; undefined when it is not a token (RFC 3261 §7.3.1). */
export function resolveHeaderName(raw: string): { name: string; key: string } | undefined {
  const hit = resolvedNames.get(raw);
  if (hit) return hit;
  if (!isToken(raw)) return undefined;
  const key = headerKey(raw);
  const resolved = { name: CANONICAL.get(key) ?? raw, key };
  if (resolvedNames.size < 2048) resolvedNames.set(raw, resolved);
  return resolved;
}

/** Placeholder URI (scheme "") for what could not be parsed; fresh each time since URIs are mutable. */
export function emptyUri(): SipUri {
  return { scheme: "", host: "", params: NO_PARAMS, headers: NO_URI_HEADERS };
}

// Shared by every message without a body: a zero-length array has nothing to mutate.
const NO_BODY = new Uint8Array(0);

export abstract class SipMessage {
  body: Uint8Array = NO_BODY;
  /** SIP version of the start line, "SIP/2.0" for everything we build. */
  version = "SIP/2.0";
  protected fields: HeaderField[] = [];
  // Parsed views: the eager ones in fields, the lazy ones in a map allocated on first use.
  private viaCache: Via[] | undefined;
  private fromCache: NameAddr | undefined;
  private toCache: NameAddr | undefined;
  private cseqCache: CSeq | undefined;
  private lazyCache: Map<string, unknown> | undefined;

  /** Header fields in order (one per header line). */
  get headerFields(): readonly HeaderField[] {
    return this.fields;
  }

  hasHeader(name: string): boolean {
    const key = headerKey(name);
    for (const f of this.fields) if (f.key === key) return true;
    return false;
  }

  /** First value (first list element for list-valued headers). */
  getHeader(name: string): string | undefined {
    const key = headerKey(name);
    for (const f of this.fields) {
      if (f.key !== key) continue;
      if (NOT_A_LIST.has(key) || f.value.indexOf(",") < 0) return f.value;
      return splitTopLevel(f.value)[0];
    }
    return undefined;
  }

  /** All values, list-valued headers split at top-level commas, empty elements dropped. */
  getHeaders(name: string): string[] {
    const key = headerKey(name);
    const out: string[] = [];
    const split = !NOT_A_LIST.has(key);
    for (const f of this.fields) {
      if (f.key !== key) continue;
      if (!split || f.value.indexOf(",") < 0) {
        if (f.value !== "") out.push(f.value);
      } else {
        for (const v of splitTopLevel(f.value)) if (v !== "") out.push(v);
      }
    }
    return out;
  }

  /** Replaces every field of that name (one line per value) at the position of the first one. */
  setHeader(name: string, value: string | string[]): void {
    const key = headerKey(name);
    const values = typeof value === "string" ? [value] : value;
    const canonical = canonicalHeaderName(name);
    const first = this.fields.findIndex((f) => f.key === key);
    const replacement = values.map((v) => ({ name: canonical, key, value: v }));
    const kept = this.fields.filter((f) => f.key !== key);
    const at = first < 0 ? kept.length : first;
    kept.splice(at, 0, ...replacement);
    this.fields = kept;
    this.invalidate(key);
  }

  /** Appends a field, or with prepend inserts it before the first field of that name (top Via). */
  addHeader(name: string, value: string, opts?: { prepend?: boolean }): void {
    const key = headerKey(name);
    const field = { name: canonicalHeaderName(name), key, value };
    if (opts?.prepend) {
      const first = this.fields.findIndex((f) => f.key === key);
      this.fields.splice(first < 0 ? 0 : first, 0, field);
    } else {
      this.fields.push(field);
    }
    this.invalidate(key);
  }

  removeHeader(name: string): void {
    const key = headerKey(name);
    this.fields = this.fields.filter((f) => f.key !== key);
    this.invalidate(key);
  }

  /** Used by the parser to append fields without per-call name normalisation. */
  pushField(name: string, key: string, value: string): void {
    this.fields.push({ name, key, value });
  }

  /** Used by the parser to store the eagerly parsed values. */
  cacheParsed(o: { vias: Via[]; from?: NameAddr; to?: NameAddr; cseq?: CSeq }): void {
    this.viaCache = o.vias;
    this.fromCache = o.from;
    this.toCache = o.to;
    this.cseqCache = o.cseq;
  }

  private invalidate(key: string): void {
    if (key === "via") this.viaCache = undefined;
    else if (key === "from") this.fromCache = undefined;
    else if (key === "to") this.toCache = undefined;
    else if (key === "cseq") this.cseqCache = undefined;
    else this.lazyCache?.delete(key);
  }

  private lazy<T>(key: string, compute: () => T): T {
    this.lazyCache ??= new Map();
    if (this.lazyCache.has(key)) return this.lazyCache.get(key) as T;
    const value = compute();
    this.lazyCache.set(key, value);
    return value;
  }

  get vias(): Via[] {
    if (this.viaCache === undefined) {
      this.viaCache = [];
      for (const v of this.getHeaders("via")) {
        const via = parseVia(v);
        if (via) this.viaCache.push(via);
      }
    }
    return this.viaCache;
  }

  get from(): NameAddr {
    return (this.fromCache ??= parseSingleNameAddr(this.getHeader("from")));
  }

  get to(): NameAddr {
    return (this.toCache ??= parseSingleNameAddr(this.getHeader("to")));
  }

  get callId(): string {
    return this.getHeader("call-id") ?? "";
  }

  get cseq(): CSeq {
    return (this.cseqCache ??= parseCSeq(this.getHeader("cseq") ?? "") ?? { seq: 0, method: "" });
  }

  get maxForwards(): number | undefined {
    return parseScalar(this.getHeader("max-forwards"), 255);
  }

  /** Declared Content-Length (the serializer always writes body.length). */
  get contentLength(): number | undefined {
    return parseScalar(this.getHeader("content-length"), 0xffffffff);
  }

  /** Contact values; `[]` for "Contact: *" (see isWildcardContact) or when malformed. */
  get contacts(): NameAddr[] {
    return this.lazy("contact", () => parseNameAddrList(this.getHeaders("contact")) ?? []);
  }

  /** RFC 3261 §10.2.2: REGISTER "Contact: *". */
  get isWildcardContact(): boolean {
    return this.getHeader("contact")?.trim() === "*";
  }

  get routes(): NameAddr[] {
    return this.lazy("route", () => parseNameAddrList(this.getHeaders("route")) ?? []);
  }

  get recordRoutes(): NameAddr[] {
    return this.lazy("record-route", () => parseNameAddrList(this.getHeaders("record-route")) ?? []);
  }

  get expires(): number | undefined {
    return this.lazy("expires", () => parseScalar(this.getHeader("expires"), 0xffffffff));
  }

  /** Media type lower-cased without parameters ("application/sdp"), or undefined. */
  get contentType(): string | undefined {
    const v = this.getHeader("content-type");
    if (v === undefined) return undefined;
    const semi = v.indexOf(";");
    return (semi < 0 ? v : v.slice(0, semi)).replace(/\s+/g, "").toLowerCase();
  }

  /** Option tags of Require (RFC 3261 §20.32), as received. */
  get require(): string[] {
    return this.getHeaders("require");
  }

  get supported(): string[] {
    return this.getHeaders("supported");
  }

  /** Body decoded as UTF-8 (SDP and other text bodies). */
  get bodyText(): string {
    return utf8.decode(this.body);
  }

  /**
   * First malformed header among those parsed lazily (Contact, Route, Record-Route, Expires, ...)
   * as a reason phrase for a 400, or undefined. RFC 4475 §3.1.2.13: a Contact with an unbracketed
   * URI carrying "?" must be rejected.
   */
  checkHeaders(): string | undefined {
    const lists: [string, string][] = [
      ["contact", "Contact"], ["route", "Route"], ["record-route", "Record-Route"], ["reply-to", "Reply-To"],
    ];
    for (const [key, name] of lists) {
      const values = this.getHeaders(key);
      if (values.length === 0) continue;
      if (key === "contact" && values.length === 1 && values[0]?.trim() === "*") continue;
      if (parseNameAddrList(values) === undefined) return `Malformed ${name} header`;
    }
    for (const [key, name] of [["expires", "Expires"], ["min-expires", "Min-Expires"]] as const) {
      const v = this.getHeader(key);
      if (v !== undefined && parseScalar(v, 0xffffffff) === undefined) return `Malformed ${name} header`;
    }
    return undefined;
  }
}

export class SipRequest extends SipMessage {
  constructor(
    public method: string,
    public uri: SipUri,
  ) {
    super();
  }
}

export class SipResponse extends SipMessage {
  constructor(
    public status: number,
    public reason: string,
  ) {
    super();
  }
}

// ---------------------------------------------------------------------------------------------
// Typed header value parsers (shared with parser.ts)

function parseSingleNameAddr(v: string | undefined): NameAddr {
  return (v === undefined ? undefined : parseNameAddr(v)) ?? { uri: emptyUri(), params: NO_PARAMS };
}

export function parseNameAddrList(values: string[]): NameAddr[] | undefined {
  const out: NameAddr[] = [];
  for (const v of values) {
    const n = parseNameAddr(v);
    if (n === undefined) return undefined;
    out.push(n);
  }
  return out;
}

/** 1*DIGIT with an upper bound (RFC 4475 §3.1.2.4: overlarge scalars are malformed). */
export function parseScalar(v: string | undefined, max: number): number | undefined {
  if (v === undefined) return undefined;
  const s = v.trim();
  if (s.length === 0) return undefined;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return undefined;
    n = n * 10 + (c - 48);
    if (n > max) return undefined; // leading zeros ("0068") stay legal
  }
  return n;
}

/** CSeq = 1*DIGIT LWS Method; sequence number below 2**31 (RFC 3261 §8.1.1.5). */
export function parseCSeq(v: string): CSeq | undefined {
  let i = skipWs(v, 0);
  const start = i;
  while (i < v.length) {
    const c = v.charCodeAt(i);
    if (c < 48 || c > 57) break;
    i++;
  }
  if (i === start) return undefined;
  const seq = parseScalar(v.slice(start, i), 0x7fffffff);
  if (seq === undefined) return undefined;
  const methodStart = skipWs(v, i);
  if (methodStart === i) return undefined;
  const method = v.slice(methodStart).trimEnd();
  if (method.length === 0 || !isToken(method)) return undefined;
  return { seq, method };
}

// ---------------------------------------------------------------------------------------------
// Builders

const encoder = new TextEncoder();
const utf8 = new TextDecoder();

function toBytes(body: Uint8Array | string | undefined): Uint8Array {
  if (body === undefined) return NO_BODY;
  return typeof body === "string" ? encoder.encode(body) : body;
}

export function createRequest(o: {
  method: string;
  uri: SipUri;
  from: NameAddr;
  to: NameAddr;
  callId: string;
  cseq: number;
  via?: Via[];
  contact?: NameAddr;
  maxForwards?: number;
  headers?: [string, string][];
  body?: Uint8Array | string;
  contentType?: string;
}): SipRequest {
  const req = new SipRequest(o.method, o.uri);
  for (const v of o.via ?? []) req.addHeader("Via", formatVia(v));
  req.addHeader("Max-Forwards", String(o.maxForwards ?? 70));
  req.addHeader("From", formatNameAddr(o.from));
  req.addHeader("To", formatNameAddr(o.to));
  req.addHeader("Call-ID", o.callId);
  req.addHeader("CSeq", `${o.cseq} ${o.method}`);
  if (o.contact) req.addHeader("Contact", formatNameAddr(o.contact));
  for (const [name, value] of o.headers ?? []) req.addHeader(name, value);
  if (o.contentType !== undefined) req.addHeader("Content-Type", o.contentType);
  req.body = toBytes(o.body);
  return req;
}

/**
 * Builds a response to `req`: Via, From, To (with toTag appended when To has none), Call-ID and
 * CSeq are copied as received (RFC 3261 §8.2.6.2), so this works on the partial request of a
 * ParseError too. Record-Route copying (§12.1.1) is the dialog layer's choice via `headers`.
 */
export function createResponse(
  req: SipRequest,
  status: number,
  reason?: string,
  o?: { toTag?: string; headers?: [string, string][]; body?: Uint8Array | string; contentType?: string },
): SipResponse {
  const res = new SipResponse(status, reason ?? reasonPhrase(status));
  // A field's name and key were resolved when it was parsed or added.
  for (const f of req.headerFields) {
    const key = f.key;
    if (key === "via" || key === "from" || key === "call-id" || key === "cseq") {
      res.pushField(f.name, key, f.value);
    } else if (key === "to") {
      let value = f.value;
      if (o?.toTag !== undefined && !hasTag(value)) value += `;tag=${o.toTag}`;
      res.pushField(f.name, key, value);
    }
  }
  for (const [name, value] of o?.headers ?? []) res.addHeader(name, value);
  if (o?.contentType !== undefined) res.addHeader("Content-Type", o.contentType);
  res.body = toBytes(o?.body);
  return res;
}

function hasTag(toValue: string): boolean {
  const parsed = parseNameAddr(toValue);
  if (parsed) return parsed.params.has("tag");
  return /;\s*tag\s*=/i.test(toValue);
}

const REASONS: Record<number, string> = {
  100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued", 183: "Session Progress",
  200: "OK", 202: "Accepted", 300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily",
  305: "Use Proxy", 380: "Alternative Service", 400: "Bad Request", 401: "Unauthorized",
  402: "Payment Required", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
  406: "Not Acceptable", 407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
  413: "Request Entity Too Large", 414: "Request-URI Too Long", 415: "Unsupported Media Type",
  416: "Unsupported URI Scheme", 420: "Bad Extension", 421: "Extension Required", 423: "Interval Too Brief",
  480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist", 482: "Loop Detected",
  483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here",
  487: "Request Terminated", 488: "Not Acceptable Here", 491: "Request Pending", 493: "Undecipherable",
  500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
  504: "Server Time-out", 505: "Version Not Supported", 513: "Message Too Large", 600: "Busy Everywhere",
  603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
};

/** Default reason phrase of a status code (RFC 3261 §21). */
export function reasonPhrase(status: number): string {
  return REASONS[status] ?? (status < 200 ? "Provisional" : status < 300 ? "OK" : "Error");
}
