import { describe, expect, test } from "bun:test";
import { fromHeader, renderCallerId } from "../../src/calls/callerId.ts";
import { formatNameAddr, parseNameAddr } from "../../src/sip/message.ts";
import { parseDialTarget, requestUriFor } from "../../src/calls/dialTarget.ts";
import { createSourceMatcher } from "../../src/calls/sourceMatcher.ts";
import { formatUri } from "../../src/sip/message.ts";

describe("trunk source matching", () => {
  const match = createSourceMatcher([
    { trunkId: "a", resolvedAddresses: ["192.0.2.10"], allowedAddresses: ["198.51.100.0/24"] },
    { trunkId: "b", resolvedAddresses: ["2001:db8::5"], allowedAddresses: ["203.0.113.7", "2001:db8:1::/48"] },
  ]);

  test("resolved addresses and exact allowed addresses match their trunk", () => {
    expect(match("192.0.2.10")).toBe("a");
    expect(match("203.0.113.7")).toBe("b");
    expect(match("2001:DB8:0::5")).toBe("b");
    expect(match("[2001:db8::5]")).toBe("b");
  });

  test("CIDR blocks match inside and not outside", () => {
    expect(match("198.51.100.200")).toBe("a");
    expect(match("198.51.101.1")).toBeUndefined();
    expect(match("2001:db8:1:ffff::1")).toBe("b");
    expect(match("2001:db8:2::1")).toBeUndefined();
  });

  test("IPv4-mapped IPv6 sources are treated as IPv4", () => {
    expect(match("::ffff:198.51.100.3")).toBe("a");
    expect(match("::FFFF:192.0.2.10")).toBe("a");
    expect(match("::ffff:10.0.0.1")).toBeUndefined();
  });

  test("a /0 and a /32 block, and the IPv4 edges of a block", () => {
    const edges = createSourceMatcher([
      { trunkId: "host", resolvedAddresses: [], allowedAddresses: ["10.1.2.3/32"] },
      { trunkId: "block", resolvedAddresses: [], allowedAddresses: ["10.0.0.0/8"] },
      { trunkId: "any6", resolvedAddresses: [], allowedAddresses: ["::/0"] },
    ]);
    expect(edges("10.1.2.3")).toBe("host");
    expect([edges("10.0.0.0"), edges("10.255.255.255"), edges("11.0.0.0"), edges("9.255.255.255")]).toEqual(["block", "block", undefined, undefined]);
    expect(edges("2001:db8::1")).toBe("any6");
    expect(createSourceMatcher([{ trunkId: "all", resolvedAddresses: [], allowedAddresses: ["0.0.0.0/0"] }])("255.255.255.255")).toBe("all");
  });

  test("unknown and garbage sources match nothing", () => {
    expect(match("10.0.0.1")).toBeUndefined();
    expect(match("not-an-ip")).toBeUndefined();
    expect(match("1.2.3.999")).toBeUndefined();
    expect(match("1.2.3")).toBeUndefined();
    expect(match("1.2.3.4.5")).toBeUndefined();
    expect(match("1234.2.3.4")).toBeUndefined();
  });
});

describe("dial targets", () => {
  test("numbers go to the trunk's domain; SIP URIs are kept", () => {
    const number = parseDialTarget("+15551234567");
    expect(number).toEqual({ kind: "number", number: "+15551234567" });
    if ("error" in number) throw new Error("unexpected");
    expect(formatUri(requestUriFor(number, { domain: "trunk.example", port: 5070 }))).toBe("sip:+15551234567@trunk.example:5070");
    const uri = parseDialTarget("sip:alice@example.com");
    if ("error" in uri) throw new Error("unexpected");
    expect(formatUri(requestUriFor(uri, { domain: "trunk.example" }))).toBe("sip:alice@example.com");
  });

  test("anything else is an error", () => {
    expect(parseDialTarget("hello")).toHaveProperty("error");
    expect(parseDialTarget("+1234567890123456")).toHaveProperty("error");
    expect(parseDialTarget("sip:")).toHaveProperty("error");
  });
});

describe("caller ID", () => {
  const client = { id: "c1", userId: "u1", userAlias: "Alice Smith", roles: ["dial", "admin"] };

  test("templates render over the client's info", () => {
    expect(renderCallerId({ displayName: "{userAlias} ({roles})", username: "{userId}-{id}" }, client, "trunkuser")).toEqual({
      displayName: "Alice Smith (dial,admin)",
      username: "u1-c1",
      headers: [],
    });
  });

  test("defaults: no display name and the trunk's username", () => {
    expect(renderCallerId(undefined, client, "trunkuser")).toEqual({ username: "trunkuser", headers: [] });
    expect(renderCallerId({ username: "{deviceId}" }, client, "trunkuser")).toEqual({ username: "trunkuser", headers: [] });
  });

  test("the From: the user at the trunk's domain; with no user at all, the anonymous From of RFC 3261 §8.1.1.3, which parses", () => {
    expect(formatNameAddr(fromHeader({ displayName: "Alice", username: "u1" }, "sip.example.net"))).toBe('"Alice" <sip:u1@sip.example.net>');
    const anonymous = formatNameAddr(fromHeader(renderCallerId(undefined, client, ""), "sip.example.net"));
    expect(anonymous).toBe('"Anonymous" <sip:anonymous@anonymous.invalid>');
    expect(parseNameAddr(anonymous)?.uri.user).toBe("anonymous");
    expect(formatNameAddr(fromHeader({ displayName: "Alice", username: "" }, "sip.example.net"))).toBe('"Alice" <sip:anonymous@anonymous.invalid>');
  });

  test("the user part is escaped and control characters never reach the header", () => {
    expect(renderCallerId({ displayName: "a\r\nX-Evil: 1", username: "{userAlias}" }, client, "t")).toEqual({
      displayName: "aX-Evil: 1",
      username: "Alice%20Smith",
      headers: [],
    });
  });

  test("P-Asserted-Identity from its template, variables escaped so they cannot end the URI; Privacy as configured", () => {
    const rendered = renderCallerId({ assertedIdentity: "sip:{userAlias}@pbx.example.com", privacy: "id" }, { ...client, userAlias: "a>, <sip:evil" }, "t");
    expect(rendered.headers).toEqual([
      ["P-Asserted-Identity", "<sip:a%3E,%20%3Csip%3Aevil@pbx.example.com>"],
      ["Privacy", "id"],
    ]);
  });
});
