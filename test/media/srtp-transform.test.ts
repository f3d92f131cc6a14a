// The shared AES_CM_128_HMAC_SHA1 transform (srtp-transform.ts) on its own: RFC 3711 Appendix B.2's
// keystream, werift's cipher byte for byte at rollover counters the contexts' tests do not reach,
// both tag lengths, and SRTCP sent unencrypted (E flag 0, RFC 3711 §3.4).
import { describe, expect, test } from "bun:test";
import { createHmac } from "node:crypto";
import { ProtectionProfileAes128CmHmacSha1_80, RtpHeader, SrtpSession } from "werift";
import { writeRtpHeader } from "../../src/media/rtp-packet.ts";
import { AesCmHmacSha1, TAG_LENGTH_32, TAG_LENGTH_80 } from "../../src/media/srtp-transform.ts";

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ""), "hex");
const toHex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** werift's session context for a master key: its derived keys and its AES-CM cipher. */
function weriftContext() {
  const masterKey = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
  const masterSalt = hex("0EC675AD498AFEEBB6960B3AABE6");
  return new SrtpSession({
    keys: { localMasterKey: masterKey, localMasterSalt: masterSalt, remoteMasterKey: masterKey, remoteMasterSalt: masterSalt },
    profile: ProtectionProfileAes128CmHmacSha1_80,
  }).localContext;
}

interface WeriftAesCm {
  encryptRtp(header: RtpHeader, payload: Buffer, rolloverCounter: number): Buffer;
}

describe("AES-CM keystream", () => {
  test("RFC 3711 Appendix B.2: SSRC 0, ROC 0, SEQ 0 under its session key and salt", () => {
    const transform = new AesCmHmacSha1(hex("2B7E151628AED2A6ABF7158809CF4F3C"), hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD"), Buffer.alloc(20));
    const header = new Uint8Array(12);
    writeRtpHeader(header, { payloadType: 0, sequenceNumber: 0, timestamp: 0, ssrc: 0 });
    // A zero payload encrypts to the keystream itself.
    const keystream = transform.protectRtp(header, new Uint8Array(0xff02 * 16), 0, TAG_LENGTH_80).subarray(12);
    const block = (i: number) => toHex(keystream.subarray(i * 16, i * 16 + 16));
    expect(block(0)).toBe("e03ead0935c95e80e166b16dd92b4eb4");
    expect(block(1)).toBe("d23513162b02d0f72a43a2fe4a5f97ab");
    expect(block(2)).toBe("41e95b3bb0a2e8dd477901e4fca894c0");
    expect(block(0xfeff)).toBe("ec8cdf7398607cb0f2d21675ea9ea1e4");
    expect(block(0xff00)).toBe("362b7c3c6773516318a077d7fc5073ae");
    expect(block(0xff01)).toBe("6a2cc3787889374fbeb4c81b17ba6c44");
  });
});

describe("SRTP against werift's AES-CM cipher", () => {
  const context = weriftContext();
  const werift = context.cipher as unknown as WeriftAesCm;
  const transform = new AesCmHmacSha1(context.srtpSessionKey, context.srtpSessionSalt, context.srtpSessionAuthTag);

  test.each([0, 1, 0x1234, 0xffffffff])("ROC %d, with CSRCs, both tag lengths: the same bytes, and they open again", (rolloverCounter) => {
    const fields = { payloadType: 8, sequenceNumber: 0xfffe, timestamp: 0xdeadbeef, ssrc: 0xcafebabe, csrc: [7, 9] };
    const payload = Buffer.from(Array.from({ length: 161 }, (_, i) => (i * 13) & 0xff));
    const header = new RtpHeader(fields);
    const headerBytes = header.serialize(header.serializeSize);
    const expected = werift.encryptRtp(header, payload, rolloverCounter);
    for (const tagLength of [TAG_LENGTH_80, TAG_LENGTH_32]) {
      const packet = transform.protectRtp(headerBytes, payload, rolloverCounter, tagLength);
      expect(toHex(packet)).toBe(toHex(expected.subarray(0, expected.length - TAG_LENGTH_80 + tagLength)));
      expect(transform.authenticRtp(packet, rolloverCounter, tagLength)).toBe(true);
      expect(transform.authenticRtp(packet, (rolloverCounter + 1) >>> 0, tagLength)).toBe(false);
      const plain = new Uint8Array(packet.length - tagLength);
      transform.decryptRtp(packet, headerBytes.length, rolloverCounter, tagLength, plain);
      expect(toHex(plain)).toBe(toHex(Buffer.concat([headerBytes, payload])));
    }
  });
});

describe("SRTCP", () => {
  const context = weriftContext();
  const transform = new AesCmHmacSha1(context.srtcpSessionKey, context.srtcpSessionSalt, context.srtcpSessionAuthTag);
  const rtcp = hex("81c8000bcafebabe abababababababababababababababab");

  test("an unencrypted SRTCP packet (E flag 0) opens as it is; its E flag is authenticated", () => {
    const authenticated = Buffer.concat([rtcp, hex("00000005")]);
    const tag = createHmac("sha1", context.srtcpSessionAuthTag).update(authenticated).digest().subarray(0, 10);
    const packet = Buffer.concat([authenticated, tag]);
    expect(toHex(transform.unprotectRtcp(packet)!)).toBe(toHex(rtcp));
    const flagged = Buffer.from(packet);
    flagged[rtcp.length]! |= 0x80;
    expect(transform.unprotectRtcp(flagged)).toBeUndefined();
  });

  test("the index goes into the IV: one packet under two indexes, two ciphertexts, each opening", () => {
    const first = transform.protectRtcp(rtcp, 1);
    const second = transform.protectRtcp(rtcp, 0x12345);
    expect(toHex(first.subarray(8, rtcp.length))).not.toBe(toHex(second.subarray(8, rtcp.length)));
    expect(toHex(second.subarray(rtcp.length, rtcp.length + 4))).toBe("80012345");
    for (const packet of [first, second]) expect(toHex(transform.unprotectRtcp(packet)!)).toBe(toHex(rtcp));
  });
});
