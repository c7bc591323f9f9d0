/**
 * One run of the shm suite's single-process figures, in a fresh process:
 * the JIT settles differently from one process to the next (the same loop
 * can differ by half between two processes), so each run is a new process
 * and the suite takes the median across them.
 *
 *   shm-ops-child.ts <dir>   → sends { type: "ops", nsPerOp: { read.handle: …, … } }
 */
import { unlinkSync } from "node:fs";
import { join } from "node:path";
import { reportFailuresToParent, sendToParent } from "../lib/child.js";
import { median } from "../lib/stats.js";
import { nsPerOp } from "../lib/timing.js";
import { OwnedServiceFile, ServiceFile } from "../../src/shm/index.js";
import { VALUE_BYTES } from "./shm-value.js";

/** Measured repetitions inside the process; the process reports their median. */
const INNER_RUNS = 3;

reportFailuresToParent();
const dir = process.argv[2] as string;
const path = join(dir, `ops-${process.pid}.commy`);
const owner = OwnedServiceFile.create(path, { serviceId: "bench-ops" });
const names = Array.from({ length: 1024 }, (_, i) => `var-${String(i).padStart(4, "0")}`);
for (const name of names) owner.allocate(name, Buffer.alloc(VALUE_BYTES, 7));
// A local process's view (ServiceFile.open), not the owner's shortcuts.
const local = ServiceFile.open(path);
const handle = local.handle(names[0] as string);
const target = Buffer.alloc(VALUE_BYTES);
const payload = Buffer.alloc(VALUE_BYTES, 9);
const nameAt = (i: number): string => names[i & 1023] as string;

const loops: Record<string, [ops: number, body: (ops: number) => number]> = {
  "read.handle": [
    2_000_000,
    (ops) => {
      let sum = 0;
      for (let i = 0; i < ops; i++) sum += local.readInto(handle, target);
      return sum + (target[0] as number);
    },
  ],
  "read.name": [
    500_000,
    (ops) => {
      let sum = 0;
      for (let i = 0; i < ops; i++) sum += local.read(nameAt(i)).data.length;
      return sum;
    },
  ],
  "read.name.handle": [
    500_000,
    (ops) => {
      let sum = 0;
      for (let i = 0; i < ops; i++) sum += local.readInto(local.handle(nameAt(i)), target);
      return sum;
    },
  ],
  "write.handle": [
    1_000_000,
    (ops) => {
      let sum = 0;
      for (let i = 0; i < ops; i++) {
        payload[0] = i;
        sum += local.write(handle, payload);
      }
      return sum;
    },
  ],
};

const results: Record<string, number> = {};
try {
  for (const [id, [ops, body]] of Object.entries(loops)) {
    results[id] = median(nsPerOp(body, { ops, runs: INNER_RUNS }).runs);
  }
} finally {
  local.close();
  owner.close();
  unlinkSync(path);
}
await sendToParent({ type: "ops", nsPerOp: results });
process.disconnect();
