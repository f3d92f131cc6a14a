// Polls GET /api/v1/trunks/:id/status of a running app until `check` passes; the last answer is in
// the error when it never does.
import type { Harness } from "../api/harness.ts";

export async function trunkStatusUntil(h: Harness, id: string, check: (status: any) => boolean, timeoutMs = 5000): Promise<any> {
  const started = Date.now();
  for (;;) {
    const res = await h.call("GET", `/api/v1/trunks/${id}/status`);
    if (res.status === 200 && check(res.json)) return res.json;
    if (Date.now() - started > timeoutMs) throw new Error(`status of ${id} never matched: ${res.status} ${res.text}`);
    await Bun.sleep(20);
  }
}
