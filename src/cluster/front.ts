// The cluster's SIP front as a node names it (`cluster.front`): `sip:HOST[:PORT]` (or `HOST[:PORT]`)
// with HOST an IP literal ([…] for IPv6), port 5060 by default. The node sends its out-of-dialog
// requests there (outbound proxy) and registers its trunks with a Contact at that address.
//   parseFront("sip:10.0.0.1:5060")   // { address: "10.0.0.1", port: 5060 }
//   frontProblem("sip:front.example")  // "… must be an IP address …"
import { isIpLiteral } from "../sip/resolver.ts";

export interface FrontAddress {
  /** IP literal, without brackets for IPv6. */
  address: string;
  port: number;
}

const FRONT_PATTERN = /^(?:sip:)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(\d{1,5}))?$/;

/** The front's address, or a description of what is wrong with `value`. */
export function parseFrontAddress(value: string): FrontAddress | { error: string } {
  const match = FRONT_PATTERN.exec(value.trim());
  if (!match) return { error: `"${value}" is not sip:HOST[:PORT]` };
  const host = match[1]!.replace(/^\[|\]$/g, "");
  if (!isIpLiteral(host)) return { error: `the front's host must be an IP address (nodes send to it without DNS), not "${host}"` };
  const port = match[2] === undefined ? 5060 : Number(match[2]);
  if (port < 1 || port > 65535) return { error: `port ${port} is out of range 1-65535` };
  return { address: host, port };
}

export function parseFront(value: string): FrontAddress {
  const parsed = parseFrontAddress(value);
  if ("error" in parsed) throw new Error(parsed.error);
  return parsed;
}

export function frontProblem(value: string): string | undefined {
  const parsed = parseFrontAddress(value);
  return "error" in parsed ? parsed.error : undefined;
}
