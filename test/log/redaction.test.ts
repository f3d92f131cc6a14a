// The logger's redaction: secret fields by name, secret patterns inside any string, and nothing
// else touched. The end-to-end check over real calls, registrations and webhooks is secrets.test.ts.
import { afterEach, describe, expect, test } from "bun:test";
import { createContextLogger, createLogger, REDACTED, redactText, setLogLevel, setLogSink } from "../../src/log.ts";

const lines: string[] = [];
setLogSink((line) => lines.push(line));
afterEach(() => {
  lines.length = 0;
  setLogLevel("info");
});

function logged(fields: Record<string, unknown>, msg = "m"): string {
  lines.length = 0;
  createLogger("t").info(msg, fields);
  expect(lines).toHaveLength(1);
  return lines[0]!;
}

describe("log redaction", () => {
  test("fields named like secrets are redacted at any depth; look-alike names are kept", () => {
    const line = logged({
      digit: "5",
      trunk: { id: "t1", password: "pw-1", authPassword: "pw-2", passwordSet: true },
      headers: { Authorization: "x", "Proxy-Authorization": "y", "content-type": "application/sdp" },
      sharedSecret: "s-1",
      webhooks: { secret: "s-2", timeoutMs: 5000 },
      clientToken: "tok",
      adminToken: "adm",
      srtpKey: "k",
      crypto_key: "k2",
      tokenTtlSec: 3600,
      list: [{ digits: "1234" }],
    });
    const parsed = JSON.parse(line);
    expect(parsed).toMatchObject({
      digit: REDACTED,
      trunk: { id: "t1", password: REDACTED, authPassword: REDACTED, passwordSet: true },
      headers: { Authorization: REDACTED, "Proxy-Authorization": REDACTED, "content-type": "application/sdp" },
      sharedSecret: REDACTED,
      webhooks: { secret: REDACTED, timeoutMs: 5000 },
      clientToken: REDACTED,
      adminToken: REDACTED,
      srtpKey: REDACTED,
      crypto_key: REDACTED,
      tokenTtlSec: 3600,
      list: [{ digits: REDACTED }],
    });
    for (const secret of ["pw-1", "pw-2", "s-1", "s-2", "tok", "adm", "1234"]) expect(line).not.toContain(`"${secret}"`);
  });

  test("secret patterns inside strings are replaced, wherever the string is (message, error, nested)", () => {
    const register =
      "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1\r\n" +
      'Authorization: Digest username="acme", realm="example.com", nonce="n1", uri="sip:example.com", response="0a4f113b9a1c"\r\n' +
      "Proxy-Authorization: Digest username=\"acme\", response=\"77aa\"\r\nContent-Length: 0\r\n\r\n";
    const sdp = "v=0\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32\r\n";
    const jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJhcHBsaWNhdGlvbklkIjoiYSJ9.c2lnbmF0dXJlLWJ5dGVz";
    const line = logged(
      {
        message: register,
        sdp,
        err: new Error(`fetch https://alice:hunter2@hooks.example.com/x failed; header Bearer abc.def-123`),
        url: `wss://example.com/api/v1/client/events?token=${jwt.slice(0, 20)}&x=1`,
        nested: { body: `token ${jwt} here`, info: "Signal=9\r\nDuration=160" },
        cause: "response=deadbeef, cnonce=\"c0ffee\"",
      },
      "dropped Authorization: Bearer admintoken-1234",
    );
    for (const secret of ["0a4f113b9a1c", "77aa", "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR", "hunter2", "abc.def-123", jwt, jwt.slice(0, 20), "Signal=9", "deadbeef", "c0ffee", "admintoken-1234"]) {
      expect(line).not.toContain(secret);
    }
    const parsed = JSON.parse(line);
    expect(parsed.msg).toBe(`dropped Authorization: ${REDACTED}`);
    expect(parsed.message).toContain(`\r\nAuthorization: ${REDACTED}\r\n`);
    expect(parsed.message).toContain("Via: SIP/2.0/UDP 10.0.0.1\r\n");
    expect(parsed.sdp).toContain(`a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:${REDACTED}\r\n`);
    expect(parsed.err).toEqual({ name: "Error", message: `fetch https://alice:${REDACTED}@hooks.example.com/x failed; header Bearer ${REDACTED}` });
    expect(parsed.url).toBe(`wss://example.com/api/v1/client/events?token=${REDACTED}&x=1`);
    expect(parsed.nested).toEqual({ body: `token ${REDACTED} here`, info: `Signal=${REDACTED}\r\nDuration=160` });
  });

  test("ordinary text passes unchanged and is the same string (no rewrite work)", () => {
    const text = "trunk carrier registered, expires in 3600 s; INVITE sip:+15551234567@sip.example.com answered";
    expect(redactText(text)).toBe(text);
    const line = JSON.parse(logged({ reason: text, status: 200, to: "sip:bob@example.com", tokenTtlSec: 60 }));
    expect(line).toMatchObject({ reason: text, status: 200, to: "sip:bob@example.com", tokenTtlSec: 60 });
  });

  test("a line below the level is neither serialized nor written (its fields are never read)", () => {
    setLogLevel("warn");
    let read = false;
    const fields = {
      get digit() {
        read = true;
        return "1";
      },
    };
    createLogger("t").info("filtered", fields);
    expect(lines).toEqual([]);
    expect(read).toBe(false);
    createLogger("t").warn("kept", fields);
    expect(read).toBe(true);
    expect(JSON.parse(lines[0]!).digit).toBe(REDACTED);
  });

  test("children keep the parent's fields, may name their own component, and see fields a context logger gains later; fixed fields are redacted too", () => {
    const call = createContextLogger("calls", { callId: "call_1", direction: "outbound" });
    const leg = call.child({}, "media.leg");
    const tagged = call.child({ trunkId: "t1", password: "pw" });
    leg.info("before");
    call.assign({ sipCallId: "abc@host" });
    leg.info("after");
    tagged.warn("tagged");
    call.info("own");
    const parsed = lines.map((l) => JSON.parse(l));
    expect(parsed[0]).toMatchObject({ component: "media.leg", msg: "before", callId: "call_1", direction: "outbound" });
    expect(parsed[0].sipCallId).toBeUndefined();
    expect(parsed[1]).toMatchObject({ component: "media.leg", msg: "after", callId: "call_1", sipCallId: "abc@host" });
    expect(parsed[2]).toMatchObject({ component: "calls", msg: "tagged", callId: "call_1", sipCallId: "abc@host", trunkId: "t1", password: REDACTED });
    expect(parsed[3]).toMatchObject({ component: "calls", msg: "own", sipCallId: "abc@host" });
  });
});
