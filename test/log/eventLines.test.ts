// The log lines of events: at info a call leaves one line (its call.ended, the summary); its steps
// (ringing, answered, participants joining and leaving, DTMF) are debug lines. Subscribers hear
// every event whatever the level.
import { afterAll, expect, test } from "bun:test";
import { EventBus } from "../../src/events.ts";
import { createLogger, setLogLevel, setLogSink } from "../../src/log.ts";

const lines: Record<string, unknown>[] = [];
setLogSink((line) => lines.push(JSON.parse(line) as Record<string, unknown>));
afterAll(() => {
  setLogLevel("info");
  setLogSink((line) => process.stdout.write(line + "\n"));
});

function oneCall(bus: EventBus): void {
  const callLog = createLogger("calls", { callId: "call_1", sipCallId: "abc@host" });
  const base = { callId: "call_1", direction: "inbound" as const, trunkId: "t1", from: "sip:a@x", to: "sip:b@y" };
  const participant = { applicationId: "app", channelId: "room", participantId: "call_1", userId: "sip:a@x", kind: "sip" as const, callId: "call_1" };
  bus.emit("call.ringing", { ...base, sipStatus: 180 }, callLog);
  bus.emit("participant.joined", participant, callLog);
  bus.emit("call.answered", { ...base, codec: "PCMU" }, callLog);
  bus.emit("dtmf.received", { ...base, digit: "5", method: "rfc4733" }, callLog);
  bus.emit("participant.left", participant, callLog);
  bus.emit("call.ended", { ...base, reason: "hangup", sipStatus: 200, durationMs: 1000 }, callLog);
  bus.emit("trunk.unreachable", { trunkId: "t1" });
}

test("at info a call's events leave one line, its call.ended, with the call's fields; at debug every step is a line", () => {
  const bus = new EventBus();
  const heard: string[] = [];
  bus.subscribe((event) => heard.push(event.type));

  setLogLevel("info");
  lines.length = 0;
  oneCall(bus);
  expect(lines.map((l) => [l.level, l.msg])).toEqual([
    ["info", "call.ended"],
    ["info", "trunk.unreachable"],
  ]);
  expect(lines[0]).toMatchObject({ component: "events", callId: "call_1", sipCallId: "abc@host", reason: "hangup", sipStatus: 200, durationMs: 1000, trunkId: "t1" });

  setLogLevel("debug");
  lines.length = 0;
  oneCall(bus);
  expect(lines.map((l) => [l.level, l.msg])).toEqual([
    ["debug", "call.ringing"],
    ["debug", "participant.joined"],
    ["debug", "call.answered"],
    ["debug", "dtmf.received"],
    ["debug", "participant.left"],
    ["info", "call.ended"],
    ["info", "trunk.unreachable"],
  ]);

  const once = ["call.ringing", "participant.joined", "call.answered", "dtmf.received", "participant.left", "call.ended", "trunk.unreachable"];
  expect(heard).toEqual([...once, ...once]);
});
