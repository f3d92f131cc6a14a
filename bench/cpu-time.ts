// The one way micro-benchmarks time a piece of work.

/**
 * CPU µs per call of `fn`: the fastest of several batches, timed by this process's CPU time so
 * other processes competing for the cores inflate it as little as possible.
 */
export function measure(fn: () => void, perBatch: number, batches = 9): number {
  for (let i = 0; i < perBatch; i++) fn();
  let best = Infinity;
  for (let b = 0; b < batches; b++) {
    const t0 = process.cpuUsage();
    for (let i = 0; i < perBatch; i++) fn();
    const used = process.cpuUsage(t0);
    best = Math.min(best, (used.user + used.system) / perBatch);
  }
  return best;
}
