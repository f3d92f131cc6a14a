// The whole configuration file: one schema, the source of the `Config` type.
// Every key is documented in config.example.yaml.
import { readFileSync } from "node:fs";
import {
  applicationSchema,
  maxDurationSchema,
  cidrSchema,
  callerIdSchema,
  channelIdSchema,
  inboundRouteSchema,
  transportSchema,
  trunkSchema,
  webhooksSchema,
} from "./entities.ts";
import { frontProblem } from "../cluster/front.ts";
import { CALL_RECORD_WINDOW_MS } from "../store/callRecordWriter.ts";
import { s, type Infer } from "./schema.ts";

const host = s.string({ minLength: 1, maxLength: 253 });

const listenSchema = s.object({
  transport: transportSchema,
  host: host.default("0.0.0.0"),
  port: s.integer({ min: 0, max: 65535 }).optional().describe("Default 5060 (udp/tcp) or 5061 (tls); 0 picks a free port."),
});

const sipSchema = s
  .object({
    listen: s
      .array(listenSchema, { minItems: 1 })
      .default([
        { transport: "udp", host: "0.0.0.0" },
        { transport: "tcp", host: "0.0.0.0" },
      ]),
    advertised: s
      .object({ host, port: s.integer({ min: 1, max: 65535 }).optional() })
      .optional()
      .describe("External address put in Via/Contact/SDP when behind NAT."),
    tls: s
      .object({
        certFile: s.string({ minLength: 1 }).optional().describe("PEM certificate of tls listeners (with keyFile)."),
        keyFile: s.string({ minLength: 1 }).optional().describe("PEM private key of tls listeners (with certFile)."),
        caFile: s.string({ minLength: 1 }).optional().describe("PEM bundle TLS clients (trunks) trust instead of the system store."),
      })
      .optional(),
    userAgent: s
      .string({ minLength: 1, maxLength: 128 })
      .default("Trunkline")
      .describe("User-Agent / Server header; no version unless you write one here."),
    strangers: s
      .enum(["drop", "reject"])
      .default("drop")
      .describe("Requests from sources that belong to no trunk: drop (no answer at all) or reject (stateless 403)."),
    trustedFronts: s
      .array(cidrSchema)
      .default([])
      .describe(
        "Addresses/CIDRs of the cluster's SIP front (Kamailio): requests from them are judged by the original sender named in their X-Trunkline-Source header; the header is ignored from anyone else.",
      ),
  })
  .refine((sip) => {
    if (sip.tls && (sip.tls.certFile === undefined) !== (sip.tls.keyFile === undefined)) {
      return { at: ["tls", sip.tls.certFile === undefined ? "keyFile" : "certFile"], message: "certFile and keyFile go together" };
    }
    const tls = sip.listen.findIndex((l) => l.transport === "tls");
    return tls >= 0 && !sip.tls?.certFile ? { at: ["listen", tls, "transport"], message: "a tls listener needs sip.tls.certFile and sip.tls.keyFile" } : undefined;
  });

const codecName = s.enum(["opus", "G722", "PCMU", "PCMA"]);

const rtpSchema = s
  .object({
    portMin: s.integer({ min: 1024, max: 65534 }).default(10000),
    portMax: s.integer({ min: 1025, max: 65535 }).default(20000),
    mediaTimeoutSec: s.integer({ min: 0, max: 3600 }).default(30),
    codecs: s.array(codecName, { minItems: 1, uniqueBy: (c) => c, uniqueLabel: "codec" }).default(["opus", "G722", "PCMU", "PCMA"]),
    dtmfDurationMs: s.integer({ min: 40, max: 2000 }).default(160),
    ioWorker: s.boolean().optional().describe("Removed: RTP sockets now live in the media workers (media.workers)."),
    strictSource: s
      .boolean()
      .default(false)
      .describe("Accept a call's RTP/RTCP only from the exact address and port its SDP names; false also accepts other ports of that address (NAT)."),
  })
  .refine((rtp) => {
    if (rtp.ioWorker !== undefined) {
      return { at: ["ioWorker"], message: "was removed: the media workers (media.workers) own the RTP sockets now; delete this line" };
    }
    return rtp.portMax <= rtp.portMin ? { at: ["portMax"], message: `must be above portMin (${rtp.portMin})` } : undefined;
  });

