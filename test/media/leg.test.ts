import { afterEach, describe, expect, test } from "bun:test";
import { codecByName, type CodecName } from "../../src/media/codec.ts";
import { goertzelPower, meanSquare } from "../../src/media/goertzel.ts";
import { DtmfReceiver, detectDtmfDigit, type DtmfEvent } from "../../src/media/dtmf.ts";
import { createPhoneLeg, type PhoneLeg, type PhoneLegOptions } from "../../src/media/leg.ts";
import { Mixer } from "../../src/media/mixer.ts";
import { RtpPortAllocator } from "../../src/media/ports.ts";
import { RELAY_BURST, RELAY_QUIET_TICKS } from "../../src/media/relay.ts";
import { rateConvertersCreated } from "../../src/media/resample.ts";
import { parseRtp, serializeRtp, type RtpPacket } from "../../src/media/rtp-packet.ts";
import { readPcapRtp } from "../helpers/pcap.ts";
import { loopbackUdpQueue } from "../helpers/rtpPeer.ts";
import { until } from "../helpers/until.ts";

const allocator = new RtpPortAllocator({ min: 44000, max: 45999 });
const cleanup: (() => void)[] = [];
afterEach(() => { for (const f of cleanup.splice(0).reverse()) f(); });

function mixer(o: { relayPairs?: boolean } = {}): Mixer {
  const m = new Mixer(o);
  cleanup.push(() => m.close());
  return m;
}

async function leg(m: Mixer, id: string, extra: Partial<PhoneLegOptions> = {}): Promise<PhoneLeg> {
  const l = await createPhoneLeg({ allocator, bindAddress: "127.0.0.1", advertisedAddress: "127.0.0.1", mixer: m, participantId: id, codecPreferences: ["PCMU", "PCMA"], ...extra });
  if ("error" in l) throw new Error(l.error);
  cleanup.push(() => l.close());
  return l;
}

/** A phone: its own socket, an SDP offer naming it, optional tone, a log of what it receives. */
async function phone(o: { toneHz?: number; telephoneEvent?: boolean; codec?: CodecName; ptimeMs?: number } = {}) {
  const codec = codecByName(o.codec ?? "PCMU")!;
  const pt = codec.staticPayloadType ?? 111;
  const rtpmap = codec.sdpChannels ? `${codec.name}/${codec.rtpClockRate}/${codec.sdpChannels}` : `${codec.name}/${codec.rtpClockRate}`;
  const ptime = o.ptimeMs ?? 20;
  const frameSamples = (codec.sampleRate * ptime) / 1000;
  const frameTs = (codec.rtpClockRate * ptime) / 1000;
  const packets: RtpPacket[] = [];
  const socket = await Bun.udpSocket({
    hostname: "127.0.0.1", binaryType: "uint8array",
    socket: { data: (_s, data) => { const p = parseRtp(data.slice()); if (p) packets.push(p); } },
  });
  let timer: ReturnType<typeof setInterval> | undefined;
  const close = () => { clearInterval(timer); socket.close(); };
  cleanup.push(close);
  const te = o.telephoneEvent === false ? "" : " 101";
  const offer = [
    "v=0", "o=phone 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
    `m=audio ${socket.port} RTP/AVP ${pt}${te}`, `a=rtpmap:${pt} ${rtpmap}`,
    ...(te ? ["a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16"] : []), "a=sendrecv", "",
  ].join("\r\n");
  let seq = 1000;
  let phase = 0;
  const encoder = codec.createEncoder();
  const decoder = codec.createDecoder();
  const decoded: Int16Array[] = [];
  let decodedPackets = 0;
  return {
    socket, packets, offer,
    /** Starts a 20 ms tone stream in the phone's codec to `port` (our leg). */
    startTone(port: number, hz = o.toneHz ?? 440) {
      timer = setInterval(() => {
        const pcm = new Int16Array(frameSamples);
        for (let i = 0; i < frameSamples; i++) pcm[i] = Math.round(8000 * Math.sin((2 * Math.PI * hz * phase++) / codec.sampleRate));
        socket.send(serializeRtp({ payloadType: pt, sequenceNumber: seq & 0xffff, timestamp: seq * frameTs, ssrc: 0xabc }, encoder.encode(pcm)), port, "127.0.0.1");
        seq++;
      }, ptime);
    },
    stopTone() {
      clearInterval(timer);
    },
    /** Everything received in the phone's codec, decoded, at `sampleRate` (decoded once, as it arrives, so tests can poll it). */
    audio(): Int16Array {
      for (; decodedPackets < packets.length; decodedPackets++) {
        const p = packets[decodedPackets]!;
        if (p.payloadType === pt) decoded.push(decoder.decode(p.payload));
      }
      const out = new Int16Array(decoded.reduce((n, c) => n + c.length, 0));
      let at = 0;
      for (const c of decoded) { out.set(c, at); at += c.length; }
      return out;
    },
    sampleRate: codec.sampleRate,
    close,
  };
}

