/** Clocks, bounded sleeps and the run loop shared by every suite. */

/** CLOCK_MONOTONIC in nanoseconds: one clock for every process and thread on the machine. */
export function nowNs(): bigint {
  return process.hrtime.bigint();
}

/** Nanoseconds since `start` as a number. */
export function elapsedNs(start: bigint): number {
  return Number(process.hrtime.bigint() - start);
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * Blocks the calling thread for about `micros` µs without spinning (a timed
 * Atomics.wait on a word nobody notifies), so that the thread's CPU can idle.
 */
export function sleepMicros(micros: number): void {
  if (micros > 0) Atomics.wait(sleeper, 0, 0, micros / 1000);
}

/** Frees garbage between runs when node runs with --expose-gc (the bench script does). */
export function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc !== undefined) gc();
}

/** A small deterministic PRNG (mulberry32), so that every run sees the same sequence. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What `nsPerOp` measured: one value per run, after warm-up runs that are thrown away. */
export interface RunValues {
  runs: number[];
}

/**
 * Runs `body(ops)` `warmup` + `runs` times and returns nanoseconds per
 * operation of each measured run. `body` runs its own loop of `ops`
 * operations (so the loop is compiled with the operation inlined) and
 * returns something derived from every result, which `sink` keeps alive so
 * the compiler cannot drop the work.
 */
export function nsPerOp(
  body: (ops: number) => number,
  options: { ops: number; runs: number; warmup?: number },
): RunValues {
  const runs: number[] = [];
  for (let i = 0; i < (options.warmup ?? 2); i++) sink(body(options.ops));
  for (let i = 0; i < options.runs; i++) {
    collectGarbage();
    const start = nowNs();
    sink(body(options.ops));
    runs.push(elapsedNs(start) / options.ops);
  }
  return { runs };
}

let sunk = 0;
/** Keeps a value observable so that a benchmark loop is not optimised away. */
export function sink(value: number): void {
  sunk = (sunk + value) | 0;
}
/** The sum of everything sunk (printed nowhere, read only to stay live). */
export function sunkValue(): number {
  return sunk;
}
