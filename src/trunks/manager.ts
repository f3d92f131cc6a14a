// Every configured trunk's live state: its registration client, its OPTIONS keep-alive, its
// active-call count, and whether it is available for outbound calls. Trunks run independently; a
// change to one (API or config reload) restarts only what that change affects.
//
// For the calls layer (the TrunkDirectory of calls/manager.ts):
//   manager.list()                    // TrunkInput[] in trunk order
//   manager.candidates()              // TrunkChoiceCandidate[] in trunk order → chooseTrunk()
//   manager.resolvedAddresses(id)     // IPs the trunk's domain resolves to (inbound source matching)
//   manager.onChange(listener)        // trunks or their resolved addresses changed
//   manager.isAvailable(id)
//   const slot = manager.acquireCall(id, { outbound: true });   // undefined: unknown, disabled, at its limit
//                                                               // (or, outbound, not available)
//   ... slot.release()                // once the call ends (idempotent)
// For the API: manager.status(id), manager.statuses().
//
// With `cluster` (cluster.front set), a registering trunk is registered by one node of the cluster:
// the one holding its lease (clusterRegistration.ts). syncLeases(), run after every heartbeat, claims
// or renews the lease of each registering trunk; a node that wins one starts registering (Contact at
// the front), a node that loses one stops refreshing without un-registering (the binding is the
// cluster's), and every other node shows the holder's registration state as written in the table.
import type { TrunkInput } from "../config/entities.ts";
import { emitEvent } from "../events.ts";
import { createLogger } from "../log.ts";
import { metrics } from "../metrics.ts";
import type { TrunkChoiceCandidate } from "../routing/outbound.ts";
import type { Resolver } from "../sip/resolver.ts";
import { contactAtFront, type ClusterRegistration, type RegistrationLeaseRow } from "./clusterRegistration.ts";
import type { TrunkAddress, TrunkSipPort } from "./exchange.ts";
import { OptionsProbe, type ProbeOutcome, type ProbeStatus } from "./keepalive.ts";
import {
  Registration, type RegisterOutcome, type RegistrationState, type RegistrationStatus, type RegistrationTiming,
} from "./registration.ts";

export interface TrunkRegistrationView extends RegistrationStatus {
  /** The node that registers the trunk: this one, or in a cluster the holder of its lease; null when none does. */
  nodeId: string | null;
}

export interface TrunkStatus {
  id: string;
  registration: TrunkRegistrationView;
  /** Last OPTIONS result; null when the trunk is not probed or no probe has completed yet. */
  reachable: boolean | null;
  lastOptionsAt: string | null;
  /** Why the last OPTIONS probe failed (DNS, refused connection, TLS, timeout), when it did. */
  lastOptionsError: string | null;
  activeCalls: number;
  maxConcurrentCalls: number | null;
  available: boolean;
}

export interface TrunkCallSlot {
  readonly trunkId: string;
  release(): void;
}

export interface TrunkManagerOptions {
  port: TrunkSipPort;
  resolver: Resolver;
  registrationTiming?: Partial<RegistrationTiming>;
  /** This node's name, shown as the registering node (default "single"). */
  nodeId?: string;
  /** Registration once per cluster (cluster.front set); absent: this node registers every registering trunk. */
  cluster?: ClusterRegistration;
}

interface TrunkRuntime {
  trunk: TrunkInput;
  registration: Registration | undefined;
  probe: OptionsProbe | undefined;
  /** Set while an old binding is being removed before the new registration starts. */
  replacing: Promise<void> | undefined;
  activeCalls: number;
  /** Addresses the domain resolved to (all RFC 3263 targets), for matching inbound sources. */
  addresses: readonly string[];
  /** Cluster: this node holds the trunk's registration lease (as of its last claim). */
  holdsLease: boolean;
}

/** Resolved trunk addresses are refreshed this often (the resolver caches per TTL underneath). */
const addressRefreshMs = 5 * 60_000;

const log = createLogger("trunks");

const registrationStates: RegistrationState[] = ["registered", "registering", "unregistered", "failed", "disabled"];
const liveManagers = new Set<TrunkManager>();

const registerOutcomes = metrics.counter("trunkline_trunk_register_total", "REGISTER exchanges by outcome.", ["trunk", "outcome"]);
const optionsOutcomes = metrics.counter("trunkline_trunk_options_total", "OPTIONS keep-alive probes by outcome.", ["trunk", "outcome"]);
metrics.gauge("trunkline_trunk_registration_state", "1 for the current registration state of each trunk.", ["trunk", "state"], () =>
  allStatuses().flatMap((s) => registrationStates.map((state) => ({ labels: { trunk: s.id, state }, value: s.registration.state === state ? 1 : 0 }))));