/** The problem with a PEM file named in the config, read when the config is loaded; undefined when fine. */
function pemFileProblem(path: string, kind: "CERTIFICATE" | "PRIVATE KEY"): string | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    return `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
  }
  return new RegExp(`-----BEGIN [A-Z ]*${kind}-----`).test(text) ? undefined : `${path} holds no PEM ${kind.toLowerCase()}`;
}

const httpSchema = s.object({
  host: host.default("0.0.0.0"),
  port: s.integer({ min: 0, max: 65535 }).default(8080).describe("0 picks a free port."),
  tls: s
    .object({
      certFile: s.string({ minLength: 1 }).refine((path) => pemFileProblem(path, "CERTIFICATE")).describe("PEM certificate (chain) of the HTTPS listener."),
      keyFile: s.string({ minLength: 1 }).refine((path) => pemFileProblem(path, "PRIVATE KEY")).describe("PEM private key of the HTTPS listener."),
    })
    .optional()
    .describe("Serve HTTPS instead of HTTP on http.host:http.port."),
  authFailures: s.defaulted(
    s.object({
      burst: s.integer({ min: 1, max: 1000 }).default(10).describe("Failed authentications one address may make back to back before it gets 429."),
      perMinute: s.integer({ min: 1, max: 6000 }).default(10).describe("Further failed authentications allowed per minute once the burst is spent."),
      maxAddresses: s.integer({ min: 100, max: 10_000_000 }).default(10_000).describe("Addresses tracked at most; the one quiet the longest is forgotten first."),
    }),
  ),
});

const databaseSchema = s.object({
  path: s
    .string({ minLength: 1 })
    .default("data/trunkline.db")
    .describe("SQLite file of the whole store; unused with `url`."),
  url: s
    .string({ pattern: /^postgres(ql)?:\/\/\S+$/, patternHint: "a postgres://user:password@host:port/database URL" })
    .optional()
    .describe("PostgreSQL shared by several nodes (configuration, call records, node heartbeats), instead of the SQLite file."),
  callRecordWindowMs: s
    .integer({ min: 1, max: 10_000 })
    .default(CALL_RECORD_WINDOW_MS)
    .describe("Call record changes are committed together, one transaction per this many ms; what tells the outside world a call ended waits for its commit."),
});

const nodeIdSchema = s.string({ minLength: 1, maxLength: 64, pattern: /^[A-Za-z0-9._-]+$/, patternHint: "letters, digits, '.', '_' or '-'" });

const clusterSchema = s
  .object({
    nodeId: nodeIdSchema
      .optional()
      .describe("This node's name in the cluster, unique per node sharing a database (default: the host name, or \"single\")."),
    sipAddress: s
      .string({ minLength: 1 })
      .optional()
      .describe("This node's SIP address as other nodes and the front reach it, shown by GET /api/v1/cluster (default: sip.advertised, else the first listener)."),
    httpUrl: s
      .string({ minLength: 1 })
      .optional()
      .describe("This node's HTTP base URL as other nodes reach it, shown by GET /api/v1/cluster (default: the URL the HTTP server is bound to)."),
    front: s
      .string({ minLength: 1 })
      .refine(frontProblem)
      .optional()
      .describe(
        "The cluster's SIP front (Kamailio) as sip:IP[:PORT]: this node's out-of-dialog requests over UDP/TCP (calls, REGISTER, OPTIONS) leave through it (a Route header with lr), and its registering trunks register once per cluster with a Contact at it.",
      ),
    heartbeatMs: s.integer({ min: 50, max: 60_000 }).default(2000).describe("How often this node writes its heartbeat row (load included)."),
    deadAfterMs: s
      .integer({ min: 100, max: 600_000 })
      .default(6000)
      .describe("A node whose last heartbeat is older than this, by the database's clock, is dead (and its channels' leases may be taken over)."),
    secret: s
      .string({ minLength: 16, maxLength: 512 })
      .optional()
      .writeOnly()
      .describe("Shared by every node: signs the routing decision a node passes to a channel's home with its 302, so the home does not ask the inbound webhook again (without it the home routes the call again)."),
    drainGraceSec: s
      .integer({ min: 0, max: 86_400 })
      .default(30)
      .describe(
        "On SIGTERM the node refuses new calls (503) at once, lets live calls go on for at most this long, then ends those still up with a BYE and exits.",
      ),
  })
  .refine((cluster) => (cluster.deadAfterMs <= cluster.heartbeatMs ? { at: ["deadAfterMs"], message: `must be above heartbeatMs (${cluster.heartbeatMs})` } : undefined));

const applicationConfigSchema = applicationSchema.extend({
  inboundRoutes: s
    .array(inboundRouteSchema, { uniqueBy: (r) => r.sipUsername, uniqueLabel: "sipUsername" })
    .default([]),
  channels: s.record(channelIdSchema, s.object({ callerId: callerIdSchema.optional() })).default({}),
});

const callsSchema = s.object({
  ringTimeoutSec: s.integer({ min: 1, max: 600 }).default(60),
  sendRinging: s.boolean().default(true),
  maxConcurrentCalls: s.integer({ min: 1 }).default(200),
  sessionTimerSec: s.integer({ min: 90, max: 86400 }).default(1800),
  maxRedirects: s
    .integer({ min: 0, max: 10 })
    .default(3)
    .describe("The most 301/302 redirects one outbound call follows (each trunk's `redirects` says where to); beyond it the call ends as too_many_redirects."),
  headersToAttributes: s
    .record(
      s.string({ pattern: /^[A-Za-z0-9\-.!%*_+`'~]{1,64}$/, patternHint: "a SIP header name" }),
      s.string({ pattern: /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/, patternHint: "an attribute name: a letter, then letters, digits, _ . -" }),
    )
    .refine((m) => (Object.keys(m).length > 32 ? "must map at most 32 headers" : undefined))
    .default({})
    .describe(
      "Inbound INVITE header name → attribute name, e.g. { X-Customer-Id: customerId }: the header's value becomes an attribute of the caller's " +
        "participant (participants list, participant events), of its call events and of its call record (GET /calls/:id).",
    ),
  maxDurationSec: maxDurationSchema
    .default(0)
    .describe("Longest a call may last, counted from its answer; then it ends with BYE (Reason cause 200). 0: unlimited. A trunk's or application's own value wins when smaller."),
  ringback: s
    .defaulted(s.object({
      frequencies: s.array(s.integer({ min: 100, max: 4000 }), { minItems: 1, maxItems: 2 }).default([440, 480]).describe("Hz summed into the tone."),
      onMs: s.integer({ min: 100, max: 10000 }).default(2000).describe("Tone on, per cadence cycle."),
      offMs: s.integer({ min: 0, max: 10000 }).default(4000).describe("Silence, per cadence cycle."),
    }))
    .describe("The ringback a WebRTC client that dials hears while the far end rings without early media (default: North American, 440+480 Hz, 2 s on, 4 s off)."),
});

