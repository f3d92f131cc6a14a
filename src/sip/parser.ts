// SIP message parser (RFC 3261 §7, §18.3, §20; RFC 4475 torture tests; RFC 5118 IPv6).
// Errors are values: parseMessage never throws. A rejected request still carries a partial
// SipRequest when Via, From, To, Call-ID and CSeq were readable, so the stack can answer 400
// (or 413/505) statelessly; a rejected response is simply dropped by the caller.

import { SipRequest, SipResponse, emptyUri, parseCSeq, parseScalar, resolveHeaderNameAt, type CSeq } from "./message.ts";
import { isToken, parseNameAddr, parseNameAddrParams, parseUri, parseVia, splitTopLevel, type NameAddr, type Via } from "./uri.ts";

export interface ParseLimits {
  /** Whole message (start line, headers, body) in bytes. */
  maxSize: number;
  /** Header lines, folded continuation lines included. */
  maxHeaders: number;
  /** Bytes of one physical line. */
  maxLineLength: number;
}

export const DEFAULT_LIMITS: Readonly<ParseLimits> = { maxSize: 65536, maxHeaders: 256, maxLineLength: 8192 };

export interface ParseError {
  /** Status a UAS would answer with: 400, 413 or 505. */
  status: number;
  /** Reason phrase naming the defect, e.g. "Malformed Via header". */
  reason: string;
  /** What the bytes looked like; a "response" or "unknown" error is dropped, never answered. */
  kind: "request" | "response" | "unknown";
  /** Set when enough was readable to build a response (Via, From, To, Call-ID, CSeq). */
  request?: SipRequest;
}

export type ParseResult = { ok: true; message: SipRequest | SipResponse } | { ok: false; error: ParseError };

const decoder = new TextDecoder();
const LF = 10;
const CR = 13;

interface Defect {
  status: number;
  reason: string;
}

