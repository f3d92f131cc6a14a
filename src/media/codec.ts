// Audio codec registry: the codecs a media leg can negotiate, behind one encoder/decoder shape.
//
// Every encoder takes one frame of mono 16-bit PCM at the codec's `sampleRate` and returns the RTP
// payload; every decoder returns a freshly allocated Int16Array (callers may keep it).
// `rtpClockRate` is what goes into SDP and RTP timestamps; it differs from `sampleRate` for G.722
// (RFC 3551 §4.5.2: G.722 samples at 16 kHz but its RTP clock rate is 8000, "an error in RFC 1890"
// kept for compatibility), so RTP timestamp units per frame = frameMs * rtpClockRate / 1000.
import { g711a, g711u } from "./g711.ts";
import { g722 } from "./g722.ts";
import { opus } from "./opus.ts";

export interface AudioEncoder {
  /** Encodes one frame (mono, at the codec's sampleRate) into an RTP payload, valid until the next encode() (copy to keep it). */
  encode(pcm: Int16Array): Uint8Array;
  /**
   * A new encoder in exactly this encoder's state, so a listener moving between output streams
   * keeps a decodable stream. Absent when the underlying library cannot copy its state (Opus).
   */
  fork?(): AudioEncoder;
}

export interface AudioDecoder {
  /** Decodes one RTP payload; always a fresh array. Corrupt payloads yield concealment, never a throw. */
  decode(payload: Uint8Array): Int16Array;
  /** Packet loss concealment for `samples` missing samples at the codec's sampleRate. */
  conceal(samples: number): Int16Array;
}

export type CodecName = "PCMU" | "PCMA" | "G722" | "opus";

export interface Codec {
  name: CodecName;
  /** RFC 3551 static payload type, when there is one. */
  staticPayloadType?: number;
  /** Clock rate written in SDP rtpmap and used for RTP timestamps. */
  rtpClockRate: number;
  /** Sample rate of the PCM the encoder takes and the decoder returns. */
  sampleRate: number;
  /** Channel count written in SDP rtpmap (opus/48000/2, RFC 7587 §7); audio is mono regardless. */
  sdpChannels?: number;
  /**
   * Payload bytes of one 20 ms frame, for a codec whose every packet decodes on its own (G.711): another
   * source's 20 ms packets can then be spliced into a stream at any packet (relay.ts). Absent when
   * packets carry codec state.
   */
  relayFrameBytes?: number;
  createEncoder(): AudioEncoder;
  createDecoder(): AudioDecoder;
}

export const codecs: readonly Codec[] = [g711u, g711a, g722, opus];

export function codecByName(name: string): Codec | undefined {
  const wanted = name.toLowerCase();
  return codecs.find((c) => c.name.toLowerCase() === wanted);
}

export function codecByStaticPayloadType(pt: number): Codec | undefined {
  return codecs.find((c) => c.staticPayloadType === pt);
}

/** PCM samples in one frame of `frameMs` at the codec's sample rate. */
export function samplesPerFrame(codec: Codec, frameMs: number): number {
  return (codec.sampleRate * frameMs) / 1000;
}

/** RTP timestamp increment for one frame of `frameMs`. */
export function rtpTimestampsPerFrame(codec: Codec, frameMs: number): number {
  return (codec.rtpClockRate * frameMs) / 1000;
}
