// Parser fuzzing shared by test/sip/parser-fuzz.test.ts (a few thousand cases) and
// bench/parser-fuzz.bench.ts (the long run): corpus messages mutated at random, plus random bytes.
// The property: parseMessage and nextMessageLength return a value or a typed error, never throw,
// never take long; what parses can be read through every accessor and serialized and re-parsed.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  createResponse, nextMessageLength, parseMessage, serializeMessage, SipRequest, type SipMessage,
} from "../../src/sip/message.ts";
import { mulberry32 } from "./random.ts";
import { trunkAck, trunkBye, trunkInvite, trunkOk } from "./samples.ts";

export function fuzzSeeds(): Uint8Array[] {
  const corpus = join(import.meta.dir, "..", "..", "..", "shared", "corpus");
  const seeds = [trunkInvite, trunkOk, trunkAck, trunkBye].map((s) => new TextEncoder().encode(s));
  for (const dir of ["rfc4475", "rfc5118"]) {
    for (const file of readdirSync(join(corpus, dir)).sort()) {
      if (!file.endsWith(".tsv")) seeds.push(new Uint8Array(readFileSync(join(corpus, dir, file))));
    }
  }
  return seeds;
}

const FRAGMENTS = [
  "\r\n", "\r\n ", "\r\n\r\n", ":", ";", ",", "<", ">", '"', "\\", "@", "[", "]", "%", "%0", "=", " ", "\t", "\0",
  "Via: SIP/2.0/UDP [::1]:5060;branch=z9hG4bK", "Content-Length: 99999999999", "l: -1", "CSeq: 4294967296 INVITE",
  "Contact: *", "To: <sip:a@[::1]>;tag=", "SIP/2.0 ", "sip:", "sips:[", "\u00ff", "\r\n\tfolded",
];

