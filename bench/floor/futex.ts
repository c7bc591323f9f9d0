/**
 * Floor: waking a process that really sleeps, in C with raw futex calls
 * (bench/floor/futex_pingpong.c, built at run time with `cc -O2`).
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { buildCProgram } from "../lib/c-program.js";

const SOURCE = fileURLToPath(new URL("./futex_pingpong.c", import.meta.url));

export class FutexFloor {
  private constructor(
    readonly binary: string,
    private readonly workDir: string,
  ) {}

  /**
   * Builds the program into `workDir`. Returns a reason instead when it
   * cannot be built here (no `cc`, not Linux), so the caller can skip it.
   */
  static build(workDir: string): FutexFloor | { skipped: string } {
    const binary = buildCProgram(SOURCE, workDir, "futex_pingpong");
    return typeof binary === "string" ? new FutexFloor(binary, workDir) : binary;
  }

  /**
   * One run: `legs` hand-overs between two processes, each after the sender
   * slept `gapMicros`, the two processes on `cpus` when given. Returns
   * one-way latencies in ns, the first `warmup` legs dropped.
   */
  run(legs: number, gapMicros: number, warmup: number, cpus?: readonly [number, number]): number[] {
    const args = [join(this.workDir, "futex.pingpong"), String(legs + warmup), String(gapMicros)];
    if (cpus !== undefined) args.push(String(cpus[0]), String(cpus[1]));
    const out = execFileSync(this.binary, args, {
      encoding: "utf8",
      timeout: 60_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    return out
      .trim()
      .split("\n")
      .slice(warmup)
      .map((line) => Number(line));
  }
}
