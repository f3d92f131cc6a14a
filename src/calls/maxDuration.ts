// calls.maxDurationSec: the global value, the trunk's and the application's; the smallest one set
// wins, and 0 (or absent) sets none. Counted from the answer (call.ts starts the timer there).

/** The limit in seconds that applies, 0 when none does. */
export function effectiveMaxDurationSec(...limits: (number | undefined)[]): number {
  let smallest = 0;
  for (const limit of limits) if (limit !== undefined && limit > 0 && (smallest === 0 || limit < smallest)) smallest = limit;
  return smallest;
}

/**
 * The BYE's Reason (RFC 3326 §2): protocol SIP with cause 200, as the RFC's own example of a
 * normal end ("Call completed elsewhere"): the call succeeded and we ended it by policy; no SIP
 * error status fits, and a Q.850 cause (16, normal clearing) would not say why. The text does.
 */
export const MAX_DURATION_CAUSE = { status: 200, text: "max duration" } as const;
