// Worker for opus.test.ts: encodes and decodes a 1000 Hz tone with Opus as fast as it can, until
// the shared stop flag is set, so another thread's Opus calls run while this thread's do.
import { opus } from "../../src/media/opus.ts";

declare const self: Worker;

self.onmessage = (event: MessageEvent<{ stop: Int32Array }>) => {
  const { stop } = event.data;
  const encoder = opus.createEncoder();
  const decoder = opus.createDecoder();
  const frame = Int16Array.from({ length: 960 }, (_, i) => Math.round(8000 * Math.sin((2 * Math.PI * 1000 * i) / 48000)));
  self.postMessage("running");
  while (Atomics.load(stop, 0) === 0) decoder.decode(encoder.encode(frame));
  self.postMessage("stopped");
};
