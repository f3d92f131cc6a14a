// RTP port allocation: one reserve + release (the call-setup and hang-up share of a port) on a
// 100-port and on a 55,000-port range, each half in use, side by side. Ports are drawn at random from
// the free pairs in O(1), so the large range should cost about what the small one does (ratio ≈ 1),
// where a scan for a free port would grow with the range.
import { RtpPortAllocator } from "../src/media/ports.ts";
import { measure } from "./cpu-time.ts";

function reserveReleaseNs(range: { min: number; max: number }): number {
  const allocator = new RtpPortAllocator(range);
  const held: number[] = [];
  for (let i = 0; i < allocator.capacity / 2; i++) held.push(allocator.reserve()!);
  let next = 0;
  return 1000 * measure(() => {
    // The longest-held call hangs up, a new one takes a port: half the range stays in use.
    allocator.release(held[next]!);
    held[next] = allocator.reserve()!;
    next = (next + 1) % held.length;
  }, 200_000);
}

export async function run(): Promise<void> {
  const small = reserveReleaseNs({ min: 10000, max: 10099 });
  const large = reserveReleaseNs({ min: 10000, max: 64999 });
  console.log(`${"reserve + release, 100-port range, half in use".padEnd(58)} ${small.toFixed(0).padStart(8)} ns`);
  console.log(`${"reserve + release, 55,000-port range, half in use".padEnd(58)} ${large.toFixed(0).padStart(8)} ns`);
  console.log(`large / small: ${(large / small).toFixed(2)}× (O(1) allocation stays near 1)`);
}

if (import.meta.main) await run();