function share(pcm: Int16Array, hz: number, sampleRate = 8000): number {
  const total = meanSquare(pcm);
  return total === 0 ? 0 : goertzelPower(pcm, sampleRate, hz) / total;
}

/**
 * Waits until the last `windowMs` a phone received carry `hz` with more than `minShare` of their
 * power. On a loaded machine a late packet is concealed, and one concealed frame spoils a 400 ms
 * single-bin measurement, so the test waits for a clean window rather than taking whichever came.
 */
async function hears(p: { audio(): Int16Array; sampleRate: number }, hz: number, minShare: number, windowMs = 400): Promise<void> {
  const samples = (p.sampleRate * windowMs) / 1000;
  let last = 0;
  await until(() => {
    const audio = p.audio();
    return audio.length >= samples && (last = share(audio.subarray(audio.length - samples), hz, p.sampleRate)) > minShare;
  }, { pollMs: 20, what: () => `${hz} Hz never made up ${minShare} of ${windowMs} ms heard (last: ${last.toFixed(2)})` });
}

function answerOf(l: PhoneLeg, offer: string): string {
  const r = l.answer(offer);
  if (!r.ok) throw new Error(r.reason);
  return r.sdp;
}

/** Two PCMU legs in one channel, each answered to its own phone; phone A's tone is `toneHz`. */
async function pair(o: { toneHz?: number; ptimeMs?: number } = {}) {
  const m = mixer();
  const a = await leg(m, "a");
  const b = await leg(m, "b");
  const phoneA = await phone({ toneHz: o.toneHz ?? 440, ptimeMs: o.ptimeMs });
  const phoneB = await phone();
  answerOf(a, phoneA.offer);
  answerOf(b, phoneB.offer);
  return { m, a, b, phoneA, phoneB };
}

