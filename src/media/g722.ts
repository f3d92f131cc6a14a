// ITU-T G.722 sub-band ADPCM, 64 kbit/s mode (6 bits low band + 2 bits high band per 16 kHz pair).
// Structure and block names follow the ITU-T G.722 (1988) description (QMF, QUANTL, INVQAL, LOGSCL,
// SCALEL, and block 4's UPPOL/UPZERO/FILTEP/FILTEZ/PREDIC), in integer arithmetic as the
// recommendation specifies. RTP: 16 kHz audio but an 8000 Hz RTP clock (RFC 3551 §4.5.2).
import type { AudioDecoder, AudioEncoder, Codec } from "./codec.ts";
import { RepeatFadeConcealer } from "./conceal.ts";

function sat16(v: number): number {
  return v > 32767 ? 32767 : v < -32768 ? -32768 : v;
}

// QMF coefficients (G.722 §3.1 / §4.4), symmetric 24-tap filter pair.
const qmfCoeffs = [3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11];

// Low band quantiser decision levels and codes (Table 6/G.722).
const q6 = [0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940, 1023,
  1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919, 0, 0];
const iln = [0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10,
  9, 8, 7, 6, 5, 4, 0];
const ilp = [0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39, 38,
  37, 36, 35, 34, 33, 32, 0];
// Log scale factor adaptation (Table 7 and 8/G.722).
const wl = [-60, -30, 58, 172, 334, 538, 1198, 3042];
const rl42 = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
const ilb = [2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
  2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008];
// Inverse quantisers: 4-bit (for prediction) and 6-bit (for the 64 kbit/s output) low band, 2-bit high band.
const qm4 = [0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584, 1200, 0];
const qm6 = [-136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232,
  -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776, -2400, -2032, -1688,
  -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280, 11192, 10232, 9360, 8576, 7856, 7192,
  6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776, 2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136];
const qm2 = [-7408, -1616, 7408, 1616];
const ihn = [0, 1, 0];
const ihp = [0, 3, 2];
const wh = [0, -214, 798];
const rh2 = [2, 1, 2, 1];

/** Adaptive predictor state of one sub-band. */
class Band {
  s = 0; // predicted signal
  sp = 0; // pole section output
  sz = 0; // zero section output
  r = new Int32Array(3); // reconstructed signal
  a = new Int32Array(3); // pole coefficients
  ap = new Int32Array(3);
  p = new Int32Array(3); // partially reconstructed signal
  d = new Int32Array(7); // quantised difference signal
  b = new Int32Array(7); // zero coefficients
  bp = new Int32Array(7);
  sg = new Int32Array(7);
  nb = 0; // log scale factor
  det: number; // scale factor

  constructor(det: number) {
    this.det = det;
  }

  clone(): Band {
    const c = new Band(this.det);
    c.s = this.s;
    c.sp = this.sp;
    c.sz = this.sz;
    c.nb = this.nb;
    for (const key of ["r", "a", "ap", "p", "d", "b", "bp", "sg"] as const) c[key].set(this[key]);
    return c;
  }

  /** LOGSCL/SCALEL (low band) or LOGSCH/SCALEH (high band): adapt the quantiser scale factor. */
  adaptScale(wdelta: number, nbMax: number, shiftBase: number): void {
    let nb = ((this.nb * 127) >> 7) + wdelta;
    if (nb < 0) nb = 0;
    else if (nb > nbMax) nb = nbMax;
    this.nb = nb;
    const wd1 = (nb >> 6) & 31;
    const wd2 = shiftBase - (nb >> 11);
    const base = ilb[wd1] as number;
    const wd3 = wd2 < 0 ? base << -wd2 : base >> wd2;
    this.det = wd3 << 2;
  }

