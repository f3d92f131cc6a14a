// The call service: owns every live call, the concurrent-call limits, and the commands the APIs
// use (dial, hang up, DTMF, list). Inbound INVITEs arrive through the SIP stack's request handler;
// the flows themselves live in inbound.ts and outbound.ts.
//
//   const calls = new CallManager({ stack, records, registry, trunks, resolver, media, routes, callerId, webhooks, settings });
//   calls.start();                                    // takes the stack's out-of-dialog requests
//   calls.dial({ applicationId, channelId, to, client: { id, userId, ... } })  → { ok, call } at once
//   calls.hangUp(id); calls.sendDtmf(id, "123"); calls.transfer(id, "+15557654321"); calls.move(id, "room-2"); calls.get(id); calls.list({ state, limit, cursor })
//   calls.clientControl()                             // for the client API (dialling from a browser)
import type { CallerIdClientInfo } from "../channels/callerIdTemplate.ts";
import type { ChannelRegistry } from "../channels/registry.ts";
import type { TrunkInput } from "../config/entities.ts";
import { createLogger } from "../log.ts";
import { metrics } from "../metrics.ts";
import type { InboundRouteSource, InboundWebhookSettings } from "../routing/inbound.ts";
import type { OutboundWebhookSettings, TrunkChoiceCandidate } from "../routing/outbound.ts";
import { formatUri, type SipRequest, type SipUri } from "../sip/message.ts";
import type { Resolver } from "../sip/resolver.ts";
import type { SipStack } from "../sip/stack.ts";
import type { ServerTransaction } from "../sip/transaction.ts";
import type { InboundContext } from "../sip/transport.ts";
import { initialRecord, type CallListQuery, type CallRecord, type CallStore, type NewCall } from "../store/calls.ts";
import { timeOrderedId } from "../store/ids.ts";
import { Call, pickIdentity, type CallEnvironment, type CallInit } from "./call.ts";
import type { CallerIdTemplates } from "./callerId.ts";
import { parseDialTarget } from "./dialTarget.ts";
import type { Placement } from "../cluster/homes.ts";
import type { InboundHoming } from "./homing.ts";
import { handleInboundInvite, type InboundFlowContext } from "./inbound.ts";
import { effectiveMaxDurationSec } from "./maxDuration.ts";
import type { MediaFactory } from "./media.ts";
import { placeOutboundCall, type OutboundFlowContext } from "./outbound.ts";
import { onTrunk, resolveTarget } from "./redirects.ts";
import { createSourceMatcher, type SourceMatcher } from "./sourceMatcher.ts";
import { transferTarget } from "./transfer.ts";
import { ALLOW_METHODS, type CommandResult, type DialClient, type DialRequest } from "./types.ts";


/** What the call layer needs to know about trunks (the trunk manager and the store provide it). */
export interface TrunkDirectory {
  /** Every configured trunk, in configuration order. */
  list(): TrunkInput[];
  /** Trunks for the outbound chooser, with availability (registered, reachable, under its limit). */
  candidates(): TrunkChoiceCandidate[];
  /** Counts a call on the trunk; undefined when it is unknown, disabled, at its limit (or, outbound, unavailable). */
  acquireCall(trunkId: string, o?: { outbound?: boolean }): { release(): void } | undefined;
  /** The addresses the trunk's domain resolved to, for matching inbound sources. */
  resolvedAddresses(trunkId: string): readonly string[];
  /** Called when trunks or their resolved addresses change. Returns the unsubscribe function. */
  onChange(listener: () => void): () => void;
}

export interface CallSettings {
  ringTimeoutSec: number;
  sendRinging: boolean;
  maxConcurrentCalls: number;
  /** Longest session-timer interval we accept (RFC 4028). */
  sessionTimerSec: number;
  maxRedirects: number;
  /** Inbound INVITE header name → participant/call attribute name. */
  headersToAttributes: Record<string, string>;
  /** Longest a call may last from its answer; 0: unlimited (trunks and applications may set less). */
  maxDurationSec: number;
}

export type WebhookConfig = InboundWebhookSettings & OutboundWebhookSettings;

