// Conference mixer: one per channel, a fixed 20 ms tick, mono.
//
// The mixer runs at the lowest rate that serves everyone: the highest `sampleRate` any participant
// asks for (8 kHz when all are G.711 phones, 16 kHz with a G.722 leg, 48 kHz with an Opus client),
// so a channel of phones never resamples at all. Inputs come at any supported rate (8/16/48 kHz,
// told by the frame length) and are converted to the mix rate when they differ; each distinct mix
// is converted to each codec's rate once, when it is encoded. When a participant with a higher need
// joins, or the last one leaves, the rate changes at the next tick; every stream's resampler is
// replaced by one that continues it sample-exactly (rate-switch.ts), so the others hear no gap.
//
// Every tick each participant hears the sum of everyone else (N−1):
// - Only "contributors" are summed: participants with a fresh frame this tick whose voice activity
//   (frame energy above `speechThreshold`, held for `hangoverMs`) says they are talking. Absent or
//   silent inputs cost one energy pass at most and are never added, so background hiss does not
//   build up as people join.
// - No division by N: levels do not drop as people join. Sums beyond the knee (−2.5 dBFS) go through
//   a stateless soft limiter (see softLimit), so loud overlaps are compressed instead of clipped,
//   identically for every stream, with no gain state that would pump or differ between streams.
// - At most `maxSpeakers` talkers (default 3) are mixed at once: the loudest, by a smoothed level,
//   with hysteresis so the set does not flap (a member keeps its place while it talks; a louder
//   talker takes the quietest member's place only when it is `switchRatio` (6 dB) louder and that
//   member has held its place `minHoldMs` (500 ms)). Beyond a few voices a mix is unintelligible
//   anyway, and everyone else's noise floor would add up; libwebrtc's audio mixer also mixes only
//   its 3 loudest voice-active sources (AudioMixerImpl::kMaximumAmountOfMixedAudioSources).
// - Everyone who is not a contributor (listeners, and talkers outside the set) hears the same full
//   mix of the set (mixId `sharedMixId`); each contributor hears its own N−1 mix (mixId unique to
//   that participant). So a tick has at most maxSpeakers + 1 distinct mixes (a member fading out
//   while its replacement fades in adds one for that tick), however many talk. Use
//   `participant.encode(frame, codec)` to get the RTP payload: each distinct mix is encoded once
//   per codec per tick (see mix-encoder.ts for how stateful encoders stay consistent).
// - A pull-mode participant may also tell each frame's level as its sender measured it
//   (`inputLevel`, e.g. RFC 6464 in a WebRTC client's RTP): voice activity and the speaker set are
//   then judged from that level, and the frame is decoded (`pull`) only when it is mixed, so in a
//   room where everyone talks only the few mixed talkers are decoded. A frame without a level is
//   pulled and measured as before.
// - A channel of exactly two phone legs with the same self-contained codec is relayed instead of
//   mixed (relay.ts): each leg's packets go straight to the other. The mixer pairs them while that
//   holds (two participants, both relayable alike, no tap, no mute; `relayPairs`, default on) and
//   goes on ticking, so a leg can still be sent DTMF or the mixer's silence.
// - Joining and leaving never touch the others' streams; a contributor starting or stopping
//   (voice activity edges) is faded in/out over one frame so gating never clicks.
import { createLogger } from "../log.ts";
import { metrics } from "../metrics.ts";
import type { Codec } from "./codec.ts";
import { MixEncoderCache } from "./mix-encoder.ts";
import type { MixTap } from "./mix-tap.ts";
import type { PacketRelay } from "./relay.ts";
import { SwitchingResampler } from "./rate-switch.ts";
import { DriftCorrectedTicker, sharedTicker, type TickSource } from "./ticker.ts";
import { workerTotal } from "./worker-totals.ts";

const log = createLogger("media.mixer");

/** Frames judged by their sender's level (RFC 6464) rather than decoded to be measured, this thread's mixers together. */
export const mixerTotals = { levelFrames: 0 };
metrics.counter(
  "trunkline_mixer_level_frames_total",
  "Input frames the mixer ranked by the sender's RFC 6464 audio level instead of decoding them to measure (WebRTC clients that send levels).",
  [],
  () => mixerTotals.levelFrames + workerTotal("levelFrames"),
);

