// Registration client for one trunk (RFC 3261 §10.2): REGISTER with digest credentials, refresh
// before the granted expiry with the same Call-ID and increasing CSeq (§10.2.4), 423 → Min-Expires
// (§10.2.8), backoff with jitter on timeouts, 5xx and network errors, a slow retry after the
// provider refuses the credentials, and un-registration (expires 0) on stop.
//
//   const reg = new Registration(config, { port, resolver, onStatus: (status, previous) => ... });
//   reg.start();                     // registers now, keeps the binding alive
//   reg.status                       // { state, expiresAt, lastError, lastStatusCode }
//   await reg.stop({ unregister: true, finalState: "unregistered" });
import { createLogger, type Logger } from "../log.ts";
import { DigestState, type Credentials } from "../sip/digest.ts";
import { createRequest, newCallId, newTag, NO_PARAMS, NO_URI_HEADERS, type SipRequest, type SipResponse, type SipUri } from "../sip/message.ts";
import type { Resolver } from "../sip/resolver.ts";
import { exchange, type ExchangeResult, type TrunkAddress, type TrunkSipPort } from "./exchange.ts";
import { backoffDelayMs, defaultBackoff, parseRetryAfter, refreshDelaySec, type BackoffPolicy } from "./timing.ts";

export type RegistrationState = "registered" | "registering" | "unregistered" | "failed" | "disabled";

export interface RegistrationStatus {
  state: RegistrationState;
  /** ISO time the current binding lapses, when registered. */
  expiresAt: string | null;
  lastError: string | null;
  lastStatusCode: number | null;
}

export interface RegistrationConfig {
  trunkId: string;
  address: TrunkAddress;
  credentials: Credentials;
  /** Requested expiry in seconds (trunk `registerExpires`). */
  expires: number;
}

/** How an exchange ended, for counters: "ok", "auth_failed", "rejected", "timeout", "network", "dns", "server_error". */
export type RegisterOutcome = "ok" | "auth_failed" | "rejected" | "timeout" | "network" | "dns" | "server_error";

export interface RegistrationTiming {
  backoff: BackoffPolicy;
  /** After the provider refused the credentials (401/403), retry this much later. */
  failedRetryMs: number;
  /** Stop waiting for the answer to an un-REGISTER after this long (shutdown must not hang). */
  unregisterTimeoutMs: number;
}

export const defaultRegistrationTiming: RegistrationTiming = {
  backoff: defaultBackoff,
  failedRetryMs: 10 * 60_000,
  unregisterTimeoutMs: 3_000,
};

export interface RegistrationDeps {
  port: TrunkSipPort;
  resolver: Resolver;
  onStatus?: (status: RegistrationStatus, previous: RegistrationStatus) => void;
  onOutcome?: (outcome: RegisterOutcome) => void;
  timing?: Partial<RegistrationTiming>;
  random?: () => number;
  log?: Logger;
}

/** Attempts within one registration try: challenges are handled in exchange(); 423 twice at most. */
const maxIntervalRetries = 2;

type Verdict =
  | { kind: "registered"; grantedSec: number }
  | { kind: "refused"; reason: string; status: number | null }
  | { kind: "transient"; reason: string; status: number | null; retryAfterSec?: number };

export class Registration {
  private readonly callId: string;
  private readonly fromTag = newTag();
  private cseq = 0;
  private readonly digest = new DigestState();
  private expires: number;
  private current: RegistrationStatus = { state: "unregistered", expiresAt: null, lastError: null, lastStatusCode: null };
  private timer: ReturnType<typeof setTimeout> | undefined;
  private expiryTimer: ReturnType<typeof setTimeout> | undefined;
  /** Bumped by stop(): an exchange that finishes after it is ignored. */
  private generation = 0;
  private failures = 0;
  /** The provider accepted these credentials once, so a later refusal of re-used ones is about the nonce. */
  private credentialsProven = false;
  private inFlight: Promise<void> | undefined;
  private readonly timing: RegistrationTiming;
  private readonly log: Logger;

  constructor(private readonly config: RegistrationConfig, private readonly deps: RegistrationDeps) {
    this.callId = newCallId(deps.port.localHost);
    this.expires = config.expires;
    this.timing = { ...defaultRegistrationTiming, ...deps.timing };
    this.log = deps.log ?? createLogger("trunks.registration", { trunkId: config.trunkId });
  }

  get status(): RegistrationStatus {
    return { ...this.current };
  }

  start(): void {
    this.schedule(0);
  }

