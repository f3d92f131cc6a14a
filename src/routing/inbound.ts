// Inbound routing: which application and channel an inbound INVITE lands in.
// Order (spec reading 3): the static map on the user part of the To URI, then the inbound webhook
// when one is configured, else no route (404). A webhook that fails, times out or answers nonsense
// rejects the call with a 5xx whose reason phrase says which — a call never waits past the timeout.
import { createLogger, type Logger } from "../log.ts";
import { describeFailure, objectOf, postWebhook, type WebhookFailure } from "./webhooks.ts";

export interface InboundWebhookSettings {
  inboundUrl?: string;
  inboundCancelUrl?: string;
  timeoutMs: number;
  secret?: string;
}

export interface InboundRouteSource {
  /** The static map (application-level): SIP username → channel. */
  findStaticRoute(sipUsername: string): { applicationId: string; channelId: string } | undefined;
  applicationExists(applicationId: string): boolean;
}

export interface InboundInvite {
  /** User part of the To URI. */
  toUser: string | undefined;
  /** The From URI as text: the default userId. */
  fromUri: string;
  /** The INVITE's headers, name → value (repeated headers joined with ", "). */
  headers: Record<string, string>;
  /** The SDP offer, "" for a delayed-offer INVITE. */
  sdp: string;
}

export interface InboundRoute {
  applicationId: string;
  channelId: string;
  userId: string;
  source: "static" | "webhook";
}

export type InboundRouting =
  | { ok: true; route: InboundRoute }
  /** `status`/`reason` go into the SIP response; `detail` into the log. */
  | { ok: false; status: number; reason: string; detail: string };

const log = createLogger("routing.inbound");

export async function routeInbound(
  invite: InboundInvite,
  routes: InboundRouteSource,
  settings: InboundWebhookSettings,
  signal?: AbortSignal,
): Promise<InboundRouting> {
  const staticRoute = invite.toUser !== undefined ? routes.findStaticRoute(invite.toUser) : undefined;
  if (staticRoute) {
    return { ok: true, route: { ...staticRoute, userId: invite.fromUri, source: "static" } };
  }
  if (!settings.inboundUrl) {
    return { ok: false, status: 404, reason: "Not Found", detail: `no static route for '${invite.toUser ?? ""}' and no inbound webhook` };
  }
  const result = await postWebhook(
    settings.inboundUrl,
    { headers: invite.headers, sdp: invite.sdp },
    { webhook: "inbound", secret: settings.secret, timeoutMs: settings.timeoutMs, signal },
    parseInboundAnswer,
  );
  if (!result.ok) return webhookFailure(result);
  const { applicationId, channelId, userId } = result.value;
  if (!routes.applicationExists(applicationId)) {
    return { ok: false, status: 404, reason: "Unknown Application", detail: `inbound webhook named unknown application '${applicationId}'` };
  }
  return { ok: true, route: { applicationId, channelId, userId: userId ?? invite.fromUri, source: "webhook" } };
}

function webhookFailure(failure: WebhookFailure): InboundRouting {
  const what = describeFailure(failure);
  // 500 for an answer we cannot use (the receiver's bug); 503 when it is down or slow (try later).
  const status = failure.kind === "malformed" ? 500 : failure.kind === "aborted" ? 487 : 503;
  const reason = failure.kind === "aborted" ? "Request Terminated" : `Routing Webhook ${capitalise(what)}`;
  return { ok: false, status, reason, detail: `inbound webhook ${what}: ${failure.message}` };
}

function capitalise(s: string): string {
  return s.replace(/(^|\s)\S/g, (c) => c.toUpperCase());
}

function parseInboundAnswer(json: unknown): { value: { applicationId: string; channelId: string; userId?: string } } | { invalid: string } {
  const o = objectOf(json);
  if (!o) return { invalid: "answer is not a JSON object" };
  const { applicationId, channelId, userId } = o;
  if (typeof applicationId !== "string" || applicationId === "") return { invalid: "applicationId missing or not a string" };
  if (typeof channelId !== "string" || channelId === "") return { invalid: "channelId missing or not a string" };
  if (userId !== undefined && userId !== null && typeof userId !== "string") return { invalid: "userId is not a string" };
  return { value: { applicationId, channelId, userId: typeof userId === "string" && userId !== "" ? userId : undefined } };
}

/** Tells the inbound-cancel webhook (if any) that a caller hung up before the answer. Never throws. `callLog`: the call's logger. */
export async function notifyInboundCancel(headers: Record<string, string>, settings: InboundWebhookSettings, callLog?: Logger): Promise<void> {
  if (!settings.inboundCancelUrl) return;
  const result = await postWebhook(settings.inboundCancelUrl, { headers }, { webhook: "inbound_cancel", secret: settings.secret, timeoutMs: settings.timeoutMs });
  if (!result.ok) (callLog ? callLog.child({}, "routing.inbound") : log).warn("inbound cancel webhook failed", { reason: describeFailure(result), detail: result.message });
}
