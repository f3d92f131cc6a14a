// SDES (RFC 4568): the SDP attribute that carries an SRTP master key, a=crypto.
//
//   parseCrypto("1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20")
//     → { ok: true, crypto: { tag: 1, key: { suite, keyAndSalt } } } | { ok: false, reason }
//   firstUsableCrypto(values)   → the first a=crypto value we can honour, or why none is usable
//   formatCrypto({ tag, key })  → "1 AES_CM_128_HMAC_SHA1_80 inline:…" (no lifetime, no MKI)
//   redactSdesKeys(sdpText)     → the SDP with every inline key replaced by "redacted"
//
// What we cannot honour is refused with a reason rather than half-used: suites other than
// AES_CM_128_HMAC_SHA1_80/_32, key methods other than inline, several keys or an MKI in one line
// (our packets never carry one, so we cannot tell keys apart by it), and session parameters other
// than the window-size hint WSH.
import { KEY_AND_SALT_LENGTH, SRTP_SUITES, type SrtpKey } from "./srtp.ts";

export interface SdesCrypto {
  /** RFC 4568 §4: the answer repeats the tag of the offered line it accepts */
  tag: number;
  key: SrtpKey;
}

export type CryptoParseResult = { ok: true; crypto: SdesCrypto } | { ok: false; reason: string };

/** RFC 4568 §6.2.1: the most packets one AES_CM_128_HMAC_SHA1 key may protect (SRTP). */
const MAX_LIFETIME = 2 ** 48;
/** How many refused lines a reason names (an offer may carry many). */
const REASONS_NAMED = 3;

// RFC 4568 §9.1: "crypto:" tag 1*WSP crypto-suite 1*WSP key-params *(1*WSP session-param)
export function parseCrypto(value: string): CryptoParseResult {
  const fail = (reason: string): CryptoParseResult => ({ ok: false, reason });
  const fields = value.trim().split(/[ \t]+/);
  if (fields.length < 3) return fail("a=crypto needs a tag, a crypto suite and key parameters");
  const [tagText, suiteText, keyParams, ...sessionParams] = fields as [string, string, string, ...string[]];
  if (!/^\d{1,9}$/.test(tagText)) return fail(`bad a=crypto tag "${clip(tagText)}"`);
  const suite = SRTP_SUITES.find((s) => s === suiteText.toUpperCase());
  if (!suite) return fail(`crypto suite ${clip(suiteText)} is not supported (only ${SRTP_SUITES.join(", ")})`);
  if (keyParams.includes(";")) return fail("several keys in one a=crypto line are not supported");
  const colon = keyParams.indexOf(":");
  const method = colon < 0 ? keyParams : keyParams.slice(0, colon);
  if (colon < 0 || method.toLowerCase() !== "inline") return fail(`key method "${clip(method)}" is not supported (only inline)`);
  const [keySalt, ...extras] = keyParams.slice(colon + 1).split("|");
  const keyAndSalt = decodeKeySalt(keySalt!);
  if (!keyAndSalt) return fail(`the inline key is not ${KEY_AND_SALT_LENGTH} bytes of base64`);
  if (extras.length > 2) return fail("bad inline key parameters");
  for (const extra of extras) {
    // key-info = key-salt ["|" lifetime] ["|" mki]; mki = mki-value ":" mki-length
    if (extra.includes(":")) return fail("keys with an MKI are not supported");
    const lifetime = parseLifetime(extra);
    if (lifetime === undefined) return fail(`bad key lifetime "${clip(extra)}"`);
    if (lifetime < 1 || lifetime > MAX_LIFETIME) return fail(`key lifetime ${clip(extra)} is outside 1..2^48`);
  }
  for (const param of sessionParams) {
    // §6.3.7: WSH only hints at the replay window; our 64-packet window is what §3.3.2 of RFC 3711 asks.
    if (/^WSH=\d{1,9}$/i.test(param)) continue;
    return fail(`session parameter ${clip(param)} is not supported`);
  }
  return { ok: true, crypto: { tag: Number(tagText), key: { suite, keyAndSalt } } };
}

/** RFC 4568 §7.1.2: the answerer accepts one offered line; offers list them by preference, so the first we can honour. */
export function firstUsableCrypto(values: readonly string[]): CryptoParseResult {
  if (values.length === 0) return { ok: false, reason: "no a=crypto line" };
  const reasons: string[] = [];
  for (const value of values) {
    const parsed = parseCrypto(value);
    if (parsed.ok) return parsed;
    if (reasons.length < REASONS_NAMED) reasons.push(parsed.reason);
  }
  return { ok: false, reason: `no usable a=crypto: ${reasons.join("; ")}` };
}

export function formatCrypto(c: SdesCrypto): string {
  return `${c.tag} ${c.key.suite} inline:${Buffer.from(c.key.keyAndSalt).toString("base64")}`;
}

/** For copies of an SDP that leave the signalling path (the inbound webhook): keys stay behind. */
export function redactSdesKeys(sdp: string): string {
  return sdp.replace(/^a=crypto:.*$/gim, (line) => line.replace(/inline:[^|\s;]*/gi, "inline:redacted"));
}

function decodeKeySalt(text: string): Uint8Array | undefined {
  // RFC 4648 §4 base64; 30 bytes need exactly 40 characters and no padding.
  if (text.length !== Math.ceil(KEY_AND_SALT_LENGTH / 3) * 4 || !/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return undefined;
  const bytes = Uint8Array.from(Buffer.from(text, "base64"));
  return bytes.length === KEY_AND_SALT_LENGTH ? bytes : undefined;
}

function parseLifetime(text: string): number | undefined {
  const match = /^(2\^)?(\d{1,15})$/.exec(text);
  if (!match) return undefined;
  const n = Number(match[2]);
  return match[1] ? (n > 64 ? Infinity : 2 ** n) : n;
}

function clip(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}