metrics.gauge("trunkline_trunk_reachable", "1 when the trunk's last OPTIONS keep-alive was answered (probed trunks only).", ["trunk"], () =>
  allStatuses().filter((s) => s.reachable !== null).map((s) => ({ labels: { trunk: s.id }, value: s.reachable ? 1 : 0 })));
metrics.gauge("trunkline_trunk_available", "1 when the trunk can take an outbound call now.", ["trunk"], () =>
  allStatuses().map((s) => ({ labels: { trunk: s.id }, value: s.available ? 1 : 0 })));
metrics.gauge("trunkline_trunk_active_calls", "Calls in progress per trunk.", ["trunk"], () =>
  allStatuses().map((s) => ({ labels: { trunk: s.id }, value: s.activeCalls })));

function allStatuses(): TrunkStatus[] {
  return [...liveManagers].flatMap((m) => m.statuses());
}

function addressOf(t: TrunkInput): TrunkAddress {
  return { domain: t.domain, transport: t.transport, tlsVerify: t.tlsVerify, ...(t.port !== undefined ? { port: t.port } : {}) };
}

/** What identifies the binding: changing any of these moves it elsewhere, so the old one is removed. */
function bindingKey(t: TrunkInput): string {
  return JSON.stringify([t.domain, t.port, t.transport, t.username]);
}

function registrationKey(t: TrunkInput): string {
  return JSON.stringify([t.enabled, t.register, bindingKey(t), t.password, t.authId, t.registerExpires, t.tlsVerify]);
}

function probeKey(t: TrunkInput): string {
  return JSON.stringify([t.enabled, t.optionsIntervalSec, t.domain, t.port, t.transport, t.tlsVerify, t.username]);
}

export class TrunkManager {
  private readonly trunks = new Map<string, TrunkRuntime>();
  private readonly listeners = new Set<() => void>();
  private readonly addressTimer: ReturnType<typeof setInterval>;
  private stopped = false;
  private readonly nodeId: string;
  /** Cluster: every lease row as of the last syncLeases(), by trunk id (what other nodes registered). */
  private leaseRows = new Map<string, RegistrationLeaseRow>();
  private syncing: Promise<void> | undefined;

  constructor(private readonly options: TrunkManagerOptions) {
    this.nodeId = options.nodeId ?? options.cluster?.nodeId ?? "single";
    liveManagers.add(this);
    this.addressTimer = setInterval(() => {
      for (const runtime of this.trunks.values()) void this.resolveAddresses(runtime);
    }, addressRefreshMs);
    this.addressTimer.unref?.();
  }

  list(): TrunkInput[] {
    return [...this.trunks.values()].map((r) => r.trunk);
  }

  resolvedAddresses(id: string): readonly string[] {
    return this.trunks.get(id)?.addresses ?? [];
  }

  /** Called after the trunk set or a trunk's resolved addresses change; returns the unsubscribe function. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private notify(): void {
    for (const listener of this.listeners) {
      try {
        listener();
      } catch (err) {
        log.error("trunk change listener failed", { err });
      }
    }
  }

  private async resolveAddresses(runtime: TrunkRuntime): Promise<void> {
    const t = runtime.trunk;
    let addresses: string[] = [];
    try {
      const targets = await this.options.resolver.resolve(t.domain, t.transport, t.port);
      addresses = [...new Set(targets.map((target) => target.address))];
    } catch (err) {
      log.warn("trunk domain does not resolve", { trunkId: t.id, domain: t.domain, reason: err instanceof Error ? err.message : String(err) });
    }
    // The trunk may have been replaced or re-pointed while the lookup ran.
    if (this.trunks.get(t.id) !== runtime || runtime.trunk.domain !== t.domain) return;
    if (addresses.join(",") === runtime.addresses.join(",")) return;
    runtime.addresses = addresses;
    this.notify();
  }

  /** Makes the running trunks match `trunks` (the whole desired set, in order). */
  apply(trunks: readonly TrunkInput[]): void {
    if (this.stopped) return;
    const wanted = new Set(trunks.map((t) => t.id));
    for (const [id, runtime] of this.trunks) {
      if (!wanted.has(id)) {
        this.trunks.delete(id);
        log.info("trunk removed", { trunkId: id });
        void this.retire(runtime, "unregistered", { unregister: true });
      }
    }
    const ordered = new Map<string, TrunkRuntime>();
    for (const trunk of trunks) {
      const runtime = this.trunks.get(trunk.id);
      ordered.set(trunk.id, runtime ? this.update(runtime, trunk) : this.launch(trunk));
    }
    this.trunks.clear();
    for (const [id, runtime] of ordered) this.trunks.set(id, runtime);
    this.notify();
    // A new registering trunk is claimed now rather than at the next heartbeat.
    if (this.options.cluster) void this.syncLeases();
  }

