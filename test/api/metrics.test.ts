import { expect, test } from "bun:test";
import { MetricsRegistry } from "../../src/metrics.ts";

test("counters, gauges and histograms render in the Prometheus text format", () => {
  const registry = new MetricsRegistry();
  const calls = registry.counter("calls_total", "Calls.", ["direction"]);
  calls.inc({ direction: "inbound" });
  calls.inc({ direction: "inbound" }, 2);
  calls.inc({ direction: 'out"bound' });
  const active = registry.gauge("calls_active", "Active calls.");
  active.inc();
  active.inc();
  active.dec();
  registry.gauge("trunks_up", "Trunks up.", ["trunk"], () => [{ labels: { trunk: "a" }, value: 1 }]);
  registry.histogram("latency_seconds", "Latency.", [], [0.1, 1]).observe({}, 0.5);
  expect(registry.render()).toBe(
    [
      "# HELP calls_total Calls.",
      "# TYPE calls_total counter",
      'calls_total{direction="inbound"} 3',
      'calls_total{direction="out\\"bound"} 1',
      "# HELP calls_active Active calls.",
      "# TYPE calls_active gauge",
      "calls_active 1",
      "# HELP trunks_up Trunks up.",
      "# TYPE trunks_up gauge",
      'trunks_up{trunk="a"} 1',
      "# HELP latency_seconds Latency.",
      "# TYPE latency_seconds histogram",
      'latency_seconds_bucket{le="0.1"} 0',
      'latency_seconds_bucket{le="1"} 1',
      'latency_seconds_bucket{le="+Inf"} 1',
      "latency_seconds_sum 0.5",
      "latency_seconds_count 1",
      "",
    ].join("\n"),
  );
});

test("registering a name again returns the same metric; another type is refused", () => {
  const registry = new MetricsRegistry();
  expect(registry.counter("x_total", "X.")).toBe(registry.counter("x_total", "X."));
  expect(() => registry.gauge("x_total", "X.")).toThrow("already registered as a counter");
  expect(() => registry.counter("bad name", "X.")).toThrow("invalid metric name");
});

test("a collected metric that finds nothing has no sample, unlike an untouched one", () => {
  const registry = new MetricsRegistry();
  registry.gauge("untouched", "U.");
  registry.gauge("absent", "A.", [], () => []);
  expect(registry.render()).toBe(["# HELP untouched U.", "# TYPE untouched gauge", "untouched 0", "# HELP absent A.", "# TYPE absent gauge", ""].join("\n"));
});
