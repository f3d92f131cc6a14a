import { describe, expect, test } from "bun:test";
import { firstUsableCrypto, formatCrypto, parseCrypto, redactSdesKeys } from "../../src/media/sdes.ts";

const KEY = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"; // RFC 4568 §4's example key-salt, 30 bytes

describe("a=crypto (RFC 4568 §9.1)", () => {
  test("tag, suite and inline key, with a lifetime and the WSH hint", () => {
    const r = parseCrypto(`1 AES_CM_128_HMAC_SHA1_80 inline:${KEY}|2^20 WSH=64`);
    if (!r.ok) throw new Error(r.reason);
    expect(r.crypto.tag).toBe(1);
    expect(r.crypto.key.suite).toBe("AES_CM_128_HMAC_SHA1_80");
    expect(Buffer.from(r.crypto.key.keyAndSalt).toString("base64")).toBe(KEY);
    expect(parseCrypto(`123456789 aes_cm_128_hmac_sha1_32 INLINE:${KEY}|1048576`)).toMatchObject({ ok: true, crypto: { tag: 123456789, key: { suite: "AES_CM_128_HMAC_SHA1_32" } } });
  });

  test("what we cannot honour is refused with its reason", () => {
    const cases: [string, string][] = [
      ["1 AES_CM_128_HMAC_SHA1_80", "needs a tag"],
      [`x1 AES_CM_128_HMAC_SHA1_80 inline:${KEY}`, "bad a=crypto tag"],
      [`1234567890 AES_CM_128_HMAC_SHA1_80 inline:${KEY}`, "bad a=crypto tag"],
      [`1 AES_256_CM_HMAC_SHA1_80 inline:${KEY}`, "AES_256_CM_HMAC_SHA1_80 is not supported"],
      [`1 AEAD_AES_128_GCM inline:${KEY}`, "AEAD_AES_128_GCM is not supported"],
      [`1 AES_CM_128_HMAC_SHA1_80 uri:https://example.com/key`, `key method "uri" is not supported`],
      [`1 AES_CM_128_HMAC_SHA1_80 inline:${KEY.slice(4)}`, "not 30 bytes"],
      [`1 AES_CM_128_HMAC_SHA1_80 inline:${KEY.slice(0, 39)}!`, "not 30 bytes"],
      [`1 AES_CM_128_HMAC_SHA1_80 inline:${KEY}|2^20|1:4`, "MKI"],
      [`1 AES_CM_128_HMAC_SHA1_80 inline:${KEY}|1:4`, "MKI"],
      [`1 AES_CM_128_HMAC_SHA1_80 inline:${KEY}|2^49`, "outside 1..2^48"],
      [`1 AES_CM_128_HMAC_SHA1_80 inline:${KEY}|0`, "outside 1..2^48"],
      [`1 AES_CM_128_HMAC_SHA1_80 inline:${KEY}|forever`, "bad key lifetime"],
      [`1 AES_CM_128_HMAC_SHA1_80 inline:${KEY};inline:${KEY}`, "several keys"],
      [`1 AES_CM_128_HMAC_SHA1_80 inline:${KEY} KDR=1`, "KDR=1 is not supported"],
      [`1 AES_CM_128_HMAC_SHA1_80 inline:${KEY} UNENCRYPTED_SRTCP`, "UNENCRYPTED_SRTCP is not supported"],
    ];
    for (const [value, reason] of cases) expect(parseCrypto(value), value).toEqual({ ok: false, reason: expect.stringContaining(reason) });
    expect(parseCrypto(`1 ${"X".repeat(5000)} inline:${KEY}`)).toMatchObject({ ok: false, reason: expect.not.stringContaining("X".repeat(41)) });
  });

  test("the first usable line of an offer wins; none usable names the reasons", () => {
    const r = firstUsableCrypto([`1 AEAD_AES_256_GCM inline:${KEY}`, `2 AES_CM_128_HMAC_SHA1_32 inline:${KEY}`, `3 AES_CM_128_HMAC_SHA1_80 inline:${KEY}`]);
    expect(r.ok && r.crypto.tag).toBe(2);
    expect(firstUsableCrypto([])).toEqual({ ok: false, reason: "no a=crypto line" });
    const none = firstUsableCrypto([`1 AEAD_AES_256_GCM inline:${KEY}`, `2 AES_CM_128_HMAC_SHA1_32 inline:${KEY}|1:1`]);
    expect(none).toEqual({ ok: false, reason: expect.stringMatching(/^no usable a=crypto: crypto suite AEAD_AES_256_GCM .*; keys with an MKI/) });
  });

  test("redactSdesKeys removes every inline key and nothing else", () => {
    const sdp = `v=0\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:${KEY}|2^20\r\nA=CRYPTO:2 AES_CM_128_HMAC_SHA1_32 INLINE:${KEY};inline:${KEY}|1:1\r\na=sendrecv\r\n`;
    const redacted = redactSdesKeys(sdp);
    expect(redacted).not.toContain(KEY);
    expect(redacted).toBe(`v=0\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:redacted|2^20\r\nA=CRYPTO:2 AES_CM_128_HMAC_SHA1_32 inline:redacted;inline:redacted|1:1\r\na=sendrecv\r\n`);
  });

  test("formatCrypto writes what parseCrypto reads", () => {
    const key = { suite: "AES_CM_128_HMAC_SHA1_32" as const, keyAndSalt: crypto.getRandomValues(new Uint8Array(30)) };
    const text = formatCrypto({ tag: 4, key });
    expect(text).toMatch(/^4 AES_CM_128_HMAC_SHA1_32 inline:[A-Za-z0-9+/]{40}$/);
    expect(parseCrypto(text)).toEqual({ ok: true, crypto: { tag: 4, key } });
  });
});
