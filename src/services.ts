// The services of the real process, in start order (stopped in reverse): SIP sockets first, then
// the trunks that register through them, the call flows that use both, and the WebRTC clients that
// dial through the calls. See the Service interface in src/app.ts.
import { callsApi, trunkStatusApi, webrtcApi } from "./api/routes/services.ts";
import type { ComposeServices, Service } from "./app.ts";
import { CALL_STACK_OPTIONS, CallService } from "./calls/service.ts";
import { ChannelRegistry } from "./channels/registry.ts";
import { listenPort, type Config } from "./config/config.ts";
import { SipStack } from "./sip/stack.ts";
import { TrunkService } from "./trunks/service.ts";
import { WebRtcService } from "./webrtc/service.ts";

export const composeServices: ComposeServices = (ctx) => {
  const stack = new SipStack(stackOptions(ctx.config));
  const trunks = new TrunkService(ctx, stack);
  const registry = new ChannelRegistry();
  const calls = new CallService(ctx, { stack, trunks: trunks.manager, registry });
  const webrtc = new WebRtcService(ctx, registry);
  return [
    sipService(stack, ctx.config.sip.listen.length),
    trunks,
    calls,
    webrtc,
    trunkStatusApi(trunks),
    callsApi(calls, ctx),
    webrtcApi(webrtc, ctx, () => calls.manager.clientControl()),
  ];
};

function stackOptions(config: Config): ConstructorParameters<typeof SipStack>[0] {
  return {
    ...CALL_STACK_OPTIONS,
    listen: config.sip.listen.map((l) => ({ transport: l.transport, host: l.host, port: listenPort(l) })),
    ...(config.sip.advertised ? { advertised: config.sip.advertised } : {}),
    ...(config.sip.tls ? { tls: tlsOptions(config.sip.tls) } : {}),
    userAgent: config.sip.userAgent,
    maxMessageSize: config.limits.maxSipMessageBytes,
    maxConnections: config.limits.maxSipConnections,
  };
}

function tlsOptions(tls: NonNullable<Config["sip"]["tls"]>): NonNullable<ConstructorParameters<typeof SipStack>[0]["tls"]> {
  return {
    ...(tls.certFile && tls.keyFile ? { certFile: tls.certFile, keyFile: tls.keyFile } : {}),
    ...(tls.caFile ? { caFile: tls.caFile } : {}),
  };
}

/** Binds the SIP sockets; ready once every configured listener is bound. */
function sipService(stack: SipStack, listeners: number): Service {
  return {
    name: "sip",
    start: () => stack.start(),
    stop: () => stack.stop(),
    ready: () => {
      const bound = stack.boundEndpoints.length;
      return bound >= listeners ? { ok: true } : { ok: false, detail: `${bound} of ${listeners} SIP listeners bound` };
    },
  };
}
