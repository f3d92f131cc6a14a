// The real app with SIP, trunks, channels and calls composed as in production, on free ports, for
// the call interop tests. SIP listens on 127.0.0.1, UDP (`sipPort`) and TCP (`sipTcpPort`), plus TLS
// (`sipTlsPort`) with the test certificate (test/fixtures/tls/), also trusted as the TLS trunks' only
// CA, when asked for (`tls: true`). `sipHost` moves the listeners to another loopback address;
// `services` are composed after the others (so stopped before them, while SIP still listens); a
// function gets the app context and the channel registry to build them with.
import { ChannelRegistry } from "../../src/channels/registry.ts";
import { CallService } from "../../src/calls/service.ts";
import type { AppContext, ComposeServices, Service } from "../../src/app.ts";
import { SipStack } from "../../src/sip/stack.ts";
import type { TimerConfig } from "../../src/sip/transaction.ts";
import { join } from "node:path";
import { startRtpPeer, type RtpPeer } from "./rtpPeer.ts";
import { runSipp, type SippResult } from "./sipp.ts";
import { TrunkService } from "../../src/trunks/service.ts";
import { startHarness, type Harness } from "../api/harness.ts";
import { callsApi, channelsApi, trunkStatusApi } from "../../src/api/routes/services.ts";
import { until } from "./until.ts";
import { sipService, stackOptions } from "../../src/services.ts";
import { hepService } from "../../src/traces/hepService.ts";
import { sipTraceService } from "../../src/traces/service.ts";

export interface CallsApp {
  harness: Harness;
  sipPort: number;
  sipTcpPort: number;
  /** Only with `tls: true`. */
  sipTlsPort?: number;
  calls: CallService;
  registry: ChannelRegistry;
  stack: SipStack;
  close(): Promise<void>;
}

/** SIP stack (UDP on 127.0.0.1, free port), trunks, a channel registry and calls, as composed in production. */
export type ExtraServices = Service[] | ((ctx: AppContext, registry: ChannelRegistry) => Service[]);

export function composeCalls(o: { timers?: Partial<TimerConfig>; tls?: boolean; sipHost?: string; services?: ExtraServices; traceLingerMs?: number } = {}): {
  compose: ComposeServices;
  sipPort(): number;
  sipTcpPort(): number;
  sipTlsPort(): number;
  calls(): CallService;
  stack(): SipStack;
  registry: ChannelRegistry;
} {
  let stack: SipStack | undefined;
  let calls: CallService | undefined;
  const registry = new ChannelRegistry();
  const compose: ComposeServices = (ctx) => {
    const host = o.sipHost ?? "127.0.0.1";
    const listen = [
      { transport: "udp" as const, host, port: 0 },
      { transport: "tcp" as const, host, port: 0 },
      ...(o.tls ? [{ transport: "tls" as const, host, port: 0 }] : []),
    ];
    const cert = join(import.meta.dir, "../fixtures/tls/cert.pem");
    // The test certificate is also the only CA its TLS trunks trust.
    const tls = o.tls ? { tls: { certFile: cert, keyFile: join(import.meta.dir, "../fixtures/tls/key.pem"), caFile: cert } } : {};
    // As configured (strangers, limits, call methods), on loopback ports.
    stack = new SipStack({ ...stackOptions(ctx.config), listen, ...tls, ...(o.timers ? { timers: o.timers } : {}) });
    const sipStack = stack;
    const sip = sipService(sipStack, listen.length);
    const trunks = new TrunkService(ctx, sipStack);
    calls = new CallService(ctx, { stack: sipStack, trunks: trunks.manager, registry });
    const traces = sipTraceService(ctx, sipStack, o.traceLingerMs !== undefined ? { lingerMs: o.traceLingerMs } : {});
    const extra = typeof o.services === "function" ? o.services(ctx, registry) : (o.services ?? []);
    return [traces, hepService(ctx, sipStack), sip, trunks, calls, trunkStatusApi(trunks), callsApi(calls, ctx), channelsApi(registry), ...extra];
  };
  const port = (transport: "udp" | "tcp" | "tls") => stack!.boundEndpoints.find((e) => e.transport === transport)!.port;
  return { compose, sipPort: () => port("udp"), sipTcpPort: () => port("tcp"), sipTlsPort: () => port("tls"), calls: () => calls!, stack: () => stack!, registry };
}

