import { describe, expect, test } from "bun:test";
import { ProtectionProfileAes128CmHmacSha1_80, RtpHeader, SrtcpSession, SrtpSession } from "werift";
import { serializeRtp } from "../../src/media/rtp-packet.ts";
import { SrtpReceiveContext, SrtpSendContext, generateSrtpKey, sameSrtpKey, srtpDropTotals, type SrtpKey, type SrtpSuite } from "../../src/media/srtp.ts";

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ""), "hex"));
const toHex = (b: Uint8Array) => Buffer.from(b).toString("hex");

// RFC 3711 Appendix B.3's master key and salt, which libsrtp's reference packets below also use.
const MASTER = hex("E1F97A0D3E018BE0D64FA32C06DE4139 0EC675AD498AFEEBB6960B3AABE6");
const key80: SrtpKey = { suite: "AES_CM_128_HMAC_SHA1_80", keyAndSalt: MASTER };
const key32: SrtpKey = { suite: "AES_CM_128_HMAC_SHA1_32", keyAndSalt: MASTER };

function weriftSession<T extends typeof SrtpSession | typeof SrtcpSession>(Session: T, keyAndSalt: Uint8Array): InstanceType<T> {
  const masterKey = Buffer.from(keyAndSalt.subarray(0, 16));
  const masterSalt = Buffer.from(keyAndSalt.subarray(16));
  return new Session({
    keys: { localMasterKey: masterKey, localMasterSalt: masterSalt, remoteMasterKey: masterKey, remoteMasterSalt: masterSalt },
    profile: ProtectionProfileAes128CmHmacSha1_80,
  }) as InstanceType<T>;
}

function rtp(sequenceNumber: number, ssrc = 0x1234abcd, fill = 0x55): Uint8Array {
  return serializeRtp({ payloadType: 0, sequenceNumber, timestamp: sequenceNumber * 160, ssrc }, new Uint8Array(160).fill(fill));
}

describe("werift's key derivation against RFC 3711 Appendix B", () => {
  test("B.3: session encryption key, salt and authentication key from the master key", () => {
    const context = weriftSession(SrtpSession, MASTER).localContext;
    expect(toHex(context.srtpSessionKey)).toBe("c61e7a93744f39ee10734afe3ff7a087");
    expect(toHex(context.srtpSessionSalt)).toBe("30cbbc08863d8c85d49db34a9ae1");
    expect(toHex(context.srtpSessionAuthTag)).toBe("cebe321f6ff7716b6fd4ab49af256a156d38baa4");
  });
});

// libsrtp's srtp_validate() reference packets (SSRC 0xcafebabe, SEQ 0x1234, ROC 0; SRTCP index 1).
const RTP_PLAIN = hex("800f1234decafbadcafebabe abababababababababababababababab");
const SRTP_80 = hex("800f1234decafbadcafebabe 4e55dc4ce79978d88ca4d215949d2402 b78d6acc99ea179b8dbb");
const RTCP_PLAIN = hex("81c8000bcafebabe abababababababababababababababab");
const SRTCP = hex("81c8000bcafebabe 7128035be487b9bdbef89041f977a5a8 80000001 993e08cd54d6c1230798");

describe("SRTP contexts against libsrtp's reference packets", () => {
  test("AES_CM_128_HMAC_SHA1_80 protects and unprotects the reference RTP packet", () => {
    expect(toHex(new SrtpSendContext(key80).protectRtp(RTP_PLAIN))).toBe(toHex(SRTP_80));
    expect(toHex(new SrtpReceiveContext(key80).unprotectRtp(SRTP_80) as Uint8Array)).toBe(toHex(RTP_PLAIN));
  });

  test("AES_CM_128_HMAC_SHA1_32: the same ciphertext with the tag's first 32 bits", () => {
    const expected = SRTP_80.subarray(0, SRTP_80.length - 6);
    expect(toHex(new SrtpSendContext(key32).protectRtp(RTP_PLAIN))).toBe(toHex(expected));
    expect(toHex(new SrtpReceiveContext(key32).unprotectRtp(expected) as Uint8Array)).toBe(toHex(RTP_PLAIN));
  });

  test("SRTCP (80-bit tag for both suites): the reference RTCP packet with index 1", () => {
    for (const key of [key80, key32]) {
      expect(toHex(new SrtpSendContext(key).protectRtcp(RTCP_PLAIN))).toBe(toHex(SRTCP));
      expect(toHex(new SrtpReceiveContext(key).unprotectRtcp(SRTCP) as Uint8Array)).toBe(toHex(RTCP_PLAIN));
    }
  });
});

