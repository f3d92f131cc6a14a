// The services of the real process, in start order (stopped in reverse): SIP sockets first, then
// the trunks that register through them, the call flows that use both, the WebRTC clients that
// dial through the calls, and the recordings of the channels they all join. See the Service interface in src/app.ts.
import { callsApi, channelsApi, recordingsApi, trunkStatusApi, webrtcApi } from "./api/routes/services.ts";
import type { AppContext, ComposeServices, Service } from "./app.ts";
import { CallProgressTones } from "./calls/progressTones.ts";
import { CALL_STACK_OPTIONS, CallService } from "./calls/service.ts";
import { createSourceMatcher } from "./calls/sourceMatcher.ts";
import { ChannelRegistry } from "./channels/registry.ts";
import { parseFront } from "./cluster/front.ts";
import { listenPort, type Config } from "./config/config.ts";
import { metrics } from "./metrics.ts";
import { RecordingService } from "./recordings/service.ts";
import { type SipLimits, SipStack, type SipStackCounters, type SipStackOptions } from "./sip/stack.ts";
import { hepService } from "./traces/hepService.ts";
import { sipTraceService } from "./traces/service.ts";
import { TrunkService } from "./trunks/service.ts";
import { WebRtcService } from "./webrtc/service.ts";

export const composeServices: ComposeServices = (ctx) => {
  const stack = new SipStack(stackOptions(ctx.config));
  const trunks = new TrunkService(ctx, stack);
  const registry = new ChannelRegistry();
  const calls = new CallService(ctx, { stack, trunks: trunks.manager, registry });
  const webrtc = new WebRtcService(ctx, registry);
  // After the channels' participants, so it stops first: recordings end as "shutdown", files complete.
  const recordings = new RecordingService(ctx, registry);
  return [
    // Before the stack: stopped after it, so the calls' last messages are in their traces.
    sipTraceService(ctx, stack),
    hepService(ctx, stack),
    sipService(stack, ctx.config.sip.listen.length),
    trunks,
    calls,
    webrtc,
    recordings,
    progressTones(ctx, calls, webrtc),
    trunkStatusApi(trunks),
    callsApi(calls, ctx),
    channelsApi(registry),
    webrtcApi(webrtc, ctx, () => calls.manager.clientControl()),
    recordingsApi(recordings),
  ];
};

/** Ringback, busy and congestion for the WebRTC clients that dial. */
export function progressTones(ctx: AppContext, calls: CallService, webrtc: WebRtcService): CallProgressTones {
  return new CallProgressTones({
    sink: webrtc.sessions,
    receivingMedia: (callId) => calls.manager.receivingMedia(callId),
    ringback: () => ctx.config.calls.ringback,
  });
}

/** The stack as the configuration describes it (tests replace `listen`). */
export function stackOptions(config: Config): SipStackOptions {
  return {
    ...CALL_STACK_OPTIONS,
    listen: config.sip.listen.map((l) => ({ transport: l.transport, host: l.host, port: listenPort(l) })),
    ...(config.sip.advertised ? { advertised: config.sip.advertised } : {}),
    ...(config.sip.tls ? { tls: tlsOptions(config.sip.tls) } : {}),
    userAgent: config.sip.userAgent,
    strangers: config.sip.strangers,
    ...(config.sip.trustedFronts.length > 0 ? { trustedFronts: addressMatcher(config.sip.trustedFronts) } : {}),
    ...(config.cluster.front ? { outboundProxy: parseFront(config.cluster.front) } : {}),
    limits: sipLimits(config.limits),
  };
}

/** Whether an address is one of the given addresses or CIDR blocks. */
function addressMatcher(entries: readonly string[]): (address: string) => boolean {
  const match = createSourceMatcher([{ trunkId: "listed", resolvedAddresses: [], allowedAddresses: entries }]);
  return (address) => match(address) !== undefined;
}

function sipLimits(limits: Config["limits"]): Partial<SipLimits> {
  return {
    maxMessageSize: limits.maxSipMessageBytes,
    maxConnections: limits.maxSipConnections,
    maxConnectionsPerAddress: limits.maxSipConnectionsPerAddress,
    handshakeTimeoutMs: limits.sipHandshakeTimeoutMs,
    maxWriteQueueBytes: limits.maxSipWriteQueueBytes,
    messagesPerSecond: limits.maxSipMessagesPerSecond,
    trunkMessagesPerSecond: limits.maxSipTrunkMessagesPerSecond,
    trackedSources: limits.maxSipTrackedSources,
    maxServerTransactions: limits.maxSipTransactions,
    maxUnansweredInvites: limits.maxUnansweredInvites,
    maxEventLoopLagMs: limits.maxEventLoopLagMs,
    retryAfterSec: limits.overloadRetryAfterSec,
  };
}

