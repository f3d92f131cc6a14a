// Process-wide media counters that media workers keep in their own module instances: each worker
// copies its totals into a SharedArrayBuffer (media-engine.ts), and this thread's metrics add them
// to its own (ticker.ts, rtp.ts, srtp drops in calls/legMedia.ts).

export const TOTAL_FIELDS = ["ticks", "lateTicks", "skippedTicks", "strangerRtp", "strangerRtcp", "srtpAuth", "srtpReplay"] as const;
export type TotalField = (typeof TOTAL_FIELDS)[number];
export const totalIndex = Object.fromEntries(TOTAL_FIELDS.map((f, i) => [f, i])) as Record<TotalField, number>;

const views = new Set<Float64Array>();

/** Adds a worker's totals (TOTAL_FIELDS in order) to every workerTotal() until the returned function is called. */
export function addWorkerTotals(view: Float64Array): () => void {
  views.add(view);
  return () => views.delete(view);
}

/** The sum of `field` over the media workers (0 without any). */
export function workerTotal(field: TotalField): number {
  const at = totalIndex[field];
  let sum = 0;
  for (const view of views) sum += view[at] as number;
  return sum;
}