export const sharedMixId = 0;

export interface MixedFrame {
  /**
   * What this participant hears (N−1), at `sampleRate`. Shared with other listeners of the same mix:
   * read only, and only until the next tick (the mixer reuses its buffers; copy to keep).
   */
  pcm: Int16Array;
  /** The mixer's rate this tick. */
  sampleRate: number;
  /** Identity of the mix stream; equal for all participants hearing the same mix. Stable across ticks. */
  mixId: number;
  /** Tick counter of this mixer; frames of one tick share it. */
  tick: number;
  /** Nobody else is talking: the frame is all zeros. */
  silent: boolean;
}

export interface MixerParticipant {
  readonly id: string;
  /** Queue one frame (frameMs) of mono PCM at 8, 16 or 48 kHz (copied). Other lengths are dropped. */
  write(pcm: Int16Array): void;
  /** RTP payload of `frame` in `codec`, encoded once per distinct mix and shared. */
  encode(frame: MixedFrame, codec: Codec): Uint8Array;
  /** Voice activity of this participant as of the last tick. */
  readonly speaking: boolean;
  /** The rate this participant needs to hear everything its codec carries (it negotiated another codec). */
  setSampleRate(rate: number): void;
  /** Its relay's format may have changed: the mixer pairs or unpairs the channel again. */
  relayChanged(): void;
  leave(): void;
}

type MixerRate = 8000 | 16000 | 48000;
const mixerRates: readonly MixerRate[] = [8000, 16000, 48000];

/** The lowest mixer rate that carries `rate`. */
function mixerRateFor(rate: number): MixerRate {
  return mixerRates.find((r) => r >= rate) ?? 48000;
}

export interface JoinOptions {
  /**
   * Pull-mode input: called once per tick for this participant's next frame (e.g. popping a jitter
   * buffer exactly on the mixer clock). When given, write() is not needed. Same frames as write().
   */
  pull?: () => Int16Array | undefined;
  /** The rate this participant needs (its codec's); default 48 kHz. The mixer runs at the highest. */
  sampleRate?: number;
  /**
   * With `pull`: called once per tick before it. A number is the energy (mean square, 16-bit scale)
   * of this tick's frame as its sender measured it; `pull` then yields that frame and is called only
   * when the frame is mixed (a frame not pulled is dropped). undefined: no level known for this tick,
   * `pull` is called as usual.
   */
  inputLevel?: () => number | undefined;
  /** This participant's end of a two-party relay (relay.ts); without one it is always mixed. */
  relay?: PacketRelay;
}

export interface MixerOptions {
  frameMs?: number;
  /** Defaults to the process-wide drift-corrected 20 ms ticker. Pass a ManualTicker in tests. */
  ticker?: TickSource;
  /** RMS level (16-bit scale) above which a frame counts as speech; default 100 (≈ −50 dBFS). */
  speechThreshold?: number;
  /** How long a participant keeps contributing after its last speech frame; default 300 ms. */
  hangoverMs?: number;
  /** Most talkers mixed at once (the loudest); default `defaultMaxSpeakers` (3). 0: no limit. */
  maxSpeakers?: number;
  /** Relay a channel of two alike phone legs instead of mixing it; default `defaultRelayPairs` (true). */
  relayPairs?: boolean;
}

// Speaker-set hysteresis, tuned on five espeak-ng voices talking over each other for 21 s: a
// 60 ms level with a 3 dB margin and a 200 ms hold changed the set 8 times a second; these settings
// about 0.6 times a second (a pause longer than the 300 ms hangover frees a place at once anyway).
/** How much louder (energy ratio) a talker must be to take a member's place. */
const switchRatio = 4; // 6 dB
/** A member keeps its place at least this long before a louder talker may take it. */
const minHoldMs = 500;
/** Smoothing of the level the set is chosen by: weight of the newest frame's energy (≈ 400 ms time constant). */
const levelSmoothing = 0.05;

