// Client-side HTTP Digest for SIP (RFC 3261 §22, RFC 2617, RFC 7616 algorithms as profiled for
// SIP by RFC 8760). The core (challenge parsing, response computation, header formatting) is pure
// string work; `authorize` applies it to a challenged request and keeps the per-nonce `nc` count and
// the "one answer per challenge" rule in a DigestState owned by the caller (one per trunk
// registration, one per call leg, ...).
//
// Usage (any request: REGISTER, INVITE, BYE, ...):
//   const state = new DigestState();
//   on 401/407: const auth = authorize(response, sentRequest, creds, state);
//     if ("error" in auth) give up (wrong credentials, unsupported algorithm, ...)
//     else resend the request (new branch, CSeq + 1) with auth.header: auth.value replacing any
//       previous Authorization/Proxy-Authorization for that realm.
//   next request of the same kind (e.g. REGISTER refresh): reauthorize(req, creds, state) gives
//     pre-emptive credentials for the last answered challenge (nc + 1), or undefined.
import { createHash, randomBytes } from "node:crypto";
import type { SipRequest, SipResponse } from "./message.ts";
import { formatUri } from "./uri.ts";

export interface Credentials {
  username: string;
  password: string;
  /** Digest username when it differs from the SIP username (the "authorization id"). */
  authId?: string;
}

export type DigestAlgorithm =
  | "MD5" | "MD5-sess" | "SHA-256" | "SHA-256-sess" | "SHA-512-256" | "SHA-512-256-sess";

export type Qop = "auth" | "auth-int";

export interface DigestChallenge {
  realm: string;
  nonce: string;
  opaque?: string;
  algorithm: DigestAlgorithm;
  /** qop options offered by the server; empty = RFC 2069 compatibility (no qop, no nc). */
  qop: string[];
  stale: boolean;
}

const hashOf: Record<DigestAlgorithm, "md5" | "sha256" | "sha512-256"> = {
  "MD5": "md5", "MD5-sess": "md5",
  "SHA-256": "sha256", "SHA-256-sess": "sha256",
  "SHA-512-256": "sha512-256", "SHA-512-256-sess": "sha512-256",
};

/** RFC 8760 §2.4: when a server offers several algorithms, the client uses the strongest it knows. */
const strength: Record<DigestAlgorithm, number> = {
  "MD5": 1, "MD5-sess": 1, "SHA-256": 2, "SHA-256-sess": 2, "SHA-512-256": 3, "SHA-512-256-sess": 3,
};

function toAlgorithm(token: string | undefined): DigestAlgorithm | undefined {
  // RFC 2617 §3.2.1: absent algorithm means MD5. Tokens are case-insensitive.
  if (token === undefined) return "MD5";
  const wanted = token.toLowerCase();
  return (Object.keys(hashOf) as DigestAlgorithm[]).find((a) => a.toLowerCase() === wanted);
}

/**
 * Splits `Digest a=b, c="d, e"` into its scheme and lower-cased parameter names.
 * Quoted strings may contain commas and backslash escapes (RFC 3261 §25.1 quoted-pair).
 */