describe("PhoneLeg", () => {
  test("a tone sent into one leg through a real socket is heard by the second leg's phone (mixed: relayPairs off)", async () => {
    const m = mixer({ relayPairs: false });
    const a = await leg(m, "a");
    const b = await leg(m, "b");
    const phoneA = await phone({ toneHz: 440 });
    const phoneB = await phone();
    const answer = answerOf(a, phoneA.offer);
    expect(answer).toContain(`m=audio ${a.localPort} RTP/AVP 0 101`);
    answerOf(b, phoneB.offer);
    phoneA.startTone(a.localPort);
    await until(() => phoneB.packets.length >= 40);
    await hears(phoneB, 440, 0.8);
    // A does not hear itself (N−1): what it gets back is silence.
    expect(meanSquare(phoneA.audio().subarray(-160 * 20))).toBeLessThan(100);
    expect(a.stats().rtp.packetsReceived).toBeGreaterThan(20);
    expect(a.stats().jitter.played).toBeGreaterThan(10);
  });

  test("two PCMU phones: the channel mixes at 8 kHz and nothing is resampled", async () => {
    const convertersBefore = rateConvertersCreated();
    const m = mixer();
    const a = await leg(m, "a");
    const b = await leg(m, "b");
    const phoneA = await phone({ toneHz: 440 });
    const phoneB = await phone({ toneHz: 1000 });
    answerOf(a, phoneA.offer);
    answerOf(b, phoneB.offer);
    phoneA.startTone(a.localPort);
    phoneB.startTone(b.localPort);
    await until(() => phoneA.packets.length >= 40 && phoneB.packets.length >= 40);
    expect(m.sampleRate).toBe(8000);
    await hears(phoneB, 440, 0.5);
    await hears(phoneA, 1000, 0.5);
    expect(rateConvertersCreated()).toBe(convertersBefore);
  });

  test.each([
    ["opus", "G722"],
    ["G722", "PCMA"],
    ["PCMA", "opus"],
  ] as [CodecName, CodecName][])("transcoding through the mixer: a %s phone's tone reaches a %s phone", async (from, to) => {
    const m = mixer();
    const codecPreferences: CodecName[] = ["opus", "G722", "PCMU", "PCMA"];
    const a = await leg(m, "a", { codecPreferences });
    const b = await leg(m, "b", { codecPreferences });
    const phoneA = await phone({ toneHz: 600, codec: from });
    const phoneB = await phone({ codec: to });
    expect(answerOf(a, phoneA.offer)).toContain(from);
    expect(answerOf(b, phoneB.offer)).toContain(to);
    phoneA.startTone(a.localPort);
    await until(() => phoneB.packets.length >= 40);
    await hears(phoneB, 600, 0.8);
    expect(b.stats().codec).toBe(to);
    // The mixer runs at the rate of the widest codec present.
    expect(m.sampleRate).toBe(Math.max(phoneA.sampleRate, phoneB.sampleRate));
  });

  test("30 ms packets from the phone are re-cut into 20 ms mixer frames without gaps", async () => {
    const m = mixer();
    const a = await leg(m, "a");
    const b = await leg(m, "b");
    const phoneA = await phone({ toneHz: 500, ptimeMs: 30 });
    const phoneB = await phone();
    answerOf(a, phoneA.offer.replace("a=sendrecv", "a=ptime:30\r\na=sendrecv"));
    answerOf(b, phoneB.offer);
    phoneA.startTone(a.localPort);
    // A re-cut that lost or repeated samples would run the jitter buffer dry or over every few
    // frames. A loaded machine delays a packet now and then (concealed as lost), so what is asked
    // for is a stretch of 20 packets (600 ms) played with none concealed and none dropped.
    let mark = a.stats().jitter;
    await until(() => {
      const j = a.stats().jitter;
      if (j.lost !== mark.lost || j.dropped !== mark.dropped) mark = j;
      return j.played - mark.played >= 20;
    }, { what: () => a.stats().jitter });
    await until(() => phoneB.packets.length >= 60);
    await hears(phoneB, 500, 0.8);
  });

  test("our stream is continuous: one SSRC, consecutive sequence numbers, 160-unit timestamp steps", async () => {
    const m = mixer();
    const a = await leg(m, "a");
    const p = await phone();
    answerOf(a, p.offer);
    await until(() => p.packets.length >= 20);
    const audio = p.packets.filter((x) => x.payloadType === 0);
    expect(new Set(audio.map((x) => x.ssrc)).size).toBe(1);
    for (let i = 1; i < audio.length; i++) {
      expect((audio[i]!.sequenceNumber - audio[i - 1]!.sequenceNumber) & 0xffff).toBe(1);
      expect((audio[i]!.timestamp - audio[i - 1]!.timestamp) >>> 0).toBe(160);
    }
    expect(audio[0]!.marker).toBe(true);
  });

  test("DTMF from SIPp's dtmf_2833_1.pcap replayed over a socket is reported as digit 1", async () => {
    const m = mixer();
    const a = await leg(m, "a");
    const captured = readPcapRtp("/usr/share/sip-tester/dtmf_2833_1.pcap");
    const pt = captured[0]!.payloadType;
    const p = await phone();
    answerOf(a, p.offer.replaceAll(" 101", ` ${pt}`).replaceAll(":101 ", `:${pt} `));
    const digits: DtmfEvent[] = [];
    a.onDtmf = (e) => digits.push(e);
    // One at a time, each taken by the leg before the next (the capture repeats its end packet).
    for (const [i, c] of captured.entries()) {
      p.socket.send(serializeRtp({ marker: c.marker, payloadType: c.payloadType, sequenceNumber: c.sequence, timestamp: c.timestamp, ssrc: c.ssrc }, c.payload), a.localPort, "127.0.0.1");
      await until(() => a.stats().rtp.packetsReceived === i + 1, { what: () => a.stats().rtp });
    }
    // Every packet of the capture has been through the leg: one key press, reported once.
    expect(digits.map((d) => d.digit)).toEqual(["1"]);
    expect(digits[0]!.durationMs).toBeGreaterThan(0);
    expect(a.stats().dtmfReceived).toBe(1);
  });

  test("sendDtmf: RFC 4733 events with the event's start timestamp and three end packets", async () => {
    const m = mixer();
    const a = await leg(m, "a", { dtmfDurationMs: 100 });
    const p = await phone();
    answerOf(a, p.offer);
    await until(() => p.packets.length >= 3);
    a.sendDtmf("4#x");
    const got: DtmfEvent[] = [];
    const rx = new DtmfReceiver((e) => got.push(e));
    await until(() => p.packets.filter((x) => x.payloadType === 101 && (x.payload[1]! & 0x80)).length >= 6);
    const events = p.packets.filter((x) => x.payloadType === 101);
    for (const e of events) rx.receive({ timestamp: e.timestamp, marker: e.marker, payload: e.payload });
    expect(got.map((e) => e.digit)).toEqual(["4", "#"]);
    expect(got[0]!.durationMs).toBe(100);
    expect(events.filter((e) => e.marker).length).toBe(2);
    // Sequence numbers stay continuous across audio and events.
    const seqs = p.packets.map((x) => x.sequenceNumber);
    for (let i = 1; i < seqs.length; i++) expect((seqs[i]! - seqs[i - 1]!) & 0xffff).toBe(1);
  });

  test("in-band DTMF tones when the peer has no telephone-event", async () => {
    const m = mixer();
    const a = await leg(m, "a", { dtmfDurationMs: 120 });
    const p = await phone({ telephoneEvent: false });
    expect(answerOf(a, p.offer)).not.toContain("telephone-event");
    await until(() => p.packets.length >= 3);
    // Counted by what the leg sent, not what has arrived: the tone starts with the next packet.
    const before = a.stats().rtp.packetsSent;
    a.sendDtmf("7");
    await until(() => p.packets.length >= before + 10);
    const pcm = p.audio().subarray(before * 160);
    const digitsSeen = new Set<string>();
    for (let i = 0; i + 160 <= pcm.length; i += 160) {
      const d = detectDtmfDigit(pcm.subarray(i, i + 160), 8000);
      if (d) digitsSeen.add(d);
    }
    expect([...digitsSeen]).toEqual(["7"]);
  });

  test("latches to the port the phone really sends from, not the SDP port", async () => {
    const m = mixer();
    const a = await leg(m, "a");
    const sdpSide = await phone();
    const natSide = await phone({ toneHz: 300 });
    answerOf(a, sdpSide.offer);
    await until(() => sdpSide.packets.length >= 2);
    natSide.startTone(a.localPort);
    await until(() => natSide.packets.length >= 10);
    expect(a.stats().rtp).toMatchObject({ latched: true, remote: `127.0.0.1:${natSide.socket.port}` });
    // Our one stream moved: the SDP side got its start, the NAT side everything from the next
    // packet on, 10 of them by now (loopback keeps order, so the SDP side's last has arrived).
    const lastToSdp = sdpSide.packets.at(-1)!.sequenceNumber;
    const natSeqs = natSide.packets.map((x) => (x.sequenceNumber - lastToSdp) & 0xffff);
    expect(natSeqs).toEqual(natSeqs.map((_, i) => i + 1));
  });

  test("re-INVITE: hold stops our stream, resume continues its sequence and timestamps", async () => {
    const m = mixer();
    const a = await leg(m, "a");
    const p = await phone();
    answerOf(a, p.offer);
    await until(() => p.packets.length >= 5);
    const held = a.applyRemoteSdp(p.offer.replace("a=sendrecv", "a=inactive"));
    expect(held.ok && held.sdp).toContain("a=inactive");
    expect(a.stats().direction).toBe("inactive");
    // Everything sent before the hold arrives; then 10 mixer ticks (200 ms) pass with nothing sent.
    const atHold = a.stats().rtp.packetsSent;
    const ticksAtHold = m.stats().ticks;
    await until(() => p.packets.length === atHold && m.stats().ticks >= ticksAtHold + 10, { what: () => ({ atHold, received: p.packets.length, ticksAtHold, ticks: m.stats().ticks }) });
    expect(a.stats().rtp.packetsSent).toBe(atHold);
    expect(p.packets.length).toBe(atHold);
    const last = p.packets.at(-1)!;
    const resumed = a.applyRemoteSdp(p.offer.replace("o=phone 1 1", "o=phone 1 3"));
    expect(resumed.ok && resumed.sdp).toContain("a=sendrecv");
    await until(() => p.packets.length >= atHold + 3);
    const next = p.packets[atHold]!;
    expect(next.marker).toBe(true);
    expect(next.ssrc).toBe(last.ssrc);
    expect((next.sequenceNumber - last.sequenceNumber) & 0xffff).toBe(1);
    // Timestamps kept running through the 10 ticks or more on hold.
    expect((next.timestamp - last.timestamp) >>> 0).toBeGreaterThanOrEqual(160 * 10);
  });

  test("re-INVITE to another codec and address: stream moves, timestamps stay continuous", async () => {
    const m = mixer();
    const a = await leg(m, "a");
    const p1 = await phone();
    const p2 = await phone();
    answerOf(a, p1.offer);
    await until(() => p1.packets.length >= 3);
    const pcma = p2.offer.replace("RTP/AVP 0 101", "RTP/AVP 8 101").replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000");
    const r = a.applyRemoteSdp(pcma);
    expect(r.ok && r.sdp).toContain("RTP/AVP 8 101");
    const sentToOld = a.stats().rtp.packetsSent;
    await until(() => p1.packets.length === sentToOld && p2.packets.length >= 3);
    const lastOld = p1.packets.at(-1)!;
    const firstNew = p2.packets[0]!;
    expect(firstNew.payloadType).toBe(8);
    expect(firstNew.ssrc).toBe(lastOld.ssrc);
    expect((firstNew.sequenceNumber - lastOld.sequenceNumber) & 0xffff).toBe(1);
    expect((firstNew.timestamp - lastOld.timestamp) >>> 0).toBe(160);
    expect(a.stats().codec).toBe("PCMA");
  });

  test("we offer (delayed offer in 200 OK), the answer comes in the ACK", async () => {
    const m = mixer();
    const a = await leg(m, "a", { codecPreferences: ["G722", "PCMU"] });
    const p = await phone();
    const offer = a.offer();
    expect(offer).toContain(`m=audio ${a.localPort} RTP/AVP 9 0 101`);
    expect(a.applyRemoteSdp(p.offer.replace("o=phone", "o=phone"))).toEqual({ ok: true });
    expect(a.stats().codec).toBe("PCMU");
    await until(() => p.packets.length >= 2);
    expect(a.applyAnswer(p.offer)).toMatchObject({ ok: false, status: 400 });
  });

  test("a duplicate participant id is an error result and frees the port", async () => {
    const m = mixer();
    await leg(m, "same");
    const used = allocator.used;
    const second = await createPhoneLeg({ allocator, bindAddress: "127.0.0.1", advertisedAddress: "127.0.0.1", mixer: m, participantId: "same" });
    expect("error" in second).toBe(true);
    expect(allocator.used).toBe(used);
  });

  test("we hold the peer: our re-offer says sendonly, their recvonly answer stops our receiving", async () => {
    const m = mixer();
    const a = await leg(m, "a");
    const p = await phone();
    answerOf(a, p.offer);
    const hold = a.offer({ hold: true });
    expect(hold).toContain("a=sendonly");
    expect(a.applyAnswer(p.offer.replace("a=sendrecv", "a=recvonly"))).toEqual({ ok: true });
    expect(a.stats().direction).toBe("sendonly");
    const resume = a.offer();
    expect(resume).toContain("a=sendrecv");
    expect(a.applyAnswer(p.offer)).toEqual({ ok: true });
    expect(a.stats().direction).toBe("sendrecv");
  });

  test("random datagrams and garbage payloads never break the leg; audio keeps flowing", async () => {
    const { a, phoneA, phoneB } = await pair({ toneHz: 700 });
    phoneA.startTone(a.localPort);
    let seed = 12345;
    const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    for (let i = 0; i < 2000; i++) {
      const bytes = new Uint8Array(1 + (rnd() % 200));
      for (let k = 0; k < bytes.length; k++) bytes[k] = rnd();
      // Half of them shaped like RTP with our payload types, so decoders and DTMF see garbage too.
      if (i % 2 === 0 && bytes.length >= 12) { bytes[0] = 0x80; bytes[1] = i % 4 === 0 ? 0 : 101; }
      phoneA.socket.send(bytes, a.localPort, "127.0.0.1");
      // Every 100, until the leg has read them all: the kernel drops none for want of room.
      if (i % 100 === 99) await until(() => loopbackUdpQueue(a.localPort).rxQueue === 0);
    }
    expect(loopbackUdpQueue(a.localPort).drops).toBe(0);
    const before = phoneB.packets.length;
    await until(() => phoneB.packets.length >= before + 30);
    await hears(phoneB, 700, 0.5, 200);
  });

  test("bad SDP → 400, nothing in common → 488 with a warning; never a throw", async () => {
    const m = mixer();
    const a = await leg(m, "a");
    expect(a.answer("garbage")).toMatchObject({ ok: false, status: 400 });
    const g729 = "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";
    expect(a.answer(g729)).toMatchObject({ ok: false, status: 488, warning: { code: 305 } });
  });

  test("the SDP version goes up only when our description changes (RFC 3264 §8)", async () => {
    const m = mixer();
    const a = await leg(m, "a");
    const p = await phone();
    const v = (sdp: string) => /o=\S+ \d+ (\d+)/.exec(sdp)![1];
    const first = answerOf(a, p.offer);
    const same = answerOf(a, p.offer);
    const hold = answerOf(a, p.offer.replace("a=sendrecv", "a=sendonly"));
    expect(v(same)).toBe(v(first));
    expect(Number(v(hold))).toBe(Number(v(first)) + 1);
  });

  test("SRTP between two legs: tones cross the encrypted hop both ways; re-offers keep our keys; a new peer key re-keys", async () => {
    const m1 = mixer();
    const m2 = mixer();
    const a = await leg(m1, "a", { encryption: "required" });
    const b = await leg(m2, "b", { encryption: "required" });
    const phone1 = await phone({ toneHz: 440 });
    const phone2 = await phone({ toneHz: 1000 });
    const phone1Leg = await leg(m1, "phone1");
    answerOf(phone1Leg, phone1.offer);
    const phone2Leg = await leg(m2, "phone2");
    answerOf(phone2Leg, phone2.offer);
    const offer = a.offer();
    expect(offer).toContain(`m=audio ${a.localPort} RTP/SAVP 0 8 101`);
    const answer = answerOf(b, offer);
    expect(answer).toMatch(/a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:[A-Za-z0-9+/]{40}\r\n/);
    expect(a.applyAnswer(answer)).toEqual({ ok: true });
    phone1.startTone(phone1Leg.localPort);
    phone2.startTone(phone2Leg.localPort);
    await hears(phone2, 440, 0.5);
    await hears(phone1, 1000, 0.5);
    expect(a.stats()).toMatchObject({ srtp: "AES_CM_128_HMAC_SHA1_80", rtp: { srtpAuthFailures: 0, srtpReplays: 0 } });
    expect(b.stats().srtp).toBe("AES_CM_128_HMAC_SHA1_80");

    // A session refresh: the same keys on both sides.
    const cryptoLines = (sdp: string) => sdp.split("\r\n").filter((l) => l.startsWith("a=crypto:"));
    const reoffer = a.offer();
    expect(cryptoLines(reoffer)).toEqual(cryptoLines(offer));
    const reanswer = answerOf(b, reoffer);
    expect(cryptoLines(reanswer)).toEqual(cryptoLines(answer));
    expect(a.applyAnswer(reanswer)).toEqual({ ok: true });

    // The far end is replaced by a leg with keys of its own (as a re-INVITE with a new key would do).
    const b2 = await leg(m2, "b2", { encryption: "required" });
    b.close();
    const answer2 = answerOf(b2, a.offer());
    expect(cryptoLines(answer2)).not.toEqual(cryptoLines(answer));
    expect(a.applyAnswer(answer2)).toEqual({ ok: true });
    const heardBefore = phone2.audio().length;
    await until(() => phone2.audio().length > heardBefore + 8000);
    await hears(phone2, 440, 0.5);
    await hears(phone1, 1000, 0.5);
  });

  test("SRTP required: a plain offer gets 488 with a 302 warning; optional answers it plain", async () => {
    const m = mixer();
    const p = await phone();
    expect((await leg(m, "required", { encryption: "required" })).answer(p.offer)).toMatchObject({ ok: false, status: 488, warning: { code: 302, text: expect.stringContaining("SRTP is required") } });
    const optional = await leg(m, "optional", { encryption: "optional" });
    expect(answerOf(optional, p.offer)).not.toContain("a=crypto");
    expect(optional.stats().srtp).toBeUndefined();
  });

  test("media timeout is reported when the phone stops sending", async () => {
    const m = mixer();
    const a = await leg(m, "a", { mediaTimeoutSec: 0.4 });
    const p = await phone();
    let timeouts = 0;
    a.onTimeout = () => timeouts++;
    answerOf(a, p.offer);
    p.startTone(a.localPort);
    await until(() => a.stats().rtp.packetsReceived > 0);
    // A leg that expects media from now on and gets none: the housekeeping pass in which it times
    // out looks at `a` too, at least the timeout's length into the phone's stream.
    const witness = await leg(m, "witness", { mediaTimeoutSec: 0.4 });
    let witnessTimeouts = 0;
    witness.onTimeout = () => witnessTimeouts++;
    answerOf(witness, (await phone()).offer);
    await until(() => witnessTimeouts === 1);
    expect(timeouts).toBe(0);
    p.close();
    await until(() => timeouts === 1);
  });
});

