// Process-wide media counters that media workers keep in their own module instances: each worker
// copies its totals into a SharedArrayBuffer (media-engine.ts), and this thread's metrics add them
// to its own (ticker.ts, rtp.ts, srtp drops in calls/legMedia.ts).

export const TOTAL_FIELDS = ["ticks", "lateTicks", "skippedTicks", "strangerRtp", "strangerRtcp", "srtpAuth", "srtpReplay", "levelFrames", "relayedPackets", "rtpSent", "rtpReceived"] as const;
export type TotalField = (typeof TOTAL_FIELDS)[number];
export const totalIndex = Object.fromEntries(TOTAL_FIELDS.map((f, i) => [f, i])) as Record<TotalField, number>;

const views = new Set<Float64Array>();
/** What workers that died had counted. */
const retired = new Float64Array(TOTAL_FIELDS.length);

/** Adds a worker's totals (TOTAL_FIELDS in order) to every workerTotal() until the returned function is called. */
export function addWorkerTotals(view: Float64Array): () => void {
  views.add(view);
  return () => views.delete(view);
}

/** Keeps what a dead worker counted in workerTotal() (counters never go back) and stops reading its view. */
export function retireWorkerTotals(view: Float64Array): void {
  if (!views.delete(view)) return;
  for (let i = 0; i < TOTAL_FIELDS.length; i++) retired[i] = (retired[i] as number) + (view[i] as number);
}

/** The sum of `field` over the media workers, dead ones included (0 without any). */
export function workerTotal(field: TotalField): number {
  const at = totalIndex[field];
  let sum = retired[at] as number;
  for (const view of views) sum += view[at] as number;
  return sum;
}
