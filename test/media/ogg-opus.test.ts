// The Ogg Opus writer judged by opus-tools (nobody here wrote them): packets longer than one 255-byte
// lacing segment, pages of several sizes, and a stream whose decoded length is exactly its input's.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OggOpusWriter } from "../../src/media/ogg-opus.ts";
import { createOpusEncoder } from "../../src/media/opus.ts";
import { sine } from "../helpers/audio.ts";
import { decodeRecording, opusInfo, toneBlocks } from "../helpers/recordedAudio.ts";

const dir = mkdtempSync(join(tmpdir(), "trunkline-ogg-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test.each([
  [32_000, 50],
  [256_000, 7],
])("at %p bit/s with %p packets a page: opusinfo finds no fault, opusdec returns exactly the input's length with its tone", (bitrate, packetsPerPage) => {
  const encoder = createOpusEncoder({ bitrate, inbandFec: false, packetLossPercent: 0 });
  const ogg = new OggOpusWriter({ preSkip: encoder.lookahead, serial: 0x1234abcd, packetsPerPage });
  const parts: Uint8Array[] = [ogg.headers()];
  const frames = 73;
  let longest = 0;
  for (let k = 0; k < frames; k++) {
    const packet = encoder.encode(sine(48000, 440, 960, 8000, k * 960));
    longest = Math.max(longest, packet.length);
    const page = ogg.packet(packet, 960);
    if (page) parts.push(page);
  }
  parts.push(ogg.finish(encoder.encode(new Int16Array(960))));
  if (bitrate > 100_000) expect(longest).toBeGreaterThan(255);
  const file = join(dir, `${bitrate}.ogg`);
  writeFileSync(file, Buffer.concat(parts));

  const info = opusInfo(file);
  expect(info).not.toMatch(/WARNING|ERROR|corrupt|hole/i);
  expect(info).toContain(`Pre-skip: ${encoder.lookahead}`);
  const { pcm, sampleRate, tool } = decodeRecording(file);
  expect(pcm.length, tool).toBe(frames * 960);
  expect(toneBlocks(pcm.subarray(sampleRate / 10), sampleRate, 440), tool).toBe(1);
});
