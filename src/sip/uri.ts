// SIP URI, name-addr, Via and parameter grammar (RFC 3261 §19.1, §20, §25.1; RFC 5118 for IPv6).
// Hand-written char-code scanners instead of regular expressions: these run on every message.
//
// Conventions shared with message.ts:
// - Parameter keys are lower-cased; values are kept exactly as received (escapes and quotes intact),
//   so formatting reproduces them. A parameter without "=" has the value null.
// - URI user, password, params and headers keep their %-escapes (RFC 3261 §19.1.4 compares
//   unescaped forms; `unescapeUri` does that when needed).
// - IPv6 hosts are stored WITHOUT brackets ("2001:db8::1"); formatting adds them back.
// - Schemes other than sip/sips/tel keep everything after "scheme:" in `opaque` (host is "").
//   tel URIs put the number in `user` and parse their parameters.

export type Params = Map<string, string | null>;

/**
 * Most URIs have no parameters or headers: those share these empty maps, which nothing may change
 * (a parsed INVITE had nine maps, and a call's dialog keeps several for its whole life). A URI
 * that needs others is given new maps.
 */
export const NO_PARAMS: ReadonlyMap<string, string | null> = new Map();
export const NO_URI_HEADERS: ReadonlyMap<string, string> = new Map();

export interface SipUri {
  scheme: string;
  user?: string;
  password?: string;
  host: string;
  port?: number;
  params: ReadonlyMap<string, string | null>;
  headers: ReadonlyMap<string, string>;
  /** Everything after "scheme:" for schemes we do not interpret (RFC 4475 §3.3.2 unkscm). */
  opaque?: string;
}

export interface NameAddr {
  displayName?: string;
  uri: SipUri;
  params: ReadonlyMap<string, string | null>;
}

export interface Via {
  /** "SIP/2.0" as received (upper-cased). */
  protocol: string;
  /** Transport token upper-cased: "UDP", "TCP", "TLS", "WS", ... */
  transport: string;
  host: string;
  port?: number;
  params: Params;
}

const SP = 32;
const HT = 9;

// token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")  RFC 3261 §25.1
const TOKEN = new Uint8Array(128);
// Characters allowed unescaped in each URI component (RFC 3261 §25.1); "%" is checked separately
// as the start of an escape.
const USER = new Uint8Array(128); // unreserved / user-unreserved
const PASSWORD = new Uint8Array(128); // unreserved / "&" / "=" / "+" / "$" / ","
const PARAM = new Uint8Array(128); // paramchar: param-unreserved / unreserved
const HEADER = new Uint8Array(128); // hnv-unreserved / unreserved
const HOSTNAME = new Uint8Array(128);
const HEX = new Uint8Array(128);
{
  const mark = (table: Uint8Array, chars: string) => {
    for (let i = 0; i < chars.length; i++) table[chars.charCodeAt(i)] = 1;
  };
  const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  const unreserved = alnum + "-_.!~*'()";
  mark(TOKEN, alnum + "-.!%*_+`'~");
  mark(USER, unreserved + "&=+$,;?/");
  mark(PASSWORD, unreserved + "&=+$,");
  mark(PARAM, unreserved + "[]/:&+$");
  mark(HEADER, unreserved + "[]/?:+$");
  mark(HOSTNAME, alnum + "-.");
  mark(HEX, "0123456789abcdefABCDEF");
}

export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || TOKEN[c] !== 1) return false;
  }
  return true;
}

function isWs(c: number): boolean {
  return c === SP || c === HT;
}

export function skipWs(s: string, i: number): number {
  while (i < s.length && isWs(s.charCodeAt(i))) i++;
  return i;
}

function scanToken(s: string, i: number): number {
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c >= 128 || TOKEN[c] !== 1) break;
    i++;
  }
  return i;
}

/** True when every char of s[from, to) is in `allowed` or starts a %HH escape. */
function isUriText(s: string, from: number, to: number, allowed: Uint8Array): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c === 37) {
      const a = s.charCodeAt(i + 1);
      const b = s.charCodeAt(i + 2);
      if (i + 2 >= to || a >= 128 || b >= 128 || HEX[a] !== 1 || HEX[b] !== 1) return false;
      i += 2;
    } else if (c >= 128 || allowed[c] !== 1) {
      return false;
    }
  }
  return true;
}