export interface CallManagerDeps {
  stack: SipStack;
  records: CallStore;
  registry: ChannelRegistry;
  trunks: TrunkDirectory;
  resolver: Resolver;
  media: MediaFactory;
  routes: InboundRouteSource;
  /** Where a routed inbound call's channel lives (this node, or a 302 to its home). */
  homing: InboundHoming;
  /** Where a channel's mixer lives (claimed here when homed nowhere): a phone leg moves only into a channel mixed here. */
  placeChannel(channel: { applicationId: string; channelId: string }): Promise<Placement>;
  callerId(applicationId: string, channelId: string): CallerIdTemplates | undefined;
  /** The application's own limits (calls.maxDurationSec per application). */
  application(applicationId: string): { maxDurationSec?: number } | undefined;
  webhooks(): WebhookConfig;
  settings(): CallSettings;
}

/** The token claims the client API passes when a browser dials, hangs up or sends DTMF. */
export type ClientIdentity = Omit<CallerIdClientInfo, "id"> & { applicationId: string; channelId: string; clientId?: string };

const log = createLogger("calls");

const liveManagers = new Set<CallManager>();
metrics.gauge("trunkline_calls_active", "Calls in progress, by direction.", ["direction"], () =>
  (["inbound", "outbound"] as const).map((direction) => ({
    labels: { direction },
    value: [...liveManagers].reduce((n, m) => n + m.activeByDirection(direction), 0),
  })),
);

export class CallManager {
  private readonly calls = new Map<string, Call>();
  private readonly trunkSlots = new Map<string, { release(): void }>();
  private readonly env: CallEnvironment;
  private readonly inbound: InboundFlowContext;
  private readonly outbound: OutboundFlowContext;
  private matchSource: SourceMatcher = () => undefined;
  private unsubscribe: (() => void) | undefined;
  private draining = false;

  constructor(private readonly deps: CallManagerDeps) {
    this.env = {
      store: deps.records,
      registry: deps.registry,
      stack: deps.stack,
      media: deps.media,
      release: (call) => this.release(call),
      maxDurationSec: ({ trunkId, applicationId }) =>
        effectiveMaxDurationSec(
          deps.settings().maxDurationSec,
          trunkId === undefined ? undefined : this.trunk(trunkId)?.maxDurationSec,
          applicationId === undefined ? undefined : deps.application(applicationId)?.maxDurationSec,
        ),
      referPolicy: ({ trunkId }) => (trunkId === undefined ? undefined : this.trunk(trunkId)?.referPolicy) ?? "decline",
      placeReferredCall: (from, referTo) => this.placeReferredCall(from, referTo),
    };
    this.inbound = {
      stack: deps.stack,
      trunkForSource: (address) => {
        const id = this.matchSource(address);
        return id === undefined ? undefined : this.trunk(id);
      },
      hasCapacity: () => this.hasCapacity(),
      createCall: (init) => this.createCall({ id: newCallId(), ...init }),
      takeTrunkSlot: (call, trunkId) => this.takeTrunkSlot(call, trunkId, {}),
      routes: deps.routes,
      homing: deps.homing,
      webhooks: () => deps.webhooks(),
      settings: () => deps.settings(),
    };
    this.outbound = {
      stack: deps.stack,
      resolver: deps.resolver,
      trunkCandidates: () => deps.trunks.candidates(),
      trunk: (id) => this.trunk(id),
      takeTrunkSlot: (call, trunkId) => this.takeTrunkSlot(call, trunkId, { outbound: true }),
      callerId: (applicationId, channelId) => deps.callerId(applicationId, channelId),
      webhooks: () => deps.webhooks(),
      ringTimeoutSec: () => deps.settings().ringTimeoutSec,
      maxRedirects: () => deps.settings().maxRedirects,
      isTrunkAddress: (trunk, address) =>
        createSourceMatcher([{ trunkId: trunk.id, resolvedAddresses: deps.trunks.resolvedAddresses(trunk.id), allowedAddresses: trunk.allowedAddresses }])(address) !== undefined,
    };
  }

  /** Takes the stack's out-of-dialog requests and closes the records of calls a crash interrupted. */
  start(): void {
    // Queued ahead of any new call's record, so it closes only records of the last run.
    this.deps.records
      .closeInterruptedCalls()
      .then((interrupted) => {
        if (interrupted > 0) log.warn("calls live at the last stop closed as interrupted", { count: interrupted });
      })
      .catch((err: unknown) => log.error("closing the records of interrupted calls failed", { err }));
    this.rebuildSourceMatcher();
    this.unsubscribe = this.deps.trunks.onChange(() => this.rebuildSourceMatcher());
    // Only trunks may send us requests: the stack drops (or 403s) everyone else before parsing.
    this.deps.stack.screenSources((address) => this.matchSource(address) !== undefined);
    this.deps.stack.onRequest((req, tx, ctx) => this.onRequest(req, tx, ctx));
    liveManagers.add(this);
  }

