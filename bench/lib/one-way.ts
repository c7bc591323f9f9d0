/**
 * One-way latency between two processes: the bench (the writer) stamps
 * CLOCK_MONOTONIC into what it publishes; a reader child notices the
 * change, takes the value and computes `now - stamp`.
 *
 * Why stamps and not a halved round trip: both processes read the same
 * machine-wide monotonic clock (process.hrtime.bigint() is
 * clock_gettime(CLOCK_MONOTONIC)), so a stamp carried inside the value
 * measures exactly "the writer began to write → the reader has the new
 * value", including the write itself, the wake-up and the read. A round
 * trip halved would assume both directions cost the same and would add the
 * reader's own write and the writer's wake-up to every sample.
 *
 * Writes are spaced by a gap (the writer sleeps, it does not spin) so that
 * a sleeping reader has really gone to sleep before each write.
 */
import { CPU_ENV } from "./affinity.js";
import { BenchChild, type Message, onParentMessage, sendToParent } from "./child.js";
import { nowNs, sleepMicros } from "./timing.js";

/** What a reader reports for one run. */
export interface ReaderRun {
  /** One-way latency of each write the reader saw, in ns, by sequence number (1-based). */
  latencies: number[];
  /** Writes the reader did not see on their own (coalesced with a later one). */
  missed: number;
  /** The reader's CPU time over wall time during the run: ~0 sleeps, ~1 spins. */
  cpuFraction: number;
}

/** The parent's handle on a reader child. */
export class ReaderChild {
  readonly #child: BenchChild;

  /** `cpu`: the CPU the child pins its main thread to (see affinity.ts). */
  constructor(script: URL, args: readonly string[], cpu?: number) {
    this.#child = new BenchChild(script, args, { [CPU_ENV]: cpu === undefined ? "" : String(cpu) });
  }

  async ready(): Promise<void> {
    await this.#child.next("ready");
  }

  /**
   * One run of `count` writes: arms the reader, calls `writeAll()` (which
   * performs the writes, synchronously), then collects what the reader saw.
   */
  async run(count: number, writeAll: () => void): Promise<ReaderRun> {
    this.#child.send({ type: "run", count });
    await this.#child.next("armed");
    writeAll();
    const message = await this.#child.next("samples", 120_000);
    return message.run as ReaderRun;
  }

  stop(): Promise<void> {
    return this.#child.stop();
  }
}

/**
 * The writer's loop: `count` times, sleep `gapMicros`, take a stamp and
 * call `publish(seq, stamp)` with seq = 1..count. Returns how long each
 * `publish` took, in ns (the write as the writer pays for it).
 */
export function stampedWrites(
  count: number,
  gapMicros: number,
  publish: (seq: number, stamp: bigint) => void,
): Float64Array {
  const durations = new Float64Array(count);
  for (let seq = 1; seq <= count; seq++) {
    sleepMicros(gapMicros);
    const stamp = nowNs();
    publish(seq, stamp);
    durations[seq - 1] = Number(nowNs() - stamp);
  }
  return durations;
}

/** Records what a reader child sees in one run. */
export class Recorder {
  readonly latencies: number[];
  #seen = 0;
  readonly #deadline: number;

  /** `count` writes are expected; the run gives up after `limitMs` in any case. */
  constructor(
    readonly count: number,
    limitMs = 60_000,
  ) {
    this.latencies = new Array<number>(count).fill(Number.NaN);
    this.#deadline = Date.now() + limitMs;
  }

  /** Notes that write `seq`, stamped `stamp`, arrived now. Returns true once the last arrived. */
  record(seq: number, stamp: bigint, now: bigint): boolean {
    if (seq >= 1 && seq <= this.count && Number.isNaN(this.latencies[seq - 1])) {
      this.latencies[seq - 1] = Number(now - stamp);
      this.#seen++;
    }
    return seq >= this.count;
  }

  /** True when the run has gone on for too long (the loop must end). */
  expired(): boolean {
    return Date.now() > this.#deadline;
  }

  result(cpuFraction: number): ReaderRun {
    return { latencies: this.latencies, missed: this.count - this.#seen, cpuFraction };
  }
}

/**
 * The child's side: answers each "run" with "armed", runs `measure(count)`
 * and sends back what it recorded, with the CPU share it used meanwhile.
 */
export async function serveReaderRuns(
  measure: (recorder: Recorder) => void | Promise<void>,
): Promise<void> {
  onParentMessage(async (message: Message) => {
    if (message.type !== "run") return;
    const recorder = new Recorder(Number(message.count));
    // Handed to the OS before the loop starts: the parent will not miss it.
    process.send?.({ type: "armed" });
    const cpu = process.cpuUsage();
    const start = nowNs();
    await measure(recorder);
    const used = process.cpuUsage(cpu);
    const wallMicros = Number(nowNs() - start) / 1000;
    await sendToParent({
      type: "samples",
      run: recorder.result((used.user + used.system) / wallMicros),
    });
  });
  await sendToParent({ type: "ready" });
}
