// The calls service of the running process: the call manager on the SIP stack, the trunk manager
// and the channel registry; the events-webhook delivery. Its API routes: src/api/routes/services.ts.
//
//   const calls = new CallService(ctx, { stack, trunks: trunkService.manager, registry });
//   calls.manager.clientControl()      // for the WebRTC service (dialling from a browser)
// The stack should allow UPDATE, INFO, PRACK, REFER and NOTIFY, support "timer" and "100rel" and accept DTMF INFO and sipfrag NOTIFY bodies:
//   new SipStack({ ...CALL_STACK_OPTIONS, listen, advertised })
import type { AppContext, Service } from "../app.ts";
import type { ChannelRegistry } from "../channels/registry.ts";
import { events } from "../events.ts";
import { createLogger } from "../log.ts";
import { RtpPortAllocator } from "../media/ports.ts";
import { defaultMediaWorkers, MediaPlane } from "../media/media-plane.ts";
import { EventDelivery } from "../routing/eventDelivery.ts";
import type { InboundRouteSource } from "../routing/inbound.ts";
import { createResolver, isIpLiteral, type Resolver } from "../sip/resolver.ts";
import type { SipStack, SipStackOptions } from "../sip/stack.ts";
import { isIpv6 } from "../sip/transport.ts";
import type { TrunkManager } from "../trunks/manager.ts";
import { inboundHoming } from "./homing.ts";
import { phoneLegMedia } from "./legMedia.ts";
import { CallManager, type TrunkDirectory, type WebhookConfig } from "./manager.ts";
import { CALL_METHODS } from "./types.ts";

/** What the call flows need from the stack's stateless checks. */
export const CALL_STACK_OPTIONS: Pick<SipStackOptions, "allow" | "supported" | "accept"> = {
  allow: CALL_METHODS,
  supported: ["timer", "100rel"],
  accept: ["application/sdp", "application/dtmf-relay", "application/dtmf", "message/sipfrag"],
};

const log = createLogger("calls.service");
/** Trunk domains are resolved again this often to keep the inbound source check current. */
const RESOLVE_INTERVAL_MS = 5 * 60_000;

export interface CallServiceDeps {
  stack: SipStack;
  trunks: TrunkManager;
  registry: ChannelRegistry;
  resolver?: Resolver;
}

export class CallService implements Service {
  readonly name = "calls";
  readonly manager: CallManager;
  private readonly delivery: EventDelivery;
  private readonly resolved = new Map<string, readonly string[]>();
  private readonly trunkListeners = new Set<() => void>();
  private webhookCache: WebhookConfig | undefined;
  private unsubscribes: (() => void)[] = [];
  private resolveTimer: ReturnType<typeof setInterval> | undefined;
  private readonly resolver: Resolver;
  /** the media workers the channels run on (media.workers) */
  private readonly plane: MediaPlane;
  private readonly registry: ChannelRegistry;

