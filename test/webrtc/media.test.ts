import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { goertzelPower } from "../../src/media/goertzel.ts";
import { createTestClient, type TestClient, type TestCodec } from "../helpers/weriftClient.ts";
import { startHarness, type Harness } from "./harness.ts";

let h: Harness;
const clients: TestClient[] = [];

beforeEach(() => {
  h = startHarness();
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await h.stop();
});

async function joinClient(codec: TestCodec, clientId: string): Promise<TestClient> {
  const { client } = await joinWithAnswer(codec, clientId);
  return client;
}

async function joinWithAnswer(codec: TestCodec, clientId: string): Promise<{ client: TestClient; answer: string }> {
  const client = createTestClient(codec);
  clients.push(client);
  const res = await h.join(h.token({ clientId, userId: `user-${clientId}` }), await client.offer());
  expect(res.status).toBe(200);
  const body = (await res.json()) as { clientId: string; sdp: string; codec: string };
  expect(body.clientId).toBe(clientId);
  expect(body.codec).toBe(codec);
  await client.accept(body.sdp);
  await client.connected();
  return { client, answer: body.sdp };
}

/**
 * Drains what each client hears until every one has at least `seconds` of audio. A loaded machine
 * delivers less than real time (the mixer drops ticks after a long stall), so a fixed sleep would
 * not say how much audio there is to judge.
 */
async function collect(wanted: [client: TestClient, sampleRate: number][], seconds: number): Promise<Int16Array[]> {
  const heard: Int16Array[][] = wanted.map(() => []);
  const length = (i: number) => heard[i]!.reduce((n, a) => n + a.length, 0);
  const end = Date.now() + 10_000;
  while (wanted.some(([, rate], i) => length(i) < rate * seconds)) {
    if (Date.now() > end) throw new Error(`less than ${seconds} s heard in 10 s: ${wanted.map(([, rate], i) => `${length(i) / rate} s`).join(", ")}`);
    await Bun.sleep(50);
    wanted.forEach(([client], i) => heard[i]!.push(client.takeReceived()));
  }
  return heard.map((chunks, i) => {
    const out = new Int16Array(length(i));
    let at = 0;
    for (const c of chunks) { out.set(c, at); at += c.length; }
    return out;
  });
}

/** Power of `freq` in what the client heard, in dB relative to full-scale sine. */
function level(pcm: Int16Array, sampleRate: number, freq: number): number {
  return 10 * Math.log10(goertzelPower(pcm, sampleRate, freq) / (32767 * 32767 * 0.5) + 1e-12);
}

test("with an ICE port range, every candidate of the answer uses a port inside it and media flows", async () => {
  await h.stop();
  h = startHarness({ portRange: [47100, 47199] });
  const { client, answer } = await joinWithAnswer("PCMU", "ranged");
  const ports = [...answer.matchAll(/a=candidate:\S+ \d+ udp \d+ \S+ (\d+) typ/gi)].map((m) => Number(m[1]));
  expect(ports.length).toBeGreaterThan(0);
  for (const port of ports) expect(port >= 47100 && port <= 47199).toBe(true);
  const peer = await joinClient("PCMU", "ranged-peer");
  peer.startSending(600);
  await Bun.sleep(600);
  client.takeReceived();
  const [heard] = await collect([[client, 8000]], 0.5);
  expect(level(heard!, 8000, 600)).toBeGreaterThan(-20);
});

describe("WebRTC clients in a channel", () => {
  test("the answer asks an Opus client for DTX, so a silent client sends almost nothing", async () => {
    const { answer } = await joinWithAnswer("opus", "dtx-client");
    const opusPt = /a=rtpmap:(\d+) opus\/48000\/2/.exec(answer)?.[1];
    expect(answer).toMatch(new RegExp(`a=fmtp:${opusPt} [^\\r\\n]*usedtx=1\\r\\n`));
  });

  test("a client nobody talks to gets 50 constant 3-byte Opus silence frames a second", async () => {
    const alone = await joinClient("opus", "alone");
    await Bun.sleep(200);
    const [packets, bytes] = [alone.packetsReceived, alone.bytesReceived];
    await Bun.sleep(1000);
    expect(alone.packetsReceived - packets).toBeGreaterThan(40);
    expect((alone.bytesReceived - bytes) / (alone.packetsReceived - packets)).toBe(3);
    expect(alone.takeReceived().reduce((peak, v) => Math.max(peak, Math.abs(v)), 0)).toBe(0);
  });

  test("an Opus client and a PCMU client each hear the other's tone and not their own", async () => {
    const opus = await joinClient("opus", "opus-client");
    const pcmu = await joinClient("PCMU", "pcmu-client");
    expect(h.registry.participants("app1", "room1").map((p) => p.id).sort()).toEqual(["opus-client", "pcmu-client"]);

    opus.startSending(600);
    pcmu.startSending(1000);
    await Bun.sleep(600);
    opus.takeReceived();
    pcmu.takeReceived();
    const [heardByOpus, heardByPcmu] = await collect([[opus, 48000], [pcmu, 8000]], 0.5) as [Int16Array, Int16Array];
    // The tones are sent at −12 dBFS; the other side's tone arrives near that, one's own not at all.
    expect(level(heardByOpus, 48000, 1000)).toBeGreaterThan(-20);
    expect(level(heardByOpus, 48000, 600)).toBeLessThan(-50);
    expect(level(heardByPcmu, 8000, 600)).toBeGreaterThan(-20);
    expect(level(heardByPcmu, 8000, 1000)).toBeLessThan(-50);
  });
});
