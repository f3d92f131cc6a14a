import { describe, expect, test } from "bun:test";
import { createHmac } from "node:crypto";
import { newClientId, peekApplicationId, signClientToken, verifyClientToken, type ClientClaims } from "../../src/webrtc/tokens.ts";

const secret = "app-secret-1";
const inOneHour = () => Math.floor(Date.now() / 1000) + 3600;
const claims = (over: Partial<ClientClaims> = {}): ClientClaims => ({
  applicationId: "app1",
  channelId: "lobby",
  userId: "u1",
  roles: ["dial"],
  exp: inOneHour(),
  ...over,
});

/** A token built by hand, the way an application server's JWT library would build it. */
function handMade(header: object, payload: object, key = secret): string {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${createHmac("sha256", key).update(input).digest("base64url")}`;
}

describe("client tokens", () => {
  test("a signed token verifies and returns its claims", () => {
    const result = verifyClientToken(signClientToken(claims({ userAlias: "Ann", tag: "t" }), secret), secret);
    expect(result).toEqual({ ok: true, value: claims({ userAlias: "Ann", tag: "t", exp: (result as { value: ClientClaims }).value.exp }) });
  });

  test("a token minted by a standard JWT library verifies", () => {
    const token = handMade({ alg: "HS256", typ: "JWT" }, { applicationId: "app1", channelId: "c", exp: inOneHour(), roles: [] });
    const result = verifyClientToken(token, secret);
    expect(result.ok).toBe(true);
    expect(peekApplicationId(token)).toEqual({ ok: true, value: "app1" });
  });

  test("a token signed with another secret is rejected", () => {
    expect(verifyClientToken(signClientToken(claims(), "other"), secret)).toMatchObject({ ok: false, code: "bad_signature" });
  });

  test("a tampered payload is rejected", () => {
    const [h, , s] = signClientToken(claims(), secret).split(".");
    const forged = `${h}.${Buffer.from(JSON.stringify(claims({ channelId: "vip" }))).toString("base64url")}.${s}`;
    expect(verifyClientToken(forged, secret)).toMatchObject({ ok: false, code: "bad_signature" });
  });

  test("an expired token is rejected", () => {
    const token = signClientToken(claims({ exp: Math.floor(Date.now() / 1000) - 1 }), secret);
    expect(verifyClientToken(token, secret)).toMatchObject({ ok: false, code: "token_expired" });
  });

  test("alg none and other algorithms are rejected even with a valid-looking signature", () => {
    const none = handMade({ alg: "none" }, claims());
    expect(verifyClientToken(none, secret)).toMatchObject({ ok: false, code: "malformed_token" });
    const unsigned = `${none.split(".").slice(0, 2).join(".")}.`;
    expect(verifyClientToken(unsigned, secret)).toMatchObject({ ok: false });
  });

  test("missing or mistyped claims are rejected", () => {
    expect(verifyClientToken(handMade({ alg: "HS256" }, { applicationId: "a", channelId: "c" }), secret)).toMatchObject({ code: "invalid_claims" });
    expect(verifyClientToken(handMade({ alg: "HS256" }, { applicationId: "a", exp: inOneHour() }), secret)).toMatchObject({ code: "invalid_claims" });
    expect(verifyClientToken(handMade({ alg: "HS256" }, { ...claims(), roles: "dial" }), secret)).toMatchObject({ code: "invalid_claims" });
    expect(verifyClientToken(handMade({ alg: "HS256" }, { ...claims(), userId: 7 }), secret)).toMatchObject({ code: "invalid_claims" });
  });

  test("garbage never throws", () => {
    for (const junk of ["", "a.b", "a.b.c", "....", "ey.ey.ey", "%%%.%%%.%%%", `${"x".repeat(5000)}.y.z`]) {
      expect(verifyClientToken(junk, secret).ok).toBe(false);
      expect(peekApplicationId(junk).ok).toBe(false);
    }
  });

  test("generated client ids are distinct", () => {
    expect(newClientId()).not.toBe(newClientId());
  });
});
