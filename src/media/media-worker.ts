// A media worker thread: one MediaEngine (media-engine.ts) hosting the channels the main thread
// places here (media-plane.ts). The compiled executable bundles this file as an extra entrypoint
// (see the Makefile's build target).
import { MediaEngine } from "./media-engine.ts";
import type { FromHost, ToHost } from "./media-protocol.ts";

declare var self: Worker;

const engine = new MediaEngine((message: FromHost, transfer?: Bun.Transferable[]) => self.postMessage(message, transfer ?? []), true);

// Installed before anything is awaited, so no message posted during start-up is dropped.
self.onmessage = (event: MessageEvent<ToHost>) => {
  const m = event.data;
  engine.handle(m);
  if (m.t === "exit") process.exit(0);
};

self.postMessage({ t: "ready" } satisfies FromHost);
