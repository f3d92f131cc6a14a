// The redirect follower's rules on parsed 302s (the SIPp interop test covers the wire): q-order,
// the hop limit, the `off` and `any` policies, a Contact that does not resolve.
import { describe, expect, test } from "bun:test";
import { inQOrder, RedirectFollower, type RedirectScope } from "../../src/calls/redirects.ts";
import { parseMessage } from "../../src/sip/parser.ts";
import { parseUri, type SipResponse } from "../../src/sip/message.ts";
import type { Resolver } from "../../src/sip/resolver.ts";

const resolver: Resolver = {
  async resolve(host, transport, port) {
    if (!/^[0-9.]+$/.test(host)) throw new Error(`${host} does not resolve`);
    return [{ address: host, port: port ?? 5060, transport, domain: host }];
  },
};

function scope(o: Partial<RedirectScope> = {}): RedirectScope {
  return { policy: "sameTrunk", maxHops: 3, transport: "udp", trunkDomain: "10.0.0.1", isTrunkAddress: (a) => a === "10.0.0.1" || a === "10.0.0.2", resolver, ...o };
}

function moved(contacts: string, status = 302): SipResponse {
  const text = `SIP/2.0 ${status} Moved\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n${contacts ? `Contact: ${contacts}\r\n` : ""}Content-Length: 0\r\n\r\n`;
  const parsed = parseMessage(new TextEncoder().encode(text), "datagram");
  if (!parsed.ok || !("status" in parsed.message)) throw new Error("not a response");
  return parsed.message;
}

const first = parseUri("sip:+1555@10.0.0.1")!;

describe("redirect follower", () => {
  test("Contacts in q-order, equals in the order given", () => {
    const contacts = moved("<sip:a@h>;q=0.1, <sip:b@h>, <sip:c@h>;q=0.5, <sip:d@h>;q=1.0").contacts;
    expect(inQOrder(contacts).map((u) => u.user)).toEqual(["b", "d", "c", "a"]);
  });

  test("stops after maxHops redirects", async () => {
    const follower = new RedirectFollower(scope({ maxHops: 2 }), first);
    expect(await follower.afterFinal(moved("<sip:x@10.0.0.2:5071>"))).toMatchObject({ next: { uri: { user: "x" } } });
    expect(await follower.afterFinal(moved("<sip:y@10.0.0.2:5072>"))).toMatchObject({ next: { uri: { user: "y" } } });
    expect(await follower.afterFinal(moved("<sip:z@10.0.0.2:5073>"))).toEqual({ end: "too_many_redirects", sipStatus: 302 });
    expect(follower.hopsSeen.map((h) => h.outcome)).toEqual(["followed", "followed", "too_many_redirects"]);
  });

  test("policy off: a 302 is an ordinary failure; any: a Contact off the trunk is followed", async () => {
    expect(await new RedirectFollower(scope({ policy: "off" }), first).afterFinal(moved("<sip:x@10.0.0.2>"))).toBeUndefined();
    expect(await new RedirectFollower(scope({ policy: "any" }), first).afterFinal(moved("<sip:x@192.0.2.7>"))).toMatchObject({ next: { uri: { host: "192.0.2.7" } } });
    expect(await new RedirectFollower(scope(), first).afterFinal(moved("<sip:x@192.0.2.7>"))).toEqual({ end: "redirect_forbidden", sipStatus: 302 });
  });

  test("the next Contact is tried when the followed one fails; an unresolvable one is skipped; 486 with nothing left finishes as usual", async () => {
    const follower = new RedirectFollower(scope(), first);
    expect(await follower.afterFinal(moved("<sip:a@nowhere.invalid>, <sip:b@10.0.0.2>;q=0.5, <sip:c@10.0.0.1:5080>;q=0.4"))).toMatchObject({ next: { uri: { user: "b" } } });
    expect(await follower.afterFinal(moved("", 486))).toMatchObject({ next: { uri: { user: "c" } } });
    expect(await follower.afterFinal(moved("", 486))).toBeUndefined();
    expect(follower.hopsSeen.map((h) => h.outcome)).toEqual(["unresolvable", "followed", "followed"]);
  });

  test("a 302 without a Contact, or another 3xx, finishes as usual", async () => {
    expect(await new RedirectFollower(scope(), first).afterFinal(moved(""))).toBeUndefined();
    expect(await new RedirectFollower(scope(), first).afterFinal(moved("<sip:x@10.0.0.2>", 305))).toBeUndefined();
  });
});
