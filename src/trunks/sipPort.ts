// Adapts the SIP stack to what the trunk clients need (TrunkSipPort): a failure to even start a
// transaction (no listener for the trunk's transport) becomes a transport error value, not a throw.
import type { SipStack } from "../sip/stack.ts";
import { isIpLiteral } from "../sip/resolver.ts";
import type { TrunkSipPort } from "./exchange.ts";

export function stackPort(stack: SipStack): TrunkSipPort {
  return {
    async send(req, target, o) {
      try {
        // RFC 5922 §4: the certificate must match the trunk's domain, not the SRV target's address.
        const serverName = isIpLiteral(target.domain) ? undefined : target.domain;
        return await stack.sendRequest(req, target, { verify: o.tlsVerify, ...(serverName ? { serverName } : {}) }).outcome;
      } catch (err) {
        return { kind: "transportError", error: err instanceof Error ? err : new Error(String(err)) };
      }
    },
    contact: (user, transport) => stack.contactFor(user, transport),
    get localHost() {
      return stack.contactFor(undefined, "udp").uri.host;
    },
  };
}
