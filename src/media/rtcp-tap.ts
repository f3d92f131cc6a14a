// A tap on RTCP: every compound packet a session sends or reads (plain, after SRTCP), with its
// ports and the peer's address, for whoever listens (HEP export). One field check when nobody does.
export interface TappedRtcp {
  direction: "sent" | "received";
  data: Uint8Array;
  /** Our RTP port (the session's identity) and the port the RTCP used (RTP port with rtcp-mux, else RTP + 1). */
  rtpPort: number;
  localPort: number;
  remote: { address: string; port: number };
  /** Epoch milliseconds. */
  time: number;
}

export type RtcpTap = (packet: TappedRtcp) => void;

const listeners = new Set<RtcpTap>();
const watchers = new Set<(listening: boolean) => void>();

/** The listener the sessions call, or undefined while nobody listens. */
export let rtcpTap: RtcpTap | undefined;

/** Process-wide, like the RTP sessions themselves. Returns the function that removes the listener. */
export function tapRtcp(tap: RtcpTap): () => void {
  listeners.add(tap);
  rebuild();
  return () => {
    listeners.delete(tap);
    rebuild();
  };
}

/** Tells `watcher` whether anyone listens, now and at each change (media workers forward RTCP only then). */
export function watchRtcpTap(watcher: (listening: boolean) => void): () => void {
  watchers.add(watcher);
  watcher(listeners.size > 0);
  return () => watchers.delete(watcher);
}

function rebuild(): void {
  const all = [...listeners];
  const changed = (all.length > 0) !== (rtcpTap !== undefined);
  rtcpTap =
    all.length === 0
      ? undefined
      : (packet) => {
          for (const tap of all) {
            try {
              tap(packet);
            } catch {
              // A listener's failure never reaches the media path.
            }
          }
        };
  if (changed) for (const watcher of watchers) watcher(all.length > 0);
}
