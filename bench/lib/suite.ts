/** The contract between bench/run.ts and a suite (bench/suites/*.ts). */
import type { Load } from "./load.js";
import type { MachineInfo } from "./machine.js";
import { median } from "./stats.js";

export type Unit = "ns" | "µs" | "ms" | "s" | "ops/s" | "requests";

/** One row of a suite's table. */
export interface Metric {
  /** Stable key for comparing result files, e.g. "read.handle". */
  id: string;
  /** What was measured, for people. */
  label: string;
  unit: Unit;
  /** Median over runs of each run's figure (its p50 where a run has a distribution). */
  median: number;
  /** Median over runs of each run's p99, where that is asked for. */
  p99?: number;
  /** Each run's figure behind `median`, in run order. */
  runs: number[];
  /** Each run's p99 behind `p99`. */
  runsP99?: number[];
  /** The goal in words, e.g. "≤ 100 ns". Absent for rows that are there to be read. */
  target?: string;
  /** `median / floor.median` (and the same for p99) against a floor measured in the same run. */
  ratio?: { floor: string; median: number; p99?: number };
  /** Whether the target is met; absent when there is no target or it cannot be judged. */
  pass?: boolean;
  note?: string;
}

/** What a suite hands back; run.ts adds the machine, the timing and writes it out. */
export interface SuiteOutcome {
  metrics: Metric[];
  /** Settings the figures depend on (sample counts, gaps, sizes). */
  config: Record<string, unknown>;
  /** Things a reader of the table must know (skipped floors, anomalies). */
  notes: string[];
  /** Anything else worth keeping in the JSON (pooled distributions, counts). */
  details?: Record<string, unknown>;
  /** Facts about the machine only the suite knows (e.g. the filesystem it used). */
  machine?: Partial<MachineInfo>;
}

export interface SuiteContext {
  /** Measured repetitions of every metric (≥ 5 unless overridden for a quick look). */
  runs: number;
  machine: MachineInfo;
  /**
   * Parts of the suite asked for on the command line (`shm:latency`), or
   * empty for all. A suite that has no parts ignores it.
   */
  parts: readonly string[];
  /** Progress lines go to stderr so that stdout holds only the table. */
  log(message: string): void;
}

export interface Suite {
  /** Short name used on the command line and for bench/results/<name>.json. */
  name: string;
  description: string;
  /** Names of parts that can be run alone (`<suite>:<part>`), if any. */
  parts?: readonly string[];
  run(context: SuiteContext): Promise<SuiteOutcome>;
}

/** The full record written to bench/results/<suite>.json. */
export interface SuiteResult extends Omit<SuiteOutcome, "machine"> {
  suite: string;
  description: string;
  startedAt: string;
  durationMs: number;
  runs: number;
  machine: MachineInfo;
  /** Share of all CPUs other processes used just before and during the run (Linux). */
  load: { before?: Load; during?: Load };
}

/**
 * A metric from per-run figures: `median` (and `p99` when given) are the
 * medians over runs. The ratio and pass/fail are left to the caller.
 */
export function metricFromRuns(
  fields: Pick<Metric, "id" | "label" | "unit" | "target" | "note">,
  runs: number[],
  runsP99?: number[],
): Metric {
  const metric: Metric = { ...fields, median: median(runs), runs };
  if (runsP99 !== undefined) {
    metric.runsP99 = runsP99;
    metric.p99 = median(runsP99);
  }
  return metric;
}
