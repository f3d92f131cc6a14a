// Polls GET /api/v1/trunks/:id/status of a running app until `check` passes (through the shared
// until()); the last answer is in the error when it never does. The timeout only detects a failure.
import type { Harness } from "../api/harness.ts";
import { until } from "./until.ts";

export async function trunkStatusUntil(h: Harness, id: string, check: (status: any) => boolean, timeoutMs = 10_000): Promise<any> {
  let last: { status: number; text: string; json: any } | undefined;
  await until(
    async () => {
      last = await h.call("GET", `/api/v1/trunks/${id}/status`);
      return last.status === 200 && check(last.json);
    },
    { timeoutMs, pollMs: 20, what: () => `status of ${id}: ${last?.status} ${last?.text}` },
  );
  return last!.json;
}
