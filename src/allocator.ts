// The memory allocator's settings for a long-running server. Bun allocates with mimalloc, which reads
// its options from the environment once, at process start; so `serve` re-executes itself first
// (execve: the same PID, arguments, descriptors and environment, plus these settings).
//
// MIMALLOC_PURGE_DELAY: how long freed memory stays resident before it is handed back to the OS.
// Bun's default, 100 ms, is shorter than the garbage collector's cycle under call load: the heap's
// blocks were handed back after each collection and faulted in again on the next allocations, and
// mimalloc's scavenger thread, JavaScriptCore's block warm-up thread and the mutators paid the
// page faults (at 600 calls/s ≈ 10 % of the process's CPU per call; README "Calls per second").
// A value the operator sets is kept.
import { dlopen, FFIType, ptr } from "bun:ffi";
import { readFileSync } from "node:fs";

export const SERVER_ALLOCATOR_ENV: Readonly<Record<string, string>> = { MIMALLOC_PURGE_DELAY: "-1" };

/** The NUL-separated strings of a /proc file (cmdline, environ). */
function procStrings(path: string): string[] {
  const text = readFileSync(path, "utf8");
  return text.split("\0").slice(0, text.endsWith("\0") ? -1 : undefined);
}

/** A NULL-terminated array of C strings (char *const[]), and the buffer that holds the strings. */
function cStringArray(values: string[]): { pointers: BigUint64Array; strings: Uint8Array } {
  const encoder = new TextEncoder();
  const encoded = values.map((v) => encoder.encode(`${v}\0`));
  const strings = new Uint8Array(encoded.reduce((n, e) => n + e.length, 0));
  const pointers = new BigUint64Array(values.length + 1);
  const base = ptr(strings);
  let at = 0;
  encoded.forEach((e, i) => {
    strings.set(e, at);
    pointers[i] = BigInt(base + at);
    at += e.length;
  });
  return { pointers, strings };
}

/**
 * Re-executes this process with the server's allocator settings unless they are all in its
 * environment already. Returns only when nothing was to be done or the re-exec is not possible
 * (not Linux, no /proc, execve refused): the process then goes on as it is.
 */
export function reexecWithServerAllocator(): void {
  const missing = Object.keys(SERVER_ALLOCATOR_ENV).filter((name) => process.env[name] === undefined);
  if (missing.length === 0 || process.platform !== "linux") return;
  try {
    const argv = procStrings("/proc/self/cmdline");
    const environ = procStrings("/proc/self/environ");
    for (const name of missing) environ.push(`${name}=${SERVER_ALLOCATOR_ENV[name]}`);
    const libc = dlopen("libc.so.6", { execve: { args: [FFIType.cstring, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 } });
    const path = new TextEncoder().encode("/proc/self/exe\0");
    const args = cStringArray(argv);
    const env = cStringArray(environ);
    libc.symbols.execve(ptr(path), args.pointers, env.pointers);
    // Still here: execve failed; carry on with the allocator's defaults. (The strings' buffers are
    // referenced here, after the call, so they were alive during it.)
    if (args.strings.length + env.strings.length > 0) libc.close();
  } catch {
    // No /proc or no libc: the defaults.
  }
}
