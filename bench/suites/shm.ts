/**
 * The service-file layer (src/shm): what a local process pays to read and
 * write a variable, what the owner pays to create variables and grow the
 * file, and how long a write takes to reach a reader in another process,
 * next to floors measured in the same run (bench/floor/).
 *
 * Files live in a fresh directory under $COMMY_BENCH_DIR or os.tmpdir(),
 * removed at the end. Every loop is bounded by a count or a deadline.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { atomicsPingPong } from "../floor/atomics.js";
import { FirstWriteFloor } from "../floor/first-write.js";
import { FutexFloor } from "../floor/futex.js";
import { SabSpinFloor } from "../floor/sab-spin.js";
import { allowedCpus, pinPlan, pinThisThread } from "../lib/affinity.js";
import { BenchChild } from "../lib/child.js";
import { machineInfo } from "../lib/machine.js";
import { ReaderChild, stampedWrites } from "../lib/one-way.js";
import { distribution, median, percentile } from "../lib/stats.js";
import { type Metric, type Suite, type SuiteContext, metricFromRuns } from "../lib/suite.js";
import { collectGarbage, elapsedNs, nowNs, prng, sink } from "../lib/timing.js";
import { MAX_VALUE_SIZE, OwnedServiceFile, ServiceFile, ShmError } from "../../src/shm/index.js";
import { SEQ_OFFSET, STAMP_OFFSET, VALUE_BYTES } from "./shm-value.js";

/** Variables in the "many variables" service. */
const MANY = 100_000;
/** A single operation slower than this is a stall. */
const STALL_MS = 10;
/** Writes per run of each latency case, after WARMUP writes that are dropped. */
const SAMPLES = 2_000;
const WARMUP = 100;
/** The writer sleeps this long before each write, so that a sleeping reader is asleep. */
const GAP_MICROS = 250;
/** Spin of the busy waitForChangeSync case: longer than the gap, so it never sleeps. */
const SPIN_MICROS = 2_000;
/** Growth: values drawn between these sizes until the file is full. */
const GROW_MIN_VALUE = 64 * 1024;

