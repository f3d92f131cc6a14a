// Schemas of the objects an operator manages, shared by the YAML config and the admin API bodies,
// so both validate the same way and the OpenAPI document is generated from these definitions.
import { templateError } from "../channels/callerIdTemplate.ts";
import { s, type Infer } from "./schema.ts";

export const idSchema = s.string({
  minLength: 1,
  maxLength: 64,
  pattern: /^[A-Za-z0-9][A-Za-z0-9._-]*$/,
  patternHint: "letters, digits, '.', '_' or '-', starting with a letter or digit",
});

export const channelIdSchema = s.string({
  minLength: 1,
  maxLength: 128,
  pattern: /^[^\s/\\?#{}]+$/,
  patternHint: "free of whitespace and / \\ ? # { }",
});

// RFC 3261 §25.1: user = 1*( unreserved / escaped / user-unreserved )
export const sipUsernameSchema = s.string({
  minLength: 1,
  maxLength: 128,
  pattern: /^(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+$/,
  patternHint: "the user part of a SIP URI (RFC 3261 user characters)",
});

const hostSchema = s.string({
  minLength: 1,
  maxLength: 253,
  pattern: /^(?:[A-Za-z0-9.-]+|\[?[0-9A-Fa-f:.]+\]?)$/,
  patternHint: "a host name or an IPv4/IPv6 address",
});

export const cidrSchema = s.string({ minLength: 1 }).refine((value) => (isCidr(value) ? undefined : "must be an IP address or CIDR block (e.g. 203.0.113.0/24)"));

export function isCidr(value: string): boolean {
  const [address, prefix, extra] = value.split("/");
  if (extra !== undefined || address === undefined) return false;
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address);
  const isV4 = v4 !== null && v4.slice(1).every((octet) => Number(octet) <= 255);
  const isV6 = !isV4 && address.includes(":") && /^[0-9A-Fa-f:.]+$/.test(address) && (address.match(/::/g) ?? []).length <= 1;
  if (!isV4 && !isV6) return false;
  if (prefix === undefined) return true;
  if (!/^\d{1,3}$/.test(prefix)) return false;
  return Number(prefix) <= (isV4 ? 32 : 128);
}

/** A call's longest duration from its answer, in seconds; 0 is unlimited (7 days at most). */
export const maxDurationSchema = s.integer({ min: 0, max: 604800 });

export const transportSchema = s.enum(["udp", "tcp", "tls"]);

/** The trunk's fields; `trunkSchema` adds the rules between them. */
export const trunkFieldsSchema = s.object({
  id: idSchema.describe("Trunk identifier (sipTrunkId in the outbound webhook)."),
  domain: hostSchema.describe("The SIP provider domain (resolved per RFC 3263) or address."),
  port: s.integer({ min: 1, max: 65535 }).optional().describe("Overrides the port; skips DNS SRV."),
  transport: transportSchema.default("udp").describe("Transport used to reach the provider."),
  register: s.boolean().default(false).describe("Whether Trunkline registers with the provider."),
  canTerminate: s.boolean().default(true).describe("Whether outbound calls may use this trunk."),
  username: s.string({ maxLength: 256 }).default("").describe("SIP provider username."),
  password: s.string({ maxLength: 256 }).default("").writeOnly().describe("SIP provider password (write-only)."),
  authId: s.string({ maxLength: 256 }).optional().describe("Authorization ID, when the provider uses one besides the username."),
  registerExpires: s.integer({ min: 60, max: 86400 }).default(3600).describe("Requested registration expiry in seconds."),
  maxConcurrentCalls: s.integer({ min: 1 }).optional().describe("Concurrent-call limit of this trunk (inbound over it gets 503)."),
  maxDurationSec: maxDurationSchema
    .optional()
    .describe("Longest a call on this trunk may last from its answer (seconds); the smallest of calls.maxDurationSec, the trunk's and the application's wins. 0 or absent: no limit of its own."),
  allowedAddresses: s
    .array(cidrSchema)
    .default([])
    .describe("Extra source addresses/CIDRs accepted as this trunk, besides the domain's resolved addresses."),
  earlyOffer: s.boolean().default(false).describe("Send SDP in outbound INVITEs (default: delayed offer)."),
  prack: s
    .enum(["supported", "required", "off"])
    .default("supported")
    .describe(
      "Reliable provisional responses (RFC 3262) on outbound calls: supported sends Supported: 100rel, required sends Require: 100rel, " +
        "off sends neither. Reliable 1xx are PRACKed either way unless off.",
    ),
  optionsIntervalSec: s.integer({ min: 0, max: 3600 }).default(30).describe("OPTIONS keep-alive interval; 0 turns it off."),
  tlsVerify: s.boolean().default(true).describe("Verify the provider's TLS certificate (against sip.tls.caFile, else the system trust store)."),
  enabled: s.boolean().default(true).describe("A disabled trunk neither registers nor carries calls."),
  mediaEncryption: s
    .enum(["none", "optional", "required"])
    .default("none")
    .describe(
      "SRTP with SDES keys (RFC 4568) on this trunk's calls. none: plain RTP only (RTP/SAVP offers get 488). " +
        "optional: SRTP when the peer offers it (RTP/SAVP or RTP/AVP with a=crypto), else plain; our offers are RTP/AVP with a=crypto. " +
        "required: SRTP or nothing (plain offers get 488); our offers are RTP/SAVP.",
    ),
  allowSdesWithoutTls: s
    .boolean()
    .default(false)
    .describe("Let SRTP keys travel in SDP over UDP/TCP signalling, readable by anyone on the path. Without it, SRTP needs transport tls and SIP over TLS."),
  redirects: s
    .enum(["sameTrunk", "any", "off"])
    .default("sameTrunk")
    .describe(
      "Where a 301/302 to an outbound INVITE may send the call (RFC 3261 §8.1.3.4). sameTrunk: only Contacts on this trunk's domain or its addresses " +
        "(resolved or allowedAddresses); any: anywhere; off: a 3xx fails the call.",
    ),
  referPolicy: s
    .enum(["decline", "accept"])
    .default("decline")
    .describe(
      "How an in-dialog REFER from this trunk is answered (RFC 3515 §2.4.2). decline: 603. accept: we are the transferee (RFC 5589 blind transfer): " +
        "202, then a new call to the Refer-To URI through this trunk into the same channel; the Refer-To must be on this trunk's domain or its addresses (else 403).",
    ),
});

/** RFC 4568 §8.3: SDES keys are only as secret as the signalling that carries them. */
export function sdesSignallingRule(t: { mediaEncryption: string; transport: string; allowSdesWithoutTls: boolean }): { at: string[]; message: string } | undefined {
  if (t.mediaEncryption === "none" || t.transport === "tls" || t.allowSdesWithoutTls) return undefined;
  return {
    at: ["mediaEncryption"],
    message: `SRTP keys (SDES) travel in the SDP, so mediaEncryption "${t.mediaEncryption}" needs transport "tls"; set allowSdesWithoutTls: true to send them over ${t.transport} in the clear`,
  };
}

export const trunkSchema = trunkFieldsSchema.refine(sdesSignallingRule);
export type TrunkInput = Infer<typeof trunkSchema>;

const templateSchema = s.string({ maxLength: 256 }).refine(templateError);

export const callerIdSchema = s.object({
  displayName: templateSchema
    .optional()
    .describe("Template for the display name of the From header, e.g. \"{userAlias}\". Absent: no display name."),
  username: templateSchema
    .optional()
    .describe("Template for the user part of the From URI, e.g. \"{userId}\". Absent: the trunk's username."),
  assertedIdentity: templateSchema
    .refine((t) => (/^(sips?|tel):/i.test(t) ? undefined : "must be a sip:, sips: or tel: URI template, e.g. \"sip:{userId}@pbx.example.com\""))
    .optional()
    .describe(
      "Template for the URI of a P-Asserted-Identity header (RFC 3325) on outbound INVITEs, e.g. \"tel:+1555{userId}\"; variables are %-escaped. " +
        "Absent: no such header (unless the dial request sets one).",
    ),
  privacy: s
    .string({ maxLength: 64 })
    .refine((p) => (/^(none|header|session|user|id|critical)(;(none|header|session|user|id|critical))*$/.test(p) ? undefined : "must be RFC 3323 priv-values joined with \";\", e.g. \"id\" or \"header;id\""))
    .optional()
    .describe("Privacy header (RFC 3323 / RFC 3325 §9.3) on outbound INVITEs, e.g. \"id\". Absent: no such header (unless the dial request sets one)."),
});
export type CallerIdInput = Infer<typeof callerIdSchema>;

export const inboundRouteSchema = s.object({
  sipUsername: sipUsernameSchema.describe("User part of the To URI of an inbound INVITE (unique across applications)."),
  channelId: channelIdSchema.describe("Channel the call joins."),
});
export type InboundRouteInput = Infer<typeof inboundRouteSchema>;

const secretSchema = s.string({ minLength: 16, maxLength: 512 });

export const applicationSchema = s.object({
  id: idSchema.describe("Application identifier (applicationId)."),
  name: s.string({ minLength: 1, maxLength: 200 }).describe("Human-readable name."),
  sharedSecret: secretSchema.writeOnly().describe("Signs client tokens (HS256); at least 16 characters, write-only."),
  maxDurationSec: maxDurationSchema
    .optional()
    .describe("Longest a call of this application may last from its answer (seconds); the smallest of calls.maxDurationSec, the trunk's and the application's wins. 0 or absent: no limit of its own."),
});
export type ApplicationInput = Infer<typeof applicationSchema>;

export const webhooksSchema = s.object({
  inboundUrl: s.string({ format: "uri" }).optional().describe("Picks application and channel for an inbound call without a static route."),
  inboundCancelUrl: s.string({ format: "uri" }).optional().describe("Told when an inbound call is cancelled before answer."),
  outboundUrl: s.string({ format: "uri" }).optional().describe("Picks the trunk (sipTrunkId) for an outbound call."),
  eventsUrl: s.string({ format: "uri" }).optional().describe("Receives call and trunk events."),
  timeoutMs: s.integer({ min: 100, max: 30000 }).default(5000).describe("Timeout of every webhook request."),
  secret: s.string({ maxLength: 512 }).optional().writeOnly().describe("HMAC-SHA256 key signing webhook bodies (write-only)."),
});
export type WebhooksInput = Infer<typeof webhooksSchema>;
