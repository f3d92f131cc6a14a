// DTMF: RFC 4733 telephone-event payloads (receive and send) and in-band DTMF tones.
import { goertzelPower, meanSquare } from "./goertzel.ts";

/** RFC 4733 §3.2 event codes 0–15. */
const digits = "0123456789*#ABCD";

export function digitToEvent(digit: string): number | undefined {
  const i = digits.indexOf(digit.toUpperCase());
  return i < 0 || digit.length !== 1 ? undefined : i;
}

export function eventToDigit(event: number): string | undefined {
  return digits[event];
}

/** RFC 4733 §2.3 payload: event, E(nd) bit, volume (−dBm0, 0–63), duration in RTP clock units. */
export interface TelephoneEvent {
  event: number;
  end: boolean;
  volume: number;
  duration: number;
}

export function encodeTelephoneEvent(e: TelephoneEvent): Uint8Array {
  const out = new Uint8Array(4);
  out[0] = e.event & 0xff;
  out[1] = (e.end ? 0x80 : 0) | (e.volume & 0x3f);
  out[2] = (e.duration >> 8) & 0xff;
  out[3] = e.duration & 0xff;
  return out;
}

export function decodeTelephoneEvent(payload: Uint8Array): TelephoneEvent | undefined {
  if (payload.length < 4) return undefined;
  const b1 = payload[1] ?? 0;
  return {
    event: payload[0] ?? 0,
    end: (b1 & 0x80) !== 0,
    volume: b1 & 0x3f,
    duration: ((payload[2] ?? 0) << 8) | (payload[3] ?? 0),
  };
}

export interface DtmfEvent {
  digit: string;
  durationMs: number;
}

export interface TelephoneEventPacket {
  timestamp: number;
  marker: boolean;
  payload: Uint8Array;
}

/** Recently finished event timestamps remembered to drop late redundant end packets. */
const finishedMemory = 8;

/**
 * Turns a stream of telephone-event RTP packets into digits, one callback per key press.
 * An event is identified by its RTP timestamp (RFC 4733 §2.5.1.3: all packets of one event share
 * the start timestamp), so a missing marker bit does not matter. The digit is reported when the
 * first end packet arrives (§2.5.1.4); its retransmissions (§2.5.1.4: end packets are sent three
 * times) are dropped. If the end packets are all lost, a packet of a new event, or finish(),
 * reports the previous one with the last duration seen.
 */
export class DtmfReceiver {
  private current: { timestamp: number; event: number; duration: number } | undefined;
  private finished: number[] = [];

  constructor(
    private readonly onEvent: (e: DtmfEvent) => void,
    private readonly clockRate = 8000,
  ) {}

  receive(packet: TelephoneEventPacket): void {
    const te = decodeTelephoneEvent(packet.payload);
    if (!te || eventToDigit(te.event) === undefined) return;
    const ts = packet.timestamp >>> 0;
    if (this.finished.includes(ts)) return; // redundant end packet or late retransmission
    if (this.current && this.current.timestamp !== ts) this.finish();
    if (!this.current) this.current = { timestamp: ts, event: te.event, duration: te.duration };
    this.current.duration = Math.max(this.current.duration, te.duration);
    if (te.end) this.finish();
  }

  /** Reports an event still in progress (e.g. when the stream times out). */
  finish(): void {
    const c = this.current;
    if (!c) return;
    this.current = undefined;
    this.finished = [...this.finished.slice(-(finishedMemory - 1)), c.timestamp];
    this.onEvent({ digit: eventToDigit(c.event) ?? "", durationMs: Math.round((c.duration * 1000) / this.clockRate) });
  }
}

export interface DtmfSendOptions {
  durationMs?: number;
  /** Packet interval, normally the audio ptime. */
  packetMs?: number;
  clockRate?: number;
  /** Power level in −dBm0 (RFC 4733 §2.3.4). */
  volume?: number;
}

export interface ScheduledEventPacket {
  /** Send time relative to the first packet. */
  atMs: number;
  marker: boolean;
  payload: Uint8Array;
}

/**
 * The packets for one key press (RFC 4733 §2.5.1): the first with the marker bit, one per packet
 * interval with growing duration, then the final duration with the E bit three times. All carry
 * the event's start timestamp; the RTP session assigns it and consecutive sequence numbers.
 * Returns undefined for a character that is not a DTMF digit.
 */