  /**
   * Un-registers every trunk (bounded wait, at most until `deadline` in epoch ms) and stops all
   * timers. In a cluster the bindings are the cluster's: they stay, and the leases are released so
   * another node takes them over at its next heartbeat.
   */
  async stop(deadline?: number): Promise<void> {
    this.stopped = true;
    clearInterval(this.addressTimer);
    await this.syncing;
    const runtimes = [...this.trunks.values()];
    await Promise.all(runtimes.map((r) => this.retire(r, "unregistered", { unregister: !this.options.cluster, ...(deadline !== undefined ? { deadline } : {}) })));
    liveManagers.delete(this);
  }

  /**
   * Cluster: claims or renews the lease of every registering trunk, starts registering the trunks
   * won, stops refreshing (without un-registering) those lost, and reads every lease for the status
   * of trunks other nodes register. Run after each heartbeat; a run still in progress is not repeated.
   */
  syncLeases(): Promise<void> {
    this.syncing ??= this.claimLeases()
      .catch((err: unknown) => log.error("registration lease sync failed", { err }))
      .finally(() => {
        this.syncing = undefined;
      });
    return this.syncing;
  }

  private async claimLeases(): Promise<void> {
    const cluster = this.options.cluster;
    if (!cluster || this.stopped) return;
    for (const runtime of [...this.trunks.values()]) {
      const t = runtime.trunk;
      if (!t.enabled || !t.register) continue;
      const status = runtime.registration?.status ?? { state: "registering", expiresAt: null, lastError: null, lastStatusCode: null };
      let held: boolean;
      try {
        held = await cluster.leases.claim({ trunkId: t.id, nodeId: cluster.nodeId, ttlMs: cluster.leaseMs, status });
      } catch (err) {
        // Undecided: a holder keeps refreshing (the binding is the same whoever refreshes it), a
        // non-holder keeps waiting; the next heartbeat asks again.
        log.warn("registration lease claim failed", { trunkId: t.id, err });
        continue;
      }
      if (this.stopped || this.trunks.get(t.id) !== runtime || !runtime.trunk.enabled || !runtime.trunk.register) continue;
      if (held && !runtime.holdsLease) {
        runtime.holdsLease = true;
        log.info("trunk registration lease taken: this node registers the trunk", { trunkId: t.id });
        if (!runtime.registration && !runtime.replacing) this.startRegistration(runtime);
      } else if (!held && runtime.holdsLease) {
        runtime.holdsLease = false;
        log.warn("trunk registration lease lost to another node: no longer refreshing", { trunkId: t.id });
        const registration = runtime.registration;
        runtime.registration = undefined;
        await registration?.stop({ unregister: false, finalState: "unregistered" });
      }
    }
    try {
      this.leaseRows = new Map((await cluster.leases.list()).map((row) => [row.trunkId, row]));
    } catch (err) {
      log.warn("reading registration leases failed", { err });
    }
  }

  /** Resolves once the release is written (or failed, logged): shutdown waits for it before the store closes. */
  private releaseLease(runtime: TrunkRuntime): Promise<void> {
    const cluster = this.options.cluster;
    if (!cluster || !runtime.holdsLease) return Promise.resolve();
    runtime.holdsLease = false;
    const trunkId = runtime.trunk.id;
    return cluster.leases.release(trunkId, cluster.nodeId).catch((err: unknown) => log.warn("releasing a registration lease failed", { trunkId, err }));
  }

  status(id: string): TrunkStatus | undefined {
    const runtime = this.trunks.get(id);
    return runtime ? this.describe(runtime) : undefined;
  }

  statuses(): TrunkStatus[] {
    return [...this.trunks.values()].map((r) => this.describe(r));
  }

  isAvailable(id: string): boolean {
    return this.status(id)?.available ?? false;
  }

  /** Trunks as the outbound chooser sees them (routing/outbound.ts), in configuration order. */
  candidates(): TrunkChoiceCandidate[] {
    return [...this.trunks.values()].map((r) => ({
      id: r.trunk.id,
      username: r.trunk.username,
      domain: r.trunk.domain,
      ...(r.trunk.authId !== undefined ? { authId: r.trunk.authId } : {}),
      available: this.isRuntimeAvailable(r),
    }));
  }

