// Real peer: a SIPp registrar (test/fixtures/sipp/registrar-short-expiry.xml) challenges with 401
// and grants 3 s. Our registration must answer the challenge and refresh before each grant lapses,
// on the first REGISTER's Call-ID with increasing CSeq, with credentials SIPp verifies every time.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import type { SipRequest } from "../../src/sip/message.ts";
import { createResolver } from "../../src/sip/resolver.ts";
import { SipStack } from "../../src/sip/stack.ts";
import { Registration } from "../../src/trunks/registration.ts";
import { stackPort } from "../../src/trunks/sipPort.ts";
import { startSipp } from "../helpers/sipp.ts";
import { loopbackIsTrunk } from "../helpers/loopbackTrunks.ts";

let stack: SipStack;

beforeAll(async () => {
  stack = new SipStack({ isKnownSource: loopbackIsTrunk, listen: [{ transport: "udp", host: "127.0.0.1", port: 0 }] });
  await stack.start();
});

afterAll(() => stack.stop());

test("SIPp registrar with a 3 s expiry: challenge answered, refreshes in time on the same Call-ID", async () => {
  const sipp = await startSipp({ scenario: join(import.meta.dir, "../fixtures/sipp/registrar-short-expiry.xml"), transport: "udp", timeoutSec: 12 });
  const port = stackPort(stack);
  const sent: { req: SipRequest; at: number }[] = [];
  const grants: number[] = [];
  const spy = { ...port, localHost: port.localHost, send: async (...args: Parameters<typeof port.send>) => {
    sent.push({ req: args[0], at: Date.now() });
    const outcome = await port.send(...args);
    if (outcome.kind === "final" && outcome.response.status === 200) grants.push(Date.now());
    return outcome;
  } };
  const reg = new Registration(
    { trunkId: "sipp", address: { domain: "127.0.0.1", port: sipp.localPort, transport: "udp", tlsVerify: true }, credentials: { username: "alice", password: "s3cret" }, expires: 60 },
    { port: spy, resolver: createResolver() },
  );
  reg.start();
  const result = await sipp.done;
  await reg.stop({ unregister: false, finalState: "unregistered" });
  expect(result.exitCode, result.summary).toBe(0);
  for (const n of [2, 3, 4]) expect(result.logs).toContain(`AUTH_OK ${n}`);

  const registers = sent.slice(0, 4).map((s) => s.req);
  expect(new Set(registers.map((r) => r.callId)).size).toBe(1);
  expect(registers.map((r) => r.cseq.seq)).toEqual([1, 2, 3, 4]);
  // Each refresh went out before the previous 3 s grant lapsed.
  for (let i = 0; i < 2; i++) expect(sent[i + 2]!.at - grants[i]!).toBeLessThan(3000);
  // SIPp's own view: four REGISTERs on our Call-ID with CSeq 1..4, the last three with valid credentials.
  const seen = [...result.logs.matchAll(/^REGISTER (\d) +(\S+) +(\d+) REGISTER$/gm)].map((m) => [m[2], Number(m[3])]);
  expect(seen).toEqual([1, 2, 3, 4].map((n) => [registers[0]!.callId, n]));
}, 20_000);
