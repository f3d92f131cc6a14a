// One 172-byte RTP-sized datagram sent over loopback, CPU per send, side by side in alternating rounds:
// - the media path's socket (udp-io.ts): libc sendto on the socket's descriptor, the destination
//   encoded once (udp-sendto.ts);
// - Bun's own send on the same kind of socket (the address parsed and a one-message sendmmsg per call);
// - Bun's connected socket (send without an address), the floor of what Bun offers, which the media
//   path cannot use: a connected socket drops datagrams from any other source, and source latching
//   must see them (source-latch.ts);
// - node:dgram's send with a callback turned into a promise, as SIP over UDP sent until the ninth
//   session (src/sip/transport-udp.ts now sends as the media socket does).
// The receiver is another process that reads every datagram, as a phone's socket would; sends go in
// bursts of 500 with a millisecond between, so its buffer never overflows (a drop is a cheaper path).
import dgram from "node:dgram";
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

/** `send` returns a promise when its send completes later (node:dgram's callback). */
async function cpuPerSendUs(send: () => unknown, sends = SENDS): Promise<number> {
  const before = process.cpuUsage();
  for (let sent = 0; sent < sends; ) {
    const pending: Promise<unknown>[] = [];
    for (let k = 0; k < BURST; k++, sent++) {
      const done = send();
      if (done instanceof Promise) pending.push(done);
    }
    await Promise.all(pending);
    await Bun.sleep(1);
  }
  const used = process.cpuUsage(before);
  return (used.user + used.system) / sends;
}

/** A process on loopback that reads every datagram sent to `port` until `stop()`. */
async function startReceiver(): Promise<{ port: number; stop: () => Promise<void> }> {
  const receiver = Bun.spawn([process.execPath, "-e", RECEIVER], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  const port = Number(await readLine(receiver.stdout.getReader(), { buffered: "" }));
  return {
    port,
    stop: async () => {
      receiver.stdin.end();
      await receiver.exited;
    },
  };
}

const failedSend = () => {
  throw new Error("send failed");
};

/** CPU µs of one media-socket send over loopback to a reading process: the best of `rounds` rounds of `sends`. */
export async function mediaSocketSendUs(sends = 20_000, rounds = 3): Promise<number> {
  const receiver = await startReceiver();
  const socket = await inThreadUdpIo.bind("127.0.0.1", 0, { data() {}, error: failedSend });
  try {
    let best = Infinity;
    for (let round = 0; round < rounds; round++) best = Math.min(best, await cpuPerSendUs(() => socket.send(packet, receiver.port, "127.0.0.1"), sends));
    return best;
  } finally {
    socket.close();
    await receiver.stop();
  }
}

export async function run(): Promise<void> {
  const receiver = await startReceiver();
  const port = receiver.port;
  const ours = await inThreadUdpIo.bind("127.0.0.1", 0, { data() {}, error: failedSend });
  const bun = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, binaryType: "uint8array" });
  const connected = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, binaryType: "uint8array", connect: { hostname: "127.0.0.1", port } });
  const node = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => node.bind(0, "127.0.0.1", resolve));
  const rows: Record<string, number[]> = {
    "media socket (sendto, destination encoded once)": [],
    "Bun send(data, port, address)": [],
    "Bun connected socket send(data)": [],
    "node:dgram send(data, port, address, callback)": [],
  };
  const [oursRow, bunRow, connectedRow, nodeRow] = Object.values(rows) as [number[], number[], number[], number[]];
  for (let round = 0; round < ROUNDS; round++) {
    oursRow.push(await cpuPerSendUs(() => ours.send(packet, port, "127.0.0.1")));
    bunRow.push(await cpuPerSendUs(() => bun.send(packet, port, "127.0.0.1")));
    connectedRow.push(await cpuPerSendUs(() => connected.send(packet)));
    nodeRow.push(await cpuPerSendUs(() => new Promise<void>((resolve, reject) => node.send(packet, port, "127.0.0.1", (error) => (error ? reject(error) : resolve())))));
  }
  ours.close();
  bun.close();
  connected.close();
  node.close();
  await receiver.stop();
  console.log(`CPU per 172-byte send over loopback, µs (${ROUNDS} alternating rounds of ${SENDS.toLocaleString("en")}):`);
  for (const [label, values] of Object.entries(rows)) {
    console.log(`  ${label.padEnd(48)} ${values.map((v) => v.toFixed(2).padStart(6)).join(" ")}   best ${Math.min(...values).toFixed(2)}`);
  }
  console.log(`Bun send / media socket (best of each): ${(Math.min(...bunRow) / Math.min(...oursRow)).toFixed(2)}×`);
  console.log(`node:dgram send / media socket (best of each): ${(Math.min(...nodeRow) / Math.min(...oursRow)).toFixed(2)}×`);
}

if (import.meta.main) await run();
