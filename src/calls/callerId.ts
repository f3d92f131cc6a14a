// The From header of an outbound INVITE, and its P-Asserted-Identity / Privacy headers: the channel's
// caller-ID templates rendered over the calling client's info; defaults are no display name, the
// trunk's username (with no username at all the anonymous From of RFC 3261 §8.1.1.3), and neither header.
import { parseTemplate, renderTemplate, type CallerIdClientInfo } from "../channels/callerIdTemplate.ts";
import { NO_PARAMS, NO_URI_HEADERS, type NameAddr } from "../sip/message.ts";

export interface CallerIdTemplates {
  displayName?: string;
  username?: string;
  assertedIdentity?: string;
  privacy?: string;
}

export function renderCallerId(
  templates: CallerIdTemplates | undefined,
  client: CallerIdClientInfo,
  trunkUsername: string,
): { displayName?: string; username: string; headers: [string, string][] } {
  const render = (template: string | undefined, info: CallerIdClientInfo = client) => {
    if (template === undefined) return "";
    const parsed = parseTemplate(template);
    return parsed.ok ? renderTemplate(parsed.parts, info).trim() : "";
  };
  // Control characters would break the header line; the user part is %-escaped (RFC 3261 §19.1.2).
  const displayName = render(templates?.displayName).replace(/[\x00-\x1f\x7f]/g, "");
  const username = escapeUser(render(templates?.username));
  const headers: [string, string][] = [];
  // RFC 3325 §9.1: PAI = name-addr or addr-spec; the template is a URI, its variables escaped so none can end it.
  const asserted = render(templates?.assertedIdentity, escapedInfo(client));
  if (asserted) headers.push(["P-Asserted-Identity", `<${asserted}>`]);
  if (templates?.privacy) headers.push(["Privacy", templates.privacy]);
  return { ...(displayName ? { displayName } : {}), username: username || trunkUsername, headers };
}

function escapedInfo(client: CallerIdClientInfo): CallerIdClientInfo {
  const out: CallerIdClientInfo = {};
  for (const [key, value] of Object.entries(client) as [keyof CallerIdClientInfo, string | string[] | undefined][]) {
    if (typeof value === "string") (out as Record<string, string>)[key] = escapeUser(value);
    else if (Array.isArray(value)) out.roles = value.map(escapeUser);
  }
  return out;
}

/**
 * The From of an outbound INVITE: the caller ID's user part at the trunk's domain. With no user part
 * at all (no username template, a trunk without username) there is nobody to name, and `sip:@domain`
 * is no URI (RFC 3261 §25.1: user = 1*(...)). `sip:domain` would be valid but names the provider's
 * domain itself as the caller; RFC 3261 §8.1.1.3 asks a UA with no identity to give display name
 * "Anonymous" and a syntactically correct, meaningless URI, sip:anonymous@anonymous.invalid
 * (the anonymous From that RFC 3323 §4.1.1.3 recommends too).
 */
export function fromHeader(callerId: { displayName?: string; username: string }, trunkDomain: string): NameAddr {
  const uri = callerId.username
    ? { scheme: "sip", user: callerId.username, host: trunkDomain, params: NO_PARAMS, headers: NO_URI_HEADERS }
    : { scheme: "sip", user: "anonymous", host: "anonymous.invalid", params: NO_PARAMS, headers: NO_URI_HEADERS };
  const displayName = callerId.displayName ?? (callerId.username ? undefined : "Anonymous");
  return { ...(displayName ? { displayName } : {}), uri, params: NO_PARAMS };
}

// RFC 3261 §25.1: user = 1*( unreserved / escaped / user-unreserved )
const USER_CHAR = /[A-Za-z0-9\-_.!~*'()&=+$,;?/]/;

function escapeUser(user: string): string {
  let out = "";
  for (const byte of new TextEncoder().encode(user)) {
    const c = String.fromCharCode(byte);
    out += byte < 128 && USER_CHAR.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}