/** Decodes %HH escapes (RFC 3261 §19.1.4); malformed escapes are left as they are. */
export function unescapeUri(s: string): string {
  if (s.indexOf("%") < 0) return s;
  return s.replace(/%([0-9a-fA-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

// ---------------------------------------------------------------------------------------------
// Hosts

/** RFC 4291 §2.2 text form with an optional IPv4 tail (RFC 5954 §4.1, RFC 5118 §4.10: no ":::"). */
export function isIPv6(s: string): boolean {
  if (s.length < 2 || s.length > 45) return false;
  let groups = 0;
  let doubleColon = false;
  let i = 0;
  if (s.startsWith("::")) {
    doubleColon = true;
    i = 2;
    if (i === s.length) return true;
  } else if (s.charCodeAt(0) === 58) {
    return false;
  }
  while (i < s.length) {
    // IPv4 tail?
    const nextColon = s.indexOf(":", i);
    const part = nextColon < 0 ? s.slice(i) : s.slice(i, nextColon);
    if (nextColon < 0 && part.indexOf(".") >= 0) {
      if (!isIPv4(part)) return false;
      groups += 2;
      i = s.length;
      break;
    }
    if (part.length === 0 || part.length > 4) return false;
    for (let k = 0; k < part.length; k++) {
      const c = part.charCodeAt(k);
      if (c >= 128 || HEX[c] !== 1) return false;
    }
    groups++;
    if (nextColon < 0) {
      i = s.length;
      break;
    }
    i = nextColon + 1;
    if (s.charCodeAt(i) === 58) {
      if (doubleColon) return false;
      doubleColon = true;
      i++;
      if (i === s.length) break;
    } else if (i === s.length) {
      return false; // trailing single colon
    }
  }
  return doubleColon ? groups <= 7 : groups === 8;
}

export function isIPv4(s: string): boolean {
  let parts = 0;
  let i = 0;
  while (i <= s.length) {
    let j = i;
    let value = 0;
    while (j < s.length) {
      const c = s.charCodeAt(j);
      if (c < 48 || c > 57) break;
      value = value * 10 + (c - 48);
      j++;
    }
    if (j === i || j - i > 3 || value > 255) return false;
    parts++;
    if (j === s.length) break;
    if (s.charCodeAt(j) !== 46) return false;
    i = j + 1;
  }
  return parts === 4;
}

/**
 * Parses host [":" port] at s[i]; returns the index after it, or -1.
 * RFC 3261 §25.1 hostport; IPv6 references in brackets (RFC 5118).
 */
function scanHostPort(s: string, i: number, out: { host: string; port?: number }, lwsAroundColon: boolean): number {
  if (s.charCodeAt(i) === 91 /* [ */) {
    const close = s.indexOf("]", i + 1);
    if (close < 0) return -1;
    const addr = s.slice(i + 1, close);
    if (!isIPv6(addr)) return -1;
    out.host = addr;
    i = close + 1;
  } else {
    const start = i;
    while (i < s.length) {
      const c = s.charCodeAt(i);
      if (c >= 128 || HOSTNAME[c] !== 1) break;
      i++;
    }
    const host = s.slice(start, i);
    const first = host.charCodeAt(0);
    const valid = first >= 48 && first <= 57 ? isIPv4(host) || isHostname(host) : isHostname(host);
    if (!valid) return -1;
    out.host = host;
  }
  let j = lwsAroundColon ? skipWs(s, i) : i;
  if (s.charCodeAt(j) === 58 /* : */) {
    j = lwsAroundColon ? skipWs(s, j + 1) : j + 1;
    let port = 0;
    const digitsStart = j;
    while (j < s.length) {
      const c = s.charCodeAt(j);
      if (c < 48 || c > 57) break;
      port = port * 10 + (c - 48);
      j++;
      if (port > 65535) return -1;
    }
    if (j === digitsStart) return -1;
    out.port = port;
    return j;
  }
  return i;
}

/** hostname = *( domainlabel "." ) toplabel [ "." ] (RFC 3261 §25.1); toplabel starts with a letter. */
export function isHostname(s: string): boolean {
  let end = s.length;
  if (end > 0 && s.charCodeAt(end - 1) === 46) end--;
  if (end === 0 || end > 253) return false;
  let labelStart = 0;
  for (let i = 0; i <= end; i++) {
    if (i < end && s.charCodeAt(i) !== 46) continue;
    if (i === labelStart || s.charCodeAt(labelStart) === 45 || s.charCodeAt(i - 1) === 45) return false;
    if (i === end) {
      const first = s.charCodeAt(labelStart) | 0x20;
      return first >= 97 && first <= 122;
    }
    labelStart = i + 1;
  }
  return false;
}

export function formatHost(host: string): string {
  return host.indexOf(":") >= 0 ? `[${host}]` : host;
}

// ---------------------------------------------------------------------------------------------
// URIs

const SCHEME_CHARS = new Uint8Array(128);
{
  const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.";
  for (let i = 0; i < chars.length; i++) SCHEME_CHARS[chars.charCodeAt(i)] = 1;
}

/** Parses an absolute URI (no surrounding whitespace, no angle brackets). */
export function parseUri(s: string): SipUri | undefined {
  const colon = s.indexOf(":");
  if (colon <= 0) return undefined;
  const first = s.charCodeAt(0);
  if (!((first >= 65 && first <= 90) || (first >= 97 && first <= 122))) return undefined;
  for (let i = 1; i < colon; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || SCHEME_CHARS[c] !== 1) return undefined;
  }
  const scheme = colon === 3 && s.startsWith("sip") ? "sip" : colon === 4 && s.startsWith("sips") ? "sips" : s.slice(0, colon).toLowerCase();
  if (scheme === "sip" || scheme === "sips") return parseSipUri(s, scheme, colon + 1);
  if (scheme === "tel") return parseTelUri(s, colon + 1);
  // absoluteURI: any visible non-space characters (RFC 3261 §25.1 hier-part / opaque-part).
  if (colon + 1 >= s.length) return undefined;
  for (let i = colon + 1; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= SP || c === 127 || c === 60 || c === 62 || c === 34) return undefined;
  }
  return { scheme, host: "", params: NO_PARAMS, headers: NO_URI_HEADERS, opaque: s.slice(colon + 1) };
}

function parseSipUri(s: string, scheme: string, start: number): SipUri | undefined {
  const uri: SipUri = { scheme, host: "", params: NO_PARAMS, headers: NO_URI_HEADERS };
  let i = start;
  const at = s.indexOf("@", start);
  if (at >= 0) {
    const pw = s.indexOf(":", start);
    const userEnd = pw >= 0 && pw < at ? pw : at;
    if (userEnd === start || !isUriText(s, start, userEnd, USER)) return undefined;
    uri.user = s.slice(start, userEnd);
    if (userEnd < at) {
      if (!isUriText(s, userEnd + 1, at, PASSWORD)) return undefined;
      uri.password = s.slice(userEnd + 1, at);
    }
    i = at + 1;
  }
  i = scanHostPort(s, i, uri, false);
  if (i < 0) return undefined;
  return parseUriTail(s, i, uri);
}

function parseTelUri(s: string, start: number): SipUri | undefined {
  const uri: SipUri = { scheme: "tel", host: "", params: NO_PARAMS, headers: NO_URI_HEADERS };
  let end = start;
  while (end < s.length && s.charCodeAt(end) !== 59 /* ; */) end++;
  if (end === start || !isUriText(s, start, end, USER)) return undefined;
  uri.user = s.slice(start, end);
  return parseUriTail(s, end, uri);
}

/** uri-parameters and headers after the host part: *( ";" param ) [ "?" header *( "&" header ) ]. */
function parseUriTail(s: string, i: number, uri: SipUri): SipUri | undefined {
  const q = s.indexOf("?", i);
  const paramsEnd = q < 0 ? s.length : q;
  let params: Params | undefined;
  while (i < paramsEnd) {
    if (s.charCodeAt(i) !== 59) return undefined;
    let end = s.indexOf(";", i + 1);
    if (end < 0 || end > paramsEnd) end = paramsEnd;
    let eq = i + 1;
    while (eq < end && s.charCodeAt(eq) !== 61 /* = */) eq++;
    params ??= new Map();
    if (eq < end) {
      if (eq === i + 1 || eq + 1 === end || !isUriText(s, i + 1, eq, PARAM) || !isUriText(s, eq + 1, end, PARAM)) {
        return undefined;
      }
      params.set(s.slice(i + 1, eq).toLowerCase(), s.slice(eq + 1, end));
    } else {
      if (end === i + 1 || !isUriText(s, i + 1, end, PARAM)) return undefined;
      params.set(s.slice(i + 1, end).toLowerCase(), null);
    }
    i = end;
  }
  if (params) uri.params = params;
  if (q >= 0) {
    i = q + 1;
    if (i >= s.length) return undefined;
    const headers = new Map<string, string>();
    while (i < s.length) {
      let end = s.indexOf("&", i);
      if (end < 0) end = s.length;
      let eq = i;
      while (eq < end && s.charCodeAt(eq) !== 61 /* = */) eq++;
      if (eq >= end || eq === i || !isUriText(s, i, eq, HEADER) || !isUriText(s, eq + 1, end, HEADER)) {
        return undefined;
      }
      headers.set(s.slice(i, eq), s.slice(eq + 1, end));
      i = end + 1;
    }
    uri.headers = headers;
  }
  return uri;
}

function formatParams(params: ReadonlyMap<string, string | null>, out: string): string {
  for (const [key, value] of params) out += value === null ? `;${key}` : `;${key}=${value}`;
  return out;
}

export function formatUri(u: SipUri): string {
  if (u.opaque !== undefined) return `${u.scheme}:${u.opaque}`;
  let out = `${u.scheme}:`;
  if (u.scheme === "tel") {
    out += u.user ?? "";
  } else {
    if (u.user !== undefined) out += u.password !== undefined ? `${u.user}:${u.password}@` : `${u.user}@`;
    out += formatHost(u.host);
    if (u.port !== undefined) out += `:${u.port}`;
  }
  out = formatParams(u.params, out);
  let sep = "?";
  for (const [key, value] of u.headers) {
    out += `${sep}${key}=${value}`;
    sep = "&";
  }
  return out;
}

/**
 * URI equivalence (RFC 3261 §19.1.4): scheme and host case-insensitive, user and password
 * case-sensitive, escapes decoded; user, ttl, method, maddr and transport must agree when either
 * URI has them, other parameters only when both have them; headers must all agree; a missing port
 * does not equal an explicit 5060.
 */
export function uriEquals(a: SipUri, b: SipUri): boolean {
  if (a.scheme !== b.scheme) return false;
  if (a.opaque !== undefined || b.opaque !== undefined) return a.opaque === b.opaque;
  if (unescapeUri(a.user ?? "") !== unescapeUri(b.user ?? "")) return false;
  if (unescapeUri(a.password ?? "") !== unescapeUri(b.password ?? "")) return false;
  if (a.host.toLowerCase() !== b.host.toLowerCase() || a.port !== b.port) return false;
  const value = (v: string | null | undefined) => (v === undefined ? undefined : v === null ? "" : unescapeUri(v).toLowerCase());
  for (const key of new Set([...a.params.keys(), ...b.params.keys()])) {
    const va = value(a.params.get(key));
    const vb = value(b.params.get(key));
    const mustAgree = key === "user" || key === "ttl" || key === "method" || key === "maddr" || key === "transport";
    if ((mustAgree || (va !== undefined && vb !== undefined)) && va !== vb) return false;
  }
  if (a.headers.size !== b.headers.size) return false;
  const bHeaders = new Map([...b.headers].map(([k, v]) => [k.toLowerCase(), unescapeUri(v)]));
  for (const [k, v] of a.headers) if (bHeaders.get(k.toLowerCase()) !== unescapeUri(v)) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Header parameters (LWS allowed around ";" and "=", RFC 3261 §25.1 SEMI / EQUAL)

/**
 * Parses *( SEMI generic-param ) starting at s[i] up to `end`. Returns the index where parsing
 * stopped (end, or the first char that is not part of a parameter list), or -1 on a malformed
 * parameter.
 */
export function scanParams(s: string, i: number, end: number, params: Params): number {
  for (;;) {
    const j = skipWs(s, i);
    if (j >= end || s.charCodeAt(j) !== 59 /* ; */) return j;
    const nameStart = skipWs(s, j + 1);
    const nameEnd = scanToken(s, nameStart);
    if (nameEnd === nameStart) return -1;
    const name = s.slice(nameStart, nameEnd).toLowerCase();
    let k = skipWs(s, nameEnd);
    if (k < end && s.charCodeAt(k) === 61 /* = */) {
      k = skipWs(s, k + 1);
      const valueStart = k;
      if (s.charCodeAt(k) === 34 /* " */) {
        k = scanQuoted(s, k);
        if (k < 0) return -1;
      } else if (s.charCodeAt(k) === 91 /* [ */) {
        // gen-value = host: an IPv6 reference
        const close = s.indexOf("]", k);
        if (close < 0 || close >= end || !isIPv6(s.slice(k + 1, close))) return -1;
        k = close + 1;
      } else {
        // gen-value = token, or an IPv6 address without brackets (RFC 5118 §4.5 received=)
        let colon = false;
        while (k < end) {
          const c = s.charCodeAt(k);
          if (c < 128 && TOKEN[c] === 1) k++;
          else if (c === 58) {
            colon = true;
            k++;
          } else break;
        }
        if (k === valueStart || (colon && !isIPv6(s.slice(valueStart, k)))) return -1;
      }
      params.set(name, s.slice(valueStart, k));
      i = k;
    } else {
      params.set(name, null);
      i = nameEnd;
    }
  }
}

/** Given s[i] === '"', returns the index after the closing quote, or -1 when unbalanced. */
export function scanQuoted(s: string, i: number): number {
  i++;
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c === 92 /* \ */) i += 2;
    else if (c === 34) return i + 1;
    else i++;
  }
  return -1;
}

/** Removes the quotes and backslash escapes of a quoted-string (RFC 3261 §25.1 quoted-pair). */
export function unquote(s: string): string {
  if (s.length < 2 || s.charCodeAt(0) !== 34) return s;
  const inner = s.slice(1, -1);
  return inner.indexOf("\\") < 0 ? inner : inner.replace(/\\(.)/g, "$1");
}

export function quote(s: string): string {
  return `"${s.replace(/(["\\])/g, "\\$1")}"`;
}

/**
 * Splits a header value at top-level commas: commas inside quoted strings and <...> do not split
 * (RFC 3261 §7.3.1). Elements are trimmed; empty elements are kept so callers can reject them.
 */
export function splitTopLevel(s: string): string[] {
  if (s.indexOf(",") < 0) return [s];
  const out: string[] = [];
  let start = 0;
  let angle = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 34) {
      const close = scanQuoted(s, i);
      if (close < 0) break;
      i = close - 1;
    } else if (c === 60) angle = true;
    else if (c === 62) angle = false;
    else if (c === 44 && !angle) {
      out.push(s.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(s.slice(start).trim());
  return out;
}

// ---------------------------------------------------------------------------------------------
// name-addr / addr-spec (RFC 3261 §20.10, §20.20, §20.39)

export function parseNameAddr(s: string): NameAddr | undefined {
  const end = s.length;
  let i = skipWs(s, 0);
  let displayName: string | undefined;
  const lt = s.indexOf("<", i);
  if (s.charCodeAt(i) === 34) {
    const close = scanQuoted(s, i);
    if (close < 0) return undefined;
    const quoted = unquote(s.slice(i, close));
    if (quoted !== "") displayName = quoted;
    i = skipWs(s, close);
    if (s.charCodeAt(i) !== 60) return undefined;
  } else if (lt >= 0 && !hasUnquotedUriBefore(s, i, lt)) {
    // display-name = *(token LWS): tokens separated by whitespace, right up to "<" (RFC 4475 §3.1.1.6).
    // Beyond the ABNF, non-ASCII (UTF-8) letters are accepted: some devices send unquoted names.
    const words: string[] = [];
    let k = i;
    while (k < lt) {
      const wordEnd = scanDisplayWord(s, k);
      if (wordEnd === k) return undefined;
      words.push(s.slice(k, wordEnd));
      k = skipWs(s, wordEnd);
    }
    if (words.length > 0) displayName = words.join(" ");
    i = lt;
  } else {
    // addr-spec: the URI runs to the first whitespace or ";", which start header parameters.
    const uriStart = i;
    while (i < end) {
      const c = s.charCodeAt(i);
      if (c === 59 || isWs(c)) break;
      // RFC 3261 §20: a URI with ",", "?" or ";" must be enclosed in <>
      if (c === 44 || c === 63) return undefined;
      i++;
    }
    const uri = parseUri(s.slice(uriStart, i));
    if (uri === undefined) return undefined;
    const params = paramsToEnd(s, i, end);
    return params && { uri, params };
  }
  // s[i] === "<": no whitespace allowed between the brackets (RFC 4475 §3.1.2.14)
  const gt = s.indexOf(">", i + 1);
  if (gt < 0) return undefined;
  const uri = parseUri(s.slice(i + 1, gt));
  if (uri === undefined) return undefined;
  const params = paramsToEnd(s, gt + 1, end);
  if (params === undefined) return undefined;
  return displayName === undefined ? { uri, params } : { displayName, uri, params };
}

/** *( SEMI generic-param ) from s[i] to `end` and nothing else; undefined when malformed. */
function paramsToEnd(s: string, i: number, end: number): ReadonlyMap<string, string | null> | undefined {
  if (skipWs(s, i) >= end) return NO_PARAMS;
  const params: Params = new Map();
  return scanParams(s, i, end, params) === end ? params : undefined;
}

/**
 * A name-addr or addr-spec whose URI does not parse, read for its header parameters only (the
 * tag), with an empty URI in its place; undefined when the parameters do not parse either.
 */
export function parseNameAddrParams(s: string): NameAddr | undefined {
  const lt = s.indexOf("<");
  const gt = lt < 0 ? -1 : s.indexOf(">", lt + 1);
  if (lt >= 0 && gt < 0) return undefined;
  const semicolon = s.indexOf(";");
  const paramsStart = gt >= 0 ? gt + 1 : semicolon < 0 ? s.length : semicolon;
  const params = paramsToEnd(s, paramsStart, s.length);
  return params && { uri: { scheme: "", host: "", params: NO_PARAMS, headers: NO_URI_HEADERS }, params };
}

function scanDisplayWord(s: string, i: number): number {
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c >= 128 || TOKEN[c] === 1) i++;
    else break;
  }
  return i;
}