export const shmSuite: Suite = {
  name: "shm",
  description: "service files: reads, writes, creation, growth and cross-process wake-ups",
  parts: ["ops", "many", "growth", "latency"],
  async run(context) {
    const base = process.env.COMMY_BENCH_DIR ?? tmpdir();
    const dir = mkdtempSync(join(base, "commy-bench-shm-"));
    const notes: string[] = [];
    const details: Record<string, unknown> = {};
    const wants = (part: string): boolean =>
      context.parts.length === 0 || context.parts.includes(part);
    try {
      const metrics = [
        ...(wants("ops") ? await inProcess(dir, context) : []),
        ...(wants("many") ? manyVariables(dir, context, details) : []),
        ...(wants("growth") ? growth(dir, context, notes, details) : []),
        ...(wants("latency") ? await latency(dir, context, notes, details) : []),
      ];
      return {
        metrics,
        notes,
        details,
        machine: { filesystem: machineInfo(dir).filesystem },
        config: {
          valueBytes: VALUE_BYTES,
          manyVariables: MANY,
          stallMs: STALL_MS,
          latencySamplesPerRun: SAMPLES,
          latencyWarmupPerRun: WARMUP,
          gapMicros: GAP_MICROS,
          spinMicros: SPIN_MICROS,
          growValueBytes: [GROW_MIN_VALUE, MAX_VALUE_SIZE],
        },
      };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

// ---- one process: reads, writes, lookups ----

const OPS_CHILD = new URL("./shm-ops-child.ts", import.meta.url);

/** The single-process rows: label and target of each figure the ops child reports. */
const OPS_ROWS: { id: string; label: string; limit: number; note?: string }[] = [
  { id: "read.handle", label: "read 64 B, handle → readInto(buffer)", limit: 100 },
  {
    id: "read.name",
    label: "read 64 B by name: read(name) → new Buffer",
    limit: 500,
    note: "1,024 names in turn; handles cached by the file",
  },
  { id: "read.name.handle", label: "read 64 B by name: handle(name) + readInto", limit: 500 },
  {
    id: "write.handle",
    label: "write 64 B in place, no waiters",
    limit: 300,
    note: "version bump + change-ring entry; a local process's view",
  },
];

async function inProcess(dir: string, context: SuiteContext): Promise<Metric[]> {
  context.log(`reads and writes in one process, ${context.runs} fresh processes`);
  const runs = new Map<string, number[]>();
  for (let run = 0; run < context.runs; run++) {
    const child = new BenchChild(OPS_CHILD, [dir]);
    try {
      const message = await child.next("ops", 120_000);
      for (const [id, ns] of Object.entries(message.nsPerOp as Record<string, number>)) {
        runs.set(id, [...(runs.get(id) ?? []), ns]);
      }
    } finally {
      await child.stop();
    }
  }
  return OPS_ROWS.map((row) =>
    judged(
      metricFromRuns(
        { id: row.id, label: row.label, unit: "ns", target: `≤ ${row.limit} ns`, note: row.note },
        runs.get(row.id) ?? [],
      ),
      (m) => m.median <= row.limit,
    ),
  );
}

// ---- the owner: 100,000 variables ----

function manyVariables(
  dir: string,
  context: SuiteContext,
  details: Record<string, unknown>,
): Metric[] {
  context.log(`creating ${MANY.toLocaleString("en-US")} variables, ${context.runs + 1}× twice`);
  const names = Array.from({ length: MANY }, (_, i) => `v${i}`);
  const value = Buffer.alloc(VALUE_BYTES, 1);
  const path = join(dir, "many.commy");
  const fresh = (): OwnedServiceFile => {
    rmSync(path, { force: true });
    return OwnedServiceFile.create(path, { serviceId: "bench-many" });
  };

  // Throughput: nothing but allocate() inside the timed loop (run 0 warms up).
  const rates: number[] = [];
  for (let run = 0; run <= context.runs; run++) {
    const owner = fresh();
    collectGarbage();
    const start = nowNs();
    for (let i = 0; i < MANY; i++) owner.allocate(names[i] as string, value);
    const seconds = elapsedNs(start) / 1e9;
    if (run > 0) rates.push(MANY / seconds);
    owner.close();
  }

  // Stalls: the same, with every allocate() timed on its own.
  const worst: number[] = [];
  const totals: number[] = [];
  const p99s: number[] = [];
  const slowest: { index: number; ms: number }[][] = [];
  let fileBytes = 0;
  let owner = fresh();
  for (let run = 0; run < context.runs; run++) {
    if (run > 0) owner = fresh();
    collectGarbage();
    const times = new Float64Array(MANY);
    const start = nowNs();
    for (let i = 0; i < MANY; i++) {
      const t0 = nowNs();
      owner.allocate(names[i] as string, value);
      times[i] = Number(nowNs() - t0);
    }
    totals.push(elapsedNs(start) / 1e6);
    const shape = distribution(times);
    worst.push(shape.max / 1e6);
    p99s.push(shape.p99 / 1e6);
    // Which allocations were slowest: the n-th variable tells what happened then.
    slowest.push(
      Array.from(times, (ns, index) => ({ index, ms: Math.round(ns / 1e4) / 100 }))
        .sort((x, y) => y.ms - x.ms)
        .slice(0, 3),
    );
    fileBytes = owner.size;
    if (run < context.runs - 1) owner.close();
  }

  // Lookups in the full service, from a local process's view.
  const lookups: number[] = [];
  const reads: number[] = [];
  const target = Buffer.alloc(VALUE_BYTES);
  try {
    for (let run = 0; run <= context.runs; run++) {
      const local = ServiceFile.open(path);
      collectGarbage();
      let start = nowNs();
      let sum = 0;
      for (let i = 0; i < MANY; i++) sum += local.handle(names[i] as string).record;
      const cold = elapsedNs(start) / MANY;
      start = nowNs();
      for (let i = 0; i < MANY; i++)
        sum += local.readInto(local.handle(names[i] as string), target);
      const warm = elapsedNs(start) / MANY;
      sink(sum);
      local.close();
      if (run === 0) continue;
      lookups.push(cold);
      reads.push(warm);
    }
  } finally {
    owner.close();
    rmSync(path, { force: true });
  }
  details.many = { variables: MANY, fileBytes, slowestPerRun: slowest };
  const many = MANY.toLocaleString("en-US");
  return [
    judged(
      metricFromRuns(
        {
          id: "create.rate",
          label: `create (allocate) 64 B variables, ${many} per file`,
          unit: "ops/s",
          target: "≥ 500,000/s",
          note: "includes file growth and name-index rebuilds",
        },
        rates,
      ),
      (m) => m.median >= 500_000,
    ),
    metricFromRuns(
      { id: "create.many.total", label: `create ${many} variables: total`, unit: "ms" },
      totals,
    ),
    judged(
      metricFromRuns(
        {
          id: "create.many.worst",
          label: `create ${many} variables: worst single allocate`,
          unit: "ms",
          target: `≤ ${STALL_MS} ms`,
          note: "p99 column: p99 of single allocate() times",
        },
        worst,
        p99s,
      ),
      (m) => m.median <= STALL_MS,
    ),
    metricFromRuns(
      {
        id: "lookup.cold.many",
        label: `handle(name), first time, ${many} variables`,
        unit: "ns",
        note: "a fresh mapping: name check, hash, index probe",
      },
      lookups,
    ),
    // Read for reading, not judged: every name once in a fresh mapping is a
    // cold-cache worst case; the by-name target is the "ops" row.
    metricFromRuns(
      {
        id: "read.name.many",
        label: `handle(name) + readInto, ${many} distinct names (cold)`,
        unit: "ns",
        note: "each of the names once: every step a cache miss",
      },
      reads,
    ),
  ];
}

// ---- the owner: growing to the maximum size ----

function growth(
  dir: string,
  context: SuiteContext,
  notes: string[],
  details: Record<string, unknown>,
): Metric[] {
  context.log(`growing a file to its maximum (1 GiB), ${context.runs}×`);
  const path = join(dir, "grow.commy");
  const payload = Buffer.alloc(MAX_VALUE_SIZE, 0xab);
  const ours = { worst: [] as number[], p99: [] as number[], total: [] as number[] };
  const floor = { worst: [] as number[], p99: [] as number[], total: [] as number[] };
  const runs: GrowthRun[] = [];
  for (let run = 0; run < context.runs; run++) {
    rmSync(path, { force: true });
    const owner = OwnedServiceFile.create(path, { serviceId: "bench-grow" });
    // Interleaved with the allocations, so that both meet the same state of
    // the machine's memory: each allocation is followed by a first write of
    // as many bytes as its block spans (two slots) to a plain file.
    const plain = new FirstWriteFloor(join(dir, "first-write.bin"), 2 ** 30, 2 * MAX_VALUE_SIZE);
    const random = prng(42);
    const times: number[] = [];
    const floorTimes: number[] = [];
    const sizes: number[] = [];
    const grewTo = new Map<number, number>();
    collectGarbage();
    try {
      // Bounded: at most maxSize / smallest block allocations fit.
      for (let i = 0; i < 20_000; i++) {
        const size = GROW_MIN_VALUE + Math.floor(random() * (MAX_VALUE_SIZE - GROW_MIN_VALUE + 1));
        const before = owner.size;
        const t0 = nowNs();
        try {
          owner.allocate(`big-${i}`, payload.subarray(0, size));
        } catch (error) {
          if (error instanceof ShmError && error.code === "FULL") break;
          throw error;
        }
        times.push(Number(nowNs() - t0));
        sizes.push(size);
        if (owner.size !== before) grewTo.set(i, owner.size);
        const plainNs = plain.write(2 * 2 ** Math.ceil(Math.log2(size)));
        if (plainNs !== undefined) floorTimes.push(plainNs);
      }
    } finally {
      owner.close();
      plain.close();
      rmSync(path, { force: true });
    }
    for (const [into, samples] of [
      [ours, times],
      [floor, floorTimes],
    ] as const) {
      const shape = distribution(samples);
      into.worst.push(shape.max / 1e6);
      into.p99.push(shape.p99 / 1e6);
      into.total.push((shape.mean * shape.n) / 1e6);
    }
    runs.push(growthRun(times, sizes, grewTo, floorTimes));
  }
  details.growth = runs;
  const stalls = runs.map((r) => r.stalls);
  if (stalls.some((n) => n > 0)) {
    notes.push(
      `growth: allocations over ${STALL_MS} ms per run: ${stalls.join(", ")}; ` +
        `first writes of a plain file over ${STALL_MS} ms: ${runs.map((r) => r.floorStalls).join(", ")}`,
    );
  }
  const last = runs[runs.length - 1];
  const summary =
    last === undefined
      ? ""
      : `${last.variables} values of 64 KiB–1 MiB, ${(last.blockBytes / 2 ** 20).toFixed(0)} MiB of blocks`;
  const ratio = (mine: number[], base: number[]): number =>
    median(mine.map((v, i) => v / (base[i] as number)));
  const total = metricFromRuns(
    { id: "grow.total", label: `grow to 1 GiB: sum of allocate() (${summary})`, unit: "ms" },
    ours.total,
  );
  total.ratio = { floor: "first write", median: ratio(ours.total, floor.total) };
  const worst = metricFromRuns(
    {
      id: "grow.worst",
      label: "grow to 1 GiB: worst single allocate",
      unit: "ms",
      target: `≤ ${STALL_MS} ms`,
      note: "p99 column: p99 of single allocate() times",
    },
    ours.worst,
    ours.p99,
  );
  worst.ratio = {
    floor: "first write",
    median: ratio(ours.worst, floor.worst),
    p99: ratio(ours.p99, floor.p99),
  };
  return [
    metricFromRuns(
      {
        id: "floor.first-write.total",
        label: "floor: first write of the same bytes, plain file: sum",
        unit: "ms",
        note: "one memcpy per allocation's block into a fresh MAP_SHARED file",
      },
      floor.total,
    ),
    metricFromRuns(
      {
        id: "floor.first-write.worst",
        label: "floor: first write of the same bytes, plain file: worst",
        unit: "ms",
      },
      floor.worst,
      floor.p99,
    ),
    total,
    judged(worst, (m) => m.median <= STALL_MS),
  ];
}

interface GrowthRun {
  variables: number;
  /** Bytes of value blocks (two slots each) the allocations took. */
  blockBytes: number;
  stalls: number;
  floorStalls: number;
  slowest: { index: number; valueBytes: number; ms: number; grewTo?: number }[];
}

function growthRun(
  times: number[],
  sizes: number[],
  grewTo: Map<number, number>,
  floorTimes: number[],
): GrowthRun {
  const slowest = times
    .map((ns, index) => ({ index, ns }))
    .sort((a, b) => b.ns - a.ns)
    .slice(0, 5)
    .map(({ index, ns }) => ({
      index,
      valueBytes: sizes[index] as number,
      ms: Math.round(ns / 1e4) / 100,
      ...(grewTo.has(index) ? { grewTo: grewTo.get(index) } : {}),
    }));
  return {
    variables: times.length,
    blockBytes: sizes.reduce((sum, size) => sum + 2 * 2 ** Math.ceil(Math.log2(size)), 0),
    stalls: times.filter((t) => t > STALL_MS * 1e6).length,
    floorStalls: floorTimes.filter((t) => t > STALL_MS * 1e6).length,
    slowest,
  };
}

// ---- across processes: a write reaching a reader ----

/** One latency case: each call of `run()` is one run's one-way latencies in ns. */
interface LatencyCase {
  id: string;
  /** Latencies of the measured writes (NaN: seen only through a later write). */
  run(): Promise<{ latencies: number[]; cpuFraction?: number; writes?: number[] }>;
  stop(): Promise<void>;
}

/** The cases the suite measures, by id, in the order they run within a run. */
const LATENCY_ROWS: {
  id: string;
  label: string;
  floor?: string;
  target?: string;
  check?: (p50: number, p99: number, ratio: number | undefined) => boolean;
  note?: string;
}[] = [
  {
    id: "floor.sab",
    label: "floor: shared memory, reader spins (2 processes)",
    note: "MAP_SHARED SharedArrayBuffer, Atomics.store → Atomics.load loop",
  },
  {
    id: "floor.futex",
    label: `floor: futex wake of a sleeping process (C, gap ${GAP_MICROS} µs)`,
  },
  {
    id: "floor.futex.nogap",
    label: "floor: futex ping-pong without gap (C, classic)",
  },
  {
    id: "floor.atomics",
    label: `floor: Atomics.wait/notify, 2 worker threads (gap ${GAP_MICROS} µs)`,
  },
  {
    id: "latency.sleep",
    label: "(a) reader sleeps: waitForChangeSync(spin 0)",
    floor: "floor.futex",
    target: "p50 ≤ 1.5× floor, p99 ≤ 200 µs",
    check: (_p50, p99, ratio) => ratio !== undefined && ratio <= 1.5 && p99 <= 200,
    note: "wake → pollChanges() → readInto()",
  },
  {
    id: "latency.watch",
    label: "(a') reader sleeps: watch() callback on the event loop",
    floor: "floor.futex",
  },
  {
    id: "latency.spin-version",
    label: "(b) reader busy: spins on version(handle)",
    floor: "floor.sab",
    target: "p50 ≤ 5 µs",
    check: (p50) => p50 <= 5,
  },
  {
    id: "latency.spin-poll",
    label: "(b) reader busy: spins on pollChanges()",
    floor: "floor.sab",
    target: "p50 ≤ 5 µs",
    check: (p50) => p50 <= 5,
  },
  {
    id: "latency.spin-wait",
    label: `(b) reader busy: waitForChangeSync(spin ${SPIN_MICROS} µs)`,
    floor: "floor.sab",
    target: "p50 ≤ 5 µs",
    check: (p50) => p50 <= 5,
  },
];

async function latency(
  dir: string,
  context: SuiteContext,
  notes: string[],
  details: Record<string, unknown>,
): Promise<Metric[]> {
  context.log("starting latency readers and floors");
  const plan = pinPlan();
  const cpus = "skipped" in plan ? undefined : ([plan.writer, plan.reader] as const);
  const allowed = allowedCpus();
  if (cpus === undefined) {
    notes.push(`writer and reader not pinned (${"skipped" in plan ? plan.skipped : ""})`);
  } else {
    notes.push(
      `writer thread pinned to CPU ${cpus[0]}, reader thread to CPU ${cpus[1]} (floors alike)`,
    );
    pinThisThread(cpus[0]);
  }
  const cases: LatencyCase[] = [];
  try {
    cases.push(await sabFloorCase(dir, cpus?.[1]));
    const futex = FutexFloor.build(dir);
    if (futex instanceof FutexFloor) {
      cases.push(futexCase("floor.futex", futex, GAP_MICROS, cpus));
      cases.push(futexCase("floor.futex.nogap", futex, 0, cpus));
    } else {
      notes.push(`futex floor skipped: ${futex.skipped}; ratios to it are not given`);
    }
    cases.push({
      id: "floor.atomics",
      run: async () => ({ latencies: await atomicsPingPong(SAMPLES, GAP_MICROS, WARMUP, cpus) }),
      stop: async () => undefined,
    });
    cases.push(
      ...(await Promise.all([
        serviceFileCase(dir, "latency.sleep", "sleep", 0, cpus?.[1]),
        serviceFileCase(dir, "latency.watch", "watch", 0, cpus?.[1]),
        serviceFileCase(dir, "latency.spin-version", "spin-version", 0, cpus?.[1]),
        serviceFileCase(dir, "latency.spin-poll", "spin-poll", 0, cpus?.[1]),
        serviceFileCase(dir, "latency.spin-wait", "spin-wait", SPIN_MICROS, cpus?.[1]),
      ])),
    );

    // Run by run, every case in turn: a floor and the figure held against it
    // are measured seconds apart, so that drift on a shared VM hits both.
    const perCase = new Map<string, { p50: number[]; p99: number[]; pooled: number[] }>();
    const cpu = new Map<string, number[]>();
    // The writer's own cost of write() in two of the cases, per run.
    const writes = new Map<string, { p50: number[]; p99: number[] }>();
    const missed = new Map<string, number>();
    for (let run = 0; run < context.runs; run++) {
      context.log(`latency run ${run + 1}/${context.runs}`);
      for (const c of cases) {
        collectGarbage();
        const result = await c.run();
        const latencies = result.latencies.filter((x) => Number.isFinite(x));
        const shape = distribution(latencies);
        const entry = perCase.get(c.id) ?? { p50: [], p99: [], pooled: [] };
        entry.p50.push(shape.p50 / 1000);
        entry.p99.push(shape.p99 / 1000);
        entry.pooled.push(...latencies);
        perCase.set(c.id, entry);
        if (result.cpuFraction !== undefined) {
          cpu.set(c.id, [...(cpu.get(c.id) ?? []), result.cpuFraction]);
        }
        const lost = result.latencies.length - latencies.length;
        if (lost > 0) missed.set(c.id, (missed.get(c.id) ?? 0) + lost);
        if (result.writes !== undefined) {
          const entry = writes.get(c.id) ?? { p50: [], p99: [] };
          entry.p50.push(percentile(result.writes, 0.5) / 1000);
          entry.p99.push(percentile(result.writes, 0.99) / 1000);
          writes.set(c.id, entry);
        }
      }
    }

    const metrics: Metric[] = [];
    const pooled: Record<string, unknown> = {};
    for (const row of LATENCY_ROWS) {
      const entry = perCase.get(row.id);
      if (entry === undefined) continue;
      const metric = metricFromRuns(
        { id: row.id, label: row.label, unit: "µs", target: row.target, note: row.note },
        entry.p50,
        entry.p99,
      );
      const floor = row.floor === undefined ? undefined : perCase.get(row.floor);
      if (floor !== undefined) {
        // Per run, ours over the floor of the same run; then the median.
        metric.ratio = {
          floor: row.floor === "floor.sab" ? "shared memory" : "futex",
          median: median(entry.p50.map((v, i) => v / (floor.p50[i] as number))),
          p99: median(entry.p99.map((v, i) => v / (floor.p99[i] as number))),
        };
      }
      if (row.check !== undefined && (row.floor === undefined || floor !== undefined)) {
        metric.pass = row.check(metric.median, metric.p99 as number, metric.ratio?.median);
      }
      metrics.push(metric);
      pooled[row.id] = distribution(entry.pooled);
    }
    const idle = writes.get("latency.spin-version");
    if (idle !== undefined) {
      metrics.push(
        metricFromRuns(
          {
            id: "write.idle",
            label: `write 64 B after ${GAP_MICROS} µs idle, no waiters (writer's cost)`,
            unit: "µs",
            note: "from the (b) version() runs: a writer that just woke runs cold",
          },
          idle.p50,
          idle.p99,
        ),
      );
    }
    const waiter = writes.get("latency.sleep");
    if (waiter !== undefined) {
      metrics.push(
        metricFromRuns(
          {
            id: "write.waiter",
            label: "write 64 B while a reader sleeps (writer's cost)",
            unit: "µs",
            note: "from the (a) runs: includes the futex wake of the reader",
          },
          waiter.p50,
          waiter.p99,
        ),
      );
    }
    const cpuShare = Object.fromEntries(
      [...cpu].map(([id, fractions]) => [id, Math.round(median(fractions) * 1000) / 1000]),
    );
    details.latency = {
      pooledNs: pooled,
      readerCpuShare: cpuShare,
      missedWrites: Object.fromEntries(missed),
    };
    const share = (id: string): string => `${Math.round((cpuShare[id] ?? Number.NaN) * 100)}%`;
    notes.push(
      `reader CPU use during a run: sleeping ${share("latency.sleep")}, watch ${share("latency.watch")}, ` +
        `spinning ${share("latency.spin-version")} (a sleeping reader really sleeps)`,
    );
    if (missed.size > 0) {
      const total = context.runs * SAMPLES;
      const list = [...missed].map(([id, n]) => `${id} ${n}`).join(", ");
      notes.push(
        `writes a reader saw only through a later one (of ${total} per case; ` +
          `the reader was off its CPU for over ${GAP_MICROS} µs): ${list}`,
      );
    }
    return metrics;
  } finally {
    await Promise.all(cases.map((c) => c.stop()));
    if (cpus !== undefined && allowed !== undefined) pinThisThread(allowed);
  }
}

async function sabFloorCase(dir: string, readerCpu: number | undefined): Promise<LatencyCase> {
  const floor = await SabSpinFloor.start(dir, readerCpu);
  return {
    id: "floor.sab",
    run: async () => {
      const result = await floor.run(SAMPLES + WARMUP, GAP_MICROS);
      return { ...result, latencies: result.latencies.slice(WARMUP) };
    },
    stop: () => floor.stop(),
  };
}

function futexCase(
  id: string,
  floor: FutexFloor,
  gapMicros: number,
  cpus: readonly [number, number] | undefined,
): LatencyCase {
  return {
    id,
    run: async () => ({ latencies: floor.run(SAMPLES, gapMicros, WARMUP, cpus) }),
    stop: async () => undefined,
  };
}

const SHM_CHILD = new URL("./shm-child.ts", import.meta.url);

/** A service file with one 64-byte variable, a writer here and a reader child. */
async function serviceFileCase(
  dir: string,
  id: string,
  mode: string,
  spinMicros: number,
  readerCpu: number | undefined,
): Promise<LatencyCase> {
  const path = join(dir, `${mode}.commy`);
  const owner = OwnedServiceFile.create(path, { serviceId: `bench-${mode}` });
  owner.allocate("latency", Buffer.alloc(VALUE_BYTES));
  const writer = ServiceFile.open(path);
  const handle = writer.handle("latency");
  const payload = Buffer.alloc(VALUE_BYTES);
  const reader = new ReaderChild(SHM_CHILD, [path, "latency", mode, String(spinMicros)], readerCpu);
  await reader.ready();
  return {
    id,
    run: async () => {
      let writes: Float64Array = new Float64Array(0);
      const result = await reader.run(SAMPLES + WARMUP, () => {
        writes = stampedWrites(SAMPLES + WARMUP, GAP_MICROS, (seq, stamp) => {
          payload.writeBigInt64LE(stamp, STAMP_OFFSET);
          payload.writeUInt32LE(seq, SEQ_OFFSET);
          writer.write(handle, payload);
        });
      });
      return {
        ...result,
        latencies: result.latencies.slice(WARMUP),
        writes: Array.from(writes.subarray(WARMUP)),
      };
    },
    stop: async () => {
      await reader.stop();
      writer.close();
      owner.close();
    },
  };
}

function judged(metric: Metric, check: (metric: Metric) => boolean): Metric {
  metric.pass = check(metric);
  return metric;
}
