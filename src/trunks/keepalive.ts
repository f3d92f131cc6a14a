// OPTIONS keep-alive for one trunk (RFC 3261 §11): any response, even a 4xx or a challenge,
// proves the provider is reachable; a timeout or a transport/DNS failure marks it unreachable
// until the next answered probe. One probe at a time; the next starts an interval after the last.
// Probes relayed by a proxy (`relayed`: the cluster's front) also count the proxy's 408 as no answer:
// it is the proxy saying the trunk did not answer in time (RFC 3261 §16.8), not the trunk answering.
//
//   const probe = new OptionsProbe({ trunkId, address, intervalSec: 30, fromUser: "alice" }, { port, resolver, onStatus });
//   probe.start(); probe.status  // { reachable: true | false | null (not probed yet), lastOptionsAt, lastError }
//   probe.stop();
import { createLogger, type Logger } from "../log.ts";
import { createRequest, newCallId, newTag, NO_PARAMS, NO_URI_HEADERS, type SipRequest, type SipUri } from "../sip/message.ts";
import type { Resolver } from "../sip/resolver.ts";
import { exchange, type TrunkAddress, type TrunkSipPort } from "./exchange.ts";

export interface ProbeStatus {
  /** null until the first probe completes. */
  reachable: boolean | null;
  /** ISO time the last probe completed (answered or not). */
  lastOptionsAt: string | null;
  lastError: string | null;
}

export interface ProbeConfig {
  trunkId: string;
  address: TrunkAddress;
  intervalSec: number;
  /** User part of our From URI (the trunk username when it has one). */
  fromUser: string;
  /** Probes pass a proxy (the cluster's front) whose 408 stands for the trunk's silence. */
  relayed?: boolean;
}

export type ProbeOutcome = "answered" | "timeout" | "network" | "dns";

export interface ProbeDeps {
  port: TrunkSipPort;
  resolver: Resolver;
  onStatus?: (status: ProbeStatus, previous: ProbeStatus) => void;
  onOutcome?: (outcome: ProbeOutcome) => void;
  log?: Logger;
}

export class OptionsProbe {
  private current: ProbeStatus = { reachable: null, lastOptionsAt: null, lastError: null };
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  private readonly log: Logger;

  constructor(private readonly config: ProbeConfig, private readonly deps: ProbeDeps) {
    this.log = deps.log ?? createLogger("trunks.keepalive", { trunkId: config.trunkId });
  }

  get status(): ProbeStatus {
    return { ...this.current };
  }

  start(): void {
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.probe();
    }, ms);
  }

  private async probe(): Promise<void> {
    const result = await exchange({
      port: this.deps.port,
      resolver: this.deps.resolver,
      address: this.config.address,
      build: () => this.buildOptions(),
    });
    if (this.stopped) return;
    const previous = this.current;
    const lastOptionsAt = new Date().toISOString();
    if (result.kind === "response" && this.config.relayed && result.response.status === 408) {
      this.deps.onOutcome?.("timeout");
      this.current = { reachable: false, lastOptionsAt, lastError: `the front relayed no answer (408 ${result.response.reason})` };
      if (previous.reachable !== false) this.log.warn("OPTIONS keep-alive failed", { reason: this.current.lastError });
    } else if (result.kind === "response") {
      this.deps.onOutcome?.("answered");
      this.current = { reachable: true, lastOptionsAt, lastError: null };
      this.log.debug("OPTIONS answered", { status: result.response.status });
    } else {
      this.deps.onOutcome?.(result.kind === "timeout" ? "timeout" : result.kind === "resolveError" ? "dns" : "network");
      this.current = { reachable: false, lastOptionsAt, lastError: result.reason };
      if (previous.reachable !== false) this.log.warn("OPTIONS keep-alive failed", { reason: result.reason });
    }
    this.deps.onStatus?.(this.status, previous);
    this.schedule(this.config.intervalSec * 1000);
  }

  private buildOptions(): SipRequest {
    const { domain, port, transport } = this.config.address;
    const target: SipUri = { scheme: "sip", host: domain, params: NO_PARAMS, headers: NO_URI_HEADERS };
    if (port !== undefined) target.port = port;
    const contact = this.deps.port.contact(this.config.fromUser, transport);
    return createRequest({
      method: "OPTIONS",
      uri: target,
      from: { uri: { ...contact.uri, params: NO_PARAMS }, params: new Map([["tag", newTag()]]) },
      to: { uri: target, params: NO_PARAMS },
      callId: newCallId(this.deps.port.localHost),
      cseq: 1,
      headers: [["Accept", "application/sdp"]],
    });
  }
}
