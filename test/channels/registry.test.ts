// Operator mute in the channel registry: the channel stops hearing a muted participant at once,
// its input keeps being read (so a jitter buffer does not fill up), and unmuting brings it back.
import { expect, test } from "bun:test";
import { ChannelRegistry, type ChannelMember, type ParticipantInfo } from "../../src/channels/registry.ts";
import { goertzelPower } from "../../src/media/goertzel.ts";
import type { MixedFrame } from "../../src/media/mixer.ts";
import { until } from "../helpers/until.ts";

const RATE = 48000;
const FRAME = 960;

function toneFrame(k: number): Int16Array {
  const out = new Int16Array(FRAME);
  for (let i = 0; i < FRAME; i++) out[i] = Math.round(8000 * Math.sin((2 * Math.PI * 440 * (k * FRAME + i)) / RATE));
  return out;
}

function joined(member: ChannelMember | { error: string }): ChannelMember {
  if ("error" in member) throw new Error(member.error);
  return member;
}

test("a muted participant is read but not heard; unmuted it is heard again; watchers see the flag", async () => {
  const registry = new ChannelRegistry();
  let pulls = 0;
  const talker = joined(
    await registry.joinWhenReady({ applicationId: "app", channelId: "room", id: "talker", kind: "sip", userId: "t" }, async (channel) => {
      const p = channel.localMixer().join("talker", () => {}, { pull: () => toneFrame(pulls++) });
      return () => p.leave();
    }),
  );
  let last: MixedFrame | undefined;
  const listener = joined(
    await registry.joinWhenReady({ applicationId: "app", channelId: "room", id: "listener", kind: "webrtc", userId: "l" }, async (channel) => {
      const p = channel.localMixer().join("listener", (frame) => (last = { ...frame, pcm: frame.pcm.slice() }));
      return () => p.leave();
    }),
  );
  const seen: ParticipantInfo[][] = [];
  const unwatch = registry.watch("app", "room", (list) => seen.push(list.map((p) => ({ ...p }))));
  const hearsTone = () => last !== undefined && !last.silent && goertzelPower(last.pcm, last.sampleRate, 440) > 1e6;
  try {
    await until(hearsTone, { what: () => "the listener hears the talker" });

    talker.setMuted(true);
    expect(registry.participants("app", "room").find((p) => p.id === "talker")?.muted).toBe(true);
    expect(seen.at(-1)?.find((p) => p.id === "talker")?.muted).toBe(true);
    const pullsAtMute = pulls;
    await until(() => last?.silent === true, { what: () => "the listener stops hearing the muted talker" });
    expect(pulls).toBeGreaterThan(pullsAtMute);

    talker.setMuted(false);
    expect(seen.at(-1)?.find((p) => p.id === "talker")?.muted).toBe(false);
    await until(hearsTone, { what: () => "the listener hears the talker again" });
  } finally {
    unwatch();
    talker.leave();
    listener.leave();
  }
});