  /**
   * Counts a call on the trunk. Refused (undefined) for an unknown or disabled trunk or one at its
   * concurrent-call limit; with `outbound`, also when the trunk is not available to terminate.
   */
  acquireCall(id: string, o: { outbound?: boolean } = {}): TrunkCallSlot | undefined {
    const runtime = this.trunks.get(id);
    if (!runtime || !runtime.trunk.enabled) return undefined;
    if (o.outbound ? !this.isRuntimeAvailable(runtime) : this.atLimit(runtime)) return undefined;
    runtime.activeCalls++;
    let released = false;
    return {
      trunkId: id,
      release: () => {
        if (released) return;
        released = true;
        runtime.activeCalls = Math.max(0, runtime.activeCalls - 1);
      },
    };
  }

  private atLimit(r: TrunkRuntime): boolean {
    return r.trunk.maxConcurrentCalls !== undefined && r.activeCalls >= r.trunk.maxConcurrentCalls;
  }

  private isRuntimeAvailable(r: TrunkRuntime): boolean {
    const t = r.trunk;
    if (!t.enabled || !t.canTerminate || this.atLimit(r)) return false;
    if (t.register && !this.registered(r)) return false;
    // An unprobed trunk, or one whose first probe is still out, counts as reachable.
    if (r.probe && r.probe.status.reachable === false) return false;
    return true;
  }

  /** Registered by this node, or in a cluster by the lease holder whose binding has not lapsed. */
  private registered(r: TrunkRuntime): boolean {
    if (r.registration) return r.registration.status.state === "registered";
    const other = this.registeredElsewhere(r);
    return other?.state === "registered" && other.expiresAt !== null && Date.parse(other.expiresAt) > Date.now();
  }

  /** Cluster: the registration another node holds for this trunk, as that node last wrote it. */
  private registeredElsewhere(r: TrunkRuntime): TrunkRegistrationView | undefined {
    const row = this.leaseRows.get(r.trunk.id);
    if (!this.options.cluster || !row || row.nodeId === this.nodeId || !r.trunk.enabled || !r.trunk.register) return undefined;
    const state = registrationStates.find((s) => s === row.status.state) ?? "unregistered";
    return { ...row.status, state, nodeId: row.nodeId };
  }

  private describe(r: TrunkRuntime): TrunkStatus {
    const probe: ProbeStatus = r.probe?.status ?? { reachable: null, lastOptionsAt: null, lastError: null };
    const registration: TrunkRegistrationView = r.registration
      ? { ...r.registration.status, nodeId: this.nodeId }
      : this.registeredElsewhere(r) ?? { state: r.trunk.enabled ? "unregistered" : "disabled", expiresAt: null, lastError: null, lastStatusCode: null, nodeId: null };
    if (r.replacing && r.trunk.enabled && r.trunk.register) registration.state = "registering";
    return {
      id: r.trunk.id,
      registration,
      reachable: probe.reachable,
      lastOptionsAt: probe.lastOptionsAt,
      lastOptionsError: probe.lastError,
      activeCalls: r.activeCalls,
      maxConcurrentCalls: r.trunk.maxConcurrentCalls ?? null,
      available: this.isRuntimeAvailable(r),
    };
  }

  private launch(trunk: TrunkInput): TrunkRuntime {
    const runtime: TrunkRuntime = { trunk, registration: undefined, probe: undefined, replacing: undefined, activeCalls: 0, addresses: [], holdsLease: false };
    void this.resolveAddresses(runtime);
    this.startRegistration(runtime);
    this.startProbe(runtime);
    log.info("trunk started", { trunkId: trunk.id, register: trunk.register, enabled: trunk.enabled });
    return runtime;
  }

