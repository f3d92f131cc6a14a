// Ogg Opus files (RFC 7845) written packet by packet: an ID header page (OpusHead), a comment
// header page (OpusTags), then audio pages of whole Opus packets, the last one flagged end of stream.
// Pages follow RFC 3533; the encoder's lookahead is written as pre-skip, so decoders drop it.
//
//   const ogg = new OggOpusWriter({ preSkip: 312, serial });
//   file.write(ogg.headers());
//   for each 20 ms packet: const page = ogg.packet(bytes, 960); if (page) file.write(page);
//   file.write(ogg.finish(encode(silentFrame)));   // flushes the encoder's lookahead
//
// A page is written only once a packet follows it, so the last page always has packets to carry
// the end-of-stream flag, and the final granule position trims the padding (RFC 7845 §4.4).

const crcTable = (() => {
  // RFC 3533 §6: CRC-32, generator polynomial 0x04c11db7, no reflection, initial value 0, no final XOR.
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let r = i << 24;
    for (let k = 0; k < 8; k++) r = r & 0x80000000 ? (r << 1) ^ 0x04c11db7 : r << 1;
    table[i] = r >>> 0;
  }
  return table;
})();

export function oggCrc(bytes: Uint8Array): number {
  let crc = 0;
  for (let i = 0; i < bytes.length; i++) crc = ((crc << 8) ^ (crcTable[((crc >>> 24) ^ (bytes[i] as number)) & 0xff] as number)) >>> 0;
  return crc;
}

const BOS = 0x02;
const EOS = 0x04;

export interface OggOpusOptions {
  /** Samples at 48 kHz the decoder discards at the start (the encoder's lookahead), RFC 7845 §4.2. */
  preSkip: number;
  /** Bitstream serial number (RFC 3533 §6), random per file. */
  serial: number;
  /** The rate the audio had before encoding, informational (RFC 7845 §5.1). */
  inputSampleRate?: number;
  /** Written as the vendor string of OpusTags. */
  vendor?: string;
  /** Packets per audio page (default 50: one page per second of 20 ms packets). */
  packetsPerPage?: number;
}

export class OggOpusWriter {
  private sequence = 0;
  /** Samples at 48 kHz of every packet on pages written so far (RFC 7845 §4: pre-skip included). */
  private granule = 0;
  /** Samples of the input audio (packets given to packet()). */
  private inputSamples = 0;
  private pending: Uint8Array[] = [];
  private pendingSamples: number[] = [];
  private readonly packetsPerPage: number;

  constructor(private readonly o: OggOpusOptions) {
    // One slot is kept for the padding packet finish() may add to the last page.
    this.packetsPerPage = Math.min(o.packetsPerPage ?? 50, 254);
  }

  /** The two header pages, each alone on its page as RFC 7845 §3 requires. */
  headers(): Uint8Array {
    // RFC 7845 §5.1: ID header.
    const head = new Uint8Array(19);
    const view = new DataView(head.buffer);
    head.set(new TextEncoder().encode("OpusHead"), 0);
    head[8] = 1; // version
    head[9] = 1; // channels: mono
    view.setUint16(10, this.o.preSkip, true);
    view.setUint32(12, this.o.inputSampleRate ?? 48000, true);
    view.setInt16(16, 0, true); // output gain
    head[18] = 0; // channel mapping family 0: mono or stereo, no mapping table
    // RFC 7845 §5.2: comment header, vendor string and no user comments.
    const vendor = new TextEncoder().encode(this.o.vendor ?? "Trunkline");
    const tags = new Uint8Array(8 + 4 + vendor.length + 4);
    const tagsView = new DataView(tags.buffer);
    tags.set(new TextEncoder().encode("OpusTags"), 0);
    tagsView.setUint32(8, vendor.length, true);
    tags.set(vendor, 12);
    tagsView.setUint32(12 + vendor.length, 0, true);
    return concat([this.page([head], BOS, 0), this.page([tags], 0, 0)]);
  }

  /** Adds one Opus packet of `samples` (at 48 kHz); returns a page once a full page's packets are followed by another. */
  packet(bytes: Uint8Array, samples: number): Uint8Array | undefined {
    this.inputSamples += samples;
    let page: Uint8Array | undefined;
    if (this.pending.length === this.packetsPerPage) {
      const done = this.pendingSamples.reduce((n, k) => n + k, 0);
      page = this.page(this.pending, 0, this.granule + done);
      this.granule += done;
      this.pending = [];
      this.pendingSamples = [];
    }
    this.pending.push(bytes);
    this.pendingSamples.push(samples);
    return page;
  }

  /**
   * The last page (end of stream): the pending packets and `padding`, a packet of silence encoded
   * after the input so the encoder's lookahead is flushed; its granule position ends the stream
   * exactly where the input ended (RFC 7845 §4.4: the decoder discards what lies beyond).
   */
  finish(padding: Uint8Array): Uint8Array {
    return this.page([...this.pending, padding], EOS, this.o.preSkip + this.inputSamples);
  }

  /** One page holding whole packets (RFC 3533 §6); the caller keeps it to at most 255 segments. */
  private page(packets: Uint8Array[], flags: number, granule: number): Uint8Array {
    const lacing: number[] = [];
    for (const p of packets) {
      // Lacing values: 255 for each full 255-byte segment, then the remainder (0 when it divides evenly).
      for (let n = p.length; ; n -= 255) {
        if (n < 255) {
          lacing.push(n);
          break;
        }
        lacing.push(255);
      }
    }
    if (lacing.length > 255) throw new Error("ogg page would exceed 255 segments");
    const bodyLength = packets.reduce((n, p) => n + p.length, 0);
    const page = new Uint8Array(27 + lacing.length + bodyLength);
    const view = new DataView(page.buffer);
    page.set([0x4f, 0x67, 0x67, 0x53], 0); // "OggS"
    page[4] = 0; // stream structure version
    page[5] = flags;
    view.setBigUint64(6, BigInt(granule), true);
    view.setUint32(14, this.o.serial >>> 0, true);
    view.setUint32(18, this.sequence++, true);
    view.setUint32(22, 0, true); // CRC, computed over the page with this field zero
    page[26] = lacing.length;
    page.set(lacing, 27);
    let at = 27 + lacing.length;
    for (const p of packets) {
      page.set(p, at);
      at += p.length;
    }
    view.setUint32(22, oggCrc(page), true);
    return page;
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
