// The original sender of a request relayed by a trusted front (the cluster's Kamailio,
// deploy/kamailio/kamailio.cfg): the front writes it into X-Trunkline-Source as
// "ip:port;transport" ("[ip]:port;transport" for IPv6). Only a front's word counts: the transport
// layer reads the header from trusted fronts and removes it from everyone else's requests.
import type { TransportName } from "./message.ts";
import type { Endpoint } from "./transport.ts";

export const RELAYED_SOURCE_HEADER = "X-Trunkline-Source";

const FORMAT = /^\s*(?:\[([0-9a-f:.]+)\]|(\d{1,3}(?:\.\d{1,3}){3})):(\d{1,5});(udp|tcp|tls)\s*$/i;

/** The endpoint a front's header names, or undefined when the value is not exactly that form. */
export function parseRelayedSource(value: string | undefined): Endpoint | undefined {
  if (value === undefined) return undefined;
  const m = FORMAT.exec(value);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { address: (m[1] ?? m[2]!).toLowerCase(), port, transport: m[4]!.toLowerCase() as TransportName };
}
