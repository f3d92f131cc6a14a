// Waiting for audio instead of sleeping for it: a receiver (a phone's RtpPeer or a WebRTC
// TestClient) is polled until the latest stretch of what it heard carries a tone, and that stretch
// is returned, so the test checks on the same audio what must be absent from it (one's own tone).
// A loaded machine only makes the wait longer; the timeout fails the test with what was heard.
//
//   const window = await peerHears(alice, 1000);            // Alice hears Bob's 1 kHz ...
//   expect(toneShareOf(window, 8000, 440)).toBeLessThan(0.1); // ... and not her own 440 Hz
import { meanSquare } from "../../src/media/goertzel.ts";
import { toneShareOf, type RtpPeer } from "./rtpPeer.ts";
import { until } from "./until.ts";
import type { TestClient } from "./weriftClient.ts";

export interface HearOptions {
  /** Length of the judged stretch (default 500 ms). */
  ms?: number;
  /** Share of the stretch's power the tone must have (default 0.5). */
  share?: number;
  /** Default 10 s. */
  timeoutMs?: number;
}

/** Share (0..1) of the 20 ms blocks of `pcm` with sound in them (RMS above 100, about −50 dBFS). */
export function soundShare(pcm: Int16Array, sampleRate: number): number {
  const size = sampleRate / 50;
  let blocks = 0;
  let loud = 0;
  for (let at = 0; at + size <= pcm.length; at += size, blocks++) if (meanSquare(pcm.subarray(at, at + size)) > 100 * 100) loud++;
  return blocks === 0 ? 0 : loud / blocks;
}

/** `pcm` is mostly sound (at least half its blocks), and `hz` has more than `share` of its power. */
export function carriesTone(pcm: Int16Array, sampleRate: number, hz: number, share = 0.5): boolean {
  return soundShare(pcm, sampleRate) >= 0.5 && toneShareOf(pcm, sampleRate, hz) > share;
}

function heardSummary(pcm: Int16Array, sampleRate: number, hz: number) {
  return { heardMs: (pcm.length / sampleRate) * 1000, toneShare: toneShareOf(pcm, sampleRate, hz), soundShare: soundShare(pcm, sampleRate) };
}

/** Waits until the last `ms` of what the phone's RTP peer heard (8 kHz) carry `hz`; returns them. */
export async function peerHears(peer: RtpPeer, hz: number, o: HearOptions = {}): Promise<Int16Array> {
  const samples = (8000 * (o.ms ?? 500)) / 1000;
  let window: Int16Array = new Int16Array(0);
  await until(
    () => {
      const all = peer.received();
      window = all.subarray(Math.max(0, all.length - samples));
      return window.length === samples && carriesTone(window, 8000, hz, o.share);
    },
    { timeoutMs: o.timeoutMs ?? 10_000, pollMs: 20, what: () => ({ hz, packetsReceived: peer.packetsReceived, ...heardSummary(window, 8000, hz) }) },
  );
  return window.slice();
}

/**
 * Waits until the last `ms` of what a WebRTC test client heard (at its codec's rate) pass `check`;
 * returns them. Drains the client (takeReceived).
 */
export async function clientHearsUntil(
  client: TestClient,
  check: (window: Int16Array, sampleRate: number) => boolean,
  o: { ms?: number; timeoutMs?: number; what?: (window: Int16Array, sampleRate: number) => unknown } = {},
): Promise<Int16Array> {
  const rate = client.codec.sampleRate;
  const samples = (rate * (o.ms ?? 500)) / 1000;
  let window: Int16Array = new Int16Array(0);
  await until(
    () => {
      const fresh = client.takeReceived();
      if (fresh.length > 0) {
        const joined = new Int16Array(Math.min(samples, window.length + fresh.length));
        const keep = joined.length - Math.min(fresh.length, joined.length);
        joined.set(window.subarray(window.length - keep), 0);
        joined.set(fresh.subarray(fresh.length - (joined.length - keep)), keep);
        window = joined;
      }
      return window.length === samples && check(window, rate);
    },
    { timeoutMs: o.timeoutMs ?? 10_000, pollMs: 20, what: () => ({ packetsReceived: client.packetsReceived, heardMs: (window.length / rate) * 1000, ...(o.what ? { state: o.what(window, rate) } : {}) }) },
  );
  return window;
}

/** Waits until the last `ms` of what a WebRTC test client heard carry `hz`; returns them. */
export function clientHears(client: TestClient, hz: number, o: HearOptions = {}): Promise<Int16Array> {
  return clientHearsUntil(client, (w, rate) => carriesTone(w, rate, hz, o.share), { ...o, what: (w, rate) => ({ hz, ...heardSummary(w, rate, hz) }) });
}
