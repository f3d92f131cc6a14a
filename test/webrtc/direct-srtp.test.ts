// The direct path's SRTP, AEAD_AES_128_GCM (RFC 7714) and AES_CM_128_HMAC_SHA1_80 (RFC 3711), against
// werift's own session, byte for byte: both ends keyed alike, packets across a sequence number wrap (the rollover counter, RFC 3711
// §3.3.1), with CSRCs and header extensions, out of order, and forged.
import { describe, expect, test } from "bun:test";
import { ProtectionProfileAeadAes128Gcm, ProtectionProfileAes128CmHmacSha1_80, RtpHeader, RtpPacket, SrtpSession } from "werift";
import { directSrtpContexts, protectRtp, unprotectRtp } from "../../src/webrtc/direct-srtp.ts";
import { writeRtpHeader } from "../../src/media/rtp-packet.ts";

const localKey = Buffer.from("000102030405060708090a0b0c0d0e0f", "hex");
const localSalt = Buffer.from("a0a1a2a3a4a5a6a7a8a9aaabacad", "hex");
const remoteKey = Buffer.from("f0e1d2c3b4a5968778695a4b3c2d1e0f", "hex");
const remoteSalt = Buffer.from("0102030405060708090a0b0c0d0e", "hex");

type Profile = typeof ProtectionProfileAeadAes128Gcm | typeof ProtectionProfileAes128CmHmacSha1_80;
const PROFILES: [string, Profile][] = [
  ["AEAD_AES_128_GCM", ProtectionProfileAeadAes128Gcm],
  ["AES_CM_128_HMAC_SHA1_80", ProtectionProfileAes128CmHmacSha1_80],
];

function session(profile: Profile): SrtpSession {
  return new SrtpSession({ profile, keys: { localMasterKey: localKey, localMasterSalt: localSalt, remoteMasterKey: remoteKey, remoteMasterSalt: remoteSalt } });
}

/** A session keyed as the other end of session(): what it encrypts, session() decrypts. */
function peerSession(profile: Profile): SrtpSession {
  return new SrtpSession({ profile, keys: { localMasterKey: remoteKey, localMasterSalt: remoteSalt, remoteMasterKey: localKey, remoteMasterSalt: localSalt } });
}

function payloadOf(i: number): Buffer {
  return Buffer.from(Array.from({ length: 20 + (i % 60) }, (_, j) => (i * 7 + j) & 0xff));
}

describe.each(PROFILES)("%s", (_name, profile) => {
  test("what we protect is what werift's session protects, packet for packet across a sequence number wrap", () => {
    const werift = session(profile);
    const ours = directSrtpContexts(session(profile))!;
    expect(ours).toBeDefined();
    const header = new Uint8Array(12);
    for (let i = 0; i < 40; i++) {
      const sequenceNumber = (65_520 + i) & 0xffff;
      const timestamp = (0xfffff000 + i * 960) >>> 0;
      const payload = payloadOf(i);
      const expected = werift.encrypt(payload, new RtpHeader({ payloadType: 111, sequenceNumber, timestamp, ssrc: 0xdeadbeef }));
      writeRtpHeader(header, { payloadType: 111, sequenceNumber, timestamp, ssrc: 0xdeadbeef });
      expect(Buffer.from(protectRtp(ours.localContext, header, payload)).equals(expected)).toBe(true);
    }
    // The rollover counter went up at the wrap on both sides.
    expect(ours.localContext.srtpSSRCStates[0xdeadbeef]?.rolloverCounter).toBe(1);
  });

  test("what we unprotect is what werift's session unprotects: extensions, CSRCs, a wrap, packets out of order", () => {
    const sender = peerSession(profile);
    const werift = session(profile);
    const ours = directSrtpContexts(session(profile))!;
    const order = [0, 1, 2, 4, 3, 5, 6, 8, 7, 9, 10, 11, 12, 14, 13, 15, 16, 17, 18, 19];
    for (const i of order) {
      const sequenceNumber = (65_530 + i) & 0xffff;
      const header = new RtpHeader({
        payloadType: 111,
        sequenceNumber,
        timestamp: i * 960,
        ssrc: 0x1234,
        marker: i === 0,
        csrc: i % 5 === 0 ? [1, 2] : [],
        ...(i % 2 === 0 ? { extension: true, extensionProfile: 0xbede, extensions: [{ id: 1, payload: Buffer.of(0x80 | i) }] } : {}),
      });
      const packet = sender.encrypt(payloadOf(i), header);
      const expected = werift.decrypt(Buffer.from(packet));
      const got = unprotectRtp(ours.remoteContext, Buffer.from(packet));
      expect(got && Buffer.from(got).equals(expected)).toBe(true);
      expect(RtpPacket.deSerialize(Buffer.from(got!)).payload.equals(payloadOf(i))).toBe(true);
    }
    const theirs = (werift as unknown as { remoteContext: { srtpSSRCStates: Record<number, unknown> } }).remoteContext.srtpSSRCStates[0x1234];
    expect(ours.remoteContext.srtpSSRCStates[0x1234]).toEqual(theirs as never);
  });

  test("a forged or truncated packet is refused and leaves the rollover state as it was", () => {
    const sender = peerSession(profile);
    const ours = directSrtpContexts(session(profile))!;
    const packet = (sequenceNumber: number) => sender.encrypt(payloadOf(sequenceNumber), new RtpHeader({ payloadType: 111, sequenceNumber, timestamp: 0, ssrc: 9 }));
    expect(unprotectRtp(ours.remoteContext, packet(65_535))).toBeDefined();
    const before = { ...ours.remoteContext.srtpSSRCStates[9]! };
    const forged = packet(0);
    forged[forged.length - 1]! ^= 1; // the tag
    expect(unprotectRtp(ours.remoteContext, forged)).toBeUndefined();
    const tamperedHeader = packet(1);
    tamperedHeader[1] = 0; // the payload type, authenticated as associated data
    expect(unprotectRtp(ours.remoteContext, tamperedHeader)).toBeUndefined();
    expect(unprotectRtp(ours.remoteContext, packet(2).subarray(0, 20))).toBeUndefined();
    expect(unprotectRtp(ours.remoteContext, Buffer.alloc(3))).toBeUndefined();
    expect(ours.remoteContext.srtpSSRCStates[9]).toEqual(before);
    // A genuine packet after the wrap still opens (rollover counter 1).
    expect(unprotectRtp(ours.remoteContext, packet(3))).toBeDefined();
    expect(ours.remoteContext.srtpSSRCStates[9]?.rolloverCounter).toBe(1);
  });
});

