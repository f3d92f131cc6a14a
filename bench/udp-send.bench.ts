// One 172-byte RTP-sized datagram sent over loopback, CPU per send, side by side in alternating rounds:
// - the media path's socket (udp-io.ts): libc sendto on the socket's descriptor, the destination
//   encoded once (udp-sendto.ts);
// - Bun's own send on the same kind of socket (the address parsed and a one-message sendmmsg per call);
// - Bun's connected socket (send without an address), the floor of what Bun offers, which the media
//   path cannot use: a connected socket drops datagrams from any other source, and source latching
//   must see them (source-latch.ts).
// The receiver is another process that reads every datagram, as a phone's socket would; sends go in
// bursts of 500 with a millisecond between, so its buffer never overflows (a drop is a cheaper path).
import { inThreadUdpIo } from "../src/media/udp-io.ts";
import { readLine } from "./loadgen-driver.ts";

const SENDS = 200_000;
const ROUNDS = 3;
const BURST = 500;
const packet = new Uint8Array(172);

const RECEIVER = `
const s = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
console.log(s.port);
await Bun.stdin.text();
s.close();
`;

async function cpuPerSendUs(send: () => void): Promise<number> {
  const before = process.cpuUsage();
  for (let sent = 0; sent < SENDS; ) {
    for (let k = 0; k < BURST; k++, sent++) send();
    await Bun.sleep(1);
  }
  const used = process.cpuUsage(before);
  return (used.user + used.system) / SENDS;
}

export async function run(): Promise<void> {
  const receiver = Bun.spawn([process.execPath, "-e", RECEIVER], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  const port = Number(await readLine(receiver.stdout.getReader(), { buffered: "" }));
  const error = () => { throw new Error("send failed"); };
  const ours = await inThreadUdpIo.bind("127.0.0.1", 0, { data() {}, error });
  const bun = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, binaryType: "uint8array" });
  const connected = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, binaryType: "uint8array", connect: { hostname: "127.0.0.1", port } });
  const rows: Record<string, number[]> = {
    "media socket (sendto, destination encoded once)": [],
    "Bun send(data, port, address)": [],
    "Bun connected socket send(data)": [],
  };
  const [oursRow, bunRow, connectedRow] = Object.values(rows) as [number[], number[], number[]];
  for (let round = 0; round < ROUNDS; round++) {
    oursRow.push(await cpuPerSendUs(() => ours.send(packet, port, "127.0.0.1")));
    bunRow.push(await cpuPerSendUs(() => bun.send(packet, port, "127.0.0.1")));
    connectedRow.push(await cpuPerSendUs(() => connected.send(packet)));
  }
  ours.close();
  bun.close();
  connected.close();
  receiver.stdin.end();
  await receiver.exited;
  console.log(`CPU per 172-byte send over loopback, µs (${ROUNDS} alternating rounds of ${SENDS.toLocaleString("en")}):`);
  for (const [label, values] of Object.entries(rows)) {
    console.log(`  ${label.padEnd(48)} ${values.map((v) => v.toFixed(2).padStart(6)).join(" ")}   best ${Math.min(...values).toFixed(2)}`);
  }
  console.log(`Bun send / media socket (best of each): ${(Math.min(...bunRow) / Math.min(...oursRow)).toFixed(2)}×`);
}

if (import.meta.main) await run();
