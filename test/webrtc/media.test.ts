import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { goertzelPower } from "../../src/media/goertzel.ts";
import { applyMediaSettings, defaultMediaSettings } from "../../src/media/media-settings.ts";
import { clientHearsUntil } from "../helpers/hearing.ts";
import { until } from "../helpers/until.ts";
import { createTestClient, type OfferingOptions, type TestClient, type TestCodec } from "../helpers/weriftClient.ts";
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

async function joinClient(codec: TestCodec, clientId: string, options: OfferingOptions = {}): Promise<TestClient> {
  const { client } = await joinWithAnswer(codec, clientId, options);
  return client;
}

async function joinWithAnswer(codec: TestCodec, clientId: string, options: OfferingOptions = {}): Promise<{ client: TestClient; answer: string }> {
  const client = createTestClient(codec, options);
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

/** Power of `freq` in what the client heard, in dB relative to full-scale sine. */
function level(pcm: Int16Array, sampleRate: number, freq: number): number {
  return 10 * Math.log10(goertzelPower(pcm, sampleRate, freq) / (32767 * 32767 * 0.5) + 1e-12);
}

/**
 * Waits until the last 0.5 s the client heard has `freq` near the −12 dBFS it is sent at (above
 * −20 dB); returns that stretch. However slowly a loaded machine delivers, the judged audio is
 * always a full half second of the tone.
 */
function hearsTone(client: TestClient, freq: number): Promise<Int16Array> {
  return clientHearsUntil(client, (pcm, rate) => level(pcm, rate, freq) > -20, { ms: 500, what: (pcm, rate) => ({ freq, level: level(pcm, rate, freq) }) });
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
  expect(level(await hearsTone(client, 600), 8000, 600)).toBeGreaterThan(-20);
});

