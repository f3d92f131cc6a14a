// Outbound trunk choice (spec reading 4): the outbound webhook, when configured, picks `sipTrunkId`
// among the available trunks it is offered; without one the first available trunk that can
// terminate wins. An answer naming an unknown or unusable trunk fails the dial with that reason.
import { describeFailure, objectOf, postWebhook } from "./webhooks.ts";

export interface OutboundWebhookSettings {
  outboundUrl?: string;
  timeoutMs: number;
  secret?: string;
}

/** A trunk as the chooser sees it, in configuration order. */
export interface TrunkChoiceCandidate {
  id: string;
  domain: string;
  username: string;
  authId?: string;
  /** Can terminate, registered/reachable as required, and under its call limit (trunks issue). */
  available: boolean;
}

export interface OutboundOrigin {
  applicationId: string;
  channelId: string;
  clientId: string;
  userId?: string;
}

export type TrunkChoiceFailure =
  | "no_trunk"
  | "unknown_trunk"
  | "trunk_unavailable"
  | "webhook_timeout"
  | "webhook_error"
  | "webhook_malformed";

export type TrunkChoice =
  | { ok: true; trunkId: string; source: "webhook" | "first_available" }
  | { ok: false; reason: TrunkChoiceFailure; message: string };

export async function chooseTrunk(
  origin: OutboundOrigin,
  trunks: TrunkChoiceCandidate[],
  settings: OutboundWebhookSettings,
  signal?: AbortSignal,
): Promise<TrunkChoice> {
  const available = trunks.filter((t) => t.available);
  if (available.length === 0) return { ok: false, reason: "no_trunk", message: "no available trunk can terminate the call" };
  if (!settings.outboundUrl) {
    return { ok: true, trunkId: available[0]!.id, source: "first_available" };
  }
  const body = {
    applicationId: origin.applicationId,
    channelId: origin.channelId,
    clientId: origin.clientId,
    userId: origin.userId ?? null,
    sipTrunks: available.map((t) => ({ id: t.id, authId: t.authId ?? null, username: t.username, domain: t.domain })),
  };
  const result = await postWebhook(settings.outboundUrl, body, { webhook: "outbound", secret: settings.secret, timeoutMs: settings.timeoutMs, signal }, parseOutboundAnswer);
  if (!result.ok) {
    const reason = result.kind === "timeout" ? "webhook_timeout" : result.kind === "malformed" ? "webhook_malformed" : "webhook_error";
    return { ok: false, reason, message: `outbound webhook ${describeFailure(result)}: ${result.message}` };
  }
  const chosen = trunks.find((t) => t.id === result.value.sipTrunkId);
  if (!chosen) return { ok: false, reason: "unknown_trunk", message: `outbound webhook chose unknown trunk '${result.value.sipTrunkId}'` };
  if (!chosen.available) {
    return { ok: false, reason: "trunk_unavailable", message: `outbound webhook chose trunk '${chosen.id}', which is not available` };
  }
  return { ok: true, trunkId: chosen.id, source: "webhook" };
}

function parseOutboundAnswer(json: unknown): { value: { sipTrunkId: string } } | { invalid: string } {
  const sipTrunkId = objectOf(json)?.sipTrunkId;
  if (typeof sipTrunkId !== "string" || sipTrunkId === "") return { invalid: "sipTrunkId missing or not a string" };
  return { value: { sipTrunkId } };
}