/**
 * A PCMU packet of the mixer's silence: every byte 0xff (μ-law zero). A tone's packet can begin with
 * 0xff too (440 Hz starts a 20 ms packet at phase zero every fifth packet), so the whole payload decides.
 */
const isMixerSilence = (p: RtpPacket): boolean => p.payloadType === 0 && p.payload.every((v) => v === 0xff);

describe("PhoneLeg two-party relay", () => {
  test("two PCMU phones alone in a channel: each packet reaches the other as sent, under our SSRC and stream, loss kept, late and doubled packets dropped", async () => {
    const { m, a, b, phoneA, phoneB } = await pair();
    expect(m.stats().relayed).toBe(true);
    // Until phone A talks, phone B hears the mixer's silence (0xff in PCMU): the stream is already ours.
    await until(() => phoneB.packets.length >= 3);
    const sent: { seq: number; fill: number }[] = [];
    const send = (seq: number, fill: number) => {
      phoneA.socket.send(serializeRtp({ payloadType: 0, sequenceNumber: seq, timestamp: 16000 + seq * 160, ssrc: 0x5eed }, new Uint8Array(160).fill(fill)), a.localPort, "127.0.0.1");
      sent.push({ seq, fill });
    };
    // Paced as a phone sends: a burst beyond the relay's rate would be cut (see the flood test).
    for (let i = 0; i < 20; i++) {
      if (i !== 7) send(65530 + i, i + 1); // wraps; seq 65537 lost
      if (i === 12) send(65530 + 4, 5); // twice
      if (i === 14) send(65530 + 2, 3); // late
      await Bun.sleep(20);
    }
    await until(() => phoneB.packets.filter((p) => !isMixerSilence(p)).length >= 19);
    const relayed = phoneB.packets.filter((p) => !isMixerSilence(p));
    expect(relayed.map((p) => p.payload[0])).toEqual([...Array.from({ length: 7 }, (_, i) => i + 1), ...Array.from({ length: 12 }, (_, i) => i + 9)]);
    expect(relayed.every((p) => p.payload.length === 160 && p.payload.every((v) => v === p.payload[0]))).toBe(true);
    const ssrcs = new Set(phoneB.packets.map((p) => p.ssrc));
    expect(ssrcs.size).toBe(1);
    expect(ssrcs.has(0x5eed)).toBe(false);
    // The first relayed packet follows the silence before it; after it, the source's steps (the loss included).
    const first = phoneB.packets.indexOf(relayed[0]!);
    const before = phoneB.packets[first - 1]!;
    expect((relayed[0]!.sequenceNumber - before.sequenceNumber) & 0xffff).toBe(1);
    expect((relayed[0]!.timestamp - before.timestamp) >>> 0).toBe(160);
    const steps = relayed.slice(1).map((p, i) => [(p.sequenceNumber - relayed[i]!.sequenceNumber) & 0xffff, (p.timestamp - relayed[i]!.timestamp) >>> 0]);
    expect(steps).toEqual(relayed.slice(1).map((p) => (p.payload[0] === 9 ? [2, 320] : [1, 160])));
    // Nothing went through a jitter buffer or the mix.
    expect(a.stats().jitter.played + b.stats().jitter.played).toBe(0);
    expect(a.stats().rtp.packetsReceived).toBe(sent.length);
  });

  test("a flood from a phone is relayed at most at a phone's rate; the relay goes on afterwards", async () => {
    const { a, phoneA, phoneB } = await pair();
    const flood = new Uint8Array(160).fill(0x42);
    const startedAt = performance.now();
    for (let i = 0; i < 500; i++) phoneA.socket.send(serializeRtp({ payloadType: 0, sequenceNumber: i, timestamp: i * 160, ssrc: 0xf100d }, flood), a.localPort, "127.0.0.1");
    // Part of it overflows the socket's buffer; what got in is read at once.
    await until(() => a.stats().rtp.packetsReceived >= 100, { what: () => a.stats().rtp });
    // The tone comes after the flood on the same socket: once it is heard, the flood has been read.
    phoneA.startTone(a.localPort);
    await hears(phoneB, 440, 0.8);
    const elapsedMs = performance.now() - startedAt;
    const relayedFlood = phoneB.packets.filter((p) => p.payload[0] === 0x42).length;
    expect(relayedFlood).toBeGreaterThanOrEqual(RELAY_BURST);
    // At most a second's worth at once and 1.5 packets per 20 ms after; the flood is read within a few milliseconds.
    expect(relayedFlood).toBeLessThanOrEqual(RELAY_BURST + Math.ceil((1.5 * elapsedMs) / 20));
    expect(relayedFlood).toBeLessThan(a.stats().rtp.packetsReceived);
  });

  test("the stream each phone hears stays one while a third joins and leaves, DTMF is sent and the talker pauses", async () => {
    const { m, a, b, phoneA, phoneB } = await pair();
    phoneA.startTone(a.localPort);
    await hears(phoneB, 440, 0.8);
    expect(b.stats().jitter.played).toBe(0);

    const c = await leg(m, "c");
    const phoneC = await phone({ toneHz: 1000 });
    answerOf(c, phoneC.offer);
    phoneC.startTone(c.localPort);
    expect(m.stats().relayed).toBe(false);
    await hears(phoneB, 1000, 0.3);
    await hears(phoneB, 440, 0.3);
    phoneC.stopTone();
    c.close();
    expect(m.stats().relayed).toBe(true);
    await hears(phoneB, 440, 0.8);

    b.sendDtmf("5");
    await until(() => phoneB.packets.filter((p) => p.payloadType === 101 && (p.payload[1]! & 0x80)).length >= 3);
    const afterDtmf = phoneB.packets.length;
    await until(() => phoneB.packets.slice(afterDtmf).filter((p) => p.payloadType === 0).length >= 10);
    await hears(phoneB, 440, 0.8);

    // A pause longer than the relay's patience: phone B hears silence again, the stream caught up.
    phoneA.stopTone();
    const paused = phoneB.packets.length;
    await until(() => phoneB.packets.slice(paused).filter(isMixerSilence).length >= 5);
    // Its timestamps jumped over the pause (at least the relay's patience), marked as a new talkspurt.
    const resumed = phoneB.packets.findIndex((p, i) => i >= paused && isMixerSilence(p));
    const lastHeard = phoneB.packets[resumed - 1]!;
    expect(phoneB.packets[resumed]!.marker).toBe(true);
    expect((phoneB.packets[resumed]!.timestamp - lastHeard.timestamp) >>> 0).toBeGreaterThanOrEqual(160 * (RELAY_QUIET_TICKS + 1));

    const packets = phoneB.packets;
    expect(new Set(packets.map((p) => p.ssrc)).size).toBe(1);
    const problems: string[] = [];
    for (let i = 1; i < packets.length; i++) {
      const p = packets[i]!;
      const q = packets[i - 1]!;
      const seqStep = (p.sequenceNumber - q.sequenceNumber) & 0xffff;
      const tsStep = (p.timestamp - q.timestamp) | 0;
      if (seqStep !== 1) problems.push(`#${i}: sequence step ${seqStep}`);
      if (tsStep < 0) problems.push(`#${i}: timestamp back by ${-tsStep}`);
      // Audio after audio follows by exactly one frame, unless the marker says a new talkspurt begins.
      if (p.payloadType === 0 && q.payloadType === 0 && !p.marker && tsStep !== 160) problems.push(`#${i}: timestamp step ${tsStep} without a marker`);
    }
    expect(problems).toEqual([]);
    // The relay held while DTMF went out: no audio between the first and the last event packet.
    const events = packets.map((p, i) => (p.payloadType === 101 ? i : -1)).filter((i) => i >= 0);
    expect(packets.slice(events[0], events.at(-1)).every((p) => p.payloadType === 101)).toBe(true);
  });

  test("a phone sending 30 ms packets is mixed (its audio re-cut to 20 ms), not relayed", async () => {
    const { m, a, phoneA, phoneB } = await pair({ ptimeMs: 30 });
    expect(m.stats().relayed).toBe(true);
    phoneA.startTone(a.localPort);
    await hears(phoneB, 440, 0.8);
    expect(m.stats().relayed).toBe(false);
    expect(phoneB.packets.slice(-10).every((p) => p.payload.length === 160)).toBe(true);
    expect(a.stats().jitter.played).toBeGreaterThan(10);
  });
});