export function parseMessage(
  data: Uint8Array,
  framing: "datagram" | "stream",
  limits?: Partial<ParseLimits>,
): ParseResult {
  const maxSize = limits?.maxSize ?? DEFAULT_LIMITS.maxSize;
  const maxHeaders = limits?.maxHeaders ?? DEFAULT_LIMITS.maxHeaders;
  const maxLineLength = limits?.maxLineLength ?? DEFAULT_LIMITS.maxLineLength;
  // RFC 3261 §7.5: CRLFs before the start line are ignored.
  let start = 0;
  while (start < data.length && (data[start] === CR || data[start] === LF)) start++;
  if (start === data.length) return fail(400, "Empty message", "unknown");

  // Find the empty line ending the header section; enforce line length and line count limits.
  let headEnd = -1; // index of the LF closing the last header line (or data.length)
  let bodyStart = data.length;
  let lineStart = start;
  let lines = 0;
  for (;;) {
    const lf = data.indexOf(LF, lineStart);
    const lineEnd = lf < 0 ? data.length : lf;
    if (lineEnd - lineStart > maxLineLength) return fail(400, "Header line too long", guessKind(data, start));
    if (++lines > maxHeaders + 1) return fail(400, "Too many header fields", guessKind(data, start));
    if (lf < 0) {
      if (framing === "stream") return fail(400, "Header section not terminated", guessKind(data, start));
      headEnd = data.length; // datagram without the empty line: headers run to its end
      break;
    }
    if (lf - start > maxSize) return fail(413, "Message too large", guessKind(data, start));
    if (data[lf + 1] === LF) {
      headEnd = lf;
      bodyStart = lf + 2;
      break;
    }
    if (data[lf + 1] === CR && data[lf + 2] === LF) {
      headEnd = lf;
      bodyStart = lf + 3;
      break;
    }
    lineStart = lf + 1;
  }

  const head = decoder.decode(data.subarray(start, headEnd));
  let defect: Defect | undefined;
  const note = (status: number, reason: string) => {
    defect ??= { status, reason };
  };

  // Start line
  let pos = head.indexOf("\n");
  if (pos < 0) pos = head.length;
  let startLine = head.slice(0, pos);
  if (startLine.endsWith("\r")) startLine = startLine.slice(0, -1);
  let message: SipRequest | SipResponse;
  let isRequest: boolean;
  if (startsWithSip(startLine)) {
    isRequest = false;
    const r = parseStatusLine(startLine);
    if (!("message" in r)) return fail(r.status, r.reason, "response");
    message = r.message;
  } else {
    isRequest = true;
    const r = parseRequestLine(startLine);
    message = r.message;
    if (r.defect) note(r.defect.status, r.defect.reason);
  }

  // Header lines, unfolding continuation lines (RFC 3261 §7.3.1)
  let name = "";
  let key = "";
  let value = "";
  let haveField = false;
  while (pos < head.length) {
    const lineFrom = pos + 1;
    let lineTo = head.indexOf("\n", lineFrom);
    if (lineTo < 0) lineTo = head.length;
    pos = lineTo;
    if (lineTo > lineFrom && head.charCodeAt(lineTo - 1) === CR) lineTo--;
    if (lineTo === lineFrom) continue;
    const first = head.charCodeAt(lineFrom);
    if (first === 32 || first === 9) {
      if (!haveField) {
        note(400, "Continuation line before the first header");
        continue;
      }
      const more = sliceWithoutLws(head, lineFrom, lineTo);
      if (more.length > 0) value = value.length > 0 ? `${value} ${more}` : more;
      continue;
    }
    if (haveField) message.pushField(name, key, value);
    haveField = false;
    const colon = head.indexOf(":", lineFrom);
    if (colon < 0 || colon > lineTo) {
      note(400, "Malformed header line");
      continue;
    }
    let nameEnd = colon;
    while (nameEnd > lineFrom && (head.charCodeAt(nameEnd - 1) === 32 || head.charCodeAt(nameEnd - 1) === 9)) nameEnd--;
    const resolved = resolveHeaderNameAt(head, lineFrom, nameEnd);
    if (resolved === undefined) {
      note(400, "Malformed header name");
      continue;
    }
    name = resolved.name;
    key = resolved.key;
    value = sliceWithoutLws(head, colon + 1, lineTo);
    haveField = true;
  }
  if (haveField) message.pushField(name, key, value);

  // Mandatory headers, parsed eagerly (RFC 3261 §8.1.1)
  const mandatory = checkMandatory(message, isRequest, note);

  // Body (RFC 3261 §18.3, §20.14)
  const declared = mandatory.contentLength;
  let end: number;
  if (declared === undefined) {
    if (framing === "stream") note(400, "Missing Content-Length header");
    end = data.length; // datagram: the body is the rest of the datagram
  } else if (declared === "malformed") {
    end = data.length;
  } else {
    end = bodyStart + declared;
    if (end > data.length) {
      note(400, framing === "datagram" ? "Content-Length larger than datagram" : "Message shorter than Content-Length");
      end = data.length;
    }
  }
  if (end - start > maxSize) defect = { status: 413, reason: "Message too large" };
  if (bodyStart < end) message.body = data.slice(bodyStart, end);

  if (defect === undefined) return { ok: true, message };
  const error: ParseError = { status: defect.status, reason: defect.reason, kind: isRequest ? "request" : "response" };
  if (isRequest && mandatory.readable) error.request = message as SipRequest;
  return { ok: false, error };
}

/** text[from, to) without leading and trailing SP, HT or stray CR/LF (RFC 3261 §7.3.1 LWS). */
function sliceWithoutLws(text: string, from: number, to: number): string {
  while (from < to && isLws(text.charCodeAt(from))) from++;
  while (to > from && isLws(text.charCodeAt(to - 1))) to--;
  return text.slice(from, to);
}

function isLws(c: number): boolean {
  return c === 32 || c === 9 || c === 13 || c === 10;
}

function fail(status: number, reason: string, kind: ParseError["kind"]): ParseResult {
  return { ok: false, error: { status, reason, kind } };
}

/**
 * Whether raw bytes are a response, read from their first bytes as parseMessage would decide it
 * (a status line starts with "SIP/", §7.2; CRLFs before it are ignored, §7.5), without parsing.
 */
export function isResponseBytes(data: Uint8Array): boolean {
  let i = 0;
  while (i < data.length && (data[i] === CR || data[i] === LF)) i++;
  return (
    i + 4 <= data.length &&
    (data[i]! | 0x20) === 0x73 && // s
    (data[i + 1]! | 0x20) === 0x69 && // i
    (data[i + 2]! | 0x20) === 0x70 && // p
    data[i + 3] === 0x2f // /
  );
}