let defaultMaxSpeakers = 3;

/** Sets the speaker cap of mixers created from now on without their own `maxSpeakers` (config `media.maxSpeakers`). */
export function setDefaultMaxSpeakers(maxSpeakers: number): void {
  defaultMaxSpeakers = maxSpeakers;
}

let defaultRelayPairs = true;

/** Whether mixers created from now on relay two alike phone legs (config `media.relayPairs`). */
export function setDefaultRelayPairs(relayPairs: boolean): void {
  defaultRelayPairs = relayPairs;
}

export interface MixerStats {
  ticks: number;
  participants: number;
  sampleRate: number;
  /** Contributors in the last tick (at most maxSpeakers, one more while a member is replaced). */
  speakers: number;
  /** Participants whose voice activity said they were talking in the last tick, mixed or not. */
  talking: number;
  droppedFrames: number;
  /** Its two participants are relayed to each other instead of mixed. */
  relayed: boolean;
}

/** Input frames buffered per participant before the oldest is dropped (bounds added latency). */
const queueDepth = 3;
const limiterKnee = 24576;
const limiterRange = 32767 - limiterKnee;

/**
 * Soft limiter: identity below the knee, then a rational curve knee + R·d/(d + R) (d = excess over
 * the knee, R = headroom) that joins with slope 1 and only approaches full scale asymptotically,
 * so even several full-scale talkers keep their waveform shape instead of flat-topping.
 */
function softLimit(acc: Int32Array, out: Int16Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const v = acc[i] as number;
    if (v <= limiterKnee && v >= -limiterKnee) out[i] = v;
    else if (v > 0) {
      const d = v - limiterKnee;
      out[i] = Math.round(limiterKnee + (limiterRange * d) / (d + limiterRange));
    } else {
      const d = -v - limiterKnee;
      out[i] = -Math.round(limiterKnee + (limiterRange * d) / (d + limiterRange));
    }
  }
}

class Participant implements MixerParticipant {
  /** write() frames waiting for their tick, each with its length. */
  readonly queue: Int16Array[];
  readonly queuedLengths: number[];
  queued = 0;
  queueHead = 0;
  /** Last tick at which this participant still counts as speaking. */
  speakingUntil = -1;
  /** Whether it was summed into the mix last tick (for fade edges). */
  wasMixed = false;
  speaking = false;
  /** In the speaker set: mixed while it talks. */
  selected = false;
  /** Tick at which it last entered the speaker set. */
  selectedAt = 0;
  /** Smoothed frame energy (mean square) while it talks, to rank talkers by. */
  level = 0;
  /** This tick's input at the mix rate, if any. */
  input: Int16Array | undefined;
  /** This tick's frame is known by its sender's level only: pulled (decoded) only if it is mixed. */
  levelOnly = false;
  /** Muted by an operator: its input is still taken every tick (buffers drain) but never mixed. */
  muted = false;
  left = false;
  /**
   * This tick's contribution when faded (otherwise the input frame itself is used). Int16 like the
   * frames, so the summing loops only ever see one typed-array kind (JSC slows down on a mix).
   */
  faded = new Int16Array(0);
  /** What it hears while it contributes (its own N−1 mix), reused every tick. */
  ownMix = new Int16Array(0);
  contribution: Int16Array | undefined;
  currentMix = sharedMixId;
  /** Its input converted to the mix rate (a pure delay when the rates match). */
  readonly toMixRate = new SwitchingResampler();

  constructor(
    readonly id: string,
    readonly mixId: number,
    readonly onFrame: (frame: MixedFrame) => void,
    readonly pull: (() => Int16Array | undefined) | undefined,
    readonly inputLevel: (() => number | undefined) | undefined,
    readonly relay: PacketRelay | undefined,
    public sampleRate: MixerRate,
    private readonly mixer: Mixer,
    frameSamples: number,
  ) {
    // Sized for the participant's own rate (a phone's 160 samples, not 48 kHz's 960); a longer frame grows its slot.
    this.queue = Array.from({ length: queueDepth }, () => new Int16Array(frameSamples));
    this.queuedLengths = Array.from({ length: queueDepth }, () => 0);
  }

