// The From header of an outbound INVITE: the channel's caller-ID templates rendered over the
// calling client's info; defaults are no display name and the trunk's username.
import { parseTemplate, renderTemplate, type CallerIdClientInfo } from "../channels/callerIdTemplate.ts";

export interface CallerIdTemplates {
  displayName?: string;
  username?: string;
}

export function renderCallerId(
  templates: CallerIdTemplates | undefined,
  client: CallerIdClientInfo,
  trunkUsername: string,
): { displayName?: string; username: string } {
  const render = (template: string | undefined) => {
    if (template === undefined) return "";
    const parsed = parseTemplate(template);
    return parsed.ok ? renderTemplate(parsed.parts, client).trim() : "";
  };
  // Control characters would break the header line; the user part is %-escaped (RFC 3261 §19.1.2).
  const displayName = render(templates?.displayName).replace(/[\x00-\x1f\x7f]/g, "");
  const username = escapeUser(render(templates?.username));
  return { ...(displayName ? { displayName } : {}), username: username || trunkUsername };
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
