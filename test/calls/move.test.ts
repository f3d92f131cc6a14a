// Moving a participant between channels (ChannelRegistry.move, which Call.moveToChannel uses):
// events in order, the media handed over rather than detached, the old channel closed once empty,
// a refused hand-over leaving everything as it was. test/interop/calls-transfer.test.ts moves a
// real phone leg and listens to both channels.
import { afterAll, afterEach, expect, test } from "bun:test";
import { ChannelRegistry, type ChannelMember } from "../../src/channels/registry.ts";
import { events, type AnyEvent } from "../../src/events.ts";
import type { Mixer } from "../../src/media/mixer.ts";

const seen: string[] = [];
const stop = events.subscribe((e: AnyEvent) => {
  if (e.type !== "participant.joined" && e.type !== "participant.left") return;
  const reason = "reason" in e.data && e.data.reason ? ` ${e.data.reason}` : "";
  seen.push(`${e.type} ${e.data.channelId} ${e.data.participantId}${reason}`);
});
const members: ChannelMember[] = [];
let registry = new ChannelRegistry();

afterEach(() => {
  for (const m of members.splice(0)) m.leave();
  registry.closeAll();
  registry = new ChannelRegistry();
  seen.length = 0;
});
afterAll(stop);

/** A participant whose media sits in one mixer at a time; `detached` counts real detaches. */
async function joinLeg(channelId: string, id: string) {
  const state = { mixer: undefined as Mixer | undefined, detached: 0 };
  const member = await registry.joinWhenReady({ applicationId: "app", channelId, id, kind: "sip", userId: id, callId: id }, async (channel) => {
    const mixer = channel.localMixer();
    mixer.join(id, () => {});
    state.mixer = mixer;
    return () => void state.detached++;
  });
  if ("error" in member) throw new Error(member.error);
  members.push(member);
  return { member, state };
}

test("a move hands the media over: left (moved) in the old channel, joined in the new; the old one closes once empty", async () => {
  const { member, state } = await joinLeg("lobby", "call-1");
  await joinLeg("annex", "call-2");
  const lobbyMixer = state.mixer!;
  const moved = registry.move(member, "annex", (channel) => {
    const mixer = channel.localMixer();
    mixer.join("call-1", () => {});
    state.mixer = mixer;
  });
  members.push(moved);
  expect(moved.info.channelId).toBe("annex");
  expect(state.detached).toBe(0);
  expect(state.mixer).not.toBe(lobbyMixer);
  expect(seen).toEqual([
    "participant.joined lobby call-1",
    "participant.joined annex call-2",
    "participant.left lobby call-1 moved",
    "participant.joined annex call-1",
  ]);
  expect(registry.isOpen("app", "lobby")).toBe(false);
  expect(registry.participants("app", "annex").map((p) => p.id).sort()).toEqual(["call-1", "call-2"]);
  // The spent member does nothing; the new one detaches the same media once.
  member.leave("hangup");
  expect(state.detached).toBe(0);
  moved.leave("hangup");
  expect(state.detached).toBe(1);
  expect(seen.at(-1)).toBe("participant.left annex call-1 hangup");
});

test("a move into a channel nobody is in opens it", async () => {
  const { member, state } = await joinLeg("lobby", "call-1");
  const moved = registry.move(member, "empty-room", (channel) => void (state.mixer = channel.localMixer()));
  members.push(moved);
  expect(registry.isOpen("app", "empty-room")).toBe(true);
  expect(registry.list()).toEqual([{ applicationId: "app", channelId: "empty-room", participants: 1 }]);
});

test("a refused hand-over leaves the participant where it was, with no events and no channel left open", async () => {
  const { member } = await joinLeg("lobby", "call-1");
  seen.length = 0;
  expect(() => registry.move(member, "annex", () => { throw new Error("mixer is closed"); })).toThrow("mixer is closed");
  expect(seen).toEqual([]);
  expect(registry.isOpen("app", "annex")).toBe(false);
  expect(registry.participants("app", "lobby").map((p) => p.id)).toEqual(["call-1"]);
});

test("a member that already left cannot be moved", async () => {
  const { member } = await joinLeg("lobby", "call-1");
  member.leave();
  expect(() => registry.move(member, "annex", () => {})).toThrow("is not in a channel");
});
