// Opus (RFC 6716 / RFC 7587) through @evan/opus: 48 kHz mono internally, rtpmap opus/48000/2.
// libopus runs as WebAssembly with memory of each thread's own (opus-wasm.ts says why not the
// binding's native addon); results are fresh copies, used as they are.
// Loss concealment uses Opus's own PLC: a packet holding only a TOC byte has a zero-length frame,
// which the decoder treats as lost (RFC 6716 §3.2.1) and fills from its internal state.
// The encoders' application (config `media.opusApplication`) picks the codec inside Opus:
// - "lowdelay" (the default; OPUS_APPLICATION_RESTRICTED_LOWDELAY): CELT only (RFC 6716 §2), at
//   40 kbit/s. On speech it costs about a third of "voip"'s CPU per encode and its lookahead is
//   2.5 ms instead of 6.5 ms; its log-spectral distance to the original measured the same as
//   "voip" at 32 kbit/s (one to three espeak voices: 5.5–5.7 vs 6.0–6.3 dB over 0–8 kHz, 7.5–7.7 vs
//   7.4–7.7 dB over 0–20 kHz). CELT has no in-band FEC.
// - "voip" (OPUS_APPLICATION_VOIP): hybrid (SILK + CELT) on speech at 32 kbit/s, at about three
//   times the encoding CPU. It asks for in-band FEC (RFC 6716 §2.1.7), but at 32 kbit/s fullband
//   libopus leaves no room for it: its packets measured byte for byte the same with FEC off.
// Received FEC data is not used for recovery here (decode_fec 0).
// Encoder complexity defaults to 5 (config `media.opusComplexity`), what libwebrtc uses on mobile:
// on speech at 32 kbit/s it costs about 60 % of complexity 10's CPU, and its spectral distance to the
// original over 0–8 kHz measured the same as 10's (6.98 vs 6.95 dB log-spectral distance, two espeak
// voices mixed). A mixing server encodes a stream per distinct mix, so this is most of its Opus cost.
import { WasmOpusDecoder, WasmOpusEncoder } from "./opus-wasm.ts";
import type { AudioDecoder, AudioEncoder, Codec } from "./codec.ts";

const sampleRate = 48000;

export type OpusComplexity = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10;
let defaultComplexity: OpusComplexity = 5;

/** Sets the complexity of Opus encoders created from now on without their own (config `media.opusComplexity`). */
export function setDefaultOpusComplexity(complexity: OpusComplexity): void {
  defaultComplexity = complexity;
}

export type OpusApplication = "lowdelay" | "voip";
let defaultApplication: OpusApplication = "lowdelay";

/** Sets the application of Opus encoders created from now on without their own (config `media.opusApplication`). */
export function setDefaultOpusApplication(application: OpusApplication): void {
  defaultApplication = application;
}

/** Per application: its opus_defines.h `OPUS_APPLICATION_*` and its bitrate. */
const applications: Record<OpusApplication, { code: number; bitrate: number }> = {
  lowdelay: { code: 2051, bitrate: 40000 },
  voip: { code: 2048, bitrate: 32000 },
};

export interface OpusEncoderOptions {
  /** Default `media.opusApplication` ("lowdelay"). */
  application?: OpusApplication;
  /** Default: the application's (40 kbit/s "lowdelay", 32 kbit/s "voip"). */
  bitrate?: number;
  /** Expected loss percentage; drives how much in-band FEC the encoder adds. */
  packetLossPercent?: number;
  /** In-band FEC for peers that lose packets (default on; a file loses none). SILK's: "voip" only, and only where the bitrate leaves room. */
  inbandFec?: boolean;
  /** 0 (cheapest) to 10 (best); default `media.opusComplexity` (5). */
  complexity?: OpusComplexity;
}

export interface OpusEncoder extends AudioEncoder {
  /** Samples at 48 kHz the decoder's output lags the input (an Ogg file's pre-skip). */
  readonly lookahead: number;
}

/** Encoder CTL requests (opus_defines.h). */
const setBitrate = 4002;
const setComplexity = 4010;
const setInbandFec = 4012;
const setPacketLossPercent = 4014;
const getLookahead = 4027;

export function createOpusEncoder(o: OpusEncoderOptions = {}): OpusEncoder {
  const application = applications[o.application ?? defaultApplication];
  const enc = new WasmOpusEncoder(sampleRate, 1, application.code);
  enc.set(setBitrate, o.bitrate ?? application.bitrate);
  enc.set(setInbandFec, (o.inbandFec ?? true) ? 1 : 0);
  enc.set(setPacketLossPercent, o.packetLossPercent ?? 5);
  enc.set(setComplexity, o.complexity ?? defaultComplexity);
  return {
    lookahead: enc.get(getLookahead),
    encode(pcm) {
      return enc.encode(pcm);
    },
  };
}

/** TOC byte of a zero-length 20 ms (or 10 ms) frame in the same mode and bandwidth as `lastToc`. */
function concealmentToc(lastToc: number, want20ms: boolean): number {
  const config = lastToc >> 3;
  let lossConfig: number;
  if (config < 12) lossConfig = (config & ~3) + (want20ms ? 1 : 0); // SILK: 10/20/40/60 ms
  else if (config < 16) lossConfig = (config & ~1) + (want20ms ? 1 : 0); // Hybrid: 10/20 ms
  else lossConfig = (config & ~3) + (want20ms ? 3 : 2); // CELT: 2.5/5/10/20 ms
  return lossConfig << 3; // mono, code 0 (one frame)
}

export function createOpusDecoder(): AudioDecoder {
  const dec = new WasmOpusDecoder(sampleRate, 1);
  let lastToc = 31 << 3; // CELT fullband 20 ms until a real packet arrives
  const conceal = (samples: number): Int16Array => {
    const out = new Int16Array(samples);
    let filled = 0;
    while (filled < samples) {
      const left = samples - filled;
      const toc = concealmentToc(lastToc, left >= 960);
      let chunk: Int16Array;
      try {
        chunk = dec.decode(Uint8Array.of(toc));
      } catch {
        break; // leave the rest silent
      }
      if (chunk.length === 0) break;
      out.set(chunk.subarray(0, Math.min(chunk.length, left)), filled);
      filled += chunk.length;
    }
    return out;
  };
  return {
    decode(payload) {
      if (payload.length === 0) return conceal(960);
      try {
        const pcm = dec.decode(payload);
        lastToc = payload[0] ?? lastToc;
        return pcm;
      } catch {
        return conceal(960);
      }
    },
    conceal,
  };
}

export const opus: Codec = {
  name: "opus",
  rtpClockRate: sampleRate,
  sampleRate,
  sdpChannels: 2,
  createEncoder: () => createOpusEncoder(),
  createDecoder: createOpusDecoder,
};
