/**
 * Measuring unary calls against server processes: a list of cases (a call,
 * a server, how many in flight, how long), each run once to warm up and
 * then `runs` times, every case in turn within a run, so that a floor and
 * the figure held against it are measured seconds apart and drift on a
 * shared VM hits both. Each run also reads the server process's CPU time,
 * which gives its own cost per call whatever the load generator and the
 * scheduler did.
 */
import type { PinPlan } from "./affinity.js";
import type { CommyServerProcess } from "./commy-server.js";
import { distribution, median } from "./stats.js";
import { type Metric, type Unit, metricFromRuns } from "./suite.js";
import type { LoadGenerator, LoadSpec } from "./unary-load.js";

export interface UnaryCase {
  id: string;
  server: CommyServerProcess;
  spec: Omit<LoadSpec, "baseUrl">;
}

/** One run of one case. */
export interface CaseRun {
  /** Calls per second. */
  rate: number;
  /** Latency percentiles in µs, when the case records latencies. */
  p50?: number;
  p99?: number;
  /** The server process's CPU time per call, µs (all its threads). */
  cpuPerCall: number;
  calls: number;
}

/**
 * Cases measured by their own code (a floor in the bench process, or calls
 * that must alternate with it), in turn with the others. `run` gives one
 * run of each of `ids`.
 */
export interface CustomCase {
  ids: readonly string[];
  run(warmUp: boolean): Promise<Record<string, CaseRun>>;
}

export type CaseRuns = Map<string, CaseRun[]>;

/** Runs every case once, shorter (thrown away: warm-up), then `runs` rounds of all cases. */
export async function measureCases(
  cases: readonly (UnaryCase | CustomCase)[],
  load: LoadGenerator,
  runs: number,
  log: (message: string) => void,
): Promise<CaseRuns> {
  const results: CaseRuns = new Map(
    cases.flatMap((c) => ("ids" in c ? c.ids : [c.id])).map((id) => [id, []]),
  );
  for (let round = 0; round <= runs; round++) {
    log(round === 0 ? "warm-up round" : `run ${round}/${runs}`);
    for (const c of cases) {
      const measured =
        "ids" in c
          ? await c.run(round === 0)
          : { [c.id]: await measureOnce(round === 0 ? warmUp(c) : c, load) };
      if (round === 0) continue;
      for (const [id, run] of Object.entries(measured)) results.get(id)?.push(run);
    }
  }
  return results;
}

/** The case at a third of its length: enough for the JIT and the connection to settle. */
function warmUp(c: UnaryCase): UnaryCase {
  const { requests, seconds } = c.spec;
  return {
    ...c,
    spec: {
      ...c.spec,
      requests: requests === undefined ? undefined : Math.max(1, Math.ceil(requests / 3)),
      seconds: seconds === undefined ? undefined : seconds / 3,
    },
  };
}

async function measureOnce(c: UnaryCase, load: LoadGenerator): Promise<CaseRun> {
  const before = await c.server.usage();
  const result = await load.run({ ...c.spec, baseUrl: c.server.baseUrl });
  const after = await c.server.usage();
  const run: CaseRun = {
    rate: result.rate,
    cpuPerCall: (after.cpuMicros - before.cpuMicros) / result.done,
    calls: result.done,
  };
  if (result.latenciesMicros !== undefined) {
    const shape = distribution(result.latenciesMicros);
    run.p50 = shape.p50;
    run.p99 = shape.p99;
  }
  return run;
}

/** The runs of `id`, or an error naming it. */
export function runsOf(results: CaseRuns, id: string): CaseRun[] {
  const runs = results.get(id);
  if (runs === undefined || runs.length === 0) throw new Error(`no runs of ${id}`);
  return runs;
}

/** Per run, `value(ours) / value(floor)`, then the median. */
export function medianRatio(
  ours: readonly CaseRun[],
  floor: readonly CaseRun[],
  value: (run: CaseRun) => number,
): number {
  return median(ours.map((run, i) => value(run) / value(floor[i] as CaseRun)));
}

interface RowFields {
  id: string;
  label: string;
  target?: string;
  note?: string;
}

/** A latency row: median over runs of each run's p50, and of its p99 (µs or ms). */
export function latencyMetric(
  fields: RowFields,
  runs: readonly CaseRun[],
  unit: Unit = "µs",
): Metric {
  const scale = unit === "ms" ? 1 / 1000 : 1;
  return metricFromRuns(
    { ...fields, unit },
    runs.map((r) => (r.p50 as number) * scale),
    runs.map((r) => (r.p99 as number) * scale),
  );
}

/** A throughput row: median over runs of calls per second. */
export function rateMetric(fields: RowFields, runs: readonly CaseRun[]): Metric {
  return metricFromRuns(
    { ...fields, unit: "ops/s" },
    runs.map((r) => r.rate),
  );
}

/** A row of the server's CPU time per call (µs). */
export function cpuMetric(fields: RowFields, runs: readonly CaseRun[]): Metric {
  return metricFromRuns(
    { ...fields, unit: "µs" },
    runs.map((r) => r.cpuPerCall),
  );
}

/** Sets `metric.ratio` (per-run ratios, medians) and, with a check, `metric.pass`. */
export function withRatio(
  metric: Metric,
  floorName: string,
  ratios: { median: number; p99?: number },
  check?: (ratio: number) => boolean,
): Metric {
  metric.ratio = { floor: floorName, ...ratios };
  if (check !== undefined) metric.pass = check(ratios.median);
  return metric;
}

/** Sets `metric.pass` from `check`. */
export function judged(metric: Metric, check: (metric: Metric) => boolean): Metric {
  metric.pass = check(metric);
  return metric;
}

/** Pooled shapes of every case, for the JSON details. */
export function caseDetails(results: CaseRuns): Record<string, unknown> {
  return Object.fromEntries(
    [...results].map(([id, runs]) => [
      id,
      {
        rate: runs.map((r) => Math.round(r.rate)),
        p50Micros: runs.map((r) => r.p50),
        p99Micros: runs.map((r) => r.p99),
        serverCpuMicrosPerCall: runs.map((r) => Math.round(r.cpuPerCall * 10) / 10),
        calls: runs.map((r) => r.calls),
      },
    ]),
  );
}

/** Notes saying where the server(s) and the load generator ran. */
export function placementNotes(plan: PinPlan, load: LoadGenerator, servers: string): string[] {
  const notes: string[] = [];
  if ("skipped" in plan)
    notes.push(`${servers} and the load generator not pinned (${plan.skipped})`);
  else if (load.fallbackReason !== undefined) {
    notes.push(`${servers} pinned to CPU ${plan.reader}; the Node client runs unpinned`);
  } else notes.push(`${servers} pinned to CPU ${plan.reader}, h2load to CPU ${plan.writer}`);
  if (load.fallbackReason !== undefined) {
    notes.push(
      `h2load unavailable (${load.fallbackReason}): load from a Node HTTP/2 client in the bench ` +
        "process, sharing the CPUs with the server; its cost is in every figure (ratios to a " +
        "floor measured the same way still compare like with like)",
    );
  }
  return notes;
}
