// Per-20-ms-tick costs of the audio building blocks: codec encode/decode, resampling, and the
// mixer for 2, 10 and 50 participants (at 48 kHz, and with PCMU out also as a channel of phones,
// which mixes at 8 kHz without resampling), and a phone leg's whole path without its sockets. Each
// figure is CPU time per 20 ms frame (fastest of several batches) and its share of the 20 ms tick on
// one core.
import { type Codec, codecByName } from "../src/media/codec.ts";
import { type MixerParticipant, Mixer } from "../src/media/mixer.ts";
import { createOpusDecoder, createOpusEncoder, type OpusApplication, type OpusComplexity } from "../src/media/opus.ts";
import { createResampler } from "../src/media/resample.ts";
import { ManualTicker } from "../src/media/ticker.ts";
import { measure } from "./cpu-time.ts";
import { phoneLegPathUs } from "./phone-leg-path.ts";
import { speechPacketCount, speechPackets } from "./speech.ts";

const tickUs = 20_000;

function sine(rate: number, freq: number, n: number, amplitude: number): Int16Array {
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.round(amplitude * Math.sin((2 * Math.PI * freq * i) / rate));
  return out;
}

const rows: [string, number][] = [];
function report(label: string, us: number): void {
  rows.push([label, us]);
  console.log(`${label.padEnd(58)} ${us.toFixed(1).padStart(8)} µs  ${((100 * us) / tickUs).toFixed(3).padStart(7)} % of tick`);
}

function codecRows(): void {
  for (const name of ["PCMU", "PCMA", "G722", "opus"]) {
    const codec = codecByName(name) as Codec;
    const n = (codec.sampleRate * 20) / 1000;
    const pcm = sine(codec.sampleRate, 440, n, 8000);
    const enc = codec.createEncoder();
    const dec = codec.createDecoder();
    const payload = enc.encode(pcm);
    const iterations = name === "opus" ? 300 : 3000;
    report(`${name} encode (20 ms, ${codec.sampleRate} Hz)`, measure(() => enc.encode(pcm), iterations));
    report(`${name} decode`, measure(() => dec.decode(payload), iterations));
  }
}

function resampleRows(): void {
  for (const [from, to] of [[8000, 48000], [48000, 8000], [16000, 48000], [48000, 16000], [8000, 16000], [16000, 8000]] as const) {
    const r = createResampler(from, to);
    const frame = sine(from, 440, (from * 20) / 1000, 8000);
    report(`resample ${from} → ${to} Hz (20 ms)`, measure(() => r.process(frame), 2000));
  }
}

/**
 * One mixer tick for `parties` participants of which `speakers` talk (the rest send silence, or
 * nothing at all when `absent`); optionally every participant also takes its PCMU payload. All
 * participants are at `rate` (48 kHz: WebRTC-like; 8 kHz: phones, a mix without resampling).
 */
function mixerTick(parties: number, speakers: number, o: { absent?: boolean; encode?: Codec; rate?: number } = {}): number {
  const ticker = new ManualTicker();
  const mixer = new Mixer({ ticker });
  const rate = o.rate ?? 48000;
  const speech = Array.from({ length: speakers }, (_, i) => sine(rate, 200 + 37 * i, rate / 50, 6000));
  const silence = new Int16Array(rate / 50);
  for (let i = 0; i < parties; i++) {
    const input = i < speakers ? speech[i] : o.absent ? undefined : silence;
    const codec = o.encode;
    const p: MixerParticipant = mixer.join(`p${i}`, codec ? (f) => p.encode(f, codec) : () => {}, { pull: () => input, sampleRate: rate });
  }
  const us = measure(() => ticker.tick(), parties >= 50 ? 200 : 1000);
  mixer.close();
  return us;
}

function mixerRows(): void {
  const pcmu = codecByName("PCMU") as Codec;
  for (const parties of [2, 10, 50]) {
    report(`mixer tick, ${parties} parties, all talking`, mixerTick(parties, parties));
    const speakers = Math.min(parties, 2);
    report(`mixer tick, ${parties} parties, ${speakers} talking, rest silent`, mixerTick(parties, speakers));
    report(`mixer tick, ${parties} parties, ${speakers} talking, rest sending nothing`, mixerTick(parties, speakers, { absent: true }));
    report(`mixer tick + PCMU out, ${parties} parties, ${speakers} talking`, mixerTick(parties, speakers, { encode: pcmu }));
    report(`mixer tick + PCMU out, ${parties} phones (8 kHz mix), ${speakers} talking`, mixerTick(parties, speakers, { encode: pcmu, rate: 8000 }));
  }
}