  /** Block 4: reconstruct, adapt the pole/zero predictor and predict the next sample. */
  update(d: number): void {
    const r = this.r;
    const p = this.p;
    const a = this.a;
    const ap = this.ap;
    const b = this.b;
    const bp = this.bp;
    const sg = this.sg;
    const dd = this.d;
    // RECONS, PARREC
    dd[0] = d;
    r[0] = sat16(this.s + d);
    p[0] = sat16(this.sz + d);
    // UPPOL2
    sg[0] = (p[0] as number) >> 15;
    sg[1] = (p[1] as number) >> 15;
    sg[2] = (p[2] as number) >> 15;
    let wd1 = sat16((a[1] as number) << 2);
    let wd2 = sg[0] === sg[1] ? -wd1 : wd1;
    if (wd2 > 32767) wd2 = 32767;
    let wd3 = sg[0] === sg[2] ? 128 : -128;
    wd3 += wd2 >> 7;
    wd3 += ((a[2] as number) * 32512) >> 15;
    if (wd3 > 12288) wd3 = 12288;
    else if (wd3 < -12288) wd3 = -12288;
    ap[2] = wd3;
    // UPPOL1
    wd1 = sg[0] === sg[1] ? 192 : -192;
    wd2 = ((a[1] as number) * 32640) >> 15;
    let ap1 = sat16(wd1 + wd2);
    wd3 = sat16(15360 - wd3);
    if (ap1 > wd3) ap1 = wd3;
    else if (ap1 < -wd3) ap1 = -wd3;
    ap[1] = ap1;
    // UPZERO
    wd1 = d === 0 ? 0 : 128;
    const sign = d >> 15;
    for (let i = 1; i < 7; i++) {
      wd2 = (dd[i] as number) >> 15 === sign ? wd1 : -wd1;
      wd3 = ((b[i] as number) * 32640) >> 15;
      bp[i] = sat16(wd2 + wd3);
    }
    // DELAYA
    for (let i = 6; i > 0; i--) {
      dd[i] = dd[i - 1] as number;
      b[i] = bp[i] as number;
    }
    r[2] = r[1] as number;
    r[1] = r[0] as number;
    p[2] = p[1] as number;
    p[1] = p[0] as number;
    a[2] = ap[2] as number;
    a[1] = ap[1] as number;
    // FILTEP
    wd1 = sat16((r[1] as number) * 2);
    wd1 = ((a[1] as number) * wd1) >> 15;
    wd2 = sat16((r[2] as number) * 2);
    wd2 = ((a[2] as number) * wd2) >> 15;
    this.sp = sat16(wd1 + wd2);
    // FILTEZ
    let sz = 0;
    for (let i = 6; i > 0; i--) sz += ((b[i] as number) * sat16((dd[i] as number) * 2)) >> 15;
    this.sz = sat16(sz);
    // PREDIC
    this.s = sat16(this.sp + this.sz);
  }
}

/** Encoder state: transmit QMF history plus the two sub-band predictors. */
export class G722Encoder implements AudioEncoder {
  private x = new Int32Array(22 + 320);
  private low = new Band(32);
  private high = new Band(8);

  /** 16 kHz PCM (even length) → one byte per pair of samples. */
  encode(pcm: Int16Array): Uint8Array {
    const pairs = pcm.length >> 1;
    const out = new Uint8Array(pairs);
    // QMF input line: 22 samples of history, then this frame, so the filter slides without copying.
    const x = this.qmfLine(pcm.length);
    x.set(pcm.subarray(0, pairs * 2), 22);
    for (let n = 0; n < pairs; n++) {
      // Transmit QMF: split into 8 kHz low and high bands (§3.1).
      const base = 2 * n;
      let sumEven = 0;
      let sumOdd = 0;
      for (let i = 0; i < 12; i++) {
        sumOdd += (x[base + 2 * i] as number) * (qmfCoeffs[i] as number);
        sumEven += (x[base + 2 * i + 1] as number) * (qmfCoeffs[11 - i] as number);
      }
      out[n] = this.encodeBands((sumEven + sumOdd) >> 14, (sumEven - sumOdd) >> 14);
    }
    x.copyWithin(0, pairs * 2, pairs * 2 + 22);
    return out;
  }

  private qmfLine(samples: number): Int32Array {
    if (this.x.length < samples + 22) {
      const grown = new Int32Array(samples + 22);
      grown.set(this.x.subarray(0, 22));
      this.x = grown;
    }
    return this.x;
  }

  /** ADPCM-codes one low-band and one high-band sample (15-bit) into a 64 kbit/s code byte. */
  encodeBands(xlow: number, xhigh: number): number {
    const low = this.low;
    const high = this.high;
    // Low band: SUBTRA, QUANTL (6 bits), INVQAL, LOGSCL/SCALEL, block 4.
    const el = sat16(xlow - low.s);
    let wd = el >= 0 ? el : -(el + 1);
    // First decision level above wd (levels grow with i, so a binary search equals the linear scan).
    const det = low.det;
    let lo = 1;
    let hi = 30;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (wd < (((q6[mid] as number) * det) >> 12)) hi = mid;
      else lo = mid + 1;
    }
    const i = lo;
    const ilow = el < 0 ? (iln[i] ?? 0) : (ilp[i] ?? 0);
    const ril = ilow >> 2;
    const dlow = (low.det * (qm4[ril] ?? 0)) >> 15;
    low.adaptScale(wl[rl42[ril] ?? 0] ?? 0, 18432, 8);
    low.update(dlow);

