// One side of the Atomics.wait/notify ping-pong of bench/floor/atomics.ts.
// Plain JavaScript: worker threads do not inherit tsx's loader on Node 20.
import { execFileSync } from "node:child_process";
import { readlinkSync } from "node:fs";
import process from "node:process";
import { parentPort, workerData } from "node:worker_threads";

const { buffer, side, legs, gapMicros, cpu } = workerData;
if (cpu >= 0) {
  // This thread only (see bench/lib/affinity.ts).
  const tid = readlinkSync("/proc/thread-self").split("/").pop();
  execFileSync("taskset", ["-p", "-c", String(cpu), tid], { stdio: "ignore" });
}
// [0] turn: the word both sides wait on; [1] never notified, for timed sleeps.
const words = new Int32Array(buffer, 0, 2);
const stamp = new BigInt64Array(buffer, 8, 1);
const samples = new Float64Array(buffer, 16, legs);

for (let leg = 0; leg < legs; leg++) {
  if (leg % 2 === side) {
    if (gapMicros > 0) Atomics.wait(words, 1, 0, gapMicros / 1000);
    Atomics.store(stamp, 0, process.hrtime.bigint());
    Atomics.store(words, 0, leg + 1);
    Atomics.notify(words, 0, 1);
  } else {
    while (Atomics.load(words, 0) === leg) Atomics.wait(words, 0, leg);
    const now = process.hrtime.bigint();
    samples[leg] = Number(now - Atomics.load(stamp, 0));
  }
}
parentPort.postMessage("done");
