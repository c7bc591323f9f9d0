/**
 * The reader of the shared-memory floor: maps the file the bench writes to
 * (MAP_SHARED, through the project's addon) and spins on its sequence word.
 */
import { openSync } from "node:fs";
import { pinFromEnvironment } from "../lib/affinity.js";
import { reportFailuresToParent } from "../lib/child.js";
import { serveReaderRuns } from "../lib/one-way.js";
import { nowNs } from "../lib/timing.js";
import { native } from "../../src/shm/native.js";
import { SAB_FLOOR_BYTES, SEQ_WORD, STAMP_SLOT } from "./sab-spin.js";

reportFailuresToParent();
pinFromEnvironment();
const path = process.argv[2] as string;
const buffer = native.mapShared(openSync(path, "r+"), SAB_FLOOR_BYTES, true, path);
const words = new Int32Array(buffer);
const stamps = new BigInt64Array(buffer);

await serveReaderRuns((recorder) => {
  let last = Atomics.load(words, SEQ_WORD);
  for (let spins = 0; ; spins++) {
    const seq = Atomics.load(words, SEQ_WORD);
    if (seq === last) {
      if ((spins & 0xffff) === 0 && recorder.expired()) return;
      continue;
    }
    const now = nowNs();
    if (recorder.record(seq, Atomics.load(stamps, STAMP_SLOT), now)) return;
    last = seq;
  }
});