describe("round trips with werift's own SRTP sessions", () => {
  const key = generateSrtpKey("AES_CM_128_HMAC_SHA1_80");

  test("our SRTP opens in werift's session, and werift's in our context", () => {
    const werift = weriftSession(SrtpSession, key.keyAndSalt);
    const send = new SrtpSendContext(key);
    for (let seq = 100; seq < 110; seq++) expect(toHex(werift.decrypt(Buffer.from(send.protectRtp(rtp(seq)))))).toBe(toHex(rtp(seq)));
    const receive = new SrtpReceiveContext(key);
    for (let seq = 500; seq < 510; seq++) {
      const header = new RtpHeader({ payloadType: 8, sequenceNumber: seq, timestamp: seq * 160, ssrc: 0x77 });
      const payload = Buffer.alloc(160, seq & 0xff);
      const opened = receive.unprotectRtp(werift.encrypt(payload, header));
      expect(opened).toBeInstanceOf(Uint8Array);
      expect(toHex((opened as Uint8Array).subarray(12))).toBe(toHex(payload));
      expect(((opened as Uint8Array)[2]! << 8) | (opened as Uint8Array)[3]!).toBe(seq);
    }
  });

  test("our SRTCP opens in werift's SRTCP session, and werift's in our context", () => {
    const werift = weriftSession(SrtcpSession, key.keyAndSalt);
    const send = new SrtpSendContext(key);
    const receive = new SrtpReceiveContext(key);
    for (let i = 0; i < 3; i++) {
      expect(toHex(werift.decrypt(Buffer.from(send.protectRtcp(RTCP_PLAIN))))).toBe(toHex(RTCP_PLAIN));
      expect(toHex(receive.unprotectRtcp(werift.encrypt(Buffer.from(RTCP_PLAIN))) as Uint8Array)).toBe(toHex(RTCP_PLAIN));
    }
  });
});

