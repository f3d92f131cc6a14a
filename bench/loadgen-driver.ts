// What a bench needs to drive the RTP load generator (rtp-loadgen.ts) in its own process: its
// line protocol on stdout, its result, and the offer each of its phones makes.

/** What the load generator reports when its measurement ends (one JSON line). */
export interface LoadResult { sent: number; received: number; expected: number; late: number; lateStretches: number; missing: number; maxLatenessMs: number; silentLegs: number; senderLateTicks: number; cpuShare: number }

interface ChunkReader { read(): Promise<{ value?: Uint8Array; done: boolean }> }

/** The next line the load generator wrote; `state` keeps what was read past it. */
export async function readLine(reader: ChunkReader, state: { buffered: string }): Promise<string> {
  const decoder = new TextDecoder();
  for (;;) {
    const nl = state.buffered.indexOf("\n");
    if (nl >= 0) {
      const line = state.buffered.slice(0, nl);
      state.buffered = state.buffered.slice(nl + 1);
      return line;
    }
    const { value, done } = await reader.read();
    if (done) throw new Error("load generator exited early");
    state.buffered += decoder.decode(value);
  }
}

/** The SDP offer of a load-generator phone listening on `port` (PCMU and telephone-event). */
export function phoneOffer(port: number): string {
  return ["v=0", "o=loadgen 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
    `m=audio ${port} RTP/AVP 0 101`, "a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000", "a=sendrecv", ""].join("\r\n");
}
