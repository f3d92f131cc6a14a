// Prometheus metrics: a registry other areas add counters and gauges to, rendered at GET /metrics
// in the text exposition format (version 0.0.4).
//   import { metrics } from "../metrics.ts";
//   const invites = metrics.counter("trunkline_sip_invites_total", "INVITEs received", ["trunk"]);
//   invites.inc({ trunk: "main" });
//   metrics.gauge("trunkline_calls_active", "Calls in progress", [], () => calls.size);

type Labels = Record<string, string>;
/** Reads the current value(s) at scrape time instead of tracking them; an empty list means no sample now. */
export type Collect = () => number | { labels: Labels; value: number }[];

interface Metric {
  readonly name: string;
  readonly help: string;
  readonly type: "counter" | "gauge" | "histogram";
  render(): string[];
}

function labelKey(names: readonly string[], labels: Labels): string {
  return names.map((n) => labels[n] ?? "").join("\u0000");
}

function formatLabels(names: readonly string[], values: string[], extra = ""): string {
  const parts = names.map((n, i) => `${n}="${escapeLabel(values[i] ?? "")}"`);
  if (extra) parts.push(extra);
  return parts.length ? `{${parts.join(",")}}` : "";
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function formatNumber(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/** A value per label combination, or values read at scrape time through `collect`. */
abstract class ValueMetric implements Metric {
  abstract readonly type: "counter" | "gauge";
  protected readonly values = new Map<string, { labels: string[]; value: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    private readonly collect?: Collect,
  ) {}

  get(labels: Labels = {}): number {
    return this.values.get(labelKey(this.labelNames, labels))?.value ?? 0;
  }

  protected store(labels: Labels, value: number): void {
    this.values.set(labelKey(this.labelNames, labels), { labels: this.labelNames.map((n) => labels[n] ?? ""), value });
  }

  render(): string[] {
    const series = this.collect ? this.collect() : [...this.values.values()];
    if (typeof series === "number") return [`${this.name} ${formatNumber(series)}`];
    // A metric without labels shows 0 before its first change; a collect that finds nothing shows nothing.
    if (!this.collect && this.labelNames.length === 0 && series.length === 0) return [`${this.name} 0`];
    return series.map((e) => {
      const values = Array.isArray(e.labels) ? e.labels : this.labelNames.map((n) => (e.labels as Labels)[n] ?? "");
      return `${this.name}${formatLabels(this.labelNames, values)} ${formatNumber(e.value)}`;
    });
  }
}

export class Counter extends ValueMetric {
  readonly type = "counter";

  inc(labels: Labels = {}, by = 1): void {
    this.store(labels, this.get(labels) + by);
  }
}

export class Gauge extends ValueMetric {
  readonly type = "gauge";

  set(labels: Labels, value: number): void {
    this.store(labels, value);
  }

  inc(labels: Labels = {}, by = 1): void {
    this.store(labels, this.get(labels) + by);
  }

  dec(labels: Labels = {}, by = 1): void {
    this.inc(labels, -by);
  }
}

export class Histogram implements Metric {
  readonly type = "histogram";
  private readonly series = new Map<string, { labels: string[]; counts: number[]; sum: number; count: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    readonly buckets: readonly number[],
  ) {}

  observe(labels: Labels, value: number): void {
    const key = labelKey(this.labelNames, labels);
    let entry = this.series.get(key);
    if (!entry) {
      entry = { labels: this.labelNames.map((n) => labels[n] ?? ""), counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.series.set(key, entry);
    }
    this.buckets.forEach((bound, i) => {
      if (value <= bound) entry.counts[i]!++;
    });
    entry.sum += value;
    entry.count++;
  }

  render(): string[] {
    const lines: string[] = [];
    for (const e of this.series.values()) {
      this.buckets.forEach((bound, i) => {
        lines.push(`${this.name}_bucket${formatLabels(this.labelNames, e.labels, `le="${formatNumber(bound)}"`)} ${e.counts[i]}`);
      });
      lines.push(`${this.name}_bucket${formatLabels(this.labelNames, e.labels, 'le="+Inf"')} ${e.count}`);
      lines.push(`${this.name}_sum${formatLabels(this.labelNames, e.labels)} ${formatNumber(e.sum)}`);
      lines.push(`${this.name}_count${formatLabels(this.labelNames, e.labels)} ${e.count}`);
    }
    return lines;
  }
}

export class MetricsRegistry {
  private readonly metrics = new Map<string, Metric>();

  /** Registering a name twice returns the first metric, so modules may be loaded by several apps in one process. */
  counter(name: string, help: string, labelNames: readonly string[] = [], collect?: Collect): Counter {
    return this.register(name, () => new Counter(name, help, labelNames, collect), Counter);
  }

  gauge(name: string, help: string, labelNames: readonly string[] = [], collect?: Collect): Gauge {
    return this.register(name, () => new Gauge(name, help, labelNames, collect), Gauge);
  }

  histogram(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]): Histogram {
    return this.register(name, () => new Histogram(name, help, labelNames, buckets), Histogram);
  }

  render(): string {
    const out: string[] = [];
    for (const metric of this.metrics.values()) {
      out.push(`# HELP ${metric.name} ${metric.help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`);
      out.push(`# TYPE ${metric.name} ${metric.type}`);
      out.push(...metric.render());
    }
    return out.join("\n") + "\n";
  }

  private register<M extends Metric>(name: string, make: () => M, kind: new (...args: never[]) => M): M {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name)) throw new Error(`invalid metric name ${name}`);
    const existing = this.metrics.get(name);
    if (existing) {
      if (!(existing instanceof kind)) throw new Error(`metric ${name} already registered as a ${existing.type}`);
      return existing;
    }
    const metric = make();
    this.metrics.set(name, metric);
    return metric;
  }
}

/** The process-wide registry served at /metrics. */
export const metrics = new MetricsRegistry();

const startTimeSeconds = Math.floor(Date.now() / 1000) - Math.floor(process.uptime());
metrics.gauge("process_start_time_seconds", "Start time of the process since the Unix epoch in seconds.", [], () => startTimeSeconds);
metrics.gauge("process_resident_memory_bytes", "Resident memory size in bytes.", [], () => process.memoryUsage().rss);
metrics.gauge("process_heap_bytes", "JavaScript heap in use in bytes.", [], () => process.memoryUsage().heapUsed);
metrics.counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", [], () => {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
});
metrics.gauge("process_uptime_seconds", "Seconds since the process started.", [], () => Math.round(process.uptime()));

export const httpRequests = metrics.counter("trunkline_http_requests_total", "HTTP requests answered.", ["method", "route", "status"]);
export const httpDuration = metrics.histogram(
  "trunkline_http_request_duration_seconds",
  "HTTP request handling time.",
  ["method", "route"],
  [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
);