const recordsSchema = s.object({
  retentionDays: s
    .integer({ min: 0, max: 36500 })
    .default(90)
    .describe("Call records are deleted this many days after their call ended (checked at start and hourly); 0 keeps them forever."),
  sipTraceDays: s
    .integer({ min: 0, max: 36500 })
    .default(7)
    .describe("SIP traces of calls (GET /api/v1/calls/:id/sip) are deleted this many days after their call ended; 0 keeps them forever."),
  sipTraceMaxBytes: s
    .integer({ min: 0, max: 16 * 1024 * 1024 })
    .default(256 * 1024)
    .describe("Most bytes of SIP messages kept per call; later messages are counted and the trace is marked truncated. 0 keeps no traces."),
});

/** host:port with an IPv4 literal, a bracketed IPv6 literal or a name: where HEP packets go. */
const hepAddress = s
  .string({ minLength: 3, maxLength: 300 })
  .refine((value) => (parseHostPort(value) ? undefined : 'must be host:port (e.g. "127.0.0.1:9060" or "[::1]:9060")'));

const hepSchema = s.object({
  address: hepAddress.describe("The capture server (Homer's heplify-server, sngrep -L) as host:port, over UDP."),
  captureId: s.integer({ min: 0, max: 0xffffffff }).default(2001).describe("HEP capture agent id (chunk 0x000c)."),
  password: s.string({ minLength: 1, maxLength: 256 }).optional().describe("HEP authentication key (chunk 0x000e), if the server wants one."),
});

