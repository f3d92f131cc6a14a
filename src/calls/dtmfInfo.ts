// DTMF carried in SIP INFO bodies: `application/dtmf-relay` ("Signal=5\r\nDuration=160", the
// de-facto format of Cisco and most trunks) and `application/dtmf` (the bare digit).

export type InfoDtmf = { digit: string; durationMs?: number };

/** The digit, undefined for a malformed body, "unsupported" for another content type. */
export function parseDtmfInfo(contentType: string | undefined, body: string): InfoDtmf | undefined | "unsupported" {
  const type = (contentType ?? "").split(";")[0]!.trim().toLowerCase();
  if (type === "application/dtmf") return digitOf(body.trim());
  if (type !== "application/dtmf-relay") return "unsupported";
  const fields = new Map<string, string>();
  for (const line of body.split(/\r?\n/)) {
    const at = line.indexOf("=");
    if (at > 0) fields.set(line.slice(0, at).trim().toLowerCase(), line.slice(at + 1).trim());
  }
  const signal = fields.get("signal");
  const parsed = signal === undefined ? undefined : digitOf(signal);
  if (!parsed) return undefined;
  const duration = Number(fields.get("duration"));
  return Number.isFinite(duration) && duration > 0 ? { ...parsed, durationMs: duration } : parsed;
}

function digitOf(signal: string): InfoDtmf | undefined {
  // RFC 4733 §3.2 event codes 10 and 11 are also sent as numbers by some gateways.
  const normalised = signal === "10" ? "*" : signal === "11" ? "#" : signal.toUpperCase();
  return /^[0-9*#A-D]$/.test(normalised) ? { digit: normalised } : undefined;
}