  private update(runtime: TrunkRuntime, trunk: TrunkInput): TrunkRuntime {
    const before = runtime.trunk;
    runtime.trunk = trunk;
    if (before.domain !== trunk.domain || before.transport !== trunk.transport || before.port !== trunk.port) {
      runtime.addresses = [];
      void this.resolveAddresses(runtime);
    }
    if (registrationKey(before) !== registrationKey(trunk)) {
      const old = runtime.registration;
      runtime.registration = undefined;
      // Moving the binding (other registrar or AOR) or switching off: remove the old one first so a
      // late un-REGISTER cannot delete the new binding. Same binding, new credentials: replace it.
      const removeOld = !trunk.enabled || !trunk.register || bindingKey(before) !== bindingKey(trunk);
      if (!trunk.enabled || !trunk.register) void this.releaseLease(runtime);
      const finalState = trunk.enabled ? "unregistered" : "disabled";
      // Chained after a replacement still in progress, so its un-REGISTER cannot land after ours registers.
      const stopOld = () => old?.stop({ unregister: removeOld, finalState });
      const stopping = runtime.replacing ? runtime.replacing.then(stopOld) : Promise.resolve(stopOld());
      log.info("trunk registration settings changed", { trunkId: trunk.id, removeOld });
      const replacing = stopping.then(() => {
        if (runtime.replacing !== replacing) return;
        runtime.replacing = undefined;
        if (this.trunks.get(trunk.id) === runtime && !this.stopped) this.startRegistration(runtime);
      });
      runtime.replacing = replacing;
    }
    if (probeKey(before) !== probeKey(trunk)) {
      runtime.probe?.stop();
      runtime.probe = undefined;
      this.startProbe(runtime);
    }
    return runtime;
  }

  private async retire(runtime: TrunkRuntime, finalState: "unregistered" | "disabled", o: { unregister: boolean; deadline?: number }): Promise<void> {
    runtime.probe?.stop();
    runtime.replacing = undefined;
    await runtime.registration?.stop({ unregister: o.unregister, finalState, ...(o.deadline !== undefined ? { deadline: o.deadline } : {}) });
    await this.releaseLease(runtime);
  }

  private startRegistration(runtime: TrunkRuntime): void {
    const t = runtime.trunk;
    const cluster = this.options.cluster;
    if (!t.enabled || !t.register || (cluster && !runtime.holdsLease)) return;
    const trunkId = t.id;
    // A trunk that keeps failing for the same reason reports it once, not on every retry.
    let reportedFailure: string | null = null;
    const registration = new Registration(
      {
        trunkId,
        address: addressOf(t),
        credentials: { username: t.username, password: t.password, ...(t.authId ? { authId: t.authId } : {}) },
        expires: t.registerExpires,
      },
      {
        port: cluster ? contactAtFront(this.options.port, cluster.front) : this.options.port,
        resolver: this.options.resolver,
        ...(this.options.registrationTiming ? { timing: this.options.registrationTiming } : {}),
        onOutcome: (outcome: RegisterOutcome) => registerOutcomes.inc({ trunk: trunkId, outcome }),
        onStatus: (status, previous) => {
          if (cluster && runtime.holdsLease && runtime.registration === registration) {
            cluster.leases.report(trunkId, cluster.nodeId, status).catch((err: unknown) => log.warn("reporting registration state failed", { trunkId, err }));
          }
          if (status.state === "registered" && previous.state !== "registered") {
            reportedFailure = null;
            log.info("trunk registered", { trunkId, expiresAt: status.expiresAt });
            emitEvent("trunk.registered", { trunkId, ...(status.expiresAt ? { expiresAt: status.expiresAt } : {}) });
          }
          if (status.state === "failed" && previous.state !== "failed" && status.lastError !== reportedFailure) {
            reportedFailure = status.lastError;
            emitEvent("trunk.registration_failed", {
              trunkId,
              reason: status.lastError ?? "registration failed",
              ...(status.lastStatusCode !== null ? { statusCode: status.lastStatusCode } : {}),
            });
          }
        },
      },
    );
    runtime.registration = registration;
    registration.start();
  }

  private startProbe(runtime: TrunkRuntime): void {
    const t = runtime.trunk;
    if (!t.enabled || t.optionsIntervalSec <= 0) return;
    const trunkId = t.id;
    const probe = new OptionsProbe(
      // With a front, UDP/TCP probes leave through it (the stack's outbound proxy).
      { trunkId, address: addressOf(t), intervalSec: t.optionsIntervalSec, fromUser: t.username || "trunkline", relayed: this.options.cluster !== undefined && t.transport !== "tls" },
      {
        port: this.options.port,
        resolver: this.options.resolver,
        onOutcome: (outcome: ProbeOutcome) => optionsOutcomes.inc({ trunk: trunkId, outcome }),
        onStatus: (status, previous) => {
          if (status.reachable === false && previous.reachable !== false) {
            emitEvent("trunk.unreachable", { trunkId, ...(status.lastError ? { reason: status.lastError } : {}) });
          } else if (status.reachable === true && previous.reachable === false) {
            emitEvent("trunk.reachable", { trunkId });
          }
        },
      },
    );
    runtime.probe = probe;
    probe.start();
  }
}