describe("SRTP receive context", () => {
  const pair = (suite: SrtpSuite = "AES_CM_128_HMAC_SHA1_80") => {
    const key = generateSrtpKey(suite);
    return { send: new SrtpSendContext(key), receive: new SrtpReceiveContext(key), key };
  };

  test("the rollover counter follows the sender's sequence wrap, also with packets reordered around it", () => {
    const { send, receive } = pair();
    const sent = new Map<number, Uint8Array>();
    for (const seq of [65530, 65531, 65532, 65533, 65534, 65535, 0, 1, 2, 3]) sent.set(seq, send.protectRtp(rtp(seq)));
    for (const seq of [65530, 65531, 65532, 65534, 0, 65533, 2, 65535, 1, 3]) {
      expect(toHex(receive.unprotectRtp(sent.get(seq)!) as Uint8Array)).toBe(toHex(rtp(seq)));
    }
    // After the wrap the keystream and tag are those of ROC 1: a context that never saw it (ROC 0) fails.
    expect(new SrtpReceiveContext(pair().key).unprotectRtp(sent.get(1)!)).toBe("auth");
    const fresh = new SrtpSendContext(send.key);
    expect(toHex(fresh.protectRtp(rtp(1)))).not.toBe(toHex(sent.get(1)!));
  });

  test("replays and packets older than the 64-packet window are dropped; reordering within it is not", () => {
    const { send, receive } = pair();
    const packets = Array.from({ length: 100 }, (_, i) => send.protectRtp(rtp(1000 + i)));
    expect(receive.unprotectRtp(packets[10]!)).toBeInstanceOf(Uint8Array);
    expect(receive.unprotectRtp(packets[10]!)).toBe("replay");
    expect(receive.unprotectRtp(packets[99]!)).toBeInstanceOf(Uint8Array);
    expect(receive.unprotectRtp(packets[50]!)).toBeInstanceOf(Uint8Array);
    expect(receive.unprotectRtp(packets[50]!)).toBe("replay");
    expect(receive.unprotectRtp(packets[30]!)).toBe("replay"); // 69 behind the highest
    expect(receive.unprotectRtp(packets[36]!)).toBeInstanceOf(Uint8Array); // 63 behind

    const rtcp = send.protectRtcp(RTCP_PLAIN);
    expect(receive.unprotectRtcp(rtcp)).toBeInstanceOf(Uint8Array);
    expect(receive.unprotectRtcp(rtcp)).toBe("replay");
  });

  test("tampered, truncated, plain and foreign-key packets fail authentication and change nothing", () => {
    const { send, receive } = pair();
    const good = send.protectRtp(rtp(7));
    const flipped = good.slice(); flipped[40]! ^= 1;
    const badTag = good.slice(); badTag[good.length - 1]! ^= 1;
    const before = srtpDropTotals.auth;
    expect(receive.unprotectRtp(flipped)).toBe("auth");
    expect(receive.unprotectRtp(badTag)).toBe("auth");
    expect(receive.unprotectRtp(good.subarray(0, 15))).toBe("auth");
    expect(receive.unprotectRtp(rtp(7))).toBe("auth");
    expect(receive.unprotectRtp(new SrtpSendContext(generateSrtpKey("AES_CM_128_HMAC_SHA1_80")).protectRtp(rtp(40000)))).toBe("auth");
    expect(receive.unprotectRtcp(RTCP_PLAIN)).toBe("auth");
    expect(srtpDropTotals.auth - before).toBe(6);
    // The forged sequence number 40000 moved no window: the genuine packet still opens.
    expect(receive.unprotectRtp(good)).toBeInstanceOf(Uint8Array);
  });

  test("a 32-bit-tag context adds 4 bytes and rejects an 80-bit packet", () => {
    const { send, receive, key } = pair("AES_CM_128_HMAC_SHA1_32");
    const packet = send.protectRtp(rtp(1));
    expect(packet.length).toBe(rtp(1).length + 4);
    expect(receive.unprotectRtp(packet)).toBeInstanceOf(Uint8Array);
    expect(receive.unprotectRtp(new SrtpSendContext({ ...key, suite: "AES_CM_128_HMAC_SHA1_80" }).protectRtp(rtp(2)))).toBe("auth");
  });

  test("re-keyed: the previous key opens packets until the new key has opened one", () => {
    const old = pair();
    expect(old.receive.unprotectRtp(old.send.protectRtp(rtp(1)))).toBeInstanceOf(Uint8Array);
    const next = generateSrtpKey("AES_CM_128_HMAC_SHA1_80");
    const receive = new SrtpReceiveContext(next, { previous: old.receive });
    expect(sameSrtpKey(receive.key, next)).toBe(true);
    expect(sameSrtpKey(receive.key, old.key)).toBe(false);
    expect(sameSrtpKey(next, { ...next, suite: "AES_CM_128_HMAC_SHA1_32" })).toBe(false);
    expect(receive.unprotectRtp(old.send.protectRtp(rtp(2)))).toBeInstanceOf(Uint8Array);
    expect(receive.unprotectRtcp(old.send.protectRtcp(RTCP_PLAIN))).toBeInstanceOf(Uint8Array);
    const sendNext = new SrtpSendContext(next);
    expect(receive.unprotectRtp(sendNext.protectRtp(rtp(3)))).toBeInstanceOf(Uint8Array);
    expect(receive.unprotectRtp(old.send.protectRtp(rtp(4)))).toBe("auth");
  });
});
