// SIP headers the applications see and set. Outbound: the dial API's `headers` (only X-*,
// P-Asserted-Identity, Privacy and Diversion, never a header that steers the call itself) and the
// caller-ID templates' P-Asserted-Identity / Privacy go into the INVITE. Inbound: the headers named in
// `calls.headersToAttributes` become attributes of the caller's participant and call record.
import { headerKey, type SipRequest } from "../sip/message.ts";

/** Most headers one dial request may add. */
export const MAX_DIAL_HEADERS = 16;
/** Longest header value the dial API takes, and the longest inbound value kept as an attribute. */
export const MAX_HEADER_VALUE = 512;

// RFC 3261 §25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
const TOKEN = /^[A-Za-z0-9\-.!%*_+`'~]+$/;
const NAMED: ReadonlySet<string> = new Set(["p-asserted-identity", "privacy", "diversion"]);

/** Why `name` may not be set through the dial API, or undefined when it may. */
export function dialHeaderNameError(name: string): string | undefined {
  if (name.length > 64) return "must be at most 64 characters";
  if (!TOKEN.test(name)) return "must be a header name (token characters only)";
  if (/^x-./i.test(name) || NAMED.has(name.toLowerCase())) return undefined;
  return "must be an X- header, P-Asserted-Identity, Privacy or Diversion";
}

/** Why `value` cannot be a header value: CR, LF or other control characters would split or break the header. */
export function headerValueError(value: string): string | undefined {
  if (value.length > MAX_HEADER_VALUE) return `must be at most ${MAX_HEADER_VALUE} characters`;
  if (/[\x00-\x08\x0a-\x1f\x7f]/.test(value)) return "must not contain CR, LF or other control characters";
  if (value.trim() === "") return "must not be empty";
  return undefined;
}

/**
 * The INVITE's extra headers: the caller ID's first, replaced by the dial request's headers of the
 * same name (case-insensitive), then the rest of the dial request's.
 */
export function outboundHeaders(fromCallerId: [string, string][], fromDial: Record<string, string> | undefined): [string, string][] {
  const dial = Object.entries(fromDial ?? {}).map(([name, value]): [string, string] => [name, value.trim()]);
  const named = new Set(dial.map(([name]) => name.toLowerCase()));
  return [...fromCallerId.filter(([name]) => !named.has(name.toLowerCase())), ...dial];
}

/**
 * Attributes from an inbound INVITE's headers per `mapping` (header name → attribute name): repeated
 * headers joined with ", ", control characters dropped, cut at MAX_HEADER_VALUE. Absent headers give
 * no attribute; the work is bounded by the configured mapping, whatever the request carries.
 */
export function attributesFromHeaders(req: SipRequest, mapping: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  const wanted = Object.entries(mapping);
  if (wanted.length === 0) return out;
  for (const [header, attribute] of wanted) {
    const key = headerKey(header);
    const values = req.headerFields.filter((f) => headerKey(f.name) === key).map((f) => f.value);
    if (values.length === 0) continue;
      out[attribute] = values.join(", ").replace(/[\x00-\x1f\x7f]/g, "").slice(0, MAX_HEADER_VALUE);
  }
  return out;
}