export async function startCallsApp(
  yaml: string,
  o: { logLevel?: string; timers?: Partial<TimerConfig>; tls?: boolean; sipHost?: string; services?: ExtraServices; traceLingerMs?: number } = {},
): Promise<CallsApp> {
  const composed = composeCalls(o);
  const harness = await startHarness(yaml, composed.compose, o.logLevel ?? "warn");
  return {
    harness,
    sipPort: composed.sipPort(),
    sipTcpPort: composed.sipTcpPort(),
    ...(o.tls ? { sipTlsPort: composed.sipTlsPort() } : {}),
    calls: composed.calls(),
    registry: composed.registry,
    stack: composed.stack(),
    close: () => harness.close(),
  };
}

/** Polls GET /api/v1/calls/:id until `check` passes; returns that call. */
export async function callUntil(app: CallsApp, id: string, check: (call: any) => boolean, timeoutMs = 8000): Promise<any> {
  let res: Awaited<ReturnType<Harness["call"]>> | undefined;
  await until(
    async () => {
      res = await app.harness.call("GET", `/api/v1/calls/${id}`);
      return res.status === 200 && check(res.json);
    },
    { timeoutMs, pollMs: 25, what: () => `call ${id}: ${res?.status} ${res?.text}` },
  );
  return res!.json;
}

/** Polls the call list until a call matches; returns it. */
export async function findCall(app: Pick<CallsApp, "harness">, check: (call: any) => boolean, timeoutMs = 8000): Promise<any> {
  let res: Awaited<ReturnType<Harness["call"]>> | undefined;
  let found: any;
  await until(
    async () => {
      res = await app.harness.call("GET", "/api/v1/calls?limit=500");
      found = res.status === 200 ? (res.json.calls as any[]).find(check) : undefined;
      return found !== undefined;
    },
    { timeoutMs, pollMs: 25, what: () => `no call matched: ${res?.status} ${res?.text}` },
  );
  return found;
}

/** YAML for the test application `app1` with static routes (SIP username → channel) and extra keys. */
export function testApplicationYaml(routes: Record<string, string>, extra = ""): string {
  const lines = Object.entries(routes).map(([user, channel]) => `      - { sipUsername: "${user}", channelId: ${channel} }`);
  return `applications:
  - id: app1
    name: Test app
    sharedSecret: test-shared-secret-0123456789
    inboundRoutes:
${lines.join("\n")}
${extra}`;
}

/** Config lines for the usual interop setup: a SIPp trunk (no OPTIONS pings) and app1 routing 1000 to the channel "lobby". */
export const sippLobbyYaml = `trunks:
  - { id: sipp, domain: 127.0.0.1, optionsIntervalSec: 0 }
${testApplicationYaml({ "1000": "lobby" })}`;

/**
 * A SIPp phone calling `service` (an inbound route) with a PCMU tone of `toneHz` from its own RTP
 * endpoint; it hangs up after `holdMs`. `peer` records what the phone hears.
 */
export async function phoneCaller(app: CallsApp, o: { service: string; toneHz: number; holdMs: number; testcase?: string }): Promise<{ peer: RtpPeer; run: Promise<SippResult> }> {
  const peer = await startRtpPeer(o.toneHz, { replyToSender: true });
  const run = runSipp({
    scenario: join(import.meta.dir, "../fixtures/sipp/calls-uac-early-offer.xml"),
    remote: `127.0.0.1:${app.sipPort}`,
    service: o.service,
    keys: { rtpport: peer.port, testcase: o.testcase ?? "phone" },
    extraArgs: ["-d", String(o.holdMs)],
    timeoutSec: 20,
  });
  return { peer, run };
}
