// The typed event bus. Every notable thing that happens to a call, a participant or a trunk is
// emitted here once: it is logged as one line, and every subscriber (the events webhook delivery,
// the client event stream, metrics) receives it. Subscribers never slow down or break the emitter.
// A call's steps before its end are logged at debug: at info a call leaves one line, its
// `call.ended` (issue 16: a line per step cost a busy node more than the rest of the call layer).
import { createLogger, logsAt, type LogLevel, type Logger } from "./log.ts";

export interface CallEventBase {
  /** Trunkline's call id (the call record id), not the SIP Call-ID. */
  callId: string;
  direction: "inbound" | "outbound";
  applicationId?: string;
  channelId?: string;
  trunkId?: string;
  from?: string;
  to?: string;
  userId?: string;
  clientId?: string;
  /** Inbound: attributes from the INVITE's headers (calls.headersToAttributes). */
  attributes?: Record<string, string>;
}

export interface ParticipantEventData {
  applicationId: string;
  channelId: string;
  /** Mixer participant id: the call id for a SIP leg, the client id for a WebRTC client. */
  participantId: string;
  userId: string;
  kind: "sip" | "webrtc";
  callId?: string;
  clientId?: string;
  /** A phone leg's attributes from its INVITE's headers (calls.headersToAttributes). */
  attributes?: Record<string, string>;
}

export interface RecordingEventData {
  recordingId: string;
  applicationId: string;
  channelId: string;
  format: "opus" | "wav";
}

export interface EventDataMap {
  "call.ringing": CallEventBase & { sipStatus: number };
  "call.answered": CallEventBase & { codec?: string };
  "call.ended": CallEventBase & { reason: string; sipStatus?: number; durationMs?: number };
  /** The far end took the blind transfer: `sipStatus` is the final status its NOTIFY sipfrag reported. */
  "call.transferred": CallEventBase & { referTo: string; sipStatus: number };
  /** rejected: the REFER was refused; failed: the sipfrag's status (≥ 300) or a subscription ended without one; timeout: no NOTIFY in time. */
  "call.transfer_failed": CallEventBase & { referTo: string; reason: "rejected" | "failed" | "timeout"; sipStatus?: number };
  "participant.joined": ParticipantEventData;
  "participant.left": ParticipantEventData & { reason?: string };
  "dtmf.received": CallEventBase & { digit: string; durationMs?: number; method: "rfc4733" | "sip-info" };
  "trunk.registered": { trunkId: string; expiresAt?: string };
  "trunk.registration_failed": { trunkId: string; reason: string; statusCode?: number };
  "trunk.unreachable": { trunkId: string; reason?: string };
  "trunk.reachable": { trunkId: string };
  "recording.started": RecordingEventData;
  /** reason: stopped (API), channel_empty, write_failed, shutdown. */
  "recording.stopped": RecordingEventData & { reason: string; durationMs: number; bytes: number; droppedFrames: number };
}

export type EventType = keyof EventDataMap;

export interface TrunklineEvent<T extends EventType = EventType> {
  /** Unique per process and increasing: `evt_<time base36>_<sequence>`. */
  id: string;
  type: T;
  /** ISO-8601 emission time. */
  time: string;
  data: EventDataMap[T];
}

/** Any event, discriminated on `type`. */
export type AnyEvent = { [T in EventType]: TrunklineEvent<T> }[EventType];

export type EventHandler = (event: AnyEvent) => void;

const log = createLogger("events");

/** Events of a call's or participant's course, logged at debug; `call.ended` sums the call up at info. */
const stepEvents: ReadonlySet<EventType> = new Set<EventType>(["call.ringing", "call.answered", "participant.joined", "participant.left", "dtmf.received"]);

export class EventBus {
  private readonly handlers = new Set<EventHandler>();
  private sequence = 0;
  private readonly idPrefix = `evt_${Date.now().toString(36)}_`;

  /** `subject`: the logger of what the event is about (a call's), whose fields its line carries. */
  emit<T extends EventType>(type: T, data: EventDataMap[T], subject?: Logger): TrunklineEvent<T> {
    const event: TrunklineEvent<T> = {
      id: this.idPrefix + (++this.sequence).toString(36),
      type,
      time: new Date().toISOString(),
      data,
    };
    const level: LogLevel = stepEvents.has(type) ? "debug" : "info";
    if (logsAt(level)) (subject ? subject.child({}, "events") : log)[level](type, { eventId: event.id, ...data });
    for (const handler of this.handlers) {
      try {
        handler(event as AnyEvent);
      } catch (error) {
        log.error("event subscriber failed", { type, eventId: event.id, error });
      }
    }
    return event;
  }

  /** Returns the unsubscribe function. */
  subscribe(handler: EventHandler): () => void {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }
}

/** The process-wide bus every module emits on. */
export const events = new EventBus();

export function emitEvent<T extends EventType>(type: T, data: EventDataMap[T], subject?: Logger): TrunklineEvent<T> {
  return events.emit(type, data, subject);
}

export function subscribeEvents(handler: EventHandler): () => void {
  return events.subscribe(handler);
}
