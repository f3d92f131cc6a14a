// Shapes shared by the call manager and its callers (admin API, client API).
import type { CallerIdClientInfo } from "../channels/callerIdTemplate.ts";

/** The client a call is placed for: caller-ID variables plus the ids the outbound webhook gets. */
export interface DialClient extends CallerIdClientInfo {
  id: string;
}

export interface DialRequest {
  applicationId: string;
  channelId: string;
  /** E.164 number or SIP URI. */
  to: string;
  client: DialClient;
  /** Extra INVITE headers (validated by the API: see headers.ts). */
  headers?: Record<string, string>;
}

export type CommandFailure = { ok: false; status: 400 | 404 | 409 | 503; code: string; message: string; field?: string };
export type CommandResult<T extends object = object> = ({ ok: true } & T) | CommandFailure;

/** The methods the call layer serves (Allow header, and the stack's allow list). */
export const CALL_METHODS = ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "UPDATE", "PRACK", "REFER", "NOTIFY"];
export const ALLOW_METHODS = CALL_METHODS.join(", ");
