// Which tone a dialling client gets, from the call events alone: ringback while ringing without
// early media (stopped by the first RTP or the answer), busy for 486/600, congestion for other
// failures, nothing when the call was hung up or answered. Other calls and inbound calls get none.
import { afterEach, describe, expect, test } from "bun:test";
import { CallProgressTones } from "../../src/calls/progressTones.ts";
import { emitEvent, type CallEventBase } from "../../src/events.ts";
import { BUSY_TONE, CONGESTION_TONE, RINGBACK_TONE, type ToneRequest } from "../../src/media/tones.ts";

const played: { clientId: string; tone: ToneRequest | undefined }[] = [];
const media = new Set<string>();
const tones = new CallProgressTones({
  sink: { playTone: (_applicationId, clientId, tone) => (played.push({ clientId, tone }), true) },
  receivingMedia: (callId) => media.has(callId),
  ringback: () => RINGBACK_TONE,
});
tones.start();
afterEach(() => {
  played.length = 0;
  media.clear();
});

let ids = 0;
const call = (o: Partial<CallEventBase> = {}): CallEventBase => ({ callId: `c${++ids}`, direction: "outbound", applicationId: "app", clientId: "web", ...o });
const last = () => played.at(-1);

describe("call-progress tones", () => {
  test("ringback while ringing, until early media flows (its stop condition), and stopped by the answer", () => {
    const c = call();
    emitEvent("call.ringing", { ...c, sipStatus: 180 });
    const ringback = last()?.tone;
    expect(ringback?.cadence).toBe(RINGBACK_TONE);
    expect(ringback?.durationMs).toBeUndefined();
    expect(ringback?.stopWhen?.()).toBe(false);
    media.add(c.callId);
    expect(ringback?.stopWhen?.()).toBe(true);
    emitEvent("call.answered", { ...c, codec: "PCMU" });
    expect(last()).toEqual({ clientId: "web", tone: undefined });
    emitEvent("call.ended", { ...c, reason: "remote_bye" });
    expect(last()?.tone).toBeUndefined();
  });

  test("no ringback when early media already flows at the 183", () => {
    const c = call();
    media.add(c.callId);
    emitEvent("call.ringing", { ...c, sipStatus: 183 });
    expect(played).toEqual([]);
  });

  test("busy for 486 and 600, congestion for other failures, for 3 s", () => {
    for (const [sipStatus, reason, cadence] of [
      [486, "rejected", BUSY_TONE],
      [600, "rejected", BUSY_TONE],
      [503, "rejected", CONGESTION_TONE],
      [undefined, "timeout", CONGESTION_TONE],
      [undefined, "no_trunk", CONGESTION_TONE],
    ] as const) {
      emitEvent("call.ended", { ...call(), reason, ...(sipStatus ? { sipStatus } : {}) });
      const tone = last()?.tone;
      expect(tone?.cadence).toBe(cadence);
      expect(tone?.durationMs).toBe(3000);
      expect(tone?.stopWhen).toBeUndefined();
    }
  });

  test("no failure tone after our own hang-up or cancel, for inbound calls or calls without a client", () => {
    emitEvent("call.ended", { ...call(), reason: "cancelled", sipStatus: 487 });
    emitEvent("call.ended", { ...call(), reason: "local_hangup" });
    expect(played.map((p) => p.tone)).toEqual([undefined, undefined]);
    played.length = 0;
    emitEvent("call.ended", { ...call({ direction: "inbound" }), reason: "rejected", sipStatus: 486 });
    const { clientId: _clientId, ...withoutClient } = call();
    emitEvent("call.ended", { ...withoutClient, reason: "rejected", sipStatus: 486 });
    emitEvent("call.ringing", { ...call({ direction: "inbound" }), sipStatus: 180 });
    expect(played).toEqual([]);
  });
});
