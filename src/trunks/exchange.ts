// One request/response exchange with a trunk's provider, as the registration and keep-alive
// clients need it: resolve the trunk's domain (RFC 3263), send through the SIP stack with failover
// to the next target on timeout, transport error or 503 (§4.3), and answer digest challenges
// (one answer per challenge). Every failure comes back as a value with a precise reason.
import { authorize, reauthorize, type Credentials, type DigestState } from "../sip/digest.ts";
import type { NameAddr, SipRequest, SipResponse, TransportName } from "../sip/message.ts";
import { isFailoverStatus, ResolveError, withFailover, type ResolvedTarget, type Resolver } from "../sip/resolver.ts";
import type { ClientOutcome } from "../sip/transaction.ts";

/** What the trunk clients need from the SIP stack (adapted from SipStack in sipPort.ts). */
export interface TrunkSipPort {
  /** Sends `req` in a new client transaction (the port adds our Via with a fresh branch). */
  send(req: SipRequest, target: ResolvedTarget, o: { tlsVerify: boolean }): Promise<ClientOutcome>;
  /** Our Contact for `user` on `transport`, carrying the advertised address. */
  contact(user: string, transport: TransportName): NameAddr;
  /** Host part for Call-IDs and our own URIs (the advertised address). */
  readonly localHost: string;
}

/** Where and how a trunk is reached. */
export interface TrunkAddress {
  domain: string;
  port?: number;
  transport: TransportName;
  tlsVerify: boolean;
}

export type ExchangeResult =
  | { kind: "response"; response: SipResponse; target: ResolvedTarget; request: SipRequest }
  | { kind: "timeout"; reason: string }
  | { kind: "transportError"; reason: string }
  | { kind: "resolveError"; reason: string }
  | { kind: "authRejected"; reason: string; response: SipResponse };

/** RFC 3261 §22: challenges are answered at most this many times in one exchange (401 then 407). */
const maxChallengeRounds = 3;

export interface ExchangeOptions {
  port: TrunkSipPort;
  resolver: Resolver;
  address: TrunkAddress;
  /** Builds the request for one attempt; called again for every retry (new CSeq). */
  build: () => SipRequest;
  /** Absent: challenges are not answered (the 401/407 is the response). */
  auth?: { credentials: Credentials; state: DigestState; preemptive: boolean };
}

function describeTarget(t: ResolvedTarget): string {
  const host = t.address.includes(":") ? `[${t.address}]` : t.address;
  return `${t.transport}:${host}:${t.port}`;
}

type Attempt = { outcome: ClientOutcome; request: SipRequest };

export async function exchange(o: ExchangeOptions): Promise<ExchangeResult> {
  let targets: ResolvedTarget[];
  try {
    targets = await o.resolver.resolve(o.address.domain, o.address.transport, o.address.port);
  } catch (err) {
    const reason = err instanceof ResolveError ? err.message : `cannot resolve ${o.address.domain}: ${String(err)}`;
    return { kind: "resolveError", reason: `DNS: ${reason}` };
  }

  let authorization: { header: string; value: string } | undefined;
  const buildWithAuth = (): SipRequest => {
    const req = o.build();
    if (!authorization && o.auth?.preemptive) authorization = reauthorize(req, o.auth.credentials, o.auth.state);
    if (authorization) req.setHeader(authorization.header, authorization.value);
    return req;
  };

  for (let round = 0; ; round++) {
    const done = await withFailover<Attempt>(
      targets,
      async (target) => {
        const request = buildWithAuth();
        return { outcome: await o.port.send(request, target, { tlsVerify: o.address.tlsVerify }), request };
      },
      ({ outcome }) => outcome.kind !== "final" || isFailoverStatus(outcome.response.status),
    );
    if (!done) return { kind: "resolveError", reason: `DNS: no targets for ${o.address.domain}` };
    const { outcome, request } = done.outcome;
    const where = describeTarget(done.target);
    if (outcome.kind === "timeout") return { kind: "timeout", reason: `no response from ${where} (timeout)` };
    if (outcome.kind === "transportError") return { kind: "transportError", reason: `${where}: ${outcome.error.message}` };
    const response = outcome.response;
    const challenged = response.status === 401 || response.status === 407;
    if (!challenged || !o.auth) return { kind: "response", response, target: done.target, request };
    if (round >= maxChallengeRounds) return { kind: "authRejected", reason: `${where} keeps challenging (${response.status})`, response };
    const answer = authorize(response, request, o.auth.credentials, o.auth.state);
    if ("error" in answer) return { kind: "authRejected", reason: `${response.status} ${response.reason}: ${answer.error}`, response };
    authorization = answer;
  }
}
