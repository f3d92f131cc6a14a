// One series of this process's metrics registry as /metrics renders it.
import { metrics } from "../../src/metrics.ts";

/** The value of `series` (a name with its labels, as rendered: `name{label="v"}`), or undefined when absent. */
export function metricSample(series: string): number | undefined {
  const found = metrics.render().split("\n").find((l) => l.startsWith(series + " "));
  return found === undefined ? undefined : Number(found.slice(series.length + 1));
}
