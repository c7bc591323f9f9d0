/**
 * Keeping the two ends of a cross-process measurement on two different
 * CPUs. Left to itself, the scheduler of a small VM often puts a freshly
 * woken writer on the CPU where the reader runs, and the figures then
 * measure that placement rather than the code. Pinning one thread (not a
 * whole process) uses util-linux `taskset -p` on the thread's id.
 *
 * COMMY_BENCH_PIN=0 turns pinning off; it is off by itself with one CPU or
 * without taskset.
 */
import { execFileSync } from "node:child_process";
import { readlinkSync } from "node:fs";

/** The environment variable a child reads to pin its main thread. */
export const CPU_ENV = "COMMY_BENCH_CPU";

/** Two CPUs for writer and reader, or why there are none. */
export type PinPlan = { writer: number; reader: number } | { skipped: string };

export function pinPlan(): PinPlan {
  if (process.env.COMMY_BENCH_PIN === "0") return { skipped: "COMMY_BENCH_PIN=0" };
  if (process.platform !== "linux") return { skipped: "pinning is done on Linux only" };
  const cpus = allowedCpus();
  if (cpus === undefined) return { skipped: "taskset (util-linux) is not available" };
  if (cpus.length < 2) return { skipped: "fewer than two CPUs" };
  return { writer: cpus[0] as number, reader: cpus[1] as number };
}

/** The id of the calling thread (its pid in /proc/<pid>/task/<tid>). */
export function threadId(): number {
  return Number(readlinkSync("/proc/thread-self").split("/").pop());
}

/** Pins the calling thread to `cpu`, or to every allowed CPU when `cpu` is a list. */
export function pinThisThread(cpu: number | readonly number[]): void {
  const list = typeof cpu === "number" ? String(cpu) : cpu.join(",");
  execFileSync("taskset", ["-p", "-c", list, String(threadId())], { stdio: "ignore" });
}

/** In a child: pins the main thread to the CPU the parent put in its environment. */
export function pinFromEnvironment(): void {
  const cpu = process.env[CPU_ENV];
  if (cpu !== undefined && cpu !== "") pinThisThread(Number(cpu));
}

/** The CPUs this process may use, from `taskset -cp`, or undefined without taskset. */
export function allowedCpus(): number[] | undefined {
  let out: string;
  try {
    out = execFileSync("taskset", ["-c", "-p", String(process.pid)], { encoding: "utf8" });
  } catch {
    return undefined;
  }
  const list = out.split(":").pop()?.trim() ?? "";
  const cpus: number[] = [];
  for (const part of list.split(",")) {
    if (part.trim() === "") continue;
    const [from, to] = part.split("-").map(Number);
    if (from === undefined || !Number.isInteger(from)) continue;
    for (let c = from; c <= (to ?? from); c++) cpus.push(c);
  }
  return cpus;
}