  write(pcm: Int16Array): void {
    this.mixer.enqueue(this, pcm);
  }

  encode(frame: MixedFrame, codec: Codec): Uint8Array {
    return this.mixer.encodeFor(this.id, frame, codec);
  }

  setSampleRate(rate: number): void {
    this.sampleRate = mixerRateFor(rate);
    this.mixer.updateRate();
  }

  relayChanged(): void {
    this.mixer.updateRelay();
  }

  leave(): void {
    this.mixer.remove(this);
  }
}

export class Mixer {
  readonly frameMs: number;
  private rate: MixerRate = 8000;
  private wantedRate: MixerRate = 8000;
  private frameSamples: number;
  private readonly participants = new Map<string, Participant>();
  private order: Participant[] = [];
  private readonly unsubscribe: () => void;
  private readonly encoderCache = new MixEncoderCache();
  private readonly speechEnergy: number;
  private readonly hangoverTicks: number;
  private readonly maxSpeakers: number;
  private readonly minHoldTicks: number;
  private readonly candidates: Participant[] = [];
  private lastTalking = 0;
  /** Sums at the mix rate, grown when the rate first rises (a channel of phones keeps 160 samples). */
  private acc: Int32Array;
  private minusOne: Int32Array;
  /** The full mix everyone who is not contributing hears, reused every tick. */
  private fullMix: Int16Array;
  private readonly contributors: Participant[] = [];
  private taps: MixTap[] = [];
  private fadeIn: Float64Array;
  private nextMixId = sharedMixId + 1;
  private readonly relayPairs: boolean;
  /** The two participants relayed to each other, while they are. */
  private relayed: readonly [Participant, Participant] | undefined;
  private tickCount = 0;
  private lastSpeakers = 0;
  private droppedFrames = 0;
  private closed = false;

  constructor(o: MixerOptions = {}) {
    this.frameMs = o.frameMs ?? 20;
    this.frameSamples = this.samplesAt(this.rate);
    const threshold = o.speechThreshold ?? 100;
    this.speechEnergy = threshold * threshold;
    this.hangoverTicks = Math.ceil((o.hangoverMs ?? 300) / this.frameMs);
    const maxSpeakers = o.maxSpeakers ?? defaultMaxSpeakers;
    this.maxSpeakers = maxSpeakers > 0 ? maxSpeakers : Infinity;
    this.minHoldTicks = Math.ceil(minHoldMs / this.frameMs);
    this.relayPairs = o.relayPairs ?? defaultRelayPairs;
    this.acc = new Int32Array(this.frameSamples);
    this.minusOne = new Int32Array(this.frameSamples);
    this.fadeIn = ramp(this.frameSamples);
    this.fullMix = new Int16Array(this.frameSamples);
    const ticker = o.ticker ?? (this.frameMs === 20 ? sharedTicker() : new DriftCorrectedTicker(this.frameMs));
    this.unsubscribe = ticker.subscribe(() => this.tick());
  }

  /** The rate of the mix: the highest any participant needs (8 kHz when empty). Changes take effect at the next tick. */
  get sampleRate(): number {
    return this.rate;
  }

  /** Adds a participant; `onFrame` receives what it hears every tick. Ids must be unique per mixer. */
  join(id: string, onFrame: (frame: MixedFrame) => void, o: JoinOptions = {}): MixerParticipant {
    if (this.closed) throw new Error("mixer is closed");
    if (this.participants.has(id)) throw new Error(`participant ${id} already in this mixer`);
    const rate = mixerRateFor(o.sampleRate ?? 48000);
    const p = new Participant(id, this.nextMixId++, onFrame, o.pull, o.pull ? o.inputLevel : undefined, o.relay, rate, this, this.samplesAt(rate));
    this.participants.set(id, p);
    this.order = [...this.order, p];
    this.updateRate();
    this.updateRelay();
    return p;
  }

  get size(): number {
    return this.participants.size;
  }

  /** The others stop (or resume) hearing participant `id`; what it hears is unchanged. */
  setMuted(id: string, muted: boolean): void {
    const p = this.participants.get(id);
    if (!p) return;
    p.muted = muted;
    this.updateRelay();
  }

