/**
 * The reader process of the shm suite's cross-process latency: it maps the
 * service file with ServiceFile.open, like any local process, and waits for
 * the bench's writes in one of these ways:
 *
 *   sleep         waitForChangeSync(timeout, spin 0): the thread really sleeps
 *   watch         watch(): a native thread sleeps, the event loop gets a callback
 *   spin-version  a busy loop on version(handle)
 *   spin-poll     a busy loop on pollChanges()
 *   spin-wait     waitForChangeSync(timeout, spinMicros): the addon spins first
 *
 * Each write carries the writer's stamp in the value (see bench/lib/one-way.ts);
 * the reader takes the time once readInto() has the new value.
 *
 *   shm-child.ts <path> <variable> <mode> [spinMicros]
 */
import { pinFromEnvironment } from "../lib/affinity.js";
import { reportFailuresToParent } from "../lib/child.js";
import { type Recorder, serveReaderRuns } from "../lib/one-way.js";
import { nowNs } from "../lib/timing.js";
import { ServiceFile } from "../../src/shm/index.js";
import { STAMP_OFFSET, SEQ_OFFSET, VALUE_BYTES } from "./shm-value.js";

reportFailuresToParent();
pinFromEnvironment(); // before watch() starts its thread, which inherits the CPU
const [path, name, mode, spinArg] = process.argv.slice(2) as [string, string, string, string?];
const spinMicros = Number(spinArg ?? 0);
const file = ServiceFile.open(path);
const handle = file.handle(name);
const value = Buffer.alloc(VALUE_BYTES);
file.pollChanges(); // the change cursor starts here

/** Reads the value and records its stamp; true once the run's last write arrived. */
function take(recorder: Recorder): boolean {
  file.readInto(handle, value);
  const now = nowNs();
  return recorder.record(value.readUInt32LE(SEQ_OFFSET), value.readBigInt64LE(STAMP_OFFSET), now);
}

function sleepLoop(recorder: Recorder): void {
  while (!recorder.expired()) {
    if (!file.waitForChangeSync(1_000, spinMicros)) continue;
    if (file.pollChanges().length > 0 && take(recorder)) return;
  }
}

function spinVersionLoop(recorder: Recorder): void {
  file.readInto(handle, value);
  let last = handle.version;
  for (let spins = 0; ; spins++) {
    if (file.version(handle) === last) {
      if ((spins & 0xffff) === 0 && recorder.expired()) return;
      continue;
    }
    if (take(recorder)) return;
    last = handle.version;
  }
}

function spinPollLoop(recorder: Recorder): void {
  for (let spins = 0; ; spins++) {
    if (file.pollChanges().length === 0) {
      if ((spins & 0xffff) === 0 && recorder.expired()) return;
      continue;
    }
    if (take(recorder)) return;
  }
}

function watchLoop(recorder: Recorder): Promise<void> {
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      if (recorder.expired()) finish();
    }, 1_000);
    const stop = file.watch(() => {
      if (take(recorder)) finish();
    }, spinMicros);
    function finish(): void {
      clearInterval(timer);
      stop();
      resolve();
    }
  });
}

const loops: Record<string, (recorder: Recorder) => void | Promise<void>> = {
  sleep: sleepLoop,
  "spin-wait": sleepLoop,
  "spin-version": spinVersionLoop,
  "spin-poll": spinPollLoop,
  watch: watchLoop,
};
const loop = loops[mode];
if (loop === undefined) throw new Error(`unknown mode ${mode}`);
await serveReaderRuns(loop);