/** "SIP/" in any case at the start: a status line (RFC 3261 §7.2). */
function startsWithSip(line: string): boolean {
  return (
    (line.charCodeAt(0) | 0x20) === 115 && (line.charCodeAt(1) | 0x20) === 105 &&
    (line.charCodeAt(2) | 0x20) === 112 && line.charCodeAt(3) === 47
  );
}

function guessKind(data: Uint8Array, start: number): ParseError["kind"] {
  const sip =
    ((data[start] ?? 0) | 0x20) === 115 && ((data[start + 1] ?? 0) | 0x20) === 105 &&
    ((data[start + 2] ?? 0) | 0x20) === 112 && data[start + 3] === 47;
  return sip ? "response" : "request";
}

const VERSION = /^SIP\/\d{1,3}\.\d{1,3}$/i;

function isVersion(v: string): boolean {
  return v === "SIP/2.0" || VERSION.test(v);
}

function parseRequestLine(line: string): { message: SipRequest; defect?: Defect } {
  // Request-Line = Method SP Request-URI SP SIP-Version CRLF (RFC 3261 §7.1); single spaces only.
  const sp1 = line.indexOf(" ");
  const sp2 = sp1 < 0 ? -1 : line.indexOf(" ", sp1 + 1);
  const token = sp1 > 0 ? line.slice(0, sp1) : "";
  const method = isToken(token) ? token : "";
  if (sp1 < 0 || sp2 < 0) return rejectRequestLine(method, "Malformed Request-Line");
  if (method === "") return rejectRequestLine(method, "Malformed method");
  if (sp2 === sp1 + 1) return rejectRequestLine(method, "Extra whitespace in Request-Line");
  // RFC 4475 §3.1.2.10: trailing whitespace after the version is tolerated.
  const version = line.slice(sp2 + 1).trimEnd();
  const uriText = line.slice(sp1 + 1, sp2);
  if (version.indexOf(" ") >= 0 || version.indexOf("\t") >= 0) return rejectRequestLine(method, "Whitespace in Request-URI");
  if (uriText.charCodeAt(0) === 60) return rejectRequestLine(method, "Request-URI enclosed in <>");
  const uri = parseUri(uriText);
  const message = new SipRequest(method, uri ?? emptyUri());
  if (!isVersion(version)) return { message, defect: { status: 400, reason: "Malformed SIP version" } };
  message.version = version.toUpperCase();
  if (message.version !== "SIP/2.0") return { message, defect: { status: 505, reason: "Version Not Supported" } };
  if (uri === undefined) return { message, defect: { status: 400, reason: "Malformed Request-URI" } };
  // RFC 3261 §19.1.1 table: headers are not allowed in a Request-URI (RFC 4475 §3.1.2.11).
  if (uri.headers.size > 0) return { message, defect: { status: 400, reason: "Headers in Request-URI" } };
  return { message };
}

function rejectRequestLine(method: string, reason: string): { message: SipRequest; defect: Defect } {
  return { message: new SipRequest(method, emptyUri()), defect: { status: 400, reason } };
}

function parseStatusLine(line: string): { message: SipResponse } | Defect {
  // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF (RFC 3261 §7.2)
  const sp1 = line.indexOf(" ");
  if (sp1 < 0) return { status: 400, reason: "Malformed Status-Line" };
  const version = line.slice(0, sp1).toUpperCase();
  if (!isVersion(version)) return { status: 400, reason: "Malformed SIP version" };
  let i = sp1 + 1;
  let code = 0;
  const digits = i;
  while (i < line.length && i - digits < 4) {
    const c = line.charCodeAt(i);
    if (c < 48 || c > 57) break;
    code = code * 10 + (c - 48);
    i++;
  }
  if (i - digits !== 3 || (i < line.length && line.charCodeAt(i) !== 32) || code < 100 || code > 699) {
    return { status: 400, reason: "Malformed status code" };
  }
  if (version !== "SIP/2.0") return { status: 505, reason: "Version Not Supported" };
  const message = new SipResponse(code, line.slice(i + 1));
  message.version = version;
  return { message };
}

