// The shipped dashboard (deploy/grafana/trunkline.json) and alerts (deploy/prometheus/alerts.yml)
// against real tools: Debian's Prometheus scrapes a running Trunkline process every second while a
// SIPp carrier keeps its trunk registered and reachable and SIPp phones call in (an application,
// the events webhook); then every PromQL expression of the dashboard (its template variables too)
// and of the alerts is asked of Prometheus's HTTP API and must return data. A panel or rule over a
// metric Trunkline does not export finds nothing and fails this test. promtool checks the rules and
// runs their unit tests (test/fixtures/prometheus/alerts.test.yml).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { parse as parseYaml } from "yaml";
import { startRtpPeer, type RtpPeer } from "../helpers/rtpPeer.ts";
import { freePort, runSipp, startSipp, type SippRun } from "../helpers/sipp.ts";
import { startTrunkline, type TrunklineProcess } from "../helpers/trunklineProcess.ts";
import { until } from "../helpers/until.ts";
import { startWebhookServer, type WebhookServer } from "../helpers/webhookServer.ts";

const repo = resolve(import.meta.dir, "../..");
const dashboardPath = join(repo, "deploy/grafana/trunkline.json");
const alertsPath = join(repo, "deploy/prometheus/alerts.yml");
const token = "monitoring-test-token-0123456789";
const CALLS = 3;

let trunkline: TrunklineProcess;
let carrier: SippRun;
let webhooks: WebhookServer;
let media: RtpPeer;
let prometheus: { proc: Subprocess; url: string; dir: string; output: () => string };

interface PromAnswer {
  status: string;
  error?: string;
  data?: { resultType: string; result: unknown };
}

async function promQuery(expr: string): Promise<PromAnswer> {
  const res = await fetch(`${prometheus.url}/api/v1/query?${new URLSearchParams({ query: expr })}`);
  return (await res.json()) as PromAnswer;
}

/** Data: a non-empty vector or matrix, or a scalar/string. */
function hasData(answer: PromAnswer): boolean {
  if (answer.status !== "success" || !answer.data) return false;
  const { resultType, result } = answer.data;
  return resultType === "scalar" || resultType === "string" ? true : Array.isArray(result) && result.length > 0;
}

/** Grafana's variables, as Grafana would expand them with "All" selected. */
function expandGrafana(expr: string): string {
  const expanded = expr
    .replaceAll("$__rate_interval", "1m")
    .replaceAll("$__range", "5m")
    .replace(/\$\{?(job|instance|trunk)\}?/g, ".*");
  if (expanded.includes("$")) throw new Error(`unknown Grafana variable in ${expr}`);
  return expanded;
}

interface Panel {
  type: string;
  title?: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
  datasource?: { uid?: string };
}

function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

function dashboardQueries(): { where: string; expr: string }[] {
  const dashboard = JSON.parse(readFileSync(dashboardPath, "utf8")) as { panels: Panel[] };
  return allPanels(dashboard.panels)
    .filter((p) => p.type !== "row")
    .flatMap((p) => (p.targets ?? []).map((t, i) => ({ where: `panel "${p.title}" target ${i}`, expr: expandGrafana(t.expr ?? "") })));
}

interface Rule {
  alert: string;
  expr: string;
}

function alertRules(): Rule[] {
  const doc = parseYaml(readFileSync(alertsPath, "utf8")) as { groups: { rules: Rule[] }[] };
  return doc.groups.flatMap((g) => g.rules);
}

/** An alert's expression without its final `<comparison> <number>`: what must have data. */
function measuredPart(expr: string): string {
  const split = /^([\s\S]*\S)\s*(==|!=|>=|<=|>|<)\s*-?\d[\d.e+-]*\s*$/.exec(expr.trim());
  if (!split) throw new Error(`alert expr is not "<query> <comparison> <threshold>": ${expr}`);
  const query = split[1]!;
  let depth = 0;
  for (const c of query) {
    depth += c === "(" ? 1 : c === ")" ? -1 : 0;
    if (depth < 0) break;
  }
  if (depth !== 0) throw new Error(`the comparison of this alert is not at the top level: ${expr}`);
  return query;
}

/** The expressions that find nothing within the timeout (each is retried until it does). */
async function emptyQueries(queries: { where: string; expr: string }[], timeoutMs: number): Promise<string[]> {
  const pending = new Map(queries.map((q) => [q.expr, q]));
  const answers = new Map<string, PromAnswer>();
  const started = Date.now();
  for (;;) {
    for (const [expr] of pending) {
      const answer = await promQuery(expr);
      answers.set(expr, answer);
      if (hasData(answer)) pending.delete(expr);
    }
    if (pending.size === 0 || Date.now() - started > timeoutMs) break;
    await Bun.sleep(250);
  }
  return [...pending.values()].map((q) => `${q.where}: ${q.expr} → ${JSON.stringify(answers.get(q.expr))}`);
}

