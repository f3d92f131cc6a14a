// The `to` of an outbound call: an E.164 number (sent to the trunk's domain) or a SIP URI.
import { NO_PARAMS, NO_URI_HEADERS, parseUri, type SipUri } from "../sip/message.ts";

export type DialTarget = { kind: "number"; number: string } | { kind: "uri"; uri: SipUri };

/** `+` and up to 15 digits (E.164), or a national/short number of digits; a sip:/sips: URI otherwise. */
export function parseDialTarget(to: string): DialTarget | { error: string } {
  const text = to.trim();
  if (/^\+?[0-9]{1,15}$/.test(text)) return { kind: "number", number: text };
  if (/^sips?:/i.test(text)) {
    const uri = parseUri(text);
    if (uri && uri.host) return { kind: "uri", uri };
    return { error: "is not a valid SIP URI" };
  }
  return { error: "must be an E.164 number (+15551234567) or a sip: URI" };
}

/** The Request-URI for a target reached through a trunk (RFC 3261 §8.1.1.1). */
export function requestUriFor(target: DialTarget, trunk: { domain: string; port?: number }): SipUri {
  if (target.kind === "uri") return target.uri;
  return { scheme: "sip", user: target.number, host: trunk.domain, port: trunk.port, params: NO_PARAMS, headers: NO_URI_HEADERS };
}