  /** SIGTERM: new dials are refused from now on (the SIP stack refuses new INVITEs); live calls go on. */
  drain(): void {
    this.draining = true;
  }

  /** Ends every call (BYE / CANCEL) for shutdown; resolves once their ends are committed and call.ended emitted. */
  stop(): Promise<void> {
    liveManagers.delete(this);
    this.unsubscribe?.();
    const calls = [...this.calls.values()];
    for (const call of calls) call.end("shutdown", { cause: { status: 503, text: "shutting down" } });
    // Committed now rather than at the end of the window.
    void this.deps.records.flush();
    return Promise.all(calls.map((call) => call.endRecorded)).then(() => undefined);
  }

  private onRequest(req: SipRequest, tx: ServerTransaction, ctx: InboundContext): void {
    if (req.method === "INVITE") {
      handleInboundInvite(this.inbound, req, tx, ctx).catch((error: unknown) => {
        log.error("inbound call failed", { error, sipCallId: req.callId });
        tx.respond(500, "Server Internal Error");
      });
      return;
    }
    // RFC 3515 §2.4.2 and RFC 6665 §4.1.3, as in a dialog: no transfer on request, no subscriptions of ours out of one.
    if (req.method === "REFER") return void tx.respond(603, "Declined");
    if (req.method === "NOTIFY") return void tx.respond(481, "Subscription Does Not Exist");
    // §8.2.1: the stack answered OPTIONS; other out-of-dialog methods have no meaning here.
    tx.respond(405, "Method Not Allowed", { headers: [["Allow", ALLOW_METHODS]] });
  }

  private rebuildSourceMatcher(): void {
    const trunks = this.deps.trunks.list().filter((t) => t.enabled);
    this.matchSource = createSourceMatcher(
      trunks.map((t) => ({ trunkId: t.id, resolvedAddresses: this.deps.trunks.resolvedAddresses(t.id), allowedAddresses: t.allowedAddresses })),
    );
  }

  private trunk(id: string): TrunkInput | undefined {
    return this.deps.trunks.list().find((t) => t.id === id);
  }

  /** Under the total concurrent-call limit (the trunk manager counts each trunk's own). */
  private hasCapacity(): boolean {
    return this.calls.size < this.deps.settings().maxConcurrentCalls;
  }

  get activeCount(): number {
    return this.calls.size;
  }

  activeByDirection(direction: "inbound" | "outbound"): number {
    let n = 0;
    for (const call of this.calls.values()) if (call.direction === direction) n++;
    return n;
  }

  /** Creates the call and its record (state `trying`). */
  private createCall(init: CallInit, now = Date.now()): Call {
    this.deps.records.create(newCallOf(init), now);
    const call = new Call(init, this.env);
    this.calls.set(call.id, call);
    return call;
  }

  /** Counts the call on its trunk; false when the trunk refuses (at its limit, or unavailable outbound). */
  private takeTrunkSlot(call: Call, trunkId: string, o: { outbound?: boolean }): boolean {
    const slot = this.deps.trunks.acquireCall(trunkId, o);
    if (!slot) return false;
    this.trunkSlots.set(call.id, slot);
    return true;
  }

  private release(call: Call): void {
    if (!this.calls.delete(call.id)) return;
    this.trunkSlots.get(call.id)?.release();
    this.trunkSlots.delete(call.id);
  }

  // -------------------------------------------------------------------------------------------
  // Commands

  /** Places an outbound call into a channel; returns its record at once (state `trying`). */
  dial(request: DialRequest): CommandResult<{ call: CallRecord }> {
    const target = parseDialTarget(request.to);
    if ("error" in target) return { ok: false, status: 400, code: "invalid_body", message: `to ${target.error}`, field: "to" };
    if (this.draining) return { ok: false, status: 503, code: "draining", message: "this node is shutting down and takes no new calls" };
    if (!this.hasCapacity()) return { ok: false, status: 503, code: "too_many_calls", message: "the concurrent-call limit is reached" };
    const init: CallInit = {
      id: newCallId(),
      direction: "outbound",
      from: "",
      to: request.to.trim(),
      applicationId: request.applicationId,
      channelId: request.channelId,
      clientId: request.client.id,
      ...(request.client.userId ? { userId: request.client.userId } : {}),
    };
    const now = Date.now();
    const call = this.createCall(init, now);
    placeOutboundCall(this.outbound, call, request, target).catch((error: unknown) => {
      call.log.error("outbound call failed", { error });
      call.end("transport_error");
    });
    return { ok: true, call: initialRecord(newCallOf(init), now) };
  }

