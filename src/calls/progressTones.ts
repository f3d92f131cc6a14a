// Call-progress tones for a WebRTC client that dials: while the far end rings without early media
// it hears ringback; when the call fails before the answer, busy (486, 600) or congestion (any
// other failure) for a few seconds. Heard only by the dialling client, mixed into what it hears
// from the channel (ToneSink: the WebRTC sessions); nobody else in the channel hears them.
//
// It follows the calls on the event bus (call.ringing, call.answered, call.ended), so the call's
// state machine knows nothing of tones. Ringback stops at once (within a frame or two) when the
// answer arrives or the phone leg receives its first RTP packet (early media, RFC 3960: the far
// end plays its own ringback or announcement). A call leaves no state behind once it has ended.
import type { Service } from "../app.ts";
import { subscribeEvents, type AnyEvent } from "../events.ts";
import { BUSY_TONE, CONGESTION_TONE, type ToneCadence, type ToneRequest } from "../media/tones.ts";
import type { EndReason } from "./call.ts";

/** Where a client's tone plays (the WebRTC sessions); false when the client is not connected here. */
export interface ToneSink {
  playTone(applicationId: string, clientId: string, tone: ToneRequest | undefined): boolean;
}

export interface ProgressToneOptions {
  sink: ToneSink;
  /** Whether the call's phone leg has received media (early media flows). */
  receivingMedia(callId: string): boolean;
  /** calls.ringback, read at each ringing call (a reload applies to the next). */
  ringback(): ToneCadence;
}

/** How long a failure tone plays. */
export const FAILURE_TONE_MS = 3000;

/** Ends that are no failure: the caller (or we) stopped the call, or the process is going down. */
const SILENT_ENDS: ReadonlySet<string> = new Set<EndReason>(["local_hangup", "cancelled", "shutdown"]);

export class CallProgressTones implements Service {
  readonly name = "call-progress-tones";
  /** Clients' outbound calls answered and not yet ended (their end is no failure). */
  private readonly answered = new Set<string>();
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly o: ProgressToneOptions) {}

  start(): void {
    this.unsubscribe = subscribeEvents((event) => this.onEvent(event));
  }

  stop(): void {
    this.unsubscribe?.();
    this.answered.clear();
  }

  private onEvent(event: AnyEvent): void {
    if (event.type !== "call.ringing" && event.type !== "call.answered" && event.type !== "call.ended") return;
    const { callId, direction, applicationId, clientId } = event.data;
    if (direction !== "outbound" || !applicationId || !clientId) return;
    const play = (tone: ToneRequest | undefined) => this.o.sink.playTone(applicationId, clientId, tone);
    switch (event.type) {
      case "call.ringing": {
        if (this.o.receivingMedia(callId)) return;
        const stopWhen = () => this.o.receivingMedia(callId);
        play({ cadence: this.o.ringback(), stopWhen });
        return;
      }
      case "call.answered":
        this.answered.add(callId);
        play(undefined);
        return;
      case "call.ended": {
        const wasAnswered = this.answered.delete(callId);
        if (wasAnswered || SILENT_ENDS.has(event.data.reason)) return void play(undefined);
        const busy = event.data.sipStatus === 486 || event.data.sipStatus === 600;
        play({ cadence: busy ? BUSY_TONE : CONGESTION_TONE, durationMs: FAILURE_TONE_MS });
        return;
      }
    }
  }
}
