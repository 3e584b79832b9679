// One row of the final table: a figure, the same-run baseline it is divided by, and the target
// TARGETS.md sets for that ratio ("report" rows have no target and no verdict).
export interface Row {
  readonly suite: string;
  readonly metric: string;
  /** the figure as printed, with its unit */
  readonly value: string;
  /** the baseline as printed, with its unit; absent for report-only rows */
  readonly baseline?: string;
  readonly ratio?: number;
  /** e.g. "≤ 1.3" or "≥ 0.5"; absent for report-only rows */
  readonly target?: string;
  /** the verdict, for rows whose target is not a ratio (e.g. zero loss) */
  readonly pass?: boolean;
}

/** "pass" or "miss" when the row has a ratio and a target, "report" otherwise. */
export function verdict(row: Row): "pass" | "miss" | "report" {
  if (row.pass !== undefined) return row.pass ? "pass" : "miss";
  if (row.ratio === undefined || row.target === undefined) return "report";
  const limit = Number(row.target.slice(1).trim());
  return (row.target.startsWith("≤") ? row.ratio <= limit : row.ratio >= limit) ? "pass" : "miss";
}

export function printTable(rows: readonly Row[]): void {
  const cells = rows.map((row) => [
    row.suite, row.metric, row.value, row.baseline ?? "—", row.ratio === undefined ? "—" : `${row.ratio.toFixed(2)}×`, row.target ?? "—", verdict(row),
  ]);
  const header = ["suite", "metric", "value", "baseline (same run)", "ratio", "target", "verdict"];
  const widths = header.map((title, i) => Math.max(title.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: readonly string[]) => c.map((cell, i) => cell.padEnd(widths[i]!)).join(" │ ");
  console.log(line(header));
  console.log(widths.map((w) => "─".repeat(w)).join("─┼─"));
  for (const c of cells) console.log(line(c));
}
