// An in-memory SIP provider for trunk unit tests: answers through a TrunkSipPort, checks digest
// credentials like a real registrar, and records every request it saw.
import { digestResponse, parseAuthParams, type DigestAlgorithm, type Qop } from "../../src/sip/digest.ts";
import { createResponse, formatUri, type SipRequest, type SipResponse } from "../../src/sip/message.ts";
import type { ResolvedTarget, Resolver } from "../../src/sip/resolver.ts";
import type { ClientOutcome } from "../../src/sip/transaction.ts";
import type { TrunkSipPort } from "../../src/trunks/exchange.ts";

export type Reply = ClientOutcome | SipResponse | number;

export interface FakeProvider {
  port: TrunkSipPort;
  resolver: Resolver;
  requests: { req: SipRequest; target: ResolvedTarget }[];
  /** Replaces the behaviour for the next requests. */
  handle: (fn: (req: SipRequest, target: ResolvedTarget) => Reply | Promise<Reply>) => void;
}

export function fakeProvider(initial: (req: SipRequest, target: ResolvedTarget) => Reply | Promise<Reply>): FakeProvider {
  let handler = initial;
  const requests: FakeProvider["requests"] = [];
  const port: TrunkSipPort = {
    async send(req, target) {
      requests.push({ req, target });
      const reply = await handler(req, target);
      if (typeof reply === "number") return { kind: "final", response: createResponse(req, reply) };
      if ("kind" in reply) return reply;
      return { kind: "final", response: reply };
    },
    contact: (user, transport) => ({
      uri: { scheme: "sip", user, host: "192.0.2.50", port: 5099, params: new Map(transport === "udp" ? [] : [["transport", transport]]), headers: new Map() },
      params: new Map(),
    }),
    localHost: "192.0.2.50",
  };
  const resolver: Resolver = {
    async resolve(domain, transport, p) {
      return [{ transport, address: "198.51.100.1", port: p ?? 5060, domain }];
    },
  };
  return { port, resolver, requests, handle: (fn) => { handler = fn; } };
}

/** A digest-checking registrar: 401 until the credentials verify, then 200 with `expires`. */
export function digestRegistrar(o: { password: string; realm?: string; algorithm?: DigestAlgorithm; qop?: Qop; grant?: (req: SipRequest) => number; newNonce?: () => string }) {
  const realm = o.realm ?? "example.com";
  const algorithm = o.algorithm ?? "MD5";
  let counter = 0;
  const nonce = o.newNonce ?? (() => `nonce-${++counter}`);
  const issued = new Set<string>();
  const usernames: string[] = [];
  return {
    usernames,
    handler(req: SipRequest): SipResponse {
      const auth = req.getHeader("Authorization");
      if (auth) {
        const parsed = parseAuthParams(auth);
        if (!("error" in parsed)) {
          const p = parsed.params;
          const expected = digestResponse({
            algorithm, username: p.get("username") ?? "", password: o.password, realm, nonce: p.get("nonce") ?? "",
            method: req.method, uri: formatUri(req.uri), qop: p.get("qop") as Qop | undefined,
            nc: p.has("nc") ? parseInt(p.get("nc")!, 16) : undefined, cnonce: p.get("cnonce"), body: req.body,
          });
          if (issued.has(p.get("nonce") ?? "") && p.get("response") === expected) {
            usernames.push(p.get("username") ?? "");
            const granted = o.grant ? o.grant(req) : (req.expires ?? 3600);
            const contact = req.getHeader("Contact")!;
            return createResponse(req, 200, "OK", { toTag: "reg", headers: granted === 0 ? [] : [["Contact", `${contact};expires=${granted}`]] });
          }
        }
      }
      const n = nonce();
      issued.add(n);
      const qop = o.qop ? `, qop="${o.qop}"` : "";
      return createResponse(req, 401, "Unauthorized", { toTag: "reg", headers: [["WWW-Authenticate", `Digest realm="${realm}", nonce="${n}", algorithm=${algorithm}${qop}`]] });
    },
  };
}
