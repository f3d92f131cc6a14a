// The one way micro-benchmarks time a piece of work, and the one way benches split a process's CPU by thread.
import { dlopen, FFIType, ptr } from "bun:ffi";
import { readFileSync, readdirSync } from "node:fs";

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

/** CPU time of each thread of this process, in clock ticks (Linux /proc), by thread id. */
export function threadTicks(): Map<number, number> {
  const ticks = new Map<number, number>();
  for (const tid of readdirSync("/proc/self/task")) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
    } catch {
      continue; // the thread ended meanwhile
    }
    // utime and stime: fields 14 and 15, counted after the parenthesised command name
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    ticks.set(Number(tid), Number(fields[11]) + Number(fields[12]));
  }
  return ticks;
}

/** CPU ticks between two samples of the main thread and of the others (threads that ended meanwhile are not counted). */
export function threadDelta(before: Map<number, number>, after: Map<number, number>): { main: number; others: number } {
  let main = 0;
  let others = 0;
  for (const [tid, ticks] of after) {
    const used = ticks - (before.get(tid) ?? 0);
    if (tid === process.pid) main += used;
    else others += used;
  }
  return { main, others };
}

const CLOCK_THREAD_CPUTIME_ID = 3;
const libc = dlopen("libc.so.6", { clock_gettime: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 } });
const timespec = new BigInt64Array(2);

/** The calling thread's CPU time, µs (clock_gettime(CLOCK_THREAD_CPUTIME_ID)): the main thread alone, without its workers. */
export function threadCpuUs(): number {
  libc.symbols.clock_gettime(CLOCK_THREAD_CPUTIME_ID, ptr(timespec));
  return Number(timespec[0]!) * 1e6 + Number(timespec[1]!) / 1e3;
}
