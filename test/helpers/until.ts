// Polls a condition until it holds, for tests that wait on timers and sockets.
//   await until(() => manager.status("t")!.registration.state === "registered", { what: () => manager.status("t") });

export async function until(check: () => boolean, o: { timeoutMs?: number; what?: () => unknown } = {}): Promise<void> {
  const timeoutMs = o.timeoutMs ?? 10_000;
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeoutMs) {
      throw new Error(`condition not reached within ${timeoutMs} ms${o.what ? `: ${JSON.stringify(o.what())}` : ""}`);
    }
    await Bun.sleep(5);
  }
}
