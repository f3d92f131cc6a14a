// Issue-level goals beside their anchors: a bench reports each goal's figure as it measures it, and
// `make bench` (run.ts) prints them all together at the end of the run, so one run shows every goal.
//
//   reportGoal({ goal: "calls per second, 30 s, 0 failed", figure: "1,000 (p99 12 ms)", anchor: "≥ 1,000, p99 < 20 ms", met: true });

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

const figures: GoalFigure[] = [];

export function reportGoal(figure: GoalFigure): void {
  figures.push(figure);
  console.log(`  goal: ${figure.goal}: ${figure.figure} (anchor: ${figure.anchor})${figure.met === undefined ? "" : figure.met ? " — met" : " — NOT met"}`);
}

/** Every goal reported so far, one table (Markdown). */
export function goalTable(): string {
  const rows = figures.map((f) => `| ${f.goal} | ${f.figure} | ${f.anchor} | ${f.met === undefined ? "" : f.met ? "yes" : "**no**"} |`);
  return ["| goal | this run | anchor | met |", "|---|---|---|---|", ...rows].join("\n");
}
