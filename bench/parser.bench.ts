// Our SIP parser against sip.js's Parser on the same messages, measured side by side in one run
// (issue 3 target: ≥100,000 typical trunk INVITEs/s on one core and ≥100× sip.js).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Core } from "sip.js";
import { parseMessage } from "../src/sip/message.ts";
import { trunkAck, trunkBye, trunkInvite, trunkOk } from "../test/sip/samples.ts";

const corpus = join(import.meta.dir, "..", "..", "shared", "corpus", "rfc4475");

function measure(fn: () => void, minMs: number): number {
  // warm up, then run batches until minMs elapsed; returns operations per second
  for (let i = 0; i < 200; i++) fn();
  let ops = 0;
  let batch = 16;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < minMs) {
    for (let i = 0; i < batch; i++) fn();
    ops += batch;
    elapsed = performance.now() - start;
    if (batch < 65536) batch *= 2;
  }
  return (ops * 1000) / elapsed;
}

export async function run(): Promise<void> {
  const logger = new Core.LoggerFactory();
  logger.level = Core.Levels.error;
  const sipjsLogger = logger.getLogger("bench");
  const messages: [string, Uint8Array][] = [
    ["trunk INVITE with SDP", new TextEncoder().encode(trunkInvite)],
    ["200 OK with SDP", new TextEncoder().encode(trunkOk)],
    ["ACK", new TextEncoder().encode(trunkAck)],
    ["BYE", new TextEncoder().encode(trunkBye)],
    ["wsinv.dat (RFC 4475)", new Uint8Array(readFileSync(join(corpus, "wsinv.dat")))],
  ];
  console.log("| message | bytes | ours msgs/s | sip.js msgs/s | ratio |");
  console.log("|---|---:|---:|---:|---:|");
  for (const [label, bytes] of messages) {
    const text = new TextDecoder().decode(bytes);
    const check = parseMessage(bytes, "datagram");
    if (!check.ok) throw new Error(`${label}: ${check.error.reason}`);
    if (!Core.Parser.parseMessage(text, sipjsLogger)) throw new Error(`${label}: sip.js rejects it`);
    // ours reads the fields the stack needs on every message, sip.js parses everything up front
    const ours = measure(() => {
      const r = parseMessage(bytes, "datagram");
      if (!r.ok || r.message.cseq.seq < 0) throw new Error("parse failed");
    }, 1500);
    const theirs = measure(() => {
      if (!Core.Parser.parseMessage(text, sipjsLogger)) throw new Error("sip.js parse failed");
    }, 1500);
    console.log(`| ${label} | ${bytes.length} | ${Math.round(ours).toLocaleString("en-US")} | ${Math.round(theirs).toLocaleString("en-US")} | ${(ours / theirs).toFixed(0)}× |`);
  }
}

if (import.meta.main) await run();
