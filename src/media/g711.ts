// G.711 PCMU (µ-law) and PCMA (A-law), ITU-T G.711, by lookup table.
// Encode tables are indexed by the sample's significant bits (14 for µ-law, 13 for A-law), which is
// all the companding law looks at; decode tables map each byte to its 16-bit linear value.
import type { AudioDecoder, AudioEncoder, Codec } from "./codec.ts";
import { RepeatFadeConcealer } from "./conceal.ts";

const ulawSegEnd = [0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff, 0x1fff];
const alawSegEnd = [0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff];

function segmentOf(value: number, ends: number[]): number {
  for (let seg = 0; seg < ends.length; seg++) if (value <= (ends[seg] ?? 0)) return seg;
  return ends.length;
}

/** µ-law byte for a 14-bit signed sample (G.711 §2, bias 33 on the 14-bit scale). */
function linearToUlaw14(sample14: number): number {
  let v = sample14;
  let mask: number;
  if (v < 0) {
    v = -v;
    mask = 0x7f;
  } else mask = 0xff;
  if (v > 8159) v = 8159;
  v += 0x21;
  const seg = segmentOf(v, ulawSegEnd);
  if (seg >= 8) return 0x7f ^ mask;
  return ((seg << 4) | ((v >> (seg + 1)) & 0x0f)) ^ mask;
}

function ulawToLinear(byte: number): number {
  const u = ~byte & 0xff;
  let t = ((u & 0x0f) << 3) + 0x84;
  t <<= (u & 0x70) >> 4;
  return u & 0x80 ? 0x84 - t : t - 0x84;
}

/** A-law byte for a 13-bit signed sample (G.711 §3, even bits inverted with 0x55). */
function linearToAlaw13(sample13: number): number {
  let v = sample13;
  let mask: number;
  if (v >= 0) mask = 0xd5;
  else {
    mask = 0x55;
    v = -v - 1;
  }
  const seg = segmentOf(v, alawSegEnd);
  if (seg >= 8) return 0x7f ^ mask;
  const quant = seg < 2 ? (v >> 1) & 0x0f : (v >> seg) & 0x0f;
  return ((seg << 4) | quant) ^ mask;
}

function alawToLinear(byte: number): number {
  const a = byte ^ 0x55;
  let t = (a & 0x0f) << 4;
  const seg = (a & 0x70) >> 4;
  if (seg === 0) t += 8;
  else if (seg === 1) t += 0x108;
  else t = (t + 0x108) << (seg - 1);
  return a & 0x80 ? t : -t;
}

const ulawEncodeTable = new Uint8Array(1 << 14); // index: (sample >> 2) + 8192
const alawEncodeTable = new Uint8Array(1 << 13); // index: (sample >> 3) + 4096
const ulawDecodeTable = new Int16Array(256);
const alawDecodeTable = new Int16Array(256);
for (let i = 0; i < ulawEncodeTable.length; i++) ulawEncodeTable[i] = linearToUlaw14(i - 8192);
for (let i = 0; i < alawEncodeTable.length; i++) alawEncodeTable[i] = linearToAlaw13(i - 4096);
for (let b = 0; b < 256; b++) {
  ulawDecodeTable[b] = ulawToLinear(b);
  alawDecodeTable[b] = alawToLinear(b);
}

function encodeUlawInto(pcm: Int16Array, out: Uint8Array): Uint8Array {
  for (let i = 0; i < pcm.length; i++) out[i] = ulawEncodeTable[((pcm[i] ?? 0) >> 2) + 8192] ?? 0;
  return out;
}

function encodeAlawInto(pcm: Int16Array, out: Uint8Array): Uint8Array {
  for (let i = 0; i < pcm.length; i++) out[i] = alawEncodeTable[((pcm[i] ?? 0) >> 3) + 4096] ?? 0;
  return out;
}

export function encodeUlaw(pcm: Int16Array): Uint8Array {
  return encodeUlawInto(pcm, new Uint8Array(pcm.length));
}

export function encodeAlaw(pcm: Int16Array): Uint8Array {
  return encodeAlawInto(pcm, new Uint8Array(pcm.length));
}

function decodeWith(table: Int16Array, payload: Uint8Array): Int16Array {
  const out = new Int16Array(payload.length);
  for (let i = 0; i < payload.length; i++) out[i] = table[payload[i] ?? 0] ?? 0;
  return out;
}

export function decodeUlaw(payload: Uint8Array): Int16Array {
  return decodeWith(ulawDecodeTable, payload);
}

export function decodeAlaw(payload: Uint8Array): Int16Array {
  return decodeWith(alawDecodeTable, payload);
}

function g711Codec(
  name: "PCMU" | "PCMA",
  staticPayloadType: number,
  encodeInto: (pcm: Int16Array, out: Uint8Array) => Uint8Array,
  decode: (payload: Uint8Array) => Int16Array,
): Codec {
  const createEncoder = (): AudioEncoder => {
    // One output buffer per encoder, reused frame after frame (frames keep their length).
    let out = new Uint8Array(0);
    return {
      encode(pcm) {
        if (out.length !== pcm.length) out = new Uint8Array(pcm.length);
        return encodeInto(pcm, out);
      },
      fork: createEncoder,
    };
  };
  return {
    name,
    staticPayloadType,
    rtpClockRate: 8000,
    sampleRate: 8000,
    relayFrameBytes: 160,
    createEncoder,
    createDecoder(): AudioDecoder {
      const plc = new RepeatFadeConcealer();
      return {
        decode(payload) {
          const pcm = decode(payload);
          plc.remember(pcm);
          return pcm;
        },
        conceal: (samples) => plc.conceal(samples),
      };
    },
  };
}

// RFC 3551 §6 table 4: PCMU = 0, PCMA = 8.
export const g711u = g711Codec("PCMU", 0, encodeUlawInto, decodeUlaw);
export const g711a = g711Codec("PCMA", 8, encodeAlawInto, decodeAlaw);