  constructor(
    private readonly ctx: AppContext,
    deps: CallServiceDeps,
  ) {
    const { config, store } = ctx;
    this.registry = deps.registry;
    this.resolver = deps.resolver ?? createResolver();
    // RTP sockets come from the configured range; the SDP address is read once the stack is bound.
    const allocator = new RtpPortAllocator({ min: config.rtp.portMin, max: config.rtp.portMax });
    this.plane = new MediaPlane({ workers: config.media.workers ?? defaultMediaWorkers(), maxLegs: allocator.capacity });
    deps.registry.setMediaPlane(this.plane);
    const advertisedAddress = () => config.sip.advertised?.host ?? deps.stack.contactFor(undefined, "udp").uri.host;
    const trunks: TrunkDirectory = {
      list: () => store.trunks.list(),
      candidates: () => deps.trunks.candidates(),
      acquireCall: (id, o) => deps.trunks.acquireCall(id, o),
      resolvedAddresses: (id) => this.resolved.get(id) ?? [],
      onChange: (listener) => {
        this.trunkListeners.add(listener);
        return () => this.trunkListeners.delete(listener);
      },
    };
    const routes: InboundRouteSource = {
      findStaticRoute: (sipUsername) => {
        const route = store.inboundRoutes.find(sipUsername);
        return route ? { applicationId: route.applicationId, channelId: route.channelId } : undefined;
      },
      applicationExists: (id) => store.applications.get(id) !== undefined,
    };
    this.manager = new CallManager({
      stack: deps.stack,
      records: store.calls,
      registry: deps.registry,
      trunks,
      resolver: this.resolver,
      media: (o) => {
        const advertised = advertisedAddress();
        return phoneLegMedia({
          allocator,
          advertisedAddress: advertised,
          // RTP listens in the family our SDP advertises: an IPv6 c= line needs an IPv6 socket.
          bindAddress: isIpv6(advertised) ? "::" : "0.0.0.0",
          codecPreferences: config.rtp.codecs,
          mediaTimeoutSec: config.rtp.mediaTimeoutSec,
          dtmfDurationMs: config.rtp.dtmfDurationMs,
          strictSource: config.rtp.strictSource,
        })(o);
      },
      routes,
      homing: inboundHoming(ctx.homes, () => this.ctx.config.cluster.secret),
      placeChannel: (channel) => ctx.homes.place(channel),
      callerId: (applicationId, channelId) => store.callerIds.get(applicationId, channelId),
      application: (applicationId) => store.applications.get(applicationId),
      webhooks: () => this.webhooks(),
      settings: () => this.ctx.config.calls,
    });
    this.delivery = new EventDelivery({ settings: () => this.webhooks() });
  }

  async start(): Promise<void> {
    this.unsubscribes.push(
      this.ctx.store.changes.subscribe((change) => {
        if (change.entity === "webhooks") this.webhookCache = undefined;
        if (change.entity === "trunk") void this.resolveTrunks();
      }),
      this.delivery.attach(events),
    );
    this.ctx.homes.follow(this.registry);
    await this.resolveTrunks();
    this.resolveTimer = setInterval(() => void this.resolveTrunks(), RESOLVE_INTERVAL_MS);
    this.resolveTimer.unref();
    this.manager.start();
  }

  /** Every call of this process and every participant of its mixers (phone legs and WebRTC clients). */
  load(): { activeCalls: number; mediaLegs: number } {
    return { activeCalls: this.manager.activeCount, mediaLegs: this.registry.participantCount() };
  }

  drain(): void {
    this.manager.drain();
  }

  async stop(deadline: number): Promise<void> {
    clearInterval(this.resolveTimer);
    // The calls' ends (participant.left, then call.ended once committed) reach the events webhook:
    // the delivery hears the bus until they are out (a database not answering holds the stop only
    // until the deadline's share).
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.manager.stop(), new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - Date.now() - 1000))))]);
    clearTimeout(timer);
    for (const unsubscribe of this.unsubscribes.splice(0)) unsubscribe();
    // After the calls' RTCP BYEs, which the workers send before they end.
    this.plane.close();
    await this.delivery.stop(Math.max(0, deadline - Date.now() - 200));
  }

  private webhooks(): WebhookConfig {
    this.webhookCache ??= this.ctx.store.settings.webhooks() ?? { timeoutMs: 5000 };
    return this.webhookCache;
  }

  /** Resolves every trunk's domain (RFC 3263) for the inbound source check, then rebuilds it. */
  private async resolveTrunks(): Promise<void> {
    const trunks = this.ctx.store.trunks.list();
    await Promise.all(
      trunks.map(async (t) => {
        if (isIpLiteral(t.domain)) return void this.resolved.set(t.id, [t.domain]);
        try {
          const targets = await this.resolver.resolve(t.domain, t.transport, t.port);
          this.resolved.set(t.id, [...new Set(targets.map((target) => target.address))]);
        } catch (error) {
          log.warn("trunk domain does not resolve; only its allowedAddresses are accepted", { trunkId: t.id, error });
        }
      }),
    );
    for (const id of [...this.resolved.keys()]) if (!trunks.some((t) => t.id === id)) this.resolved.delete(id);
    for (const listener of this.trunkListeners) listener();
  }
}
