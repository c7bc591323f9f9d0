/** Tables for the terminal and for docs/performance.md, and the JSON result files. */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { describeMachine } from "./machine.js";
import type { Metric, SuiteResult } from "./suite.js";

const HEADINGS = ["metric", "median", "p99", "target", "ratio to floor", "pass"] as const;

/** A number with about three significant digits and thousands separators. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return "n/a";
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  return value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

export function formatValue(value: number | undefined, unit: string): string {
  return value === undefined ? "—" : `${formatNumber(value)} ${unit}`;
}

function percent(share: number): string {
  return `${Math.round(share * 100)}%`;
}

function formatRatio(metric: Metric): string {
  const ratio = metric.ratio;
  if (ratio === undefined) return "—";
  const p99 = ratio.p99 === undefined ? "" : ` (p99 ${formatNumber(ratio.p99)}×)`;
  return `${formatNumber(ratio.median)}× ${ratio.floor}${p99}`;
}

function formatPass(metric: Metric): string {
  if (metric.pass === undefined) return metric.target === undefined ? "—" : "n/a";
  return metric.pass ? "pass" : "FAIL";
}

function rows(metrics: readonly Metric[]): string[][] {
  return metrics.map((m) => [
    m.label,
    formatValue(m.median, m.unit),
    formatValue(m.p99, m.unit),
    m.target ?? "—",
    formatRatio(m),
    formatPass(m),
  ]);
}

/** A plain-text table with aligned columns. */
export function textTable(result: SuiteResult): string {
  const body = rows(result.metrics);
  const widths = HEADINGS.map((heading, column) =>
    Math.max(heading.length, ...body.map((row) => (row[column] ?? "").length)),
  );
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, column) =>
        column === 0 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0),
      )
      .join("  ");
  const out = [
    `${result.suite}: ${result.description}`,
    `machine: ${describeMachine(result.machine)}`,
    `medians of ${result.runs} runs; took ${(result.durationMs / 1000).toFixed(1)} s` +
      (result.load.during === undefined
        ? ""
        : `; CPU share of other processes ${percent(result.load.during.others)}, ` +
          `of the kernel ${percent(result.load.during.kernel)}`),
    "",
    line(HEADINGS),
    line(widths.map((width) => "-".repeat(width))),
    ...body.map(line),
  ];
  if (result.notes.length > 0) out.push("", ...result.notes.map((note) => `* ${note}`));
  return out.join("\n");
}

/** The same table as Markdown, then the notes as a list, for docs/performance.md. */
export function markdownTable(result: SuiteResult): string {
  const escape = (cell: string): string => cell.replaceAll("|", "\\|");
  const out = [
    `| ${HEADINGS.join(" | ")} |`,
    `| ${HEADINGS.map((_, i) => (i === 0 ? "---" : "---:")).join(" | ")} |`,
    ...rows(result.metrics).map((row) => `| ${row.map(escape).join(" | ")} |`),
  ];
  if (result.notes.length > 0) out.push("", ...result.notes.map((note) => `- ${note}`));
  return out.join("\n");
}

export function writeJson(path: string, value: unknown): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);
}

export function writeText(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text.endsWith("\n") ? text : `${text}\n`);
}
