// Polls a condition until it holds, for tests that wait on timers and sockets: the one way tests wait.
//   await until(() => manager.status("t")!.registration.state === "registered", { what: () => manager.status("t") });
// A test that must show something did NOT happen waits for a later event that did (a reply to a
// message sent after it, a counter that moved) and then checks the absence: never a sleep alone.

export async function until(
  check: () => boolean | Promise<boolean>,
  o: { timeoutMs?: number; what?: () => unknown; pollMs?: number } = {},
): Promise<void> {
  const timeoutMs = o.timeoutMs ?? 10_000;
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) {
      throw new Error(`condition not reached within ${timeoutMs} ms${o.what ? `: ${JSON.stringify(o.what())}` : ""}`);
    }
    await Bun.sleep(o.pollMs ?? 5);
  }
}
