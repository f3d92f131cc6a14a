// The SIP trace service: records every call's SIP messages (sipTrace.ts), prunes old traces
// (records.sipTraceDays) and serves GET /api/v1/calls/:id/sip as JSON, a text ladder or a pcap.
// Composed before the SIP stack, so it stops after the calls ended and writes what is still in memory.
import type { AppContext, Service } from "../app.ts";
import { ApiError, validationError } from "../api/errors.ts";
import type { ApiRouter } from "../api/router.ts";
import { s, validate } from "../config/schema.ts";
import type { SipStack } from "../sip/stack.ts";
import { CallRecordRetention } from "../store/retention.ts";
import { traceText, tracePcap, traceView } from "./formats.ts";
import { SipTraceRecorder } from "./sipTrace.ts";

const traceQuery = s.object({ format: s.enum(["json", "text", "pcap"]).optional() });

const endpoint = s.string();
const traceViewSchema = s
  .object({
    callId: s.string(),
    bytes: s.integer(),
    droppedMessages: s.integer().describe("Messages not kept: the trace reached records.sipTraceMaxBytes."),
    truncated: s.boolean(),
    messages: s.array(
      s.object({
        time: s.string(),
        direction: s.enum(["sent", "received"]),
        transport: s.enum(["udp", "tcp", "tls"]),
        source: endpoint,
        destination: endpoint,
        summary: s.string().describe("Request line or status line."),
        retransmission: s.boolean(),
        message: s.string().describe("The whole message; credentials and SDES keys masked."),
      }),
    ),
  })
  .describe("SIP trace of a call");

export function sipTraceService(ctx: AppContext, stack: SipStack, o: { lingerMs?: number } = {}): Service & { recorder: SipTraceRecorder } {
  const recorder = new SipTraceRecorder({
    store: ctx.store.sipTraces,
    maxBytes: () => ctx.config.records.sipTraceMaxBytes,
    ...(o.lingerMs !== undefined ? { lingerMs: o.lingerMs } : {}),
  });
  const retention = new CallRecordRetention({ records: ctx.store.sipTraces, kind: "SIP traces", retentionDays: () => ctx.config.records.sipTraceDays });
  return {
    name: "traces",
    recorder,
    start() {
      recorder.attach(stack, ctx.store.calls);
      retention.start();
    },
    async stop() {
      await retention.stop();
      recorder.stop();
    },
    routes(api: ApiRouter) {
      api.route(
        {
          method: "get",
          path: "/calls/:id/sip",
          summary: "The call's SIP messages (?format=json|text|pcap): requests, responses and retransmissions, both directions",
          tag: "calls",
          response: { status: 200, description: "The trace (text/plain ladder or application/vnd.tcpdump.pcap with ?format=)", schema: traceViewSchema },
          errors: [404],
        },
        async (c) => {
          const query = validate(traceQuery, c.req.query());
          if (!query.ok) throw validationError(query.issues);
          const id = c.req.param("id") ?? "";
          const trace = await recorder.get(id);
          if (!trace) {
            const known = await ctx.store.calls.get(id);
            throw new ApiError(404, "not_found", known ? `call ${JSON.stringify(id)} has no SIP trace (none recorded, or older than records.sipTraceDays)` : `call ${JSON.stringify(id)} not found`);
          }
          switch (query.value.format ?? "json") {
            case "text":
              return c.text(traceText(trace));
            case "pcap":
              return c.body(tracePcap(trace), 200, {
                "content-type": "application/vnd.tcpdump.pcap",
                "content-disposition": `attachment; filename="${id.replace(/[^\w.-]/g, "_")}.pcap"`,
              });
            default:
              return c.json(traceView(trace));
          }
        },
      );
    },
  };
}
