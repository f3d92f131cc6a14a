// What SRTP (RFC 3711) costs per packet: CPU µs to protect and to unprotect one 20 ms PCMU packet
// (12-byte header + 160 bytes), beside plain RTP's serialize and parse of the same packet, for both
// SDES suites and SRTCP (src/media/srtp.ts) and for the WebRTC direct path's two profiles on
// werift's session keys (src/webrtc/direct-srtp.ts); then a PCMU phone leg's whole path
// without its sockets (media.bench.ts), plain and with SRTP both ways, side by side. Fastest of
// several batches of this process's CPU time.
import { buildCompound } from "../src/media/rtcp.ts";
import { parseRtp, serializeRtp, writeRtpHeader } from "../src/media/rtp-packet.ts";
import { SRTP_SUITES, SrtpReceiveContext, SrtpSendContext, generateSrtpKey } from "../src/media/srtp.ts";
import { directSrtpContexts, protectRtp, unprotectRtp } from "../src/webrtc/direct-srtp.ts";
import { ProtectionProfileAeadAes128Gcm, ProtectionProfileAes128CmHmacSha1_80, SrtpSession } from "werift";
import { measure } from "./cpu-time.ts";
import { phoneLegPathUs } from "./phone-leg-path.ts";

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

function directRows(): void {
  const masterKey = Buffer.alloc(16, 1);
  const masterSalt = Buffer.alloc(14, 2);
  const payload = new Uint8Array(160).fill(0x7f);
  const header = new Uint8Array(12);
  const fields = { payloadType: 0, sequenceNumber: 0, timestamp: 0, ssrc: 0x1234 };
  const profiles = [["AEAD_AES_128_GCM", ProtectionProfileAeadAes128Gcm], ["AES_CM_128_HMAC_SHA1_80", ProtectionProfileAes128CmHmacSha1_80]] as const;
  for (const [name, profile] of profiles) {
    const session = () => directSrtpContexts(new SrtpSession({ profile, keys: { localMasterKey: masterKey, localMasterSalt: masterSalt, remoteMasterKey: masterKey, remoteMasterSalt: masterSalt } }))!;
    const send = session().localContext;
    let n = 0;
    report(`WebRTC direct ${name}: protect`, measure(() => {
      writeRtpHeader(header, { ...fields, sequenceNumber: n++ & 0xffff, timestamp: n * 160 });
      protectRtp(send, header, payload);
    }, PACKETS));
    const sender = session().localContext;
    const protectedPackets = Array.from({ length: PACKETS * 10 }, (_, i) => {
      writeRtpHeader(header, { ...fields, sequenceNumber: i & 0xffff, timestamp: i * 160 });
      return protectRtp(sender, header, payload);
    });
    const receive = session().remoteContext;
    let next = 0;
    report(`WebRTC direct ${name}: unprotect`, measure(() => {
      if (!unprotectRtp(receive, protectedPackets[next++]!)) throw new Error("unprotect failed");
    }, PACKETS, 8));
  }
}

export async function run(): Promise<void> {
  console.log(`${"per 20 ms PCMU packet (172 bytes of RTP)".padEnd(66)} ${"CPU".padStart(11)}`);
  packetRows();
  directRows();
  const plain = await phoneLegPathUs({ legs: 50, srtp: false });
  const srtp = await phoneLegPathUs({ legs: 50, srtp: true });
  report("PCMU phone leg, whole path without sockets, plain RTP", plain);
  report("PCMU phone leg, whole path without sockets, SRTP both ways", srtp);
  console.log(`\nSRTP adds ${(srtp - plain).toFixed(2)} µs per leg per 20 ms (${((100 * (srtp - plain)) / 20_000).toFixed(3)} % of one core per leg)`);
}

if (import.meta.main) await run();