  /**
   * We are the transferee (the trunk's referPolicy: accept): a new call to the Refer-To, which must be
   * the trunk's by the redirects' sameTrunk rule (whatever its `redirects` says: a REFER is the far
   * end's request, and the new leg runs on this trunk), sent to where it resolves, into the channel
   * of `from` as the same participant (its userId).
   */
  private async placeReferredCall(from: Call, referTo: SipUri): Promise<{ call: Call } | { status: number; reason: string }> {
    const { trunkId, applicationId, channelId, userId, clientId } = from.info;
    const trunk = trunkId === undefined ? undefined : this.trunk(trunkId);
    if (!trunk || !applicationId || !channelId) return { status: 603, reason: "Declined" };
    const scope = {
      transport: trunk.transport,
      resolver: this.deps.resolver,
      trunkDomain: trunk.domain,
      isTrunkAddress: (address: string) => this.outbound.isTrunkAddress(trunk, address),
    };
    const destinations = await resolveTarget(referTo, scope);
    if (!destinations || destinations.length === 0 || !onTrunk(referTo, destinations, scope)) return { status: 403, reason: "Transfer Target Not On This Trunk" };
    if (this.draining || !this.hasCapacity() || from.isEnded) return { status: 503, reason: "Service Unavailable" };
    const participant = userId ?? (from.direction === "inbound" ? from.info.from : from.info.to);
    const call = this.createCall({
      id: newCallId(),
      direction: "outbound",
      from: "",
      to: formatUri(referTo),
      applicationId,
      channelId,
      userId: participant,
      ...(clientId ? { clientId } : {}),
    });
    const request: DialRequest = { applicationId, channelId, to: formatUri(referTo), client: { id: clientId ?? from.id, userId: participant } };
    placeOutboundCall(this.outbound, call, request, { kind: "uri", uri: referTo }, { trunkId: trunk.id, destinations }).catch((error: unknown) => {
      call.log.error("outbound call failed", { error });
      call.end("transport_error");
    });
    return { call };
  }

  async hangUp(id: string): Promise<CommandResult> {
    const call = this.calls.get(id);
    if (!call) return this.notLive(id);
    return hangUp(call);
  }

  async sendDtmf(id: string, digits: string): Promise<CommandResult> {
    const call = this.calls.get(id);
    if (!call) return this.notLive(id);
    if (!call.sendDtmf(digits)) return { ok: false, status: 409, code: "not_answered", message: "DTMF needs an answered call" };
    return { ok: true };
  }

  /** Whether the live call's phone leg has received RTP (early media before the answer). */
  receivingMedia(id: string): boolean {
    return (this.calls.get(id)?.media?.stats().packetsReceived ?? 0) > 0;
  }

  /** Blind transfer of the far end to `to` (transfer.ts); answered at once, the outcome is an event. */
  async transfer(id: string, to: string): Promise<CommandResult> {
    const call = this.calls.get(id);
    if (!call) return this.notLive(id);
    const trunkId = call.info.trunkId;
    const target = transferTarget(to, trunkId === undefined ? undefined : this.trunk(trunkId));
    if ("error" in target) return { ok: false, status: 400, code: "invalid_body", message: `to ${target.error}`, field: "to" };
    switch (call.startTransfer(target)) {
      case "started":
        return { ok: true };
      case "not_answered":
        return { ok: false, status: 409, code: "not_answered", message: "a transfer needs an answered call" };
      case "in_progress":
        return { ok: false, status: 409, code: "transfer_in_progress", message: "a transfer of this call is already in progress" };
    }
  }