async function startPrometheus(target: string): Promise<typeof prometheus> {
  const dir = mkdtempSync(join(tmpdir(), "prometheus-"));
  const port = await freePort();
  writeFileSync(
    join(dir, "prometheus.yml"),
    `global: { scrape_interval: 1s, evaluation_interval: 1s }
rule_files: [${JSON.stringify(alertsPath)}]
scrape_configs:
  - job_name: trunkline
    static_configs: [{ targets: [${JSON.stringify(target)}] }]
`,
  );
  const proc = Bun.spawn(
    [
      "prometheus",
      `--config.file=${join(dir, "prometheus.yml")}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    // Its log goes to a file: a pipe nobody reads would block it once full.
    { cwd: dir, stdin: "ignore", stdout: Bun.file(join(dir, "prometheus.log")), stderr: Bun.file(join(dir, "prometheus.log")) },
  );
  const output = () => readFileSync(join(dir, "prometheus.log"), "utf8");
  const url = `http://127.0.0.1:${port}`;
  await until(
    async () => {
      if (proc.exitCode !== null) throw new Error(`prometheus exited (${proc.exitCode}): ${output()}`);
      return (await fetch(`${url}/-/ready`).catch(() => undefined))?.status === 200;
    },
    { timeoutMs: 30_000, pollMs: 100, what: () => "prometheus not ready" },
  );
  return { proc, url, dir, output };
}

beforeAll(async () => {
  webhooks = startWebhookServer();
  media = await startRtpPeer(440, { replyToSender: true });
  carrier = await startSipp({ scenario: join(import.meta.dir, "../fixtures/sipp/carrier-registrar-options.xml"), calls: 100_000, timeoutSec: 300 });
  await carrier.ready();
  const sipPort = await freePort();
  trunkline = await startTrunkline(
    `http: { host: 127.0.0.1, port: 0 }
sip: { listen: [{ transport: udp, host: 127.0.0.1, port: ${sipPort} }] }
adminToken: ${token}
database: { path: \${DIR}/trunkline.db }
trunks:
  - { id: carrier, domain: 127.0.0.1, port: ${carrier.localPort}, transport: udp, register: true, username: acme, password: carrier-secret, optionsIntervalSec: 1 }
applications:
  - { id: app, name: App, sharedSecret: app-secret-0123456789, inboundRoutes: [{ sipUsername: "1000", channelId: lobby }] }
webhooks: { eventsUrl: "${webhooks.url("/events")}", timeoutMs: 5000 }
`,
  );
  const status = async () => (await fetch(`${trunkline.url}/api/v1/trunks/carrier/status`, { headers: { authorization: `Bearer ${token}` } })).json() as Promise<any>;
  let last: any;
  await until(async () => {
    last = await status();
    return last.registration?.state === "registered" && last.reachable === true;
  }, { timeoutMs: 20_000, pollMs: 50, what: () => last });

  prometheus = await startPrometheus(new URL(trunkline.url).host);
  await until(async () => hasData(await promQuery('up{job="trunkline"} == 1')), { timeoutMs: 20_000, pollMs: 200, what: () => "trunkline never scraped" });

  // Phones call in while Prometheus scrapes.
  const calls = await runSipp({
    scenario: join(import.meta.dir, "../fixtures/sipp/calls-uac-early-offer.xml"),
    remote: `127.0.0.1:${sipPort}`,
    service: "1000",
    calls: CALLS,
    keys: { rtpport: media.port, testcase: "monitoring" },
    extraArgs: ["-d", "1500"],
    timeoutSec: 30,
  });
  expect(calls.exitCode, calls.summary).toBe(0);
}, 120_000);

afterAll(async () => {
  prometheus?.proc.kill("SIGTERM");
  await prometheus?.proc.exited;
  if (prometheus) rmSync(prometheus.dir, { recursive: true, force: true });
  await trunkline?.stop();
  carrier?.kill();
  await carrier?.done;
  media?.close();
  await webhooks?.stop();
});

describe("Prometheus scraping a running Trunkline", () => {
  test("saw the calls: counters moved between scrapes", async () => {
    await until(async () => hasData(await promQuery(`sum(trunkline_calls_started_total{direction="inbound"}) == ${CALLS}`)), {
      timeoutMs: 15_000,
      pollMs: 200,
      what: () => "calls started never reached Prometheus",
    });
    await until(async () => hasData(await promQuery(`sum(trunkline_calls_ended_total{direction="inbound"}) == ${CALLS}`)), { timeoutMs: 15_000, pollMs: 200 });
    // Prometheus has samples from before the calls, so the counter's increase is seen, not just its value.
    expect(hasData(await promQuery(`sum(increase(trunkline_calls_started_total[5m])) > 0`))).toBe(true);
    expect(hasData(await promQuery(`sum(increase(trunkline_webhook_requests_total{webhook="events",outcome="ok"}[5m])) > 0`))).toBe(true);
    // The gauges went up during the calls and back down after them.
    await until(async () => hasData(await promQuery("trunkline_phone_legs == 0")) && hasData(await promQuery("sum(trunkline_calls_by_state) == 0")), { timeoutMs: 15_000, pollMs: 200 });
    expect(hasData(await promQuery("max_over_time(trunkline_phone_legs[5m]) > 0"))).toBe(true);
    expect(hasData(await promQuery('max_over_time(trunkline_calls_by_state{direction="inbound",state="answered"}[5m]) > 0'))).toBe(true);
    expect(hasData(await promQuery('trunkline_trunk_registration_state{trunk="carrier",state="registered"} == 1'))).toBe(true);
    expect(hasData(await promQuery('trunkline_trunk_reachable{trunk="carrier"} == 1'))).toBe(true);
    expect(hasData(await promQuery("trunkline_database_file_bytes > 0"))).toBe(true);
  }, 40_000);

  test("every dashboard query returns data", async () => {
    const queries = dashboardQueries();
    expect(queries.length).toBeGreaterThan(20);
    expect(await emptyQueries(queries, 20_000)).toEqual([]);
  }, 60_000);

  test("every dashboard template variable finds values", async () => {
    const dashboard = JSON.parse(readFileSync(dashboardPath, "utf8")) as { templating: { list: { type: string; name: string; query: unknown }[] } };
    const variables = dashboard.templating.list;
    expect(variables.find((v) => v.type === "datasource")?.name).toBe("datasource");
    for (const variable of variables.filter((v) => v.type === "query")) {
      const query = (variable.query as { query: string }).query;
      const parsed = /^label_values\((.+),\s*(\w+)\)$/.exec(query);
      if (!parsed) throw new Error(`variable ${variable.name}: not label_values(selector, label): ${query}`);
      const res = await fetch(`${prometheus.url}/api/v1/series?${new URLSearchParams({ "match[]": expandGrafana(parsed[1]!) })}`);
      const series = ((await res.json()) as { data: Record<string, string>[] }).data;
      expect(series.map((s) => s[parsed[2]!]).filter(Boolean).length, `variable ${variable.name}: ${query}`).toBeGreaterThan(0);
    }
  });

  test("every alert's measured query returns data, and every rule evaluates without error", async () => {
    const rules = alertRules();
    expect(rules.map((r) => r.alert).sort()).toEqual([
      "TrunklineMediaLateFrames",
      "TrunklineRecordsDiskFillingUp",
      "TrunklineRecordsDiskLow",
      "TrunklineTrunkNotRegistered",
      "TrunklineTrunkUnreachable",
      "TrunklineWebhookFailing",
    ]);
    expect(await emptyQueries(rules.map((r) => ({ where: `alert ${r.alert}`, expr: measuredPart(r.expr) })), 20_000)).toEqual([]);
    for (const rule of rules) expect((await promQuery(rule.expr)).status, rule.alert).toBe("success");
    // Prometheus loaded the file itself and evaluates each rule cleanly.
    type RuleState = { name: string; health: string; lastError?: string };
    let loaded: RuleState[] = [];
    await until(
      async () => {
        const answer = (await (await fetch(`${prometheus.url}/api/v1/rules`)).json()) as { data: { groups: { rules: RuleState[] }[] } };
        loaded = answer.data.groups.flatMap((g) => g.rules);
        return loaded.length === rules.length && loaded.every((r) => r.health !== "unknown");
      },
      { timeoutMs: 10_000, pollMs: 200, what: () => loaded },
    );
    expect(loaded.filter((r) => r.health !== "ok")).toEqual([]);
  }, 60_000);

  test("the checker fails a query over a metric Trunkline does not export", async () => {
    const empty = await emptyQueries([{ where: "bad panel", expr: expandGrafana('sum(rate(trunkline_no_such_metric_total{instance=~"$instance"}[$__rate_interval]))') }], 1_000);
    expect(empty).toHaveLength(1);
    expect(() => expandGrafana("sum(x{a=~\"$unknown\"})")).toThrow("unknown Grafana variable");
    expect(() => measuredPart("rate(x[5m])")).toThrow("not \"<query> <comparison> <threshold>\"");
  });
});

describe("the shipped files", () => {
  test("promtool check rules passes", () => {
    const check = Bun.spawnSync(["promtool", "check", "rules", alertsPath], { stdout: "pipe", stderr: "pipe" });
    expect(check.exitCode, `${check.stdout}${check.stderr}`).toBe(0);
    expect(check.stdout.toString()).toContain("SUCCESS: 6 rules found");
  });

  test("promtool's unit tests of the alerts pass: each fires on its condition after its `for`, and not on healthy series", () => {
    const run = Bun.spawnSync(["promtool", "test", "rules", join(repo, "test/fixtures/prometheus/alerts.test.yml")], { stdout: "pipe", stderr: "pipe" });
    expect(run.exitCode, `${run.stdout}${run.stderr}`).toBe(0);
  });

  test("the dashboard parses, uses the datasource variable and every panel has a query", () => {
    const dashboard = JSON.parse(readFileSync(dashboardPath, "utf8")) as { panels: Panel[] };
    const panels = allPanels(dashboard.panels).filter((p) => p.type !== "row");
    expect(panels.length).toBeGreaterThan(15);
    for (const panel of panels) {
      expect(panel.datasource?.uid, `panel "${panel.title}"`).toBe("${datasource}");
      expect((panel.targets ?? []).filter((t) => (t.expr ?? "").trim() !== "").length, `panel "${panel.title}" has no query`).toBeGreaterThan(0);
    }
  });
});