  /** Stops refreshing; with `unregister`, removes the binding first (expires 0, §10.2.2). */
  async stop(o: { unregister: boolean; finalState: "unregistered" | "disabled"; deadline?: number }): Promise<void> {
    this.generation++;
    this.clearTimers();
    if (o.unregister && this.current.state === "registered") {
      const done = this.unregister();
      const waitMs = Math.min(this.timing.unregisterTimeoutMs, Math.max(0, (o.deadline ?? Infinity) - Date.now()));
      const timeout = new Promise<void>((resolve) => setTimeout(resolve, waitMs).unref?.());
      await Promise.race([done, timeout]);
    } else if (o.unregister && this.inFlight) {
      // A first REGISTER still out may yet create a binding: remove it, without waiting on a
      // provider that has not answered so far.
      void this.unregister();
    }
    this.update({ state: o.finalState, expiresAt: null });
  }

  private async unregister(): Promise<void> {
    const result = await this.send(0);
    if (result.kind === "response" && result.response.status < 300) this.log.info("un-registered");
    else this.log.warn("un-register not confirmed", { reason: describe(result) });
  }

  private clearTimers(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.timer = undefined;
    this.expiryTimer = undefined;
  }

  private schedule(ms: number): void {
    if (this.timer) clearTimeout(this.timer);
    const generation = this.generation;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (generation !== this.generation) return;
      this.inFlight = this.attempt().finally(() => { this.inFlight = undefined; });
    }, ms);
  }

  private update(patch: Partial<RegistrationStatus>): void {
    const previous = this.current;
    this.current = { ...previous, ...patch };
    const changed = (Object.keys(patch) as (keyof RegistrationStatus)[]).some((k) => previous[k] !== this.current[k]);
    if (changed) this.deps.onStatus?.(this.status, previous);
  }

  private async attempt(): Promise<void> {
    const generation = this.generation;
    if (this.current.state !== "registered") this.update({ state: "registering" });
    const verdict = await this.register();
    if (generation !== this.generation) return;
    if (verdict.kind === "registered") {
      this.failures = 0;
      this.credentialsProven = true;
      const expiresAt = Date.now() + verdict.grantedSec * 1000;
      this.clearTimers();
      this.update({ state: "registered", expiresAt: new Date(expiresAt).toISOString(), lastError: null, lastStatusCode: 200 });
      this.log.debug("registered", { grantedSec: verdict.grantedSec });
      this.schedule(refreshDelaySec(verdict.grantedSec) * 1000);
      this.expiryTimer = setTimeout(() => this.lapse(generation), verdict.grantedSec * 1000);
      return;
    }
    const keepBinding = this.current.state === "registered";
    if (verdict.kind === "refused") {
      this.clearTimers();
      this.update({ state: "failed", expiresAt: null, lastError: verdict.reason, lastStatusCode: verdict.status });
      this.log.warn("registration refused", { reason: verdict.reason, status: verdict.status, retryInMs: this.timing.failedRetryMs });
      this.schedule(this.timing.failedRetryMs);
      return;
    }
    this.failures++;
    const delay = verdict.retryAfterSec !== undefined
      ? verdict.retryAfterSec * 1000
      : backoffDelayMs(this.failures, this.timing.backoff, this.deps.random);
    // The binding stays valid until it lapses; until then the trunk is still registered.
    this.update(keepBinding
      ? { lastError: verdict.reason, lastStatusCode: verdict.status }
      : { state: "failed", expiresAt: null, lastError: verdict.reason, lastStatusCode: verdict.status });
    this.log.warn("registration attempt failed", { reason: verdict.reason, status: verdict.status, retryInMs: delay });
    this.schedule(delay);
  }

  private lapse(generation: number): void {
    if (generation !== this.generation || this.current.state !== "registered") return;
    this.update({ state: "failed", expiresAt: null, lastError: `registration expired: ${this.current.lastError ?? "refresh not answered"}` });
  }

  private async register(): Promise<Verdict> {
    if (this.config.credentials.username === "") {
      return { kind: "refused", reason: "the trunk has no username to register (address of record)", status: null };
    }
    for (let intervalRetries = 0; ; intervalRetries++) {
      let result = await this.send(this.expires);
      if (result.kind === "authRejected" && this.credentialsProven) {
        // Pre-emptive credentials from the last challenge were refused: start the handshake afresh.
        this.digest.clear();
        result = await this.send(this.expires);
      }
      const verdict = this.judge(result);
      if (verdict !== "interval-too-brief") return verdict;
      if (intervalRetries >= maxIntervalRetries) {
        return { kind: "refused", reason: "423 Interval Too Brief repeated after raising the expiry", status: 423 };
      }
    }
  }

  private judge(result: ExchangeResult): Verdict | "interval-too-brief" {
    const outcome = (o: RegisterOutcome) => this.deps.onOutcome?.(o);
    switch (result.kind) {
      case "resolveError":
        outcome("dns");
        return { kind: "transient", reason: result.reason, status: null };
      case "timeout":
        outcome("timeout");
        return { kind: "transient", reason: result.reason, status: null };
      case "transportError":
        outcome("network");
        return { kind: "transient", reason: result.reason, status: null };
      case "authRejected":
        outcome("auth_failed");
        return { kind: "refused", reason: result.reason, status: result.response.status };
    }
    const res = result.response;
    const status = res.status;
    if (status >= 200 && status < 300) {
      const granted = grantedExpires(res, this.ourContact().uri, this.expires);
      if (granted <= 0) {
        outcome("rejected");
        return { kind: "transient", reason: `${status} ${res.reason} without a binding for our Contact`, status };
      }
      outcome("ok");
      return { kind: "registered", grantedSec: granted };
    }
    if (status === 423) {
      // RFC 3261 §10.2.8: retry with an expiry at least Min-Expires.
      const min = Number(res.getHeader("Min-Expires"));
      if (Number.isInteger(min) && min > this.expires) {
        this.log.info("raising registration expiry to Min-Expires", { from: this.expires, to: min });
        this.expires = min;
        return "interval-too-brief";
      }
      outcome("rejected");
      return { kind: "refused", reason: `423 Interval Too Brief without a usable Min-Expires`, status };
    }
    const summary = `${status} ${res.reason}`;
    if (status >= 500 && status < 600 || status === 408 || status === 480) {
      outcome("server_error");
      const retryAfterSec = parseRetryAfter(res.getHeader("Retry-After"));
      return { kind: "transient", reason: summary, status, ...(retryAfterSec !== undefined ? { retryAfterSec } : {}) };
    }
    outcome(status === 401 || status === 403 || status === 407 ? "auth_failed" : "rejected");
    return { kind: "refused", reason: summary, status };
  }

  private ourContact() {
    return this.deps.port.contact(this.config.credentials.username, this.config.address.transport);
  }

  private send(expires: number): Promise<ExchangeResult> {
    return exchange({
      port: this.deps.port,
      resolver: this.deps.resolver,
      address: this.config.address,
      build: () => this.buildRegister(expires),
      auth: { credentials: this.config.credentials, state: this.digest, preemptive: true },
    });
  }

  private buildRegister(expires: number): SipRequest {
    const { domain, port } = this.config.address;
    // RFC 3261 §10.2: Request-URI names the registrar's domain; To/From carry the address of record.
    const registrar: SipUri = { scheme: "sip", host: domain, params: NO_PARAMS, headers: NO_URI_HEADERS };
    if (port !== undefined) registrar.port = port;
    const aor: SipUri = { scheme: "sip", user: this.config.credentials.username, host: domain, params: NO_PARAMS, headers: NO_URI_HEADERS };
    return createRequest({
      method: "REGISTER",
      uri: registrar,
      from: { uri: aor, params: new Map([["tag", this.fromTag]]) },
      to: { uri: aor, params: NO_PARAMS },
      callId: this.callId,
      cseq: ++this.cseq,
      contact: this.ourContact(),
      headers: [["Expires", String(expires)]],
    });
  }
}

function describe(result: ExchangeResult): string {
  return result.kind === "response" ? `${result.response.status} ${result.response.reason}` : result.reason;
}

function sameUri(a: SipUri, b: SipUri): boolean {
  return (a.user ?? "") === (b.user ?? "") && a.host.toLowerCase() === b.host.toLowerCase() && (a.port ?? 5060) === (b.port ?? 5060);
}

/**
 * The expiry the registrar granted our binding (RFC 3261 §10.2.4): the `expires` parameter of our
 * Contact in the 2xx, else the Expires header, else what we asked for. A registrar that rewrote
 * the Contact (NAT) and lists one binding is taken to mean ours.
 */
export function grantedExpires(res: SipResponse, ours: SipUri, requested: number): number {
  const contacts = res.contacts;
  const mine = contacts.find((c) => sameUri(c.uri, ours)) ?? (contacts.length === 1 ? contacts[0] : undefined);
  const param = mine?.params.get("expires");
  if (param !== undefined && param !== null && /^\d+$/.test(param)) return Number(param);
  return res.expires ?? requested;
}
