// A media worker thread, and the composition root of one: a MediaEngine (media/media-engine.ts)
// hosting the channels the main thread places here (media/media-plane.ts), with the WebRTC client
// handler registered so the channels' browser peers run here too (src/media imports no src/webrtc).
// The compiled executable bundles this file as an extra entrypoint (see the Makefile's build target).
import { hostClientsHere, MediaEngine } from "./media/media-engine.ts";
import type { FromHost, ToHost } from "./media/media-protocol.ts";
import { webrtcClientHandler } from "./webrtc/client-host.ts";

declare var self: Worker;

hostClientsHere(webrtcClientHandler);
const engine = new MediaEngine((message: FromHost, transfer?: Bun.Transferable[]) => self.postMessage(message, transfer ?? []), true);

// Installed before anything is awaited, so no message posted during start-up is dropped.
self.onmessage = (event: MessageEvent<ToHost>) => {
  const m = event.data;
  engine.handle(m);
  if (m.t === "exit") process.exit(0);
};

self.postMessage({ t: "ready" } satisfies FromHost);
