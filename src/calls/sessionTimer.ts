// RFC 4028 session timers, honoured when the peer asks for them. The refresher re-INVITEs at half
// the interval; when the peer is the refresher and stays silent, the session expires (§10) and
// the call ends with a BYE. "uac"/"uas" in the refresher parameter are relative to each request.
import type { SipRequest, SipResponse } from "../sip/message.ts";

/** RFC 4028 §4: the smallest interval allowed. */
export const MIN_SE = 90;

export interface SessionTimerSettings {
  intervalSec: number;
  /** Whether we send the refreshes. */
  weRefresh: boolean;
  /** Whether the peer supports the extension (it gets `Require: timer` in our answers). */
  peerSupportsTimer: boolean;
}

function parseSessionExpires(value: string | undefined): { seconds: number; refresher?: "uac" | "uas" } | undefined {
  if (value === undefined) return undefined;
  const [delta, ...params] = value.split(";");
  const seconds = Number(delta?.trim());
  if (!Number.isInteger(seconds) || seconds <= 0) return undefined;
  const refresher = params.map((p) => p.trim().toLowerCase()).find((p) => p.startsWith("refresher="))?.slice("refresher=".length);
  return { seconds, ...(refresher === "uac" || refresher === "uas" ? { refresher } : {}) };
}

export type InboundTimerNegotiation =
  | { ok: true; settings?: SessionTimerSettings; headers: [string, string][] }
  | { ok: false; status: 422; headers: [string, string][] };

/** §9: the UAS side of an INVITE (initial): which timer, and the headers for our 2xx. */
export function negotiateInbound(invite: SipRequest, maxIntervalSec: number): InboundTimerNegotiation {
  const requested = parseSessionExpires(invite.getHeader("Session-Expires"));
  if (!requested) return { ok: true, headers: [] };
  if (requested.seconds < MIN_SE) return { ok: false, status: 422, headers: [["Min-SE", String(MIN_SE)]] };
  const peerMinSe = Number(invite.getHeader("Min-SE")?.split(";")[0]?.trim() ?? MIN_SE) || MIN_SE;
  const intervalSec = Math.max(Math.min(requested.seconds, maxIntervalSec), peerMinSe, MIN_SE);
  const peerSupportsTimer = invite.supported.includes("timer");
  // §9: without a choice from the UAC, the UAS picks; a UAC without support cannot refresh.
  const weRefresh = requested.refresher ? requested.refresher === "uas" : !peerSupportsTimer;
  const settings: SessionTimerSettings = { intervalSec, weRefresh, peerSupportsTimer };
  return { ok: true, settings, headers: answerHeaders(settings) };
}

/** §7.2: the UAC side: the 2xx to our INVITE may impose a session timer. */
export function fromInvite2xx(res: SipResponse): SessionTimerSettings | undefined {
  const granted = parseSessionExpires(res.getHeader("Session-Expires"));
  if (!granted) return undefined;
  return { intervalSec: Math.max(granted.seconds, MIN_SE), weRefresh: granted.refresher !== "uas", peerSupportsTimer: true };
}

/** Headers of our 2xx to the peer's (re-)INVITE or UPDATE: the peer is the request's UAC. */
function answerHeaders(s: SessionTimerSettings): [string, string][] {
  const headers: [string, string][] = [["Session-Expires", `${s.intervalSec};refresher=${s.weRefresh ? "uas" : "uac"}`]];
  if (s.peerSupportsTimer) headers.push(["Require", "timer"]);
  return headers;
}

export class SessionTimer {
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private settings: SessionTimerSettings,
    private readonly actions: { refresh: () => void; expire: () => void },
  ) {
    this.arm();
  }

  /** The peer refreshed with a re-INVITE/UPDATE: restart, and the headers for our 2xx. */
  refreshed(req: SipRequest): [string, string][] {
    const requested = parseSessionExpires(req.getHeader("Session-Expires"));
    if (requested) {
      this.settings = {
        ...this.settings,
        intervalSec: Math.max(requested.seconds, MIN_SE),
        ...(requested.refresher ? { weRefresh: requested.refresher === "uas" } : {}),
      };
    }
    this.arm();
    return answerHeaders(this.settings);
  }

  /** Headers of our refresh request (we are its UAC). */
  requestHeaders(): [string, string][] {
    return [
      ["Session-Expires", `${this.settings.intervalSec};refresher=${this.settings.weRefresh ? "uac" : "uas"}`],
      ["Supported", "timer"],
    ];
  }

  /** Our refresh succeeded. */
  refreshedBy(res: SipResponse): void {
    const granted = fromInvite2xx(res);
    if (granted) this.settings = { ...granted, peerSupportsTimer: this.settings.peerSupportsTimer };
    this.arm();
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  private arm(): void {
    clearTimeout(this.timer);
    const interval = this.settings.intervalSec * 1000;
    // §10: refresh at half the interval; the non-refresher gives up at interval − min(32 s, interval/3).
    this.timer = this.settings.weRefresh
      ? setTimeout(() => {
          this.actions.refresh();
          this.arm();
        }, interval / 2)
      : setTimeout(() => this.actions.expire(), interval - Math.min(32_000, interval / 3));
  }
}