/**
 * Parses Via, From, To, Call-ID, CSeq, Max-Forwards and Content-Length in one pass over the
 * fields, caching the parsed values on the message. `readable` says whether a response could be
 * built (the partial request of a ParseError).
 */
function checkMandatory(
  message: SipRequest | SipResponse,
  isRequest: boolean,
  note: (status: number, reason: string) => void,
): { readable: boolean; contentLength: number | "malformed" | undefined } {
  const vias: Via[] = [];
  let viaCount = 0;
  let topViaUsable = false;
  // First value of each single-valued header; RFC 4475 §3.3.8/§3.3.9: a second one is malformed.
  const single: (string | undefined)[] = [undefined, undefined, undefined, undefined, undefined, undefined];
  for (const f of message.headerFields) {
    if (f.key === "via") {
      for (const v of splitTopLevel(f.value)) {
        const via = parseVia(v);
        if (via) {
          vias.push(via);
          if (viaCount === 0) topViaUsable = true;
        } else {
          note(400, "Malformed Via header");
          // RFC 4475 §3.1.2.1: a Via with broken parameters still tells where to send the 400
          const lenient = viaCount === 0 ? parseVia(v.slice(0, semicolonOrEnd(v))) : undefined;
          if (lenient) {
            vias.push(lenient);
            topViaUsable = true;
          }
        }
        viaCount++;
      }
      continue;
    }
    const slot = SINGLE_VALUED.get(f.key);
    if (slot === undefined) continue;
    if (single[slot] !== undefined) note(400, `Multiple ${f.name} headers`);
    else single[slot] = f.value;
  }
  const [from, to, callId, cseq, maxForwards, contentLength] = single;
  if (viaCount === 0) note(400, "Missing Via header");
  // A response's From and To are copies of our own request's (RFC 3261 §8.2.6.2), and it matches
  // its transaction by Via branch and CSeq method alone (§17.1.3): a URI in them that we cannot
  // read (one a peer mangled, or a `sip:@host`) must not lose the response, only their tags matter.
  const fromParsed = from === undefined ? undefined : readNameAddr(from, isRequest);
  if (from === undefined) note(400, "Missing From header");
  else if (fromParsed === undefined) note(400, "Malformed From header");
  const toParsed = to === undefined ? undefined : readNameAddr(to, isRequest);
  if (to === undefined) note(400, "Missing To header");
  else if (toParsed === undefined) note(400, "Malformed To header");
  if (callId === undefined) note(400, "Missing Call-ID header");
  else if (!isCallId(callId)) note(400, "Malformed Call-ID header");
  let cseqParsed: CSeq | undefined;
  if (cseq === undefined) note(400, "Missing CSeq header");
  else {
    cseqParsed = parseCSeq(cseq);
    if (cseqParsed === undefined) note(400, "Malformed CSeq header");
    // RFC 3261 §8.1.1.5 (RFC 4475 §3.1.2.17)
    else if (isRequest && message instanceof SipRequest && message.method !== "" && cseqParsed.method !== message.method) {
      note(400, "CSeq method does not match Request-Line");
    }
  }
  if (maxForwards !== undefined && parseScalar(maxForwards, 255) === undefined) note(400, "Malformed Max-Forwards header");
  let length: number | "malformed" | undefined;
  if (contentLength !== undefined) {
    length = parseScalar(contentLength, 0xffffffff) ?? "malformed";
    if (length === "malformed") note(400, "Malformed Content-Length header");
  }
  message.cacheParsed({ vias, from: fromParsed, to: toParsed, cseq: cseqParsed });
  const readable = topViaUsable && from !== undefined && to !== undefined && callId !== undefined && cseq !== undefined;
  return { readable, contentLength: length };
}

function readNameAddr(value: string, isRequest: boolean): NameAddr | undefined {
  return parseNameAddr(value) ?? (isRequest ? undefined : parseNameAddrParams(value));
}

/** callid = word [ "@" word ]: no whitespace, not empty (RFC 3261 §25.1). */
function isCallId(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 32 || c === 127) return false;
  }
  return true;
}

const SINGLE_VALUED = new Map(["from", "to", "call-id", "cseq", "max-forwards", "content-length"].map((k, i) => [k, i]));

function semicolonOrEnd(s: string): number {
  const i = s.indexOf(";");
  return i < 0 ? s.length : i;
}
