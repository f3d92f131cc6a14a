// Flood generator for bench/sip-flood.bench.ts, run as its own process: a scanner on a stranger's
// loopback address (127.0.0.9 by default) sending OPTIONS probes at a fixed rate to one SIP port.
// Loopback only.
//
//   bun bench/sip-flooder.ts <port> <rate per second> [source address]
// Prints "ready" once bound; floods until stdin closes; then prints {"sent": N, "seconds": S}.
export {};

const [portArg, rateArg, source = "127.0.0.9"] = process.argv.slice(2);
const port = Number(portArg);
const rate = Number(rateArg);
if (!Number.isInteger(port) || !(rate > 0) || !source.startsWith("127.")) throw new Error("usage: sip-flooder.ts <port> <rate> [127.x.y.z]");

const socket = await Bun.udpSocket({ hostname: source, port: 0, binaryType: "uint8array" });
const probe = (i: number) =>
  new TextEncoder().encode(
    [
      `OPTIONS sip:100@127.0.0.1:${port} SIP/2.0`,
      `Via: SIP/2.0/UDP ${source}:${socket.port};branch=z9hG4bK-flood${i};rport`,
      `From: "sipvicious"<sip:100@${source}>;tag=${i}`,
      `To: "sipvicious"<sip:100@${source}>`,
      `Call-ID: flood-${i}@${source}`,
      "CSeq: 1 OPTIONS",
      "Max-Forwards: 70",
      "User-Agent: friendly-scanner",
      "Accept: application/sdp",
      "Content-Length: 0",
      "",
      "",
    ].join("\r\n"),
  );
// A few hundred distinct probes, as a scanner's Call-IDs and branches differ.
const probes = Array.from({ length: 256 }, (_, i) => probe(i));

let sent = 0;
let running = true;
process.stdin.on("end", () => {
  running = false;
});
process.stdin.resume();
console.log("ready");
const started = performance.now();
// Every 5 ms, as many datagrams as the schedule says are due: the rate holds even if a tick is late.
while (running) {
  const due = Math.floor(((performance.now() - started) / 1000) * rate);
  while (sent < due) socket.send(probes[sent++ % probes.length]!, port, "127.0.0.1");
  await Bun.sleep(5);
}
console.log(JSON.stringify({ sent, seconds: (performance.now() - started) / 1000 }));
socket.close();
process.exit(0);