/** Splits "host:port" / "[v6]:port"; undefined when malformed. */
export function parseHostPort(value: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(value);
  const port = Number(match?.[3]);
  if (!match || port < 1 || port > 65535) return undefined;
  return { host: (match[1] ?? match[2])!, port };
}

const recordingsSchema = s.object({
  dir: s
    .string({ minLength: 1 })
    .default("data/recordings")
    .describe("Directory of recording files (created when missing), one file per recording named after its id."),
  retentionDays: s
    .integer({ min: 0, max: 36500 })
    .default(90)
    .describe("Recordings (file and metadata) are deleted this many days after they stopped (checked at start and hourly); 0 keeps them forever."),
});

const webrtcSchema = s.object({
  publicAddress: s.string({ minLength: 1 }).optional().describe("Address announced in ICE candidates behind NAT."),
  iceServers: s
    .array(
      s.object({
        urls: s.array(s.string({ minLength: 1 }), { minItems: 1 }),
        username: s.string().optional(),
        credential: s.string().optional().writeOnly(),
      }),
    )
    .default([]),
  tokenTtlSec: s.integer({ min: 60, max: 604800 }).default(3600),
  dialRole: s.string({ minLength: 1 }).default("dial"),
  maxEventStreamsPerChannel: s.integer({ min: 1, max: 100_000 }).default(200).describe("Client event WebSockets one channel may have at once; more are closed with 4429."),
  portMin: s.integer({ min: 1024, max: 65534 }).optional().describe("Lowest UDP port of WebRTC ICE candidates (with portMax)."),
  portMax: s.integer({ min: 1025, max: 65535 }).optional().describe("Highest UDP port of WebRTC ICE candidates (with portMin)."),
}).refine((webrtc) => {
  if ((webrtc.portMin === undefined) !== (webrtc.portMax === undefined)) {
    return { at: [webrtc.portMin === undefined ? "portMax" : "portMin"], message: "portMin and portMax go together" };
  }
  if (webrtc.portMin !== undefined && webrtc.portMax !== undefined && webrtc.portMax <= webrtc.portMin) {
    return { at: ["portMax"], message: `must be above portMin (${webrtc.portMin})` };
  }
  return undefined;
});

const mediaSchema = s.object({
  workers: s
    .integer({ min: 1, max: 256 })
    .optional()
    .describe("Media worker threads; each runs whole channels (RTP sockets, jitter buffers, codecs, mixer). Default: CPU cores − 1, at least 1."),
  maxSpeakers: s
    .integer({ min: 0, max: 1000 })
    .default(3)
    .describe("Most talkers mixed at once in a channel, the loudest (with hysteresis); everyone else hears one shared mix of them. 0 mixes every talker."),
  opusComplexity: s
    .integer({ min: 0, max: 10 })
    .default(5)
    .describe("Opus encoder complexity, 0 (cheapest) to 10; 5 costs about 60 % of 10's CPU on speech for no measurable loss at 32 kbit/s."),
  opusApplication: s
    .enum(["lowdelay", "voip"])
    .default("lowdelay")
    .describe(
      "What the Opus encoders send: lowdelay (CELT only at 40 kbit/s: about a third of voip's CPU per encode, 4 ms less delay) or voip (SILK/hybrid at 32 kbit/s, as before the seventh session).",
    ),
  relayPairs: s
    .boolean()
    .default(true)
    .describe("Two phone legs alone in a channel with the same G.711 codec hear each other's RTP relayed as it arrives instead of mixed; a third participant, a recording or a mute brings the mixer back."),
});