function tlsOptions(tls: NonNullable<Config["sip"]["tls"]>): NonNullable<SipStackOptions["tls"]> {
  return {
    ...(tls.certFile && tls.keyFile ? { certFile: tls.certFile, keyFile: tls.keyFile } : {}),
    ...(tls.caFile ? { caFile: tls.caFile } : {}),
  };
}

/** Binds the SIP sockets; ready once every configured listener is bound. Its counters feed /metrics. */
export function sipService(stack: SipStack, listeners: number): Service {
  return {
    name: "sip",
    start: async () => {
      await stack.start();
      liveStacks.add(stack);
    },
    drain: () => stack.drain(),
    stop: (deadline) => {
      liveStacks.delete(stack);
      return stack.stop(deadline);
    },
    ready: () => {
      const bound = stack.boundEndpoints.length;
      return bound >= listeners ? { ok: true } : { ok: false, detail: `${bound} of ${listeners} SIP listeners bound` };
    },
  };
}

// What the SIP edge refused or dropped, read from the running stacks at scrape time.
const liveStacks = new Set<SipStack>();
function sum(read: (c: SipStackCounters) => number): number {
  let n = 0;
  for (const stack of liveStacks) n += read(stack.counters);
  return n;
}
function series<L extends string>(label: string, values: Record<L, (c: SipStackCounters) => number>) {
  return () => Object.entries<(c: SipStackCounters) => number>(values).map(([value, read]) => ({ labels: { [label]: value }, value: sum(read) }));
}
metrics.counter(
  "trunkline_sip_dropped_total",
  "SIP messages dropped unread: a stranger's request (sip.strangers: drop), over its source's rate, or a new source while the rate table was full.",
  ["reason"],
  series("reason", {
    stranger: (c) => c.sources.strangersDropped,
    rate_limit: (c) => c.sources.rateLimited,
    source_table_full: (c) => c.sources.tableFull,
  }),
);
metrics.counter(
  "trunkline_sip_rejected_total",
  "SIP requests the stack answered by itself because of a screen or limit: 403 to strangers (sip.strangers: reject), 503 at the transaction limit, 500 to INVITEs left unanswered, 503 to new INVITEs while overloaded (too many unanswered INVITEs, or event-loop lag).",
  ["reason"],
  series("reason", {
    stranger: (c) => c.sources.strangersRejected,
    transaction_table_full: (c) => c.transactionTableFull,
    unanswered_invite: (c) => c.unansweredInvites,
    overload_unanswered_invites: (c) => c.overloaded.unanswered_invites,
    overload_event_loop_lag: (c) => c.overloaded.event_loop_lag,
  }),
);
metrics.counter(
  "trunkline_sip_connections_refused_total",
  "Inbound TCP/TLS connections refused at accept: from a stranger (sip.strangers: drop), over the per-address limit, over the total limit.",
  ["reason"],
  series("reason", {
    stranger: (c) => c.connections.refusedBySource,
    per_address: (c) => c.connections.refusedPerAddress,
    limit: (c) => c.connections.refusedAtLimit,
  }),
);
metrics.counter(
  "trunkline_sip_connections_closed_total",
  "TCP/TLS connections closed by a limit: handshake or message too slow, or a peer that does not read.",
  ["reason"],
  series("reason", {
    slow: (c) => c.connections.closedSlow,
    write_queue: (c) => c.connections.closedWriteQueue,
  }),
);
metrics.gauge("trunkline_sip_tracked_sources", "Source addresses whose SIP message rate is tracked now.", [], () =>
  [...liveStacks].reduce((n, stack) => n + stack.trackedSources, 0),
);
metrics.gauge("trunkline_sip_write_queue_bytes", "Bytes waiting to be written to TCP/TLS SIP peers.", [], () =>
  [...liveStacks].reduce((n, stack) => n + stack.queuedBytes, 0),
);
metrics.gauge("trunkline_sip_write_queue_peak_bytes", "The longest write queue a TCP/TLS SIP connection has had (at most limits.maxSipWriteQueueBytes).", [], () =>
  [...liveStacks].reduce((n, stack) => Math.max(n, stack.peakQueuedBytes), 0),
);
