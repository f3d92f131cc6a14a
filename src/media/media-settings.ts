// The media settings of the config (media.maxSpeakers, media.opusComplexity, media.opusApplication,
// media.relayPairs) as every thread that mixes applies them: this thread's mixer and Opus defaults,
// and each media worker's, which the media plane sends them to when it starts and whenever they
// change (a reload). They apply to mixers and encoders created from then on.
//
//   applyMediaSettings({ maxSpeakers: 3, opusComplexity: 5, opusApplication: "lowdelay", relayPairs: true });
import { setDefaultMaxSpeakers, setDefaultRelayPairs } from "./mixer.ts";
import { setDefaultOpusApplication, setDefaultOpusComplexity, type OpusApplication, type OpusComplexity } from "./opus.ts";

export interface MediaSettings {
  /** Most talkers mixed at once in a channel (0: every talker). */
  maxSpeakers: number;
  opusComplexity: OpusComplexity;
  opusApplication: OpusApplication;
  /** Two phone legs alone in a channel with the same G.711 codec are relayed, not mixed (relay.ts). */
  relayPairs: boolean;
}

/** The config's defaults, in force until the first apply. */
export const defaultMediaSettings: Readonly<MediaSettings> = { maxSpeakers: 3, opusComplexity: 5, opusApplication: "lowdelay", relayPairs: true };

let current: MediaSettings = { ...defaultMediaSettings };
const listeners = new Set<(settings: MediaSettings) => void>();

export function applyMediaSettings(settings: MediaSettings): void {
  setDefaultMaxSpeakers(settings.maxSpeakers);
  setDefaultOpusComplexity(settings.opusComplexity);
  setDefaultOpusApplication(settings.opusApplication);
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