  /** Hands every tick's full mix to `tap` (see mix-tap.ts) until the returned function is called. */
  addTap(tap: MixTap): () => void {
    this.taps = [...this.taps, tap];
    this.updateRelay();
    return () => {
      this.taps = this.taps.filter((t) => t !== tap);
      this.updateRelay();
    };
  }

  stats(): MixerStats {
    return {
      ticks: this.tickCount,
      participants: this.participants.size,
      sampleRate: this.rate,
      speakers: this.lastSpeakers,
      talking: this.lastTalking,
      droppedFrames: this.droppedFrames,
      relayed: this.relayed !== undefined,
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    this.unpair();
    for (const p of this.order) p.left = true;
    this.participants.clear();
    this.order = [];
    const taps = this.taps;
    this.taps = [];
    for (const tap of taps) {
      try {
        tap.onClose?.();
      } catch (err) {
        log.error("mix tap failed", { err });
      }
    }
  }

  /** @internal participant.write */
  enqueue(p: Participant, pcm: Int16Array): void {
    if (p.left) return;
    if (this.rateOfFrame(pcm.length) === undefined) {
      this.droppedFrames++;
      return;
    }
    if (p.queued === queueDepth) {
      // Full: drop the oldest so latency stays bounded.
      p.queueHead = (p.queueHead + 1) % queueDepth;
      p.queued--;
      this.droppedFrames++;
    }
    const at = (p.queueHead + p.queued) % queueDepth;
    if ((p.queue[at] as Int16Array).length < pcm.length) p.queue[at] = new Int16Array(pcm.length);
    (p.queue[at] as Int16Array).set(pcm);
    p.queuedLengths[at] = pcm.length;
    p.queued++;
  }

  /** @internal participant.encode */
  encodeFor(listenerId: string, frame: MixedFrame, codec: Codec): Uint8Array {
    return this.encoderCache.encode(listenerId, frame, codec);
  }

  /** @internal participant.leave */
  remove(p: Participant): void {
    if (p.left) return;
    p.left = true;
    this.participants.delete(p.id);
    this.order = this.order.filter((q) => q !== p);
    this.encoderCache.dropListener(p.id, p.mixId);
    this.updateRate();
    this.updateRelay();
  }

  /** @internal pairs the channel's two participants when they can be relayed, unpairs them when no longer */
  updateRelay(): void {
    const [a, b] = this.order;
    const pairable = this.relayPairs && !this.closed && this.order.length === 2 && this.taps.length === 0
      && a !== undefined && b !== undefined && !a.muted && !b.muted
      && a.relay?.format !== undefined && a.relay.format === b.relay?.format;
    const current = this.relayed;
    if (pairable && current && current[0] === a && current[1] === b) return;
    this.unpair();
    if (!pairable) return;
    this.relayed = [a, b];
    log.debug("two participants relayed", { a: a.id, b: b.id, format: a.relay!.format });
    a.relay!.pair(b.relay);
    b.relay!.pair(a.relay);
  }

  private unpair(): void {
    const pair = this.relayed;
    if (!pair) return;
    this.relayed = undefined;
    for (const p of pair) p.relay!.pair(undefined);
  }

  /** @internal the rate the participants need, applied at the next tick */
  updateRate(): void {
    let wanted: MixerRate = 8000;
    for (const p of this.order) if (p.sampleRate > wanted) wanted = p.sampleRate;
    this.wantedRate = wanted;
  }

  private samplesAt(rate: number): number {
    return (rate * this.frameMs) / 1000;
  }

  private rateOfFrame(length: number): MixerRate | undefined {
    for (const rate of mixerRates) if (this.samplesAt(rate) === length) return rate;
    return undefined;
  }

  /** Takes this tick's input frame of a participant at the mix rate, if it has a fresh one. */
  private nextInput(p: Participant): Int16Array | undefined {
    let frame: Int16Array | undefined;
    if (p.pull) {
      try {
        frame = p.pull();
      } catch (err) {
        log.error("participant pull failed", { participant: p.id, err });
      }
    } else if (p.queued > 0) {
      frame = (p.queue[p.queueHead] as Int16Array).subarray(0, p.queuedLengths[p.queueHead]);
      p.queueHead = (p.queueHead + 1) % queueDepth;
      p.queued--;
    }
    if (!frame || p.muted) return undefined;
    // Also at the mix rate (a pure delay then), so a later rate change continues the stream exactly.
    const rate = this.rateOfFrame(frame.length);
    if (rate === undefined) {
      this.droppedFrames++;
      return undefined;
    }
    return p.toMixRate.process(frame, rate, this.rate);
  }

  private takeLevel(p: Participant): number | undefined {
    try {
      return p.inputLevel?.();
    } catch (err) {
      log.error("participant level failed", { participant: p.id, err });
      return undefined;
    }
  }

  private switchRate(rate: MixerRate): void {
    log.debug("mixer rate changes", { from: this.rate, to: rate, participants: this.order.length });
    this.rate = rate;
    this.frameSamples = this.samplesAt(rate);
    this.fadeIn = ramp(this.frameSamples);
    this.fullMix = new Int16Array(this.frameSamples);
  }

  /**
   * Updates the speaker set from this tick's voice activity: members that stopped talking leave it,
   * free places go to the loudest other talkers, and a full set gives its quietest member's place
   * (held at least minHoldMs) to a talker switchRatio louder — one such swap per tick.
   */
  private selectSpeakers(tick: number): void {
    const candidates = this.candidates;
    candidates.length = 0;
    let members = 0;
    let quietest: Participant | undefined;
    for (const p of this.order) {
      if (!p.speaking) p.selected = false;
      else if (!p.selected) candidates.push(p);
      else {
        members++;
        if (tick - p.selectedAt >= this.minHoldTicks && (!quietest || p.level < quietest.level)) quietest = p;
      }
    }
    if (candidates.length === 0) return;
    if (candidates.length > 1) candidates.sort((a, b) => b.level - a.level);
    let next = 0;
    for (; members < this.maxSpeakers && next < candidates.length; members++) select(candidates[next++] as Participant);
    const challenger = candidates[next];
    if (challenger && quietest && challenger.level > quietest.level * switchRatio) {
      quietest.selected = false;
      select(challenger);
    }
    function select(p: Participant): void {
      p.selected = true;
      p.selectedAt = tick;
    }
  }

  /** One mixer period: gather inputs, sum contributors, deliver N−1 mixes. Public for offline use. */
  tick(): void {
    if (this.closed) return;
    if (this.wantedRate !== this.rate) this.switchRate(this.wantedRate);
    const tick = this.tickCount++;
    const n = this.frameSamples;
    const sampleRate = this.rate;
    if (this.acc.length < n) {
      this.acc = new Int32Array(n);
      this.minusOne = new Int32Array(n);
    }
    if (this.relayed) return this.relayedTick(tick);
    const acc = this.acc;
    acc.fill(0, 0, n);
    const participants = this.order;
    const contributors = this.contributors;
    contributors.length = 0;
    let switches = false;

    let talking = 0;
    for (const p of participants) {
      const level = p.inputLevel ? this.takeLevel(p) : undefined;
      p.levelOnly = level !== undefined;
      if (p.levelOnly) mixerTotals.levelFrames++;
      let energy: number;
      if (level !== undefined) {
        p.input = undefined;
        if (p.muted) {
          p.levelOnly = false;
          p.speaking = false;
          continue;
        }
        energy = level;
      } else {
        const frame = this.nextInput(p);
        p.input = frame;
        if (!frame) {
          p.speaking = false;
          continue;
        }
        energy = 0;
        for (let i = 0; i < n; i++) {
          const v = frame[i] as number;
          energy += v * v;
        }
        energy /= n;
      }
      if (energy >= this.speechEnergy) p.speakingUntil = tick + this.hangoverTicks;
      const wasSpeaking = p.speaking;
      p.speaking = tick <= p.speakingUntil;
      if (p.speaking) {
        p.level = wasSpeaking ? p.level + levelSmoothing * (energy - p.level) : energy;
        talking++;
      }
    }
    this.selectSpeakers(tick);
    // Frames known by their level are decoded only now, and only those that are mixed (or fade out).
    for (const p of participants) if (p.levelOnly && ((p.speaking && p.selected) || p.wasMixed)) p.input = this.nextInput(p);

    for (const p of participants) {
      const frame = p.input;
      p.contribution = undefined;
      if (!frame) p.wasMixed = false;
      else {
        const mixed = p.speaking && p.selected;
        if (mixed || p.wasMixed) {
          // Fade in on the first mixed frame, out on the first one gated or deselected; otherwise add as is.
          const fadingIn = mixed && !p.wasMixed;
          const fadingOut = !mixed;
          if (fadingIn || fadingOut) {
            const ramp = this.fadeIn;
            if (p.faded.length < n) p.faded = new Int16Array(n);
            const faded = p.faded;
            for (let i = 0; i < n; i++) {
              const g = fadingIn ? (ramp[i] as number) : 1 - (ramp[i] as number);
              faded[i] = Math.round((frame[i] as number) * g);
            }
            p.contribution = faded;
          } else p.contribution = frame;
          const c = p.contribution;
          for (let i = 0; i < n; i++) acc[i] = (acc[i] as number) + (c[i] as number);
          contributors.push(p);
        }
        p.wasMixed = mixed;
      }
      const mix = p.contribution ? p.mixId : sharedMixId;
      if (mix !== p.currentMix) {
        switches = true;
        p.currentMix = mix;
      }
    }
    this.lastTalking = talking;
    this.lastSpeakers = contributors.length;
    if (switches) this.encoderCache.noteSwitches(tick);

    const full = this.fullMix;
    if (contributors.length > 0) softLimit(acc, full, n);
    else full.fill(0);
    const shared: MixedFrame = { pcm: full, sampleRate, mixId: sharedMixId, tick, silent: contributors.length === 0 };
    for (const tap of this.taps) {
      try {
        tap.onMix(shared);
      } catch (err) {
        log.error("mix tap failed", { err });
      }
    }
    const minusOne = this.minusOne;
    for (const p of participants) {
      if (p.left) continue;
      let frame = shared;
      const own = p.contribution;
      if (own) {
        for (let i = 0; i < n; i++) minusOne[i] = (acc[i] as number) - (own[i] as number);
        if (p.ownMix.length !== n) p.ownMix = new Int16Array(n);
        const pcm = p.ownMix;
        const alone = contributors.length === 1;
        if (alone) pcm.fill(0);
        else softLimit(minusOne, pcm, n);
        frame = { pcm, sampleRate, mixId: p.mixId, tick, silent: alone };
      }
      try {
        p.onFrame(frame);
      } catch (err) {
        log.error("participant frame handler failed", { participant: p.id, err });
      }
    }
    if (tick % 50 === 0) this.encoderCache.sweep(tick);
  }

  /** A tick of a relayed pair: nothing is mixed; each hears silence (sent only when its relay is quiet). */
  private relayedTick(tick: number): void {
    const full = this.fullMix;
    full.fill(0);
    let switches = false;
    for (const p of this.order) {
      p.speaking = false;
      p.wasMixed = false;
      p.input = undefined;
      if (p.currentMix !== sharedMixId) {
        switches = true;
        p.currentMix = sharedMixId;
      }
    }
    this.lastTalking = 0;
    this.lastSpeakers = 0;
    if (switches) this.encoderCache.noteSwitches(tick);
    const shared: MixedFrame = { pcm: full, sampleRate: this.rate, mixId: sharedMixId, tick, silent: true };
    for (const p of this.order) {
      if (p.left) continue; // left during an earlier one's frame, as in tick()
      try {
        p.onFrame(shared);
      } catch (err) {
        log.error("participant frame handler failed", { participant: p.id, err });
      }
    }
    if (tick % 50 === 0) this.encoderCache.sweep(tick);
  }
}

/** Fade-in gains over one frame. */
function ramp(n: number): Float64Array {
  return Float64Array.from({ length: n }, (_, i) => (i + 1) / n);
}