describe("WebRTC clients in a channel", () => {
  test("the answer asks an Opus client for DTX, so a silent client sends almost nothing", async () => {
    const { answer } = await joinWithAnswer("opus", "dtx-client");
    const opusPt = /a=rtpmap:(\d+) opus\/48000\/2/.exec(answer)?.[1];
    expect(answer).toMatch(new RegExp(`a=fmtp:${opusPt} [^\\r\\n]*usedtx=1\\r\\n`));
  });

  test("a client nobody talks to gets 50 constant 3-byte Opus silence frames a second", async () => {
    const alone = await joinClient("opus", "alone");
    await until(() => alone.lastReceived !== undefined, { what: () => "no RTP reached the client" });
    const [first, packets, bytes] = [alone.lastReceived!, alone.packetsReceived, alone.bytesReceived];
    alone.takeReceived();
    // A second's worth of frames, however long a loaded machine takes to deliver them.
    await until(() => alone.packetsReceived - packets >= 50, { what: () => ({ packets: alone.packetsReceived - packets }) });
    const [last, received] = [alone.lastReceived!, alone.packetsReceived - packets];
    // Consecutive packets, each 20 ms of audio (960 samples at 48 kHz): 50 of them make a second.
    expect((last.sequenceNumber - first.sequenceNumber) & 0xffff).toBe(received);
    expect((last.timestamp - first.timestamp) >>> 0).toBe(received * 960);
    expect((alone.bytesReceived - bytes) / received).toBe(3);
    expect(alone.takeReceived().reduce((peak, v) => Math.max(peak, Math.abs(v)), 0)).toBe(0);
  });

  test("five Opus clients talk at once: the channel mixes the three loudest; the listener and the quieter two hear just those", async () => {
    const talkers = [
      { id: "loud", freq: 600, amplitude: 8000 },
      { id: "louder-still", freq: 1000, amplitude: 7000 },
      { id: "third", freq: 1400, amplitude: 6000 },
      { id: "quiet", freq: 1800, amplitude: 1500 },
      { id: "quietest", freq: 2200, amplitude: 1000 },
    ];
    const listener = await joinClient("opus", "listener");
    const clientsOf = new Map<string, TestClient>();
    for (const t of talkers) clientsOf.set(t.id, await joinClient("opus", t.id));
    // The quiet ones start first, so they hold places the loud ones must take over.
    for (const t of [...talkers].reverse()) clientsOf.get(t.id)?.startSending(t.freq, t.amplitude);
    const loudest = talkers.slice(0, 3);
    const quieter = talkers.slice(3);
    /**
     * Each of the three loudest tones within 2 dB of the level it is sent at, and the quieter two
     * absent, in one half second. A loaded machine that stalls a loud talker lets a quiet one in for
     * a while; the wait goes on until a half second without such a swap (with the cap broken, none).
     */
    const hearsLoudestOnly = (pcm: Int16Array, rate: number) =>
      loudest.every((t) => level(pcm, rate, t.freq) > 20 * Math.log10(t.amplitude / 32767) - 2) && quieter.every((t) => level(pcm, rate, t.freq) < -50);
    const describe = (pcm: Int16Array, rate: number) => Object.fromEntries(talkers.map((t) => [t.freq, level(pcm, rate, t.freq).toFixed(1)]));
    // Six werift clients encode and decode in this process beside the server's worker: on a starved
    // machine such a half second can take a while to come, hence the longer wait.
    await Promise.all([listener, clientsOf.get("quiet") as TestClient].map((c) => clientHearsUntil(c, hearsLoudestOnly, { ms: 500, timeoutMs: 30_000, what: describe })));
  });

  test("media settings reach the channel's media worker: with maxSpeakers 1 the listener hears only the loudest of three", async () => {
    // Applied before the worker starts (first join), and sent to it as the app sends the config's.
    applyMediaSettings({ ...defaultMediaSettings, maxSpeakers: 1 });
    try {
      const talkers = [
        { id: "loudest", freq: 600, amplitude: 8000 },
        { id: "middle", freq: 1000, amplitude: 3000 },
        { id: "quiet", freq: 1400, amplitude: 1500 },
      ];
      const listener = await joinClient("opus", "listener");
      for (const t of talkers) (await joinClient("opus", t.id)).startSending(t.freq, t.amplitude);
      const hearsLoudestOnly = (pcm: Int16Array, rate: number) =>
        level(pcm, rate, 600) > 20 * Math.log10(8000 / 32767) - 2 && level(pcm, rate, 1000) < -50 && level(pcm, rate, 1400) < -50;
      const describe = (pcm: Int16Array, rate: number) => Object.fromEntries(talkers.map((t) => [t.freq, level(pcm, rate, t.freq).toFixed(1)]));
      await clientHearsUntil(listener, hearsLoudestOnly, { ms: 500, timeoutMs: 30_000, what: describe });
    } finally {
      applyMediaSettings(defaultMediaSettings);
    }
  });

  test("clients sending RFC 6464 levels: the answer accepts them and the mixer ranks talkers by them (maxSpeakers 1)", async () => {
    applyMediaSettings({ ...defaultMediaSettings, maxSpeakers: 1 });
    try {
      const { client: listener, answer } = await joinWithAnswer("opus", "listener", { audioLevels: true });
      expect(answer).toMatch(/^a=extmap:\d+ urn:ietf:params:rtp-hdrext:ssrc-audio-level\r?$/m);
      // The louder tone says it is quiet (−45 dBov), the quieter one that it is loud (−20 dBov):
      // the server goes by what the clients say, so only the 1000 Hz tone is mixed (and decoded).
      const understated = await joinClient("opus", "understated", { audioLevels: true });
      const stated = await joinClient("opus", "stated", { audioLevels: true });
      understated.startSending(600, 8000, 45);
      stated.startSending(1000, 3000, 20);
      const hearsStatedOnly = (pcm: Int16Array, rate: number) => level(pcm, rate, 1000) > 20 * Math.log10(3000 / 32767) - 2 && level(pcm, rate, 600) < -50;
      const describe = (pcm: Int16Array, rate: number) => ({ 600: level(pcm, rate, 600).toFixed(1), 1000: level(pcm, rate, 1000).toFixed(1) });
      await clientHearsUntil(listener, hearsStatedOnly, { ms: 500, what: describe });
    } finally {
      applyMediaSettings(defaultMediaSettings);
    }
  });

  test("a client without levels beside clients with them is still measured and mixed", async () => {
    const listener = await joinClient("opus", "listener", { audioLevels: true });
    const plain = await joinClient("opus", "plain");
    const leveled = await joinClient("opus", "leveled", { audioLevels: true });
    plain.startSending(600, 4000);
    leveled.startSending(1000, 4000);
    const hearsBoth = (pcm: Int16Array, rate: number) => level(pcm, rate, 600) > 20 * Math.log10(4000 / 32767) - 2 && level(pcm, rate, 1000) > 20 * Math.log10(4000 / 32767) - 2;
    const describe = (pcm: Int16Array, rate: number) => ({ 600: level(pcm, rate, 600).toFixed(1), 1000: level(pcm, rate, 1000).toFixed(1) });
    await clientHearsUntil(listener, hearsBoth, { ms: 500, what: describe });
  });

  test("an Opus client and a PCMU client each hear the other's tone and not their own", async () => {
    const opus = await joinClient("opus", "opus-client");
    const pcmu = await joinClient("PCMU", "pcmu-client");
    expect(h.registry.participants("app1", "room1").map((p) => p.id).sort()).toEqual(["opus-client", "pcmu-client"]);

    opus.startSending(600);
    pcmu.startSending(1000);
    // The tones are sent at −12 dBFS; the other side's tone arrives near that, one's own not at all
    // (judged on the same half second in which the other's tone is heard).
    const [heardByOpus, heardByPcmu] = await Promise.all([hearsTone(opus, 1000), hearsTone(pcmu, 600)]);
    expect(level(heardByOpus, 48000, 1000)).toBeGreaterThan(-20);
    expect(level(heardByOpus, 48000, 600)).toBeLessThan(-50);
    expect(level(heardByPcmu, 8000, 600)).toBeGreaterThan(-20);
    expect(level(heardByPcmu, 8000, 1000)).toBeLessThan(-50);
  });
});
