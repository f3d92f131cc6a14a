// Long transaction timers (src/sip/timer-wheel.ts) against one setTimeout each, side by side in one
// run: at 1,000 calls/s a UDP call leaves Timer L and Timer J (32 s) behind it and arms and clears a
// no-final guard per request. Here 2,000 timers/s are armed for 3 s and fire 1 s later, and as many
// guards are armed and cleared, deadlines spread as calls arrive, with nothing else running (the event loop idle between them, as
// between a call's messages); main-thread CPU (CLOCK_THREAD_CPUTIME_ID) per timer, best of rounds.
import { TimerWheel } from "../src/sip/timer-wheel.ts";
import { threadCpuUs } from "./cpu-time.ts";

const RATE = 2000;
const SECONDS = 3;
const DELAY_MS = 1000;
const ROUNDS = 3;

interface Scheduler {
  schedule(ms: number, fire: () => void): { cancel(): void };
}
const perTimer: Scheduler = {
  schedule(ms, fire) {
    const handle = setTimeout(fire, ms);
    return { cancel: () => clearTimeout(handle) };
  },
};

/** Main-thread CPU µs per timer armed and fired (plus one guard armed and cleared beside it). */
async function round(scheduler: Scheduler): Promise<number> {
  let fired = 0;
  const total = RATE * SECONDS;
  const start = threadCpuUs();
  for (let tick = 0; tick < SECONDS * 100; tick++) {
    for (let i = 0; i < RATE / 100; i++) {
      // Calls arrive spread out, and so do their timers' deadlines.
      scheduler.schedule(DELAY_MS + (i * 10) / (RATE / 100), () => fired++);
      scheduler.schedule(DELAY_MS * 10, () => {}).cancel();
    }
    await Bun.sleep(10);
  }
  while (fired < total) await Bun.sleep(5);
  return (threadCpuUs() - start) / total;
}

export async function run(): Promise<void> {
  const wheel = new TimerWheel((error) => console.error(error));
  const best = { perTimer: Infinity, wheel: Infinity };
  for (let r = 0; r < ROUNDS; r++) {
    best.perTimer = Math.min(best.perTimer, await round(perTimer));
    best.wheel = Math.min(best.wheel, await round(wheel));
  }
  console.log(
    `long timers, ${RATE}/s armed and fired plus as many armed and cleared (best of ${ROUNDS} alternating rounds): ` +
      `one setTimeout each ${best.perTimer.toFixed(2)} µs, the wheel ${best.wheel.toFixed(2)} µs of main-thread CPU per timer (${(best.perTimer / best.wheel).toFixed(1)}×)`,
  );
}

if (import.meta.main) await run();
