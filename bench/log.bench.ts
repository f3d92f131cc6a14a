// What log redaction costs per line: the logger (with its redacting replacer) against a bare
// JSON.stringify of the same line, side by side, for a typical line with no secret, a line whose
// strings hold secrets (a SIP request with credentials, an SDES key), and a line below the level.
import { createLogger, setLogLevel, setLogSink } from "../src/log.ts";
import { measure } from "./cpu-time.ts";

const typical = { trunkId: "carrier", callId: "call_8f2k1", direction: "inbound", from: "sip:+15551230000@sip.carrier.example", status: 200, ms: 3.2 };
const secretBearing = {
  reason: 'REGISTER sip:example.com SIP/2.0\r\nAuthorization: Digest username="acme", realm="example.com", nonce="abc", response="0a4f113b9a1c0a4f113b9a1c0a4f113b"\r\n\r\n',
  sdp: "v=0\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n",
  digit: "5",
};

export async function run(): Promise<void> {
  let sink = 0;
  setLogSink((line) => (sink += line.length));
  setLogLevel("info");
  const log = createLogger("bench");
  const bare = (fields: object) => (sink += JSON.stringify({ time: new Date().toISOString(), level: "info", component: "bench", msg: "m", ...fields }).length);
  const rows: [string, number, number][] = [];
  for (const [name, fields] of [["typical line", typical], ["line with secrets", secretBearing]] as const) {
    const plain = measure(() => bare(fields), 20_000);
    const redacted = measure(() => log.info("m", fields), 20_000);
    rows.push([name, plain, redacted]);
  }
  const filtered = measure(() => log.debug("m", typical), 200_000);
  for (const [name, plain, redacted] of rows) {
    console.log(`${name.padEnd(18)} bare JSON ${plain.toFixed(2)} µs, logger with redaction ${redacted.toFixed(2)} µs (${(redacted / plain).toFixed(2)}×)`);
  }
  console.log(`${"filtered debug".padEnd(18)} ${(filtered * 1000).toFixed(0)} ns (nothing serialized)`);
  setLogSink((line) => process.stdout.write(line + "\n"));
  if (sink < 0) console.log(sink);
}

if (import.meta.main) await run();
