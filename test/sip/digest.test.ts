import { describe, expect, test } from "bun:test";
import { DigestAuthentication } from "sip.js/lib/core/messages/digest-authentication.js";
import {
  authorize, chooseQop, DigestState, digestResponse, formatCredentials, parseAuthParams, parseChallenge, reauthorize,
  type Credentials, type DigestAlgorithm,
} from "../../src/sip/digest.ts";
import { createRequest, parseUri, SipResponse, type SipRequest } from "../../src/sip/message.ts";

const silentLoggerFactory = {
  getLogger: () => ({ error() {}, warn() {}, log() {}, debug() {} }),
} as unknown as ConstructorParameters<typeof DigestAuthentication>[0];

function params(header: string): Map<string, string> {
  const parsed = parseAuthParams(header);
  if ("error" in parsed) throw new Error(parsed.error);
  return parsed.params;
}

describe("digest response vectors", () => {
  test("RFC 2617 §3.5 MD5 qop=auth example", () => {
    expect(digestResponse({
      algorithm: "MD5", username: "Mufasa", password: "Circle Of Life", realm: "testrealm@host.com",
      nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093", method: "GET", uri: "/dir/index.html",
      qop: "auth", nc: 1, cnonce: "0a4f113b",
    })).toBe("6629fae49393a05397450978507c4ef1");
  });

  const rfc7616 = {
    username: "Mufasa", password: "Circle of Life", realm: "http-auth@example.org",
    nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", method: "GET", uri: "/dir/index.html",
    qop: "auth" as const, nc: 1, cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
  };
  test("RFC 7616 §3.9.1 MD5 example", () => {
    expect(digestResponse({ ...rfc7616, algorithm: "MD5" })).toBe("8ca523f5e9506fed4657c9700eebdbec");
  });
  test("RFC 7616 §3.9.1 SHA-256 example", () => {
    expect(digestResponse({ ...rfc7616, algorithm: "SHA-256" }))
      .toBe("753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
  });

  test("SHA-512-256 is the FIPS 180-4 truncated variant (not a cut SHA-512)", () => {
    const r = digestResponse({ ...rfc7616, algorithm: "SHA-512-256" });
    expect(r).toHaveLength(64);
    const H = (s: string) => new Bun.CryptoHasher("sha512-256").update(s).digest("hex");
    const ha1 = H(`Mufasa:http-auth@example.org:Circle of Life`);
    const ha2 = H(`GET:/dir/index.html`);
    expect(r).toBe(H(`${ha1}:${rfc7616.nonce}:00000001:${rfc7616.cnonce}:auth:${ha2}`));
    expect(H("abc")).toBe("53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23");
  });

  test("-sess algorithms fold nonce and cnonce into HA1 (RFC 2617 §3.2.2.2)", () => {
    const H = (s: string) => new Bun.CryptoHasher("sha256").update(s).digest("hex");
    const ha1 = H(`${H("Mufasa:http-auth@example.org:Circle of Life")}:${rfc7616.nonce}:${rfc7616.cnonce}`);
    const ha2 = H("GET:/dir/index.html");
    expect(digestResponse({ ...rfc7616, algorithm: "SHA-256-sess" }))
      .toBe(H(`${ha1}:${rfc7616.nonce}:00000001:${rfc7616.cnonce}:auth:${ha2}`));
  });

  test("auth-int hashes the body into HA2", () => {
    const base = { ...rfc7616, algorithm: "MD5" as DigestAlgorithm, qop: "auth-int" as const };
    expect(digestResponse({ ...base, body: "v=0\r\n" })).not.toBe(digestResponse({ ...base, body: "" }));
    expect(digestResponse({ ...base, body: new TextEncoder().encode("v=0\r\n") })).toBe(digestResponse({ ...base, body: "v=0\r\n" }));
  });
});

describe("MD5 cross-check against sip.js DigestAuthentication", () => {
  const cases: { qop?: string[]; body?: string; opaque?: string; method: string; uri: string }[] = [
    { method: "REGISTER", uri: "sip:example.com" },
    { qop: ["auth"], method: "REGISTER", uri: "sip:example.com;transport=tcp", opaque: "0p4qu3" },
    { qop: ["auth-int"], method: "INVITE", uri: "sip:+15551234@sip.example.com", body: "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n" },
    { qop: ["auth-int"], method: "BYE", uri: "sip:a@[::1]:5070" },
  ];
  for (const c of cases) {
    test(`${c.method} qop=${c.qop?.join(",") ?? "none"}`, () => {
      const theirs = new DigestAuthentication(silentLoggerFactory, undefined, "alice", "s3cr3t \"pw\"");
      const challenge = { realm: "example.com", nonce: "abc123nonce", algorithm: "MD5", qop: c.qop, opaque: c.opaque };
      // sip.js counts nc per instance: authenticate twice to compare nc=2 as well.
      for (let round = 1; round <= 2; round++) {
        expect(theirs.authenticate({ method: c.method, ruri: c.uri } as never, challenge, c.body)).toBe(true);
        const header = theirs.toString();
        const p = params(header);
        const qop = c.qop ? (c.qop[0] as "auth" | "auth-int") : undefined;
        const ours = formatCredentials({
          algorithm: "MD5", username: "alice", password: "s3cr3t \"pw\"", realm: "example.com", nonce: "abc123nonce",
          method: c.method, uri: c.uri, qop, nc: round, cnonce: p.get("cnonce"), body: c.body, opaque: c.opaque,
        });
        expect(params(ours).get("response")).toBe(p.get("response")!);
        if (qop) expect(params(ours).get("nc")).toBe(p.get("nc")!);
      }
    });
  }
});

describe("challenge parsing", () => {
  test("reads quoted values with commas and escapes, case-insensitive names and tokens", () => {
    const c = parseChallenge('Digest REALM="a, \\"b\\"", nonce="n1",algorithm=sha-256 , qop="auth,auth-int", stale=TRUE, opaque="o"');
    expect(c).toEqual({ realm: 'a, "b"', nonce: "n1", algorithm: "SHA-256", qop: ["auth", "auth-int"], stale: true, opaque: "o" });
  });
  test("absent algorithm means MD5 and absent qop means RFC 2069 mode", () => {
    expect(parseChallenge('Digest realm="r", nonce="n"')).toMatchObject({ algorithm: "MD5", qop: [], stale: false });
  });
  test("rejects other schemes, unknown algorithms, missing nonce, unterminated quotes", () => {
    expect(parseChallenge('Basic realm="r"')).toHaveProperty("error");
    expect(parseChallenge('Digest realm="r", nonce="n", algorithm=SHA-1')).toHaveProperty("error");
    expect(parseChallenge('Digest realm="r"')).toHaveProperty("error");
    expect(parseChallenge('Digest realm="r, nonce=n')).toHaveProperty("error");
    expect(parseChallenge("Digest")).toHaveProperty("error");
  });
  test("qop choice prefers auth, accepts auth-int alone, rejects unknown", () => {
    expect(chooseQop(["auth-int", "auth"])).toBe("auth");
    expect(chooseQop(["auth-int"])).toBe("auth-int");
    expect(chooseQop([])).toBeUndefined();
    expect(chooseQop(["auth-conf"])).toHaveProperty("error");
  });
  test("credentials quote user-controlled values and include cnonce for -sess without qop", () => {
    const v = formatCredentials({ algorithm: "MD5-sess", username: 'a"b', password: "p", realm: "r", nonce: "n", method: "REGISTER", uri: "sip:r", cnonce: "c" });
    const p = params(v);
    expect(p.get("username")).toBe('a"b');
    expect(p.get("cnonce")).toBe("c");
    expect(p.has("qop")).toBe(false);
    expect(p.has("nc")).toBe(false);
  });
});

describe("authorize: answering challenges on requests", () => {
  const uri = parseUri("sip:sip.example.com")!;
  const creds: Credentials = { username: "alice", password: "pw" };

  function register(cseq: number, auth?: { header: string; value: string }): SipRequest {
    const req = createRequest({
      method: "REGISTER", uri, callId: "call-1", cseq,
      from: { uri: parseUri("sip:alice@sip.example.com")!, params: new Map([["tag", "t1"]]) },
      to: { uri: parseUri("sip:alice@sip.example.com")!, params: new Map() },
    });
    if (auth) req.setHeader(auth.header, auth.value);
    return req;
  }

  function challenge(status: 401 | 407, ...values: string[]): SipResponse {
    const res = new SipResponse(status, "Unauthorized");
    for (const v of values) res.addHeader(status === 401 ? "WWW-Authenticate" : "Proxy-Authenticate", v);
    return res;
  }

  function answered(result: ReturnType<typeof authorize>): { header: string; value: string } {
    if ("error" in result) throw new Error(result.error);
    return result;
  }

  test("401 → Authorization, 407 → Proxy-Authorization, with the request's method and URI", () => {
    const state = new DigestState();
    const a = answered(authorize(challenge(401, 'Digest realm="r", nonce="n1", qop="auth"'), register(1), creds, state));
    expect(a.header).toBe("Authorization");
    const p = params(a.value);
    expect(p.get("uri")).toBe("sip:sip.example.com");
    expect(p.get("username")).toBe("alice");
    expect(p.get("nc")).toBe("00000001");
    expect(p.get("response")).toBe(digestResponse({
      algorithm: "MD5", username: "alice", password: "pw", realm: "r", nonce: "n1", method: "REGISTER",
      uri: "sip:sip.example.com", qop: "auth", nc: 1, cnonce: p.get("cnonce"),
    }));
    const b = answered(authorize(challenge(407, 'Digest realm="r", nonce="n2"'), register(1), creds, new DigestState()));
    expect(b.header).toBe("Proxy-Authorization");
  });

  test("authId is the digest username when set", () => {
    const a = answered(authorize(challenge(401, 'Digest realm="r", nonce="n"'), register(1), { ...creds, authId: "auth-77" }, new DigestState()));
    expect(params(a.value).get("username")).toBe("auth-77");
  });

  test("the strongest offered algorithm wins (RFC 8760 §2.4)", () => {
    const a = answered(authorize(challenge(401,
      'Digest realm="r", nonce="n", algorithm=MD5, qop="auth"',
      'Digest realm="r", nonce="n", algorithm=SHA-512-256, qop="auth"',
      'Digest realm="r", nonce="n", algorithm=SHA-256, qop="auth"'), register(1), creds, new DigestState()));
    expect(params(a.value).get("algorithm")).toBe("SHA-512-256");
    const b = answered(authorize(challenge(401, 'Digest realm="r", nonce="n", algorithm=SHA-1', 'Digest realm="r", nonce="n", algorithm=MD5-sess'), register(1), creds, new DigestState()));
    expect(params(b.value).get("algorithm")).toBe("MD5-sess");
  });

  test("a second non-stale challenge to our answer is a rejection, whatever the nonce", () => {
    const state = new DigestState();
    const first = answered(authorize(challenge(401, 'Digest realm="r", nonce="n1", qop="auth"'), register(1), creds, state));
    const retry = register(2, first);
    expect(authorize(challenge(401, 'Digest realm="r", nonce="n1", qop="auth"'), retry, creds, state)).toEqual({ error: 'credentials rejected by realm "r"' });
    expect(authorize(challenge(401, 'Digest realm="r", nonce="n2", qop="auth"'), retry, creds, state)).toEqual({ error: 'credentials rejected by realm "r"' });
  });

  test("stale=true with a new nonce is answered again, a stale repeat of the same nonce is not", () => {
    const state = new DigestState();
    const first = answered(authorize(challenge(401, 'Digest realm="r", nonce="n1", qop="auth"'), register(1), creds, state));
    const again = answered(authorize(challenge(401, 'Digest realm="r", nonce="n2", qop="auth", stale=true'), register(2, first), creds, state));
    expect(params(again.value).get("nonce")).toBe("n2");
    expect(params(again.value).get("nc")).toBe("00000001");
    expect(authorize(challenge(401, 'Digest realm="r", nonce="n2", qop="auth", stale=true'), register(3, again), creds, state)).toHaveProperty("error");
  });

  test("pre-emptive reuse counts nc up on the same nonce, and a challenge to it gets one fresh answer", () => {
    const state = new DigestState();
    expect(reauthorize(register(1), creds, state)).toBeUndefined();
    const first = answered(authorize(challenge(401, 'Digest realm="r", nonce="n1", qop="auth"'), register(1), creds, state));
    const refresh = reauthorize(register(3), creds, state)!;
    expect(refresh.header).toBe("Authorization");
    expect(params(refresh.value).get("nc")).toBe("00000002");
    expect(params(refresh.value).get("cnonce")).not.toBe(params(first.value).get("cnonce"));
    expect(params(reauthorize(register(4), creds, state)!.value).get("nc")).toBe("00000003");
    // The registrar forgot the nonce without saying stale: answer its new nonce once.
    const fresh = answered(authorize(challenge(401, 'Digest realm="r", nonce="n9", qop="auth"'), register(4, refresh), creds, state));
    expect(params(fresh.value).get("nonce")).toBe("n9");
    expect(authorize(challenge(401, 'Digest realm="r", nonce="n10", qop="auth"'), register(5, fresh), creds, state)).toHaveProperty("error");
  });

  test("pre-emptive reuse without qop (identical value) still allows one fresh answer", () => {
    const state = new DigestState();
    answered(authorize(challenge(401, 'Digest realm="r", nonce="n1"'), register(1), creds, state));
    const refresh = reauthorize(register(3), creds, state)!;
    expect(authorize(challenge(401, 'Digest realm="r", nonce="n2"'), register(3, refresh), creds, state)).not.toHaveProperty("error");
  });

  test("auth-int covers the request body", () => {
    const req = register(1);
    req.body = new TextEncoder().encode("hello");
    const a = answered(authorize(challenge(401, 'Digest realm="r", nonce="n", qop="auth-int"'), req, creds, new DigestState()));
    const p = params(a.value);
    expect(p.get("qop")).toBe("auth-int");
    expect(p.get("response")).toBe(digestResponse({
      algorithm: "MD5", username: "alice", password: "pw", realm: "r", nonce: "n", method: "REGISTER",
      uri: "sip:sip.example.com", qop: "auth-int", nc: 1, cnonce: p.get("cnonce"), body: "hello",
    }));
  });

  test("realms are remembered up to 8, the oldest forgotten first (the peer names them)", () => {
    const state = new DigestState();
    const nc = (realm: string) => Number(params(answered(authorize(challenge(401, `Digest realm="${realm}", nonce="n", qop="auth"`), register(1), creds, state)).value).get("nc"));
    for (let i = 0; i < 20; i++) expect(nc(`realm${i}`)).toBe(1);
    expect(nc("realm19")).toBe(2); // remembered: same nonce, next count
    expect(nc("realm0")).toBe(1); // forgotten long ago
  });

  test("unusable challenges give a reason instead of throwing", () => {
    const state = new DigestState();
    expect(authorize(new SipResponse(401, "Unauthorized"), register(1), creds, state)).toHaveProperty("error");
    expect(authorize(challenge(401, 'Basic realm="r"'), register(1), creds, state)).toEqual({ error: 'unsupported auth scheme "Basic"' });
    expect(authorize(challenge(401, 'Digest realm="r", nonce="n", qop="auth-conf"'), register(1), creds, state)).toHaveProperty("error");
    expect(authorize(new SipResponse(403, "Forbidden"), register(1), creds, state)).toHaveProperty("error");
  });
});