const limitsSchema = s.object({
  maxSipMessageBytes: s.integer({ min: 1024, max: 65535 }).default(65535),
  maxSipConnections: s.integer({ min: 1 }).default(1024),
  maxSipConnectionsPerAddress: s.integer({ min: 1 }).default(16).describe("Inbound TCP/TLS SIP connections from one address."),
  sipHandshakeTimeoutMs: s
    .integer({ min: 100, max: 60000 })
    .default(5000)
    .describe("An inbound TCP/TLS connection must finish its TLS handshake and send a whole first message within this; later messages too."),
  maxSipWriteQueueBytes: s
    .integer({ min: 4096 })
    .default(1048576)
    .describe("Bytes queued for a TCP/TLS peer that does not read, beyond which its connection is closed."),
  maxSipMessagesPerSecond: s
    .integer({ min: 0 })
    .default(20)
    .describe("SIP messages per second from one address that belongs to no trunk (responses; requests under sip.strangers: reject); 0 = unlimited."),
  maxSipTrunkMessagesPerSecond: s
    .integer({ min: 0 })
    .default(5000)
    .describe("SIP messages per second over UDP from one trunk address; 0 = unlimited."),
  maxSipTrackedSources: s
    .integer({ min: 16 })
    .default(10000)
    .describe("Source addresses whose message rate is tracked at one time."),
  maxSipTransactions: s
    .integer({ min: 16 })
    .default(20000)
    .describe("Server transactions alive at once; requests beyond get a stateless 503."),
  maxUnansweredInvites: s
    .integer({ min: 0 })
    .default(200)
    .describe("Overload: new INVITEs get a stateless 503 with Retry-After while this many INVITEs wait for the node's first answer beyond 100 Trying; 0 = no limit."),
  maxEventLoopLagMs: s
    .integer({ min: 0, max: 60000 })
    .default(50)
    .describe("Overload: new INVITEs get a stateless 503 with Retry-After while the event loop runs this many ms late; 0 = not measured."),
  overloadRetryAfterSec: s
    .integer({ min: 1, max: 3600 })
    .default(1)
    .describe("Retry-After (seconds) of the overload 503."),
  maxHttpBodyBytes: s.integer({ min: 1024 }).default(1048576),
  maxParticipantsPerChannel: s.integer({ min: 2 }).default(50),
  shutdownGraceSec: s.integer({ min: 0, max: 600 }).default(15),
});

export const logLevelSchema = s.enum(["debug", "info", "warn", "error"]);

export const configSchema = s
  .object({
    sip: s.defaulted(sipSchema),
    rtp: s.defaulted(rtpSchema),
    media: s.defaulted(mediaSchema),
    http: s.defaulted(httpSchema),
    adminToken: s.string({ minLength: 16, maxLength: 512 }).optional().writeOnly(),
    database: s.defaulted(databaseSchema),
    cluster: s.defaulted(clusterSchema),
    logLevel: logLevelSchema.default("info"),
    trunks: s.array(trunkSchema, { uniqueBy: (t) => t.id, uniqueLabel: "trunk id" }).default([]),
    applications: s.array(applicationConfigSchema, { uniqueBy: (a) => a.id, uniqueLabel: "application id" }).default([]),
    webhooks: webhooksSchema.optional(),
    calls: s.defaulted(callsSchema),
    records: s.defaulted(recordsSchema),
    hep: hepSchema.optional().describe("Mirror every SIP message and RTCP report as HEP v3 to a capture server (Homer)."),
    recordings: s.defaulted(recordingsSchema),
    webrtc: s.defaulted(webrtcSchema),
    limits: s.defaulted(limitsSchema),
  })
  .refine((config) => {
    const owners = new Map<string, string>();
    for (const [a, app] of config.applications.entries()) {
      for (const [r, route] of app.inboundRoutes.entries()) {
        const other = owners.get(route.sipUsername);
        if (other !== undefined && other !== app.id) {
          return {
            at: ["applications", a, "inboundRoutes", r, "sipUsername"],
            message: `"${route.sipUsername}" is already routed by application "${other}"`,
          };
        }
        owners.set(route.sipUsername, app.id);
      }
    }
    return undefined;
  });

export type Config = Infer<typeof configSchema>;
export type ApplicationConfig = Config["applications"][number];
export type SipListen = Config["sip"]["listen"][number];

/** Default ports per RFC 3261 §19.1.2. */
export function listenPort(listen: SipListen): number {
  return listen.port ?? (listen.transport === "tls" ? 5061 : 5060);
}
