// The media settings of the config (media.maxSpeakers, media.opusComplexity, media.relayPairs) as every thread that
// mixes applies them: this thread's mixer and Opus defaults, and each media worker's, which the
// media plane sends them to when it starts and whenever they change (a reload). They apply to
// mixers and encoders created from then on.
//
//   applyMediaSettings({ maxSpeakers: 3, opusComplexity: 5, relayPairs: true });
import { setDefaultMaxSpeakers, setDefaultRelayPairs } from "./mixer.ts";
import { setDefaultOpusComplexity, type OpusComplexity } from "./opus.ts";

export interface MediaSettings {
  /** Most talkers mixed at once in a channel (0: every talker). */
  maxSpeakers: number;
  opusComplexity: OpusComplexity;
  /** Two phone legs alone in a channel with the same G.711 codec are relayed, not mixed (relay.ts). */
  relayPairs: boolean;
}

let current: MediaSettings = { maxSpeakers: 3, opusComplexity: 5, relayPairs: true };
const listeners = new Set<(settings: MediaSettings) => void>();

export function applyMediaSettings(settings: MediaSettings): void {
  setDefaultMaxSpeakers(settings.maxSpeakers);
  setDefaultOpusComplexity(settings.opusComplexity);
  setDefaultRelayPairs(settings.relayPairs);
  current = { ...settings };
  for (const listener of listeners) listener(current);
}

/** The settings in force on this thread. */
export function mediaSettings(): MediaSettings {
  return current;
}

/** Calls `listener` whenever the settings change. Returns the unsubscribe function. */
export function onMediaSettings(listener: (settings: MediaSettings) => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}