export function parseAuthParams(value: string): { scheme: string; params: Map<string, string> } | { error: string } {
  const text = value.trim();
  const schemeEnd = text.search(/\s/);
  if (schemeEnd <= 0) return { error: "missing auth scheme or parameters" };
  const scheme = text.slice(0, schemeEnd);
  const params = new Map<string, string>();
  let i = schemeEnd;
  while (i < text.length) {
    while (i < text.length && (text[i] === " " || text[i] === "\t" || text[i] === ",")) i++;
    if (i >= text.length) break;
    const eq = text.indexOf("=", i);
    if (eq < 0) return { error: `parameter without value at offset ${i}` };
    const name = text.slice(i, eq).trim().toLowerCase();
    if (!/^[A-Za-z0-9!%'*+\-._`~]+$/.test(name)) return { error: `bad parameter name "${name}"` };
    i = eq + 1;
    while (text[i] === " " || text[i] === "\t") i++;
    let paramValue = "";
    if (text[i] === '"') {
      i++;
      let closed = false;
      while (i < text.length) {
        const ch = text[i]!;
        if (ch === "\\" && i + 1 < text.length) { paramValue += text[i + 1]; i += 2; continue; }
        if (ch === '"') { closed = true; i++; break; }
        paramValue += ch;
        i++;
      }
      if (!closed) return { error: `unterminated quoted value for "${name}"` };
    } else {
      const end = text.indexOf(",", i);
      paramValue = text.slice(i, end < 0 ? text.length : end).trim();
      i = end < 0 ? text.length : end;
    }
    params.set(name, paramValue);
  }
  return { scheme, params };
}

/** Parses one WWW-Authenticate / Proxy-Authenticate value (RFC 3261 §25.1 challenge). */
export function parseChallenge(value: string): DigestChallenge | { error: string } {
  const parsed = parseAuthParams(value);
  if ("error" in parsed) return parsed;
  if (parsed.scheme.toLowerCase() !== "digest") return { error: `unsupported auth scheme "${parsed.scheme}"` };
  const p = parsed.params;
  const realm = p.get("realm");
  const nonce = p.get("nonce");
  if (realm === undefined) return { error: "challenge without realm" };
  if (nonce === undefined || nonce === "") return { error: "challenge without nonce" };
  const algorithm = toAlgorithm(p.get("algorithm"));
  if (!algorithm) return { error: `unsupported digest algorithm "${p.get("algorithm")}"` };
  const qop = (p.get("qop") ?? "").split(",").map((q) => q.trim().toLowerCase()).filter((q) => q !== "");
  return {
    realm, nonce, algorithm, qop,
    opaque: p.get("opaque"),
    stale: (p.get("stale") ?? "").toLowerCase() === "true",
  };
}

/** RFC 2617 §3.2.2: prefer `auth` (body independent); `auth-int` when it is all that is offered. */
export function chooseQop(offered: string[]): Qop | undefined | { error: string } {
  if (offered.length === 0) return undefined;
  if (offered.includes("auth")) return "auth";
  if (offered.includes("auth-int")) return "auth-int";
  return { error: `no supported qop in "${offered.join(",")}"` };
}

export interface DigestInput {
  algorithm: DigestAlgorithm;
  username: string;
  password: string;
  realm: string;
  nonce: string;
  method: string;
  uri: string;
  qop?: Qop;
  /** Required with qop and for the -sess algorithms. */
  cnonce?: string;
  /** Nonce count, 1 for the first use of a nonce. */
  nc?: number;
  /** Message body, for qop=auth-int. */
  body?: Uint8Array | string;
}

function hash(algorithm: DigestAlgorithm, data: string | Uint8Array): string {
  return createHash(hashOf[algorithm]).update(data).digest("hex");
}

export function formatNonceCount(nc: number): string {
  return nc.toString(16).padStart(8, "0");
}

/** The `response` value (RFC 2617 §3.2.2.1, RFC 7616 §3.4.1–3.4.3). */
export function digestResponse(i: DigestInput): string {
  const H = (s: string | Uint8Array) => hash(i.algorithm, s);
  let ha1 = H(`${i.username}:${i.realm}:${i.password}`);
  if (i.algorithm.endsWith("-sess")) ha1 = H(`${ha1}:${i.nonce}:${i.cnonce ?? ""}`);
  const a2 = i.qop === "auth-int" ? `${i.method}:${i.uri}:${H(i.body ?? "")}` : `${i.method}:${i.uri}`;
  const ha2 = H(a2);
  if (i.qop === undefined) return H(`${ha1}:${i.nonce}:${ha2}`);
  return H(`${ha1}:${i.nonce}:${formatNonceCount(i.nc ?? 1)}:${i.cnonce ?? ""}:${i.qop}:${ha2}`);
}

function quote(s: string): string {
  return `"${s.replace(/["\\]/g, (c) => "\\" + c)}"`;
}

/** The Authorization / Proxy-Authorization value (RFC 3261 §25.1 credentials). */
export function formatCredentials(i: DigestInput & { opaque?: string }): string {
  const parts = [
    `username=${quote(i.username)}`,
    `realm=${quote(i.realm)}`,
    `nonce=${quote(i.nonce)}`,
    `uri=${quote(i.uri)}`,
    `response=${quote(digestResponse(i))}`,
    `algorithm=${i.algorithm}`,
  ];
  if (i.cnonce !== undefined && (i.qop !== undefined || i.algorithm.endsWith("-sess"))) parts.push(`cnonce=${quote(i.cnonce)}`);
  if (i.opaque !== undefined) parts.push(`opaque=${quote(i.opaque)}`);
  if (i.qop !== undefined) parts.push(`qop=${i.qop}`, `nc=${formatNonceCount(i.nc ?? 1)}`);
  return "Digest " + parts.join(", ");
}

export function newCnonce(): string {
  return randomBytes(12).toString("hex");
}

type AuthHeader = "Authorization" | "Proxy-Authorization";

interface AnsweredChallenge {
  challenge: DigestChallenge;
  header: AuthHeader;
  nc: number;
}

const rememberedAnswers = 8;
const rememberedRealms = 8;

/**
 * What a client remembers between challenges: the last challenge per realm with its nonce count
 * (RFC 2617 §3.2.2: nc increases with every request using the same nonce), and the credentials it
 * produced in direct answer to a challenge, so that a second non-stale challenge to those exact
 * credentials is recognised as a rejection instead of being answered again.
 */
export class DigestState {
  private readonly byRealm = new Map<string, AnsweredChallenge>();
  private readonly answers: string[] = [];

  /** Records a new challenge (or bumps the count of a known nonce) and returns the nc to use. */
  nextUse(challenge: DigestChallenge, header: AuthHeader): number {
    const known = this.byRealm.get(challenge.realm);
    const nc = known && known.challenge.nonce === challenge.nonce ? known.nc + 1 : 1;
    // Realms come from the peer: the oldest is forgotten beyond a few.
    this.byRealm.delete(challenge.realm);
    this.byRealm.set(challenge.realm, { challenge, header, nc });
    if (this.byRealm.size > rememberedRealms) this.byRealm.delete(this.byRealm.keys().next().value!);
    return nc;
  }

  bumpLast(): AnsweredChallenge | undefined {
    const last = [...this.byRealm.values()].at(-1);
    if (last) last.nc += 1;
    return last;
  }

  rememberAnswer(value: string): void {
    this.answers.push(value);
    if (this.answers.length > rememberedAnswers) this.answers.shift();
  }

  forgetAnswer(value: string): void {
    const at = this.answers.indexOf(value);
    if (at >= 0) this.answers.splice(at, 1);
  }

  wasAnswer(value: string): boolean {
    return this.answers.includes(value);
  }

  /** Drops everything, e.g. when the credentials change. */
  clear(): void {
    this.byRealm.clear();
    this.answers.length = 0;
  }
}

function requestUri(req: SipRequest): string {
  return formatUri(req.uri);
}

function buildCredentials(req: SipRequest, creds: Credentials, challenge: DigestChallenge, nc: number):
  string | { error: string } {
  const qop = chooseQop(challenge.qop);
  if (qop !== undefined && typeof qop === "object") return qop;
  return formatCredentials({
    algorithm: challenge.algorithm,
    username: creds.authId || creds.username,
    password: creds.password,
    realm: challenge.realm,
    nonce: challenge.nonce,
    method: req.method,
    uri: requestUri(req),
    qop,
    cnonce: newCnonce(),
    nc,
    body: req.body,
    opaque: challenge.opaque,
  });
}

/** Credentials our request carried for `realm` (header value), if any. */
function sentCredentials(req: SipRequest, header: AuthHeader, realm: string): { value: string; nonce?: string } | undefined {
  for (const value of req.getHeaders(header)) {
    const parsed = parseAuthParams(value);
    if (!("error" in parsed) && parsed.params.get("realm") === realm) return { value, nonce: parsed.params.get("nonce") };
  }
  return undefined;
}

/**
 * Answers a 401 (WWW-Authenticate → Authorization) or 407 (Proxy-Authenticate →
 * Proxy-Authorization) challenge to `req`. Among several challenges the strongest supported
 * algorithm wins (RFC 8760 §2.4). Fails instead of looping when the server challenges the
 * credentials it was just given (wrong password), unless it says the nonce was merely stale.
 */
export function authorize(challenge: SipResponse, req: SipRequest, creds: Credentials, state: DigestState):
  { header: AuthHeader; value: string } | { error: string } {
  const proxy = challenge.status === 407;
  if (!proxy && challenge.status !== 401) return { error: `status ${challenge.status} is not a challenge` };
  const header: AuthHeader = proxy ? "Proxy-Authorization" : "Authorization";
  const values = challenge.getHeaders(proxy ? "Proxy-Authenticate" : "WWW-Authenticate");
  if (values.length === 0) return { error: `${challenge.status} without ${proxy ? "Proxy-Authenticate" : "WWW-Authenticate"}` };

  let best: DigestChallenge | undefined;
  let firstError: string | undefined;
  for (const value of values) {
    const parsed = parseChallenge(value);
    if ("error" in parsed) { firstError ??= parsed.error; continue; }
    if (!best || strength[parsed.algorithm] > strength[best.algorithm]) best = parsed;
  }
  if (!best) return { error: firstError ?? "no usable challenge" };

  const sent = sentCredentials(req, header, best.realm);
  if (sent) {
    // RFC 3261 §22.2: a repeated challenge to fresh credentials means they were rejected;
    // stale=true (RFC 2617 §3.2.1) means only the nonce expired, so answer the new nonce once.
    if (!best.stale && (sent.nonce === best.nonce || state.wasAnswer(sent.value))) {
      return { error: `credentials rejected by realm "${best.realm}"` };
    }
    if (best.stale && sent.nonce === best.nonce) return { error: `realm "${best.realm}" repeats a stale nonce` };
  }

  const nc = state.nextUse(best, header);
  const value = buildCredentials(req, creds, best, nc);
  if (typeof value === "object") return value;
  state.rememberAnswer(value);
  return { header, value };
}

/**
 * Pre-emptive credentials for a new request from the last challenge answered (RFC 2617 §3.3: a
 * nonce may be reused with an increased nc), e.g. on a REGISTER refresh. Undefined when no
 * challenge has been answered yet.
 */
export function reauthorize(req: SipRequest, creds: Credentials, state: DigestState):
  { header: AuthHeader; value: string } | undefined {
  const last = state.bumpLast();
  if (!last) return undefined;
  const value = buildCredentials(req, creds, last.challenge, last.nc);
  if (typeof value === "object") return undefined;
  // Not an answer to a challenge: if the server challenges it, one fresh answer is allowed.
  state.forgetAnswer(value);
  return { header: last.header, value };
}
