import { describe, expect, test } from "bun:test";
import {
  type DtmfEvent,
  DtmfReceiver,
  decodeTelephoneEvent,
  detectDtmfDigit,
  encodeTelephoneEvent,
  InbandDtmfGenerator,
  telephoneEventPackets,
} from "../../src/media/dtmf.ts";
import { readPcapRtp } from "../helpers/pcap.ts";

function collect(clockRate = 8000) {
  const events: DtmfEvent[] = [];
  return { events, receiver: new DtmfReceiver((e) => events.push(e), clockRate) };
}

describe("RFC 4733 telephone-event payload", () => {
  test("encodes and decodes event, end bit, volume and duration", () => {
    const bytes = encodeTelephoneEvent({ event: 11, end: true, volume: 10, duration: 2240 });
    expect(Array.from(bytes)).toEqual([11, 0x8a, 0x08, 0xc0]);
    expect(decodeTelephoneEvent(bytes)).toEqual({ event: 11, end: true, volume: 10, duration: 2240 });
    expect(decodeTelephoneEvent(new Uint8Array(3))).toBeUndefined();
  });
});

describe("DTMF sender → receiver", () => {
  test("round trip: marker first, growing durations, three identical end packets, one event", () => {
    const packets = telephoneEventPackets("7", { durationMs: 160 }) ?? [];
    expect(packets[0]?.marker).toBe(true);
    expect(packets.filter((p) => p.marker).length).toBe(1);
    const ends = packets.filter((p) => decodeTelephoneEvent(p.payload)?.end);
    expect(ends.length).toBe(3);
    expect(decodeTelephoneEvent(ends[0]?.payload ?? new Uint8Array())?.duration).toBe(1280);
    const durations = packets.map((p) => decodeTelephoneEvent(p.payload)?.duration ?? 0);
    for (let i = 1; i < durations.length; i++) expect(durations[i] ?? 0).toBeGreaterThanOrEqual(durations[i - 1] ?? 0);
    for (let i = 1; i < packets.length; i++) expect((packets[i]?.atMs ?? 0) - (packets[i - 1]?.atMs ?? 0)).toBe(20);

    const { events, receiver } = collect();
    for (const p of packets) receiver.receive({ timestamp: 4000, marker: p.marker, payload: p.payload });
    expect(events).toEqual([{ digit: "7", durationMs: 160 }]);
  });

  test("duplicated end packets, also arriving after the next digit started, are reported once", () => {
    const { events, receiver } = collect();
    const one = telephoneEventPackets("1", { durationMs: 100 }) ?? [];
    const two = telephoneEventPackets("2", { durationMs: 100 }) ?? [];
    for (const p of one) receiver.receive({ timestamp: 1000, marker: p.marker, payload: p.payload });
    receiver.receive({ timestamp: 3000, marker: true, payload: two[0]?.payload ?? new Uint8Array() });
    const lateEnd = one.at(-1)?.payload ?? new Uint8Array();
    receiver.receive({ timestamp: 1000, marker: false, payload: lateEnd });
    for (const p of two.slice(1)) receiver.receive({ timestamp: 3000, marker: p.marker, payload: p.payload });
    for (const p of two.slice(-3)) receiver.receive({ timestamp: 3000, marker: false, payload: p.payload });
    expect(events.map((e) => e.digit)).toEqual(["1", "2"]);
  });

  test("a missing marker bit does not lose the event", () => {
    const { events, receiver } = collect();
    for (const p of telephoneEventPackets("#", { durationMs: 120 }) ?? []) {
      receiver.receive({ timestamp: 9999, marker: false, payload: p.payload });
    }
    expect(events).toEqual([{ digit: "#", durationMs: 120 }]);
  });

  test("an event whose end packets were all lost is reported when the next one starts", () => {
    const { events, receiver } = collect();
    const star = (telephoneEventPackets("*", { durationMs: 200 }) ?? []).filter(
      (p) => !decodeTelephoneEvent(p.payload)?.end,
    );
    for (const p of star) receiver.receive({ timestamp: 500, marker: p.marker, payload: p.payload });
    expect(events).toEqual([]);
    for (const p of telephoneEventPackets("0") ?? []) receiver.receive({ timestamp: 3000, ...p });
    expect(events).toEqual([{ digit: "*", durationMs: 180 }, { digit: "0", durationMs: 100 }]);
  });

  test("clock rate scales durations (telephone-event/48000 beside Opus)", () => {
    const { events, receiver } = collect(48000);
    for (const p of telephoneEventPackets("5", { durationMs: 100, clockRate: 48000 }) ?? []) {
      receiver.receive({ timestamp: 1, ...p });
    }
    expect(events).toEqual([{ digit: "5", durationMs: 100 }]);
  });

  test("non-digits are refused by the sender", () => {
    expect(telephoneEventPackets("x")).toBeUndefined();
  });
});

describe("DTMF from SIPp's dtmf_2833 captures", () => {
  const dir = "/usr/share/sip-tester";
  test.each([
    ["dtmf_2833_1.pcap", "1"],
    ["dtmf_2833_pound.pcap", "#"],
    ["dtmf_2833_star.pcap", "*"],
  ])("%s decodes to %s, once, with its duration", (file, digit) => {
    const { events, receiver } = collect();
    const rtp = readPcapRtp(`${dir}/${file}`).filter((p) => p.payloadType === 101);
    expect(rtp.length).toBeGreaterThan(3);
    for (const p of rtp) receiver.receive(p);
    expect(events).toEqual([{ digit, durationMs: 280 }]);
  });
});

describe("in-band DTMF", () => {
  test("every generated digit is detected by Goertzel, gaps are not", () => {
    for (const rate of [8000, 48000]) {
      const gen = new InbandDtmfGenerator(rate);
      const sequence = "0123456789*#ABCD";
      for (const d of sequence) gen.queueDigit(d, 100, 60);
      const frame = (rate * 20) / 1000;
      const detected: (string | undefined)[] = [];
      while (gen.pending) detected.push(detectDtmfDigit(gen.nextFrame(frame) ?? new Int16Array(frame), rate));
      // 100 ms tone + 60 ms gap = 8 frames per digit: 5 tone frames, 3 gap frames.
      const digits = detected.filter((d, i) => d !== undefined && d !== detected[i - 1]);
      expect(digits.join("")).toBe(sequence);
      expect(detected.filter((d) => d === undefined).length).toBe(3 * sequence.length);
    }
  });

  test("speech-like single tones are not mistaken for digits", () => {
    const pcm = new Int16Array(160);
    for (let i = 0; i < pcm.length; i++) pcm[i] = Math.round(8000 * Math.sin((2 * Math.PI * 770 * i) / 8000));
    expect(detectDtmfDigit(pcm, 8000)).toBeUndefined();
  });
});
