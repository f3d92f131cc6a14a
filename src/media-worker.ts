// A media worker thread, and the composition root of one: a MediaEngine (media/media-engine.ts)
// hosting the channels the main thread places here (media/media-plane.ts), with the WebRTC client
// handler registered so the channels' browser peers run here too (src/media imports no src/webrtc).
// The compiled executable bundles this file as an extra entrypoint (see the Makefile's build target).
import { hostClientsHere, MediaEngine } from "./media/media-engine.ts";
import { Outbox, type FromHost, type ToHost } from "./media/media-protocol.ts";
import { webrtcClientHandler } from "./webrtc/client-host.ts";

declare var self: Worker;

hostClientsHere(webrtcClientHandler);
// Replies and events go out in one batch per turn (media-protocol.ts Outbox).
const outbox = new Outbox<FromHost>((batch, transfer) => self.postMessage(batch, transfer), "turn");
const engine = new MediaEngine((message: FromHost, transfer?: Bun.Transferable[]) => outbox.add(message, transfer), true);

// Installed before anything is awaited, so no message posted during start-up is dropped.
self.onmessage = (event: MessageEvent<ToHost[]>) => {
  for (const m of event.data) {
    // One batch holds many legs' messages: a failure is reported as an uncaught one was, and the rest still run.
    try {
      engine.handle(m);
    } catch (error) {
      reportError(error);
    }
    if (m.t === "exit") {
      outbox.flush();
      process.exit(0);
    }
  }
};

outbox.add({ t: "ready" });
