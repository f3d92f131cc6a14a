// Encode-once cache for mixer output: every distinct mix is resampled and encoded once per codec
// per tick, however many listeners hear it.
//
// Each (mix stream, codec) pair owns its own resampler and encoder, because G.722 and Opus carry
// state from frame to frame: a stream's encoder only ever sees that stream's consecutive frames.
// A listener moves between streams when it starts or stops speaking (shared full mix ↔ its own
// N−1 mix). Moving onto its own stream, the stream's encoder is forked from the one that produced
// the listener's previous packets (as it was before this tick), so the far-end decoder sees one
// continuous encoder (exact for G.711 and G.722). Opus encoders cannot be copied; that stream
// starts fresh, which an Opus decoder absorbs like a packet from a re-started encoder. Moving back
// to the shared stream switches directly: G.722's backward-adaptive decoder re-converges within a
// few milliseconds. The mixer's speech hangover keeps such switches rare.
// When the mixer changes rate, each stream's resampler switches too and continues the stream
// exactly (rate-switch.ts); its encoder carries on untouched.
import type { AudioEncoder, Codec } from "./codec.ts";
import { SwitchingResampler } from "./rate-switch.ts";

interface Pipeline {
  resampler: SwitchingResampler;
  encoder: AudioEncoder;
}

interface EncodedStream {
  pipeline: Pipeline;
  /** The pipeline as it was before encoding `tick`, kept only on ticks where listeners switch. */
  beforeTick: Pipeline | undefined;
  tick: number;
  payload: Uint8Array;
}

/** Minimal view of a mixer frame the cache needs. */
export interface EncodableFrame {
  pcm: Int16Array;
  sampleRate: number;
  mixId: number;
  tick: number;
}

const idleStreamTicks = 50;

function forkPipeline(p: Pipeline): Pipeline | undefined {
  const encoder = p.encoder.fork?.();
  return encoder ? { resampler: p.resampler.fork(), encoder } : undefined;
}

export class MixEncoderCache {
  private readonly streams = new Map<number, Map<Codec, EncodedStream>>();
  /** Per listener and codec: the mix stream its previous packet came from. */
  private readonly listenerStream = new Map<string, Map<Codec, number>>();
  private switchingTick = -1;

  /** Called by the mixer before delivering a tick in which some listener changes stream. */
  noteSwitches(tick: number): void {
    this.switchingTick = tick;
  }

  encode(listenerId: string, frame: EncodableFrame, codec: Codec): Uint8Array {
    let byCodec = this.listenerStream.get(listenerId);
    if (!byCodec) {
      byCodec = new Map();
      this.listenerStream.set(listenerId, byCodec);
    }
    const previousMix = byCodec.get(codec);
    byCodec.set(codec, frame.mixId);

    let stream = this.streams.get(frame.mixId)?.get(codec);
    const switched = previousMix !== undefined && previousMix !== frame.mixId;
    if (!stream || stream.tick < frame.tick - 1) {
      // (Re)start a stream nobody followed last tick: continue the encoder this listener heard last.
      // A live stream (the shared mix others are hearing) is never restarted.
      const origin = switched ? this.pipelineBefore(previousMix, codec, frame.tick) : undefined;
      stream = this.createStream(frame.mixId, codec, origin);
    }
    if (stream.tick === frame.tick) return stream.payload;

    stream.beforeTick = this.switchingTick === frame.tick ? forkPipeline(stream.pipeline) : undefined;
    const pcm = stream.pipeline.resampler.process(frame.pcm, frame.sampleRate, codec.sampleRate);
    stream.payload = stream.pipeline.encoder.encode(pcm);
    stream.tick = frame.tick;
    return stream.payload;
  }

  /** Forget a listener and its own stream (the mixer calls this on leave). */
  dropListener(listenerId: string, ownMixId: number): void {
    this.listenerStream.delete(listenerId);
    this.streams.delete(ownMixId);
  }

  /** Drop streams nobody encoded for a while. */
  sweep(tick: number): void {
    for (const [mixId, byCodec] of this.streams) {
      for (const [codec, s] of byCodec) if (s.tick < tick - idleStreamTicks) byCodec.delete(codec);
      if (byCodec.size === 0) this.streams.delete(mixId);
    }
  }

  /** The encoder state the listener's decoder is in at the start of `tick`, as a fresh copy. */
  private pipelineBefore(mixId: number, codec: Codec, tick: number): Pipeline | undefined {
    const s = this.streams.get(mixId)?.get(codec);
    if (!s) return undefined;
    if (s.tick === tick) return s.beforeTick ? forkPipeline(s.beforeTick) : undefined;
    if (s.tick === tick - 1) return forkPipeline(s.pipeline);
    return undefined;
  }

  private createStream(mixId: number, codec: Codec, origin: Pipeline | undefined): EncodedStream {
    const pipeline = origin ?? {
      resampler: new SwitchingResampler(),
      encoder: codec.createEncoder(),
    };
    const stream: EncodedStream = { pipeline, beforeTick: undefined, tick: -1, payload: new Uint8Array(0) };
    let byCodec = this.streams.get(mixId);
    if (!byCodec) {
      byCodec = new Map();
      this.streams.set(mixId, byCodec);
    }
    byCodec.set(codec, stream);
    return stream;
  }
}