/**
 * One tick of a 10-party WebRTC channel where everyone talks, Opus end to end: each participant's
 * packet decoded once, the mix, and every distinct mix encoded once (what a client's onFrame asks
 * for). `maxSpeakers` 0 mixes all ten (ten N−1 mixes, ten encodes). With `levels` each packet
 * comes with its sender's level (RFC 6464, as a browser sends it) and is decoded only when mixed.
 */
function opusChannelTick(maxSpeakers: number, complexity: OpusComplexity, application: OpusApplication, levels = false): number {
  const opus = codecByName("opus") as Codec;
  const encoding: Codec = { ...opus, createEncoder: () => createOpusEncoder({ complexity, application }) };
  const ticker = new ManualTicker();
  const mixer = new Mixer({ ticker, maxSpeakers });
  for (let i = 0; i < 10; i++) {
    // Each participant talks from another point of the speech, so ten different voices overlap.
    const packets = speechPackets(i * 40, speechPacketCount);
    const decoder = createOpusDecoder();
    let next = 0;
    let taken = 0;
    const p: MixerParticipant = mixer.join(`p${i}`, (f) => f.silent || p.encode(f, encoding), {
      pull: () => decoder.decode(packets[levels ? taken : next++ % packets.length] as Uint8Array),
      ...(levels ? { inputLevel: () => speechEnergies[(taken = (i * 40 + next++) % speechPacketCount)] } : {}),
      sampleRate: 48000,
    });
  }
  ticker.tick(50); // past the first fade-ins and encoder start-up
  const us = measure(() => ticker.tick(), 400, 5); // each batch a full pass over the speech
  mixer.close();
  return us;
}

/** Mean square of each packet of the speech, decoded (what its sender's RFC 6464 level says, to 1 dB). */
const speechEnergies = (() => {
  const decoder = createOpusDecoder();
  return speechPackets(0, speechPacketCount).map((packet) => {
    const pcm = decoder.decode(packet);
    let sum = 0;
    for (const v of pcm) sum += v * v;
    const level = Math.min(127, Math.round(-10 * Math.log10(sum / pcm.length / 32768 ** 2 + 1e-13)));
    return 32768 ** 2 * 10 ** (-level / 10);
  });
})();

function opusChannelRows(): void {
  const decoder = createOpusDecoder();
  const speech = speechPackets(0, speechPacketCount).map((p) => decoder.decode(p));
  for (const [application, complexity] of [["voip", 10], ["voip", 5], ["lowdelay", 5]] as const) {
    const encoder = createOpusEncoder({ complexity, application });
    let k = 0;
    report(`opus encode, speech, ${application}, complexity ${complexity}`, measure(() => encoder.encode(speech[k++ % speech.length] as Int16Array), 400, 5));
  }
  const speechDecoder = createOpusDecoder();
  const packets = speechPackets(0, speechPacketCount);
  let k = 0;
  report("opus decode, speech", measure(() => speechDecoder.decode(packets[k++ % packets.length] as Uint8Array), 400, 5));
  const before = opusChannelTick(0, 10, "voip");
  report("10-party Opus tick, all talking: all mixed, voip, complexity 10", before);
  report("10-party Opus tick, all talking: all mixed, voip, complexity 5", opusChannelTick(0, 5, "voip"));
  report("10-party Opus tick, all talking: 3 loudest mixed, voip, complexity 10", opusChannelTick(3, 10, "voip"));
  const withoutLevels = opusChannelTick(3, 5, "voip");
  report("10-party Opus tick, all talking: 3 loudest mixed, voip, complexity 5", withoutLevels);
  const voip = opusChannelTick(3, 5, "voip", true);
  report("10-party Opus tick, all talking: same, clients send levels", voip);
  const after = opusChannelTick(3, 5, "lowdelay", true);
  report("10-party Opus tick, all talking: same, lowdelay (the defaults)", after);
  console.log(
    `10-party Opus channel, everyone talking: ${(before / after).toFixed(2)}× less CPU per tick (${before.toFixed(0)} → ${after.toFixed(0)} µs; voip ${voip.toFixed(0)} µs, voip without levels ${withoutLevels.toFixed(0)} µs)`,
  );
}

export async function run(): Promise<void> {
  console.log(`${"per 20 ms frame".padEnd(58)} ${"cost".padStart(11)}  ${"share".padStart(13)}`);
  codecRows();
  resampleRows();
  mixerRows();
  opusChannelRows();
  report("PCMU phone leg, whole path without sockets, per leg", await phoneLegPathUs({ legs: 100, srtp: false }));
  const tenParty = rows.find(([l]) => l === "mixer tick, 10 parties, all talking")?.[1] ?? 0;
  const verdict = (100 * tenParty) / tickUs < 2 ? "meets" : "MISSES";
  console.log(`\n10-party mixer, everyone talking: ${((100 * tenParty) / tickUs).toFixed(3)} % of the tick — ${verdict} the < 2 % target`);
}

if (import.meta.main) await run();
