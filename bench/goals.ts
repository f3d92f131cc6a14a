// Issue-level goals beside their anchors: a bench reports each goal's figure as it measures it, and
// `make bench` (run.ts) prints them all together at the end of the run, so one run shows every goal.
// Each bench runs in a process of its own, so a figure also goes, as a JSON line, to the file
// BENCH_GOALS_FILE names, where run.ts collects them.
//
//   reportGoal({ goal: "calls per second, 30 s, 0 failed", figure: "1,000 (p99 12 ms)", anchor: "≥ 1,000, p99 < 20 ms", met: true });
import { appendFileSync, existsSync, readFileSync } from "node:fs";

export interface GoalFigure {
  /** What is measured, as the issue names it. */
  goal: string;
  /** What this run measured. */
  figure: string;
  /** The target, or the figure before the work, to read the measurement against. */
  anchor: string;
  /** Whether the target was met; left out when the figure is only context. */
  met?: boolean;
}

export function reportGoal(figure: GoalFigure): void {
  const file = process.env.BENCH_GOALS_FILE;
  if (file) appendFileSync(file, `${JSON.stringify(figure)}\n`);
  console.log(`  goal: ${figure.goal}: ${figure.figure} (anchor: ${figure.anchor})${figure.met === undefined ? "" : figure.met ? " — met" : " — NOT met"}`);
}

/** The goals the benches wrote to `file`, in order. */
export function readGoals(file: string): GoalFigure[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as GoalFigure);
}

/** The goals as one table (Markdown). */
export function goalTable(figures: GoalFigure[]): string {
  const rows = figures.map((f) => `| ${f.goal} | ${f.figure} | ${f.anchor} | ${f.met === undefined ? "" : f.met ? "yes" : "**no**"} |`);
  return ["| goal | this run | anchor | met |", "|---|---|---|---|", ...rows].join("\n");
}