  /** Moves the call's phone leg to another channel of its application, without SIP. */
  async move(id: string, channelId: string): Promise<CommandResult> {
    const call = this.calls.get(id);
    if (!call) return this.notLive(id);
    const { applicationId } = call.info;
    if (call.info.channelId === channelId) return { ok: false, status: 409, code: "same_channel", message: `call ${JSON.stringify(id)} is already in channel ${JSON.stringify(channelId)}`, field: "channelId" };
    if (!applicationId || !call.media) return { ok: false, status: 409, code: "not_in_channel", message: "the call's phone leg is not in a channel yet" };
    let placed: Placement;
    try {
      placed = await this.deps.placeChannel({ applicationId, channelId });
    } catch (error) {
      call.log.error("the target channel's home could not be determined", { channelId, error });
      return { ok: false, status: 503, code: "channel_home_unavailable", message: `where channel ${JSON.stringify(channelId)} is mixed cannot be determined now` };
    }
    // The media stays on this node: a channel mixed on another one cannot take the leg.
    if (!placed.here) return { ok: false, status: 409, code: "channel_elsewhere", message: `channel ${JSON.stringify(channelId)} is mixed on node ${JSON.stringify(placed.home.nodeId)}`, field: "channelId" };
    if (call.isEnded) return this.notLive(id);
    if (call.moveToChannel(channelId) === "no_leg") return { ok: false, status: 409, code: "not_in_channel", message: "the call's phone leg is not in a channel yet" };
    return { ok: true };
  }

  get(id: string): Promise<CallRecord | undefined> {
    return this.deps.records.get(id);
  }

  list(query: CallListQuery): Promise<{ calls: CallRecord[]; nextCursor?: string }> {
    return this.deps.records.list(query);
  }

  private async notLive(id: string): Promise<CommandResult> {
    return (await this.deps.records.get(id))
      ? { ok: false, status: 409, code: "call_ended", message: `call ${JSON.stringify(id)} has already ended` }
      : { ok: false, status: 404, code: "not_found", message: `call ${JSON.stringify(id)} not found` };
  }

  /** The client API's view: dial from the token's channel; hang up or send DTMF on that channel's calls. */
  clientControl() {
    const ownCall = async (claims: ClientIdentity, callId: string): Promise<CommandResult<{ call: Call }>> => {
      const call = this.calls.get(callId);
      if (!call || call.info.applicationId !== claims.applicationId || call.info.channelId !== claims.channelId) return (await this.notLive(callId)) as CommandResult<{ call: Call }>;
      return { ok: true, call };
    };
    return {
      dial: async (o: { claims: ClientIdentity & { clientId: string }; to: string }): Promise<CommandResult<{ callId: string }>> => {
        const { claims } = o;
        const client: DialClient = {
          id: claims.clientId,
          ...pick(claims, ["userId", "userAlias", "deviceId", "deviceAlias", "tag", "region"]),
          ...(claims.roles ? { roles: claims.roles } : {}),
        };
        const result = this.dial({ applicationId: claims.applicationId, channelId: claims.channelId, to: o.to, client });
        return result.ok ? { ok: true, callId: result.call.id } : result;
      },
      hangUp: async (o: { claims: ClientIdentity; callId: string }): Promise<CommandResult> => {
        const own = await ownCall(o.claims, o.callId);
        if (!own.ok) return own;
        return hangUp(own.call);
      },
      sendDtmf: async (o: { claims: ClientIdentity; callId: string; digits: string }): Promise<CommandResult> => {
        const own = await ownCall(o.claims, o.callId);
        if (!own.ok) return own;
        return own.call.sendDtmf(o.digits) ? { ok: true } : { ok: false, status: 409, code: "not_answered", message: "DTMF needs an answered call" };
      },
    };
  }
}

/**
 * Ends the call; the answer waits for its end to be committed (an answered or inbound call ends at
 * once). An outbound call being cancelled ends at the INVITE's final response: the answer says
 * only that the hang-up is under way, and call.ended follows.
 */
async function hangUp(call: Call): Promise<CommandResult> {
  call.end("local_hangup");
  if (call.isEnded) await call.endRecorded;
  return { ok: true };
}

export function newCallId(): string {
  return timeOrderedId("call");
}

function pick<T extends object, K extends keyof T>(o: T, keys: K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const key of keys) if (o[key] !== undefined) out[key] = o[key];
  return out;
}

function newCallOf(init: CallInit): NewCall {
  return { id: init.id, direction: init.direction, ...(init.sipCallId ? { sipCallId: init.sipCallId } : {}), ...pickIdentity(init) };
}
