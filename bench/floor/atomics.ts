/**
 * Floor: Node's own Atomics.wait/notify between two worker threads of one
 * process (Atomics.wait cannot reach across processes), with the same
 * one-way, stamped protocol as the futex floor (see futex_pingpong.c).
 */
import { Worker } from "node:worker_threads";

const WORKER = new URL("./atomics-worker.mjs", import.meta.url);

/**
 * One run; returns one-way latencies in ns, the first `warmup` legs
 * dropped. With `cpus`, each thread pins itself to one of them.
 */
export async function atomicsPingPong(
  legs: number,
  gapMicros: number,
  warmup: number,
  cpus?: readonly [number, number],
): Promise<number[]> {
  const total = legs + warmup;
  const buffer = new SharedArrayBuffer(16 + total * 8);
  const workers = [0, 1].map(
    (side) =>
      new Worker(WORKER, {
        workerData: { buffer, side, legs: total, gapMicros, cpu: cpus?.[side] ?? -1 },
      }),
  );
  try {
    await Promise.all(
      workers.map(
        (worker) =>
          new Promise<void>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error("the ping-pong stalled")), 60_000);
            worker.once("message", () => {
              clearTimeout(timer);
              resolve();
            });
            worker.once("error", (error) => {
              clearTimeout(timer);
              reject(error);
            });
          }),
      ),
    );
  } finally {
    await Promise.all(workers.map((worker) => worker.terminate()));
  }
  return Array.from(new Float64Array(buffer, 16, total).subarray(warmup));
}