export function telephoneEventPackets(digit: string, o: DtmfSendOptions = {}): ScheduledEventPacket[] | undefined {
  const event = digitToEvent(digit);
  if (event === undefined) return undefined;
  const durationMs = o.durationMs ?? 100;
  const packetMs = o.packetMs ?? 20;
  const clockRate = o.clockRate ?? 8000;
  const volume = o.volume ?? 10;
  const units = (ms: number) => Math.min(0xffff, Math.round((ms * clockRate) / 1000));
  const packets: ScheduledEventPacket[] = [];
  let elapsed = packetMs;
  for (; elapsed < durationMs; elapsed += packetMs) {
    packets.push({
      atMs: elapsed - packetMs,
      marker: packets.length === 0,
      payload: encodeTelephoneEvent({ event, end: false, volume, duration: units(elapsed) }),
    });
  }
  const end = encodeTelephoneEvent({ event, end: true, volume, duration: units(durationMs) });
  for (let i = 0; i < 3; i++) {
    packets.push({ atMs: durationMs - packetMs + i * packetMs, marker: packets.length === 0, payload: end });
  }
  return packets;
}

/** Row and column frequencies (ITU-T Q.23). */
const rowFreqs = [697, 770, 852, 941];
const colFreqs = [1209, 1336, 1477, 1633];
const keypad = ["123A", "456B", "789C", "*0#D"];

function tonePair(digit: string): [number, number] | undefined {
  for (let r = 0; r < 4; r++) {
    const c = keypad[r]?.indexOf(digit.toUpperCase()) ?? -1;
    if (c >= 0 && digit.length === 1) return [rowFreqs[r] ?? 0, colFreqs[c] ?? 0];
  }
  return undefined;
}

/**
 * In-band DTMF for peers without telephone-event: queued digits become tone bursts and gaps,
 * produced frame by frame with continuous phase, to be sent in place of (or mixed into) audio.
 */
export class InbandDtmfGenerator {
  private queue: { freqs: [number, number] | undefined; samplesLeft: number }[] = [];
  private phase = 0;

  constructor(
    private readonly sampleRate: number,
    /** Peak amplitude per tone; default ≈ −9 dBFS each, the pair stays clear of clipping. */
    private readonly amplitude = 11000,
  ) {}

  /** Queues a digit; returns false for a character that is not a DTMF digit. */
  queueDigit(digit: string, durationMs = 100, gapMs = 60): boolean {
    const freqs = tonePair(digit);
    if (!freqs) return false;
    this.queue.push({ freqs, samplesLeft: Math.round((durationMs * this.sampleRate) / 1000) });
    this.queue.push({ freqs: undefined, samplesLeft: Math.round((gapMs * this.sampleRate) / 1000) });
    return true;
  }

  get pending(): boolean {
    return this.queue.length > 0;
  }

  /** Next `samples` of tone/gap audio, or undefined when nothing is queued. */
  nextFrame(samples: number): Int16Array | undefined {
    if (this.queue.length === 0) return undefined;
    const out = new Int16Array(samples);
    let i = 0;
    while (i < samples && this.queue.length > 0) {
      const seg = this.queue[0] as { freqs: [number, number] | undefined; samplesLeft: number };
      const n = Math.min(seg.samplesLeft, samples - i);
      if (seg.freqs) {
        const [lo, hi] = seg.freqs;
        for (let k = 0; k < n; k++, this.phase++) {
          const t = this.phase / this.sampleRate;
          out[i + k] = Math.round(this.amplitude * (Math.sin(2 * Math.PI * lo * t) + Math.sin(2 * Math.PI * hi * t)));
        }
      } else this.phase = 0;
      i += n;
      seg.samplesLeft -= n;
      if (seg.samplesLeft === 0) this.queue.shift();
    }
    return out;
  }
}

/**
 * The DTMF digit present in a block of audio (≥ 20 ms recommended), or undefined. Requires one
 * strong row and one strong column tone that together carry most of the block's power.
 */
export function detectDtmfDigit(pcm: Int16Array, sampleRate: number): string | undefined {
  const total = meanSquare(pcm);
  if (total < 1e4) return undefined;
  const strongest = (freqs: number[]) => {
    let best = 0;
    let power = -1;
    freqs.forEach((f, i) => {
      const p = goertzelPower(pcm, sampleRate, f);
      if (p > power) {
        power = p;
        best = i;
      }
    });
    return { index: best, power };
  };
  const row = strongest(rowFreqs);
  const col = strongest(colFreqs);
  if ((row.power + col.power) / total < 0.6) return undefined;
  // Twist: the two tones within 8 dB of each other (ITU-T Q.24).
  const twist = row.power / col.power;
  if (twist > 6.3 || twist < 1 / 6.3) return undefined;
  return keypad[row.index]?.[col.index];
}