export function createMutator(seed: number, seeds: Uint8Array[]) {
  const rnd = mulberry32(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const enc = new TextEncoder();
  const concat = (...parts: Uint8Array[]): Uint8Array => Buffer.concat(parts);
  const mutateOnce = (b: Uint8Array): Uint8Array => {
    const i = int(b.length + 1);
    switch (int(8)) {
      case 0: { // flip a byte
        const out = b.slice();
        if (out.length > 0) out[Math.min(i, out.length - 1)] = int(256);
        return out;
      }
      case 1: // insert a grammar fragment
        return concat(b.subarray(0, i), enc.encode(FRAGMENTS[int(FRAGMENTS.length)] ?? ""), b.subarray(i));
      case 2: // delete a range
        return concat(b.subarray(0, i), b.subarray(Math.min(b.length, i + 1 + int(40))));
      case 3: { // duplicate a range (repeated headers, long lines)
        const end = Math.min(b.length, i + 1 + int(200));
        return concat(b.subarray(0, end), b.subarray(i, end), b.subarray(end));
      }
      case 4: // truncate
        return b.subarray(0, i);
      case 5: { // splice with another message
        const other = seeds[int(seeds.length)] ?? b;
        return concat(b.subarray(0, i), other.subarray(int(other.length + 1)));
      }
      case 6: { // random bytes inserted
        const noise = new Uint8Array(1 + int(16));
        for (let k = 0; k < noise.length; k++) noise[k] = int(256);
        return concat(b.subarray(0, i), noise, b.subarray(i));
      }
      default: { // change a digit to a big number
        const text = new TextDecoder("latin1").decode(b);
        const digit = text.slice(i).search(/\d/);
        if (digit < 0) return b;
        const at = i + digit;
        return concat(b.subarray(0, at), enc.encode("9".repeat(1 + int(30))), b.subarray(at + 1));
      }
    }
  };
  return (): Uint8Array => {
    if (rnd() < 0.1) {
      const noise = new Uint8Array(int(2048));
      for (let k = 0; k < noise.length; k++) noise[k] = int(256);
      return noise;
    }
    let b = seeds[int(seeds.length)] ?? new Uint8Array(0);
    const rounds = 1 + int(4);
    for (let r = 0; r < rounds; r++) b = mutateOnce(b);
    return b;
  };
}

/** Runs one input through the parser; returns a description of a property violation, or undefined. */
export function checkInput(input: Uint8Array): string | undefined {
  for (const framing of ["datagram", "stream"] as const) {
    const r = parseMessage(input, framing);
    if (!r.ok) {
      if (![400, 413, 505].includes(r.error.status)) return `unexpected status ${r.error.status}`;
      if (typeof r.error.reason !== "string" || r.error.reason.length === 0) return "error without a reason";
      if (r.error.request) {
        readEverything(r.error.request);
        // the stack answers from the partial request; the answer copies the request's headers as
        // received, so it may carry the same malformed or repeated header, but nothing else
        const answer = parseMessage(serializeMessage(createResponse(r.error.request, r.error.status, r.error.reason, { toTag: "t" })), "datagram");
        if (!answer.ok && !/^(Malformed|Multiple) /.test(answer.error.reason)) {
          return `answer to a partial request does not parse: ${answer.error.reason}`;
        }
      }
      continue;
    }
    readEverything(r.message);
    const again = parseMessage(serializeMessage(r.message), framing === "stream" ? "stream" : "datagram");
    if (!again.ok) return `serialized message does not re-parse: ${again.error.reason}`;
    const before = r.message.headerFields.filter((f) => f.key !== "content-length");
    const after = again.message.headerFields.filter((f) => f.key !== "content-length");
    if (JSON.stringify(before) !== JSON.stringify(after)) return "headers change through serialize/parse";
    if (again.message.body.length !== r.message.body.length) return "body changes through serialize/parse";
  }
  const framed = nextMessageLength(input, 65536);
  if (typeof framed === "number" && (framed <= 0 || framed > input.length)) return `bad frame length ${framed}`;
  return undefined;
}

function readEverything(m: SipMessage): void {
  void [m.vias, m.from, m.to, m.callId, m.cseq, m.maxForwards, m.contentLength, m.contacts, m.routes, m.recordRoutes,
    m.expires, m.contentType, m.require, m.supported, m.isWildcardContact, m.checkHeaders(), m.bodyText];
  if (m instanceof SipRequest) void m.uri;
}

export interface FuzzOutcome {
  cases: number;
  slowestMs: number;
  /** The input that took longest, to tell a real hang (reproducible) from a scheduling stall. */
  slowestInput: Uint8Array;
  /** Up to `maxFailures` property violations, each with its input in base64. */
  failures: string[];
}

/** Feeds inputs from `next` to checkInput until `keepGoing` says stop or enough failures piled up. */
export function runFuzz(next: () => Uint8Array, keepGoing: (cases: number) => boolean, maxFailures = 5): FuzzOutcome {
  const outcome: FuzzOutcome = { cases: 0, slowestMs: 0, slowestInput: new Uint8Array(0), failures: [] };
  while (keepGoing(outcome.cases) && outcome.failures.length < maxFailures) {
    const input = next();
    const start = performance.now();
    let problem: string | undefined;
    try {
      problem = checkInput(input);
    } catch (e) {
      problem = `threw ${e instanceof Error ? e.stack : String(e)}`;
    }
    const ms = performance.now() - start;
    if (ms > outcome.slowestMs) {
      outcome.slowestMs = ms;
      outcome.slowestInput = input;
    }
    outcome.cases++;
    if (problem) outcome.failures.push(`${problem}\n  input (base64): ${Buffer.from(input).toString("base64")}`);
  }
  return outcome;
}

/** Worst-case shapes near the size limits: each must parse in time linear in its size. */
export function adversarialInputs(): [string, Uint8Array][] {
  const head = (extra: string, uri = "sip:bob@example.com") =>
    `INVITE ${uri} SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\n` +
    `Call-ID: x\r\nCSeq: 1 INVITE\r\n${extra}Content-Length: 0\r\n\r\n`;
  // one header line of about 8000 bytes: `unit` repeated, then `last`
  const line = (name: string, unit: string, last = "") =>
    `${name}: ${unit.repeat(Math.floor((8000 - last.length) / unit.length))}${last}\r\n`;
  const many = (n: number, make: (i: number) => string) => Array.from({ length: n }, (_, i) => make(i)).join("");
  const cases: [string, string][] = [
    ["URI with thousands of parameters", head("", `sip:b@h${";a".repeat(3900)}`)],
    ["URI with thousands of headers", head(line("Contact", "a=b&", "a=b>").replace(": ", ": <sip:b@h?"))],
    ["Via line of comma-separated entries", head(line("Via", "SIP/2.0/UDP h;branch=z9hG4bK2, ", "SIP/2.0/UDP h").repeat(7))],
    ["Contact line of quoted commas", head(line("Contact", '"a,b" <sip:x@h>, ', "<sip:y@h>").repeat(7))],
    ["unbalanced quotes", head(line("Contact", '"', "'").repeat(7))],
    ["angle brackets", head(line("Contact", "<").repeat(7))],
    ["backslashes in a quoted string", head(line("Contact", `"${"\\".repeat(3000)}" <sip:x@h>, `, "<sip:y@h>").repeat(7))],
    ["header parameters", head(line("Contact", ";a=b", "").replace(": ", ": <sip:x@h>").repeat(7))],
    ["folded continuation lines", head(`Subject: x\r\n${many(240, () => " y\r\n")}`)],
    ["240 unknown header names", head(many(240, (i) => `X-Unknown-${i}-${"z".repeat(200)}: v\r\n`))],
    ["display name words", head(line("Contact", "w ", "<sip:x@h>").repeat(7))],
  ];
  return cases.map(([name, text]) => [name, new TextEncoder().encode(text)]);
}

/** Best of three timings of one input, in milliseconds: immune to a one-off stall of the machine. */
export function bestTimeMs(input: Uint8Array): number {
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 3; i++) {
    const start = performance.now();
    checkInput(input);
    best = Math.min(best, performance.now() - start);
  }
  return best;
}