    // High band: SUBTRA, QUANTH (2 bits), INVQAH, LOGSCH/SCALEH, block 4.
    const eh = sat16(xhigh - high.s);
    wd = eh >= 0 ? eh : -(eh + 1);
    const mih = wd >= ((564 * high.det) >> 12) ? 2 : 1;
    const ihigh = eh < 0 ? (ihn[mih] ?? 0) : (ihp[mih] ?? 0);
    const dhigh = (high.det * (qm2[ihigh] ?? 0)) >> 15;
    high.adaptScale(wh[rh2[ihigh] ?? 0] ?? 0, 22528, 10);
    high.update(dhigh);

    return (ihigh << 6) | ilow;
  }

  fork(): G722Encoder {
    const c = new G722Encoder();
    c.x = this.x.slice();
    c.low = this.low.clone();
    c.high = this.high.clone();
    return c;
  }
}

export class G722Decoder implements AudioDecoder {
  /** Receive QMF line: 22 samples of history, then this frame's band sums. */
  private x = new Int32Array(22 + 320);
  private low = new Band(32);
  private high = new Band(8);
  private plc = new RepeatFadeConcealer();
  /** High-band output of the last decodeBands call. */
  lastHigh = 0;

  /** One byte per pair of 16 kHz samples. */
  decode(payload: Uint8Array): Int16Array {
    const out = new Int16Array(payload.length * 2);
    if (this.x.length < payload.length * 2 + 22) {
      const grown = new Int32Array(payload.length * 2 + 22);
      grown.set(this.x.subarray(0, 22));
      this.x = grown;
    }
    const x = this.x;
    for (let j = 0; j < payload.length; j++) {
      const rlow = this.decodeBands(payload[j] as number);
      const rhigh = this.lastHigh;
      // Receive QMF: recombine the bands into two 16 kHz samples (§4.4).
      const base = 2 * j;
      x[base + 22] = rlow + rhigh;
      x[base + 23] = rlow - rhigh;
      let xout1 = 0;
      let xout2 = 0;
      for (let i = 0; i < 12; i++) {
        xout2 += (x[base + 2 * i] as number) * (qmfCoeffs[i] as number);
        xout1 += (x[base + 2 * i + 1] as number) * (qmfCoeffs[11 - i] as number);
      }
      out[base] = sat16(xout1 >> 11);
      out[base + 1] = sat16(xout2 >> 11);
    }
    x.copyWithin(0, payload.length * 2, payload.length * 2 + 22);
    this.plc.remember(out);
    return out;
  }

  /**
   * Decodes one 64 kbit/s code byte into its reconstructed low-band sample (returned) and
   * high-band sample (`lastHigh`), both 15-bit.
   */
  decodeBands(code: number): number {
    const low = this.low;
    const high = this.high;
    const ilow = code & 0x3f;
    const ihigh = (code >> 6) & 0x03;

    // Low band: INVQBL with the 6-bit quantiser for output, RECONS, LIMIT.
    let rlow = low.s + ((low.det * (qm6[ilow] ?? 0)) >> 15);
    if (rlow > 16383) rlow = 16383;
    else if (rlow < -16384) rlow = -16384;
    // INVQAL with the 4-bit quantiser drives adaptation, exactly as in the encoder.
    const ril = ilow >> 2;
    const dlow = (low.det * (qm4[ril] ?? 0)) >> 15;
    low.adaptScale(wl[rl42[ril] ?? 0] ?? 0, 18432, 8);
    low.update(dlow);

    // High band: INVQAH, RECONS, LIMIT.
    const dhigh = (high.det * (qm2[ihigh] ?? 0)) >> 15;
    let rhigh = dhigh + high.s;
    if (rhigh > 16383) rhigh = 16383;
    else if (rhigh < -16384) rhigh = -16384;
    high.adaptScale(wh[rh2[ihigh] ?? 0] ?? 0, 22528, 10);
    high.update(dhigh);

    this.lastHigh = rhigh;
    return rlow;
  }

  conceal(samples: number): Int16Array {
    return this.plc.conceal(samples);
  }
}

export const g722: Codec = {
  name: "G722",
  staticPayloadType: 9, // RFC 3551 §6 table 4
  rtpClockRate: 8000, // RFC 3551 §4.5.2 quirk: 16 kHz audio, 8000 Hz timestamps
  sampleRate: 16000,
  createEncoder: () => new G722Encoder(),
  createDecoder: () => new G722Decoder(),
};
