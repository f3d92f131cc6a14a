// JavaScriptCore's jitdump (BUN_JSC_useJITDump=1 writes /tmp/jit-*.dump): which JIT code was loaded
// at which address and when, so that a perf sample's address can be named. The JIT reuses freed
// code memory, so an address is named by the code loaded there latest before the sample (both
// clocks are CLOCK_MONOTONIC). Used by cps-profile.ts and thread-profile.ts.

export interface JitCode {
  start: number;
  end: number;
  name: string;
  loadedAt: number;
}

/** JIT code by the 4 KiB pages it covers. */
export type JitCodeMap = Map<number, JitCode[]>;

const CODE_LOAD = 0;
const PAGE = 4096;

/** Adds the code loads of one dump to `into` (several dumps of one process go into one map). */
export function readJitDump(bytes: Buffer, into: JitCodeMap = new Map()): JitCodeMap {
  let at = bytes.readUInt32LE(8); // the header's size
  while (at + 16 <= bytes.length) {
    const id = bytes.readUInt32LE(at);
    const size = bytes.readUInt32LE(at + 4);
    if (size === 0) break;
    if (id === CODE_LOAD) {
      const body = at + 16;
      const start = Number(bytes.readBigUInt64LE(body + 16));
      const end = start + Number(bytes.readBigUInt64LE(body + 24));
      const name = bytes.toString("utf8", body + 40, bytes.indexOf(0, body + 40)).replace(/^JSC-[A-Za-z]+: /, "").replace(/#\w+$/, "");
      const code = { start, end, name, loadedAt: Number(bytes.readBigUInt64LE(at + 8)) / 1e9 };
      for (let page = Math.floor(start / PAGE); page <= Math.floor((end - 1) / PAGE); page++) {
        const list = into.get(page);
        if (list) list.push(code);
        else into.set(page, [code]);
      }
    }
    at += size;
  }
  return into;
}

/** The JIT code at `ip` when the sample at `time` (seconds) was taken; undefined if none was there. */
export function jitNameAt(map: JitCodeMap | undefined, ip: number, time: number): string | undefined {
  let latest: JitCode | undefined;
  for (const code of map?.get(Math.floor(ip / PAGE)) ?? []) {
    if (code.start <= ip && ip < code.end && code.loadedAt <= time && (!latest || code.loadedAt > latest.loadedAt)) latest = code;
  }
  return latest?.name;
}
