// Memory of the process it is preloaded into (`bun --preload bench/memory-probe.ts main.ts serve …`),
// for bench/memory.bench.ts: on SIGUSR2 a forced full GC, then RSS and the JS heap — and the heap
// snapshot's bytes and cells by class name when the file $MEMORY_PROBE_OUT.classes exists — go to
// $MEMORY_PROBE_OUT as one JSON file (written whole, then renamed, so a reader never sees half of
// it). Also imported for the same figures in-process.
// A heap snapshot is large: RSS grows by it and keeps the pages, so figures meant to be compared
// are all taken before the first snapshot.
import { existsSync, renameSync, readFileSync, writeFileSync } from "node:fs";
import { heapStats } from "bun:jsc";

export interface MemorySample {
  rss: number;
  /** JSC heap: cells (heapSize) and memory they own outside the heap (typed arrays' stores, strings). */
  heapSize: number;
  extraMemorySize: number;
  /** Memory the GC heap holds committed: live cells plus the free space in its blocks. */
  heapCapacity: number;
  /** Cells by type (JSC's counts: cheap, no snapshot). */
  types: Record<string, number>;
  /** Heap snapshot by class name: shallow bytes and cells (when asked for). */
  classes?: Record<string, { bytes: number; count: number }>;
}

export function rssOf(pid: number | "self" = "self"): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

/** After a forced full GC; RSS and heap sizes before the snapshot is taken (which costs memory of its own). */
export function sampleMemory(o: { classes: boolean }): MemorySample {
  Bun.gc(true);
  const stats = heapStats();
  const rss = rssOf();
  const figures = { rss, heapSize: stats.heapSize, extraMemorySize: stats.extraMemorySize, heapCapacity: stats.heapCapacity, types: stats.objectTypeCounts };
  if (!o.classes) return figures;
  const snapshot = Bun.generateHeapSnapshot() as unknown as { nodes: number[]; nodeClassNames: string[] };
  // JSC snapshot nodes: [id, size, classNameIndex, flags] per cell.
  const classes: MemorySample["classes"] = {};
  for (let i = 0; i < snapshot.nodes.length; i += 4) {
    const name = snapshot.nodeClassNames[snapshot.nodes[i + 2]!]!;
    const entry = (classes[name] ??= { bytes: 0, count: 0 });
    entry.bytes += snapshot.nodes[i + 1]!;
    entry.count++;
  }
  return { ...figures, classes };
}

/**
 * What `after` holds beyond `before`, by type, largest first: [name, bytes, cells]. The cells are
 * counted in both (no snapshot in `before`, whose memory would blur the RSS that follows); the bytes
 * are those cells at `after`'s snapshot average for the type.
 */
export function classGrowth(before: MemorySample, after: MemorySample): [string, number, number][] {
  return Object.entries(after.classes ?? {})
    .map(([name, a]): [string, number, number] => {
      const cells = (after.types[name] ?? a.count) - (before.types[name] ?? 0);
      return [name, cells * (a.bytes / a.count), cells];
    })
    .filter(([, bytes]) => bytes > 0)
    .sort((a, b) => b[1] - a[1]);
}

const out = process.env.MEMORY_PROBE_OUT;
if (out) {
  process.on("SIGUSR2", () => {
    writeFileSync(`${out}.partial`, JSON.stringify(sampleMemory({ classes: existsSync(`${out}.classes`) })));
    renameSync(`${out}.partial`, out);
  });
}
