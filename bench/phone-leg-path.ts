// Everything a PCMU phone leg in a two-party channel costs per 20 ms but its socket I/O: an RTP
// packet in (SRTP unprotect if asked, parse, source learning, statistics, jitter buffer), decode, the
// 8 kHz mix, encode and an RTP packet out (SRTP protect if asked), for legs whose sockets are
// stand-ins. Both phones of each channel talk (a 400 Hz tone), so every leg is mixed.
import { encodeUlaw } from "../src/media/g711.ts";
import { createPhoneLeg } from "../src/media/leg.ts";
import { Mixer } from "../src/media/mixer.ts";
import { RtpPortAllocator } from "../src/media/ports.ts";
import { RTP_HEADER_SIZE, writeRtpHeader } from "../src/media/rtp-packet.ts";
import { formatCrypto } from "../src/media/sdes.ts";
import { SrtpSendContext, generateSrtpKey } from "../src/media/srtp.ts";
import { ManualTicker } from "../src/media/ticker.ts";
import type { DatagramHandlers, UdpIo } from "../src/media/udp-io.ts";
import { measure } from "./cpu-time.ts";

const FRAMES_PER_BATCH = 200;
/** measure()'s warm-up and its 9 batches. */
const FRAMES = FRAMES_PER_BATCH * 10;

/** CPU µs per leg per 20 ms frame. */
export async function phoneLegPathUs(o: { legs: number; srtp: boolean }): Promise<number> {
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
  const legs: { close(): void }[] = [];
  // Each phone's packets for every frame, made (and protected) before the clock runs.
  const incoming: Uint8Array[][] = [];
  const packet = new Uint8Array(RTP_HEADER_SIZE + 160);
  const tone = new Int16Array(160).map((_, i) => Math.round(8000 * Math.sin((2 * Math.PI * 400 * i) / 8000)));
  packet.set(encodeUlaw(tone), RTP_HEADER_SIZE);
  for (let i = 0; i < o.legs; i++) {
    if (i % 2 === 0) mixers.push(new Mixer({ ticker, relayPairs: false }));
    const leg = await createPhoneLeg({
      allocator, advertisedAddress: "127.0.0.1", mixer: mixers.at(-1)!, participantId: `leg${i}`, codecPreferences: ["PCMU"], mediaTimeoutSec: 0, io,
      encryption: o.srtp ? "required" : "none",
    });
    if ("error" in leg) throw new Error(leg.error);
    const phoneKey = generateSrtpKey("AES_CM_128_HMAC_SHA1_80");
    const offer = [
      "v=0", "o=phone 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0", `m=audio 5004 ${o.srtp ? "RTP/SAVP" : "RTP/AVP"} 0`, "a=rtpmap:0 PCMU/8000",
      ...(o.srtp ? [`a=crypto:${formatCrypto({ tag: 1, key: phoneKey })}`] : []), "",
    ].join("\r\n");
    const answered = leg.answer(offer);
    if (!answered.ok) throw new Error(answered.reason);
    legs.push(leg);
    const phone = new SrtpSendContext(phoneKey);
    incoming.push(Array.from({ length: FRAMES }, (_, frame) => {
      writeRtpHeader(packet, { payloadType: 0, sequenceNumber: frame & 0xffff, timestamp: frame * 160, ssrc: 0x1000 + i });
      return o.srtp ? phone.protectRtp(packet) : packet.slice();
    }));
  }
  let frame = 0;
  const us = measure(() => {
    // receivers: RTP then RTCP handlers of each leg, in bind order
    for (let i = 0; i < o.legs; i++) receivers[2 * i]!.data(incoming[i]![frame]!, 5004, "127.0.0.1", frame * 20);
    ticker.tick();
    frame++;
  }, FRAMES_PER_BATCH);
  for (const leg of legs) leg.close();
  for (const m of mixers) m.close();
  return us / o.legs;
}
