// What SRTP (RFC 3711; src/media/srtp.ts on werift's transform) costs per packet: CPU µs to protect
// and to unprotect one 20 ms PCMU packet (12-byte header + 160 bytes), beside plain RTP's serialize
// and parse of the same packet, for both suites and for SRTCP; then a PCMU phone leg's whole path
// without its sockets (media.bench.ts), plain and with SRTP both ways, side by side. Fastest of
// several batches of this process's CPU time.
import { createPhoneLeg } from "../src/media/leg.ts";
import { Mixer } from "../src/media/mixer.ts";
import { RtpPortAllocator } from "../src/media/ports.ts";
import { buildCompound } from "../src/media/rtcp.ts";
import { RTP_HEADER_SIZE, parseRtp, serializeRtp, writeRtpHeader } from "../src/media/rtp-packet.ts";
import { formatCrypto } from "../src/media/sdes.ts";
import { SRTP_SUITES, SrtpReceiveContext, SrtpSendContext, generateSrtpKey } from "../src/media/srtp.ts";
import { ManualTicker } from "../src/media/ticker.ts";
import type { DatagramHandlers, UdpIo } from "../src/media/udp-io.ts";
import { measure } from "./cpu-time.ts";

const PACKETS = 20_000;

function report(label: string, us: number): void {
  console.log(`${label.padEnd(66)} ${us.toFixed(2).padStart(8)} µs`);
}

function packetRows(): void {
  const payload = new Uint8Array(160).fill(0x7f);
  const header = { payloadType: 0, sequenceNumber: 0, timestamp: 0, ssrc: 0x1234 };
  let seq = 0;
  report("plain RTP: serialize (header + 160-byte PCMU payload)", measure(() => serializeRtp({ ...header, sequenceNumber: seq++ & 0xffff }, payload), PACKETS));
  const plain = serializeRtp(header, payload);
  report("plain RTP: parse", measure(() => parseRtp(plain), PACKETS));
  for (const suite of SRTP_SUITES) {
    const key = generateSrtpKey(suite);
    const send = new SrtpSendContext(key);
    const packet = serializeRtp(header, payload);
    let n = 0;
    report(`SRTP ${suite}: protect`, measure(() => {
      writeRtpHeader(packet, { ...header, sequenceNumber: n++ & 0xffff, timestamp: n * 160 });
      send.protectRtp(packet);
    }, PACKETS));
    // Every packet is new to the receiver (no replay): protected beforehand, in sequence.
    const sender = new SrtpSendContext(key);
    const protectedPackets = Array.from({ length: PACKETS * 10 }, (_, i) => {
      writeRtpHeader(packet, { ...header, sequenceNumber: i & 0xffff, timestamp: i * 160 });
      return sender.protectRtp(packet);
    });
    const receive = new SrtpReceiveContext(key);
    let next = 0;
    report(`SRTP ${suite}: unprotect (authenticate, replay check, decrypt)`, measure(() => {
      if (typeof receive.unprotectRtp(protectedPackets[next++]!) === "string") throw new Error("unprotect failed");
    }, PACKETS, 8));
  }
  const key = generateSrtpKey("AES_CM_128_HMAC_SHA1_80");
  const rtcp = buildCompound({ ssrc: 0x1234, cname: "leg@trunkline", sender: { ntpSec: 1, ntpFrac: 2, rtpTimestamp: 3, packetCount: 4, octetCount: 5 }, reports: [], bye: false });
  const send = new SrtpSendContext(key);
  report(`SRTCP: protect a ${rtcp.length}-byte SR + SDES`, measure(() => send.protectRtcp(rtcp), PACKETS));
  const sender = new SrtpSendContext(key);
  const protectedRtcp = Array.from({ length: PACKETS * 10 }, () => sender.protectRtcp(rtcp));
  const receive = new SrtpReceiveContext(key);
  let next = 0;
  report("SRTCP: unprotect", measure(() => {
    if (typeof receive.unprotectRtcp(protectedRtcp[next++]!) === "string") throw new Error("unprotect failed");
  }, PACKETS, 8));
}

/**
 * A PCMU phone leg's path per 20 ms without its sockets (packet in, jitter buffer, decode, 8 kHz mix,
 * encode, packet out) for 50 legs in two-party channels, plain or with SRTP on both directions; µs per leg.
 */
async function legPathUs(srtp: boolean): Promise<number> {
  const legs = 50;
  const frames = 200 * 10;
  const receivers: DatagramHandlers[] = [];
  const io: UdpIo = {
    bind: async (_host, port, handlers) => {
      receivers.push(handlers);
      return { port, send: () => true, close: () => {} };
    },
    close: () => {},
  };
  const ticker = new ManualTicker();
  const allocator = new RtpPortAllocator({ min: 30000, max: 39999 });
  const mixers: Mixer[] = [];
  const closers: { close(): void }[] = [];
  const incoming: Uint8Array[][] = [];
  const packet = new Uint8Array(RTP_HEADER_SIZE + 160).fill(0x7f);
  for (let i = 0; i < legs; i++) {
    if (i % 2 === 0) mixers.push(new Mixer({ ticker }));
    const leg = await createPhoneLeg({
      allocator, advertisedAddress: "127.0.0.1", mixer: mixers.at(-1)!, participantId: `leg${i}`, codecPreferences: ["PCMU"], mediaTimeoutSec: 0, io,
      encryption: srtp ? "required" : "none",
    });
    if ("error" in leg) throw new Error(leg.error);
    const phoneKey = generateSrtpKey("AES_CM_128_HMAC_SHA1_80");
    const offer = [
      "v=0", "o=phone 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0", `m=audio 5004 ${srtp ? "RTP/SAVP" : "RTP/AVP"} 0`, "a=rtpmap:0 PCMU/8000",
      ...(srtp ? [`a=crypto:${formatCrypto({ tag: 1, key: phoneKey })}`] : []), "",
    ].join("\r\n");
    const answered = leg.answer(offer);
    if (!answered.ok) throw new Error(answered.reason);
    closers.push(leg);
    const phone = new SrtpSendContext(phoneKey);
    incoming.push(Array.from({ length: frames }, (_, frame) => {
      writeRtpHeader(packet, { payloadType: 0, sequenceNumber: frame & 0xffff, timestamp: frame * 160, ssrc: 0x1000 + i });
      return srtp ? phone.protectRtp(packet) : packet.slice();
    }));
  }
  let frame = 0;
  const us = measure(() => {
    // receivers: RTP then RTCP handlers of each leg, in bind order
    for (let i = 0; i < legs; i++) receivers[2 * i]!.data(incoming[i]![frame]!, 5004, "127.0.0.1", frame * 20);
    ticker.tick();
    frame++;
  }, 200);
  for (const c of closers) c.close();
  for (const m of mixers) m.close();
  return us / legs;
}

export async function run(): Promise<void> {
  console.log(`${"per 20 ms PCMU packet (172 bytes of RTP)".padEnd(66)} ${"CPU".padStart(11)}`);
  packetRows();
  const plain = await legPathUs(false);
  const srtp = await legPathUs(true);
  report("PCMU phone leg, whole path without sockets, plain RTP", plain);
  report("PCMU phone leg, whole path without sockets, SRTP both ways", srtp);
  console.log(`\nSRTP adds ${(srtp - plain).toFixed(2)} µs per leg per 20 ms (${((100 * (srtp - plain)) / 20_000).toFixed(3)} % of one core per leg)`);
}

if (import.meta.main) await run();
