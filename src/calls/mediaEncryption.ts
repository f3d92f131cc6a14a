// The SRTP policy of one call's media: the trunk's `mediaEncryption`, unless the call's signalling
// would carry the SDES keys in the clear. RFC 4568 §8.3: the keys in a=crypto are only as secret as
// the SIP messages carrying them, so without TLS (and without the trunk's `allowSdesWithoutTls`)
// an "optional" trunk's call runs plain RTP and a "required" trunk's call is refused.
import type { TrunkInput } from "../config/entities.ts";
import type { MediaEncryption } from "../media/sdp.ts";
import type { TransportName } from "../sip/message.ts";

export type CallEncryption = { ok: true; encryption: MediaEncryption } | { ok: false; reason: string };

export function callEncryption(trunk: Pick<TrunkInput, "mediaEncryption" | "allowSdesWithoutTls">, transport: TransportName): CallEncryption {
  if (trunk.mediaEncryption === "none" || transport === "tls" || trunk.allowSdesWithoutTls) return { ok: true, encryption: trunk.mediaEncryption };
  if (trunk.mediaEncryption === "optional") return { ok: true, encryption: "none" };
  return { ok: false, reason: `SRTP is required and its SDES keys need SIP over TLS; this call's signalling is ${transport.toUpperCase()}` };
}