/** Whether an addr-spec (a ":" of a scheme before any whitespace) precedes the "<" at `lt`. */
function hasUnquotedUriBefore(s: string, from: number, lt: number): boolean {
  for (let k = from; k < lt; k++) {
    const c = s.charCodeAt(k);
    if (c === 58 || c === 59) return true;
  }
  return false;
}

export function formatNameAddr(n: NameAddr): string {
  let out = n.displayName !== undefined && n.displayName !== "" ? `${quote(n.displayName)} <` : "<";
  out += formatUri(n.uri) + ">";
  return formatParams(n.params, out);
}

// ---------------------------------------------------------------------------------------------
// Via (RFC 3261 §20.42, §25.1 via-parm)

/** Parses one via-parm: sent-protocol LWS sent-by *( SEMI via-params ). */
export function parseVia(s: string): Via | undefined {
  const end = s.length;
  // sent-protocol = protocol-name SLASH protocol-version SLASH transport, SLASH = SWS "/" SWS
  const parts: string[] = [];
  let i = 0;
  for (let part = 0; part < 3; part++) {
    i = skipWs(s, i);
    if (part > 0) {
      if (s.charCodeAt(i) !== 47) return undefined;
      i = skipWs(s, i + 1);
    }
    const tokenEnd = scanToken(s, i);
    if (tokenEnd === i) return undefined;
    parts.push(s.slice(i, tokenEnd).toUpperCase());
    i = tokenEnd;
  }
  const transportEnd = i;
  i = skipWs(s, i);
  if (i === transportEnd) return undefined; // LWS required before sent-by
  const via: Via = { protocol: `${parts[0]}/${parts[1]}`, transport: parts[2] ?? "", host: "", params: new Map() };
  i = scanHostPort(s, i, via, true);
  if (i < 0) return undefined;
  const stop = scanParams(s, i, end, via.params);
  if (stop !== end) return undefined;
  return via;
}

export function formatVia(v: Via): string {
  let out = `${v.protocol}/${v.transport} ${formatHost(v.host)}`;
  if (v.port !== undefined) out += `:${v.port}`;
  return formatParams(v.params, out);
}
