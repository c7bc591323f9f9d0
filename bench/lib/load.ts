/**
 * How busy the machine was with things other than the bench. On a small VM
 * a test run in another terminal moves every figure, so each result says
 * how much CPU other processes took while it was measured. Linux only
 * (/proc); elsewhere the functions return undefined.
 */
import { readFileSync, readdirSync } from "node:fs";

/** Shares of all CPUs' time over the measured span, each 0..1. */
export interface Load {
  /** User-space processes other than the bench and its children. */
  others: number;
  /** The bench and its (exited) children. */
  bench: number;
  /** Everything else that kept CPUs busy: kernel threads (e.g. writeback of the bench's files), interrupts. */
  kernel: number;
}

interface ProcessTimes {
  /** utime + stime + cutime + cstime, in clock ticks. */
  ticks: number;
  ppid: number;
  /** Start time: tells a reused pid apart. */
  start: string;
  kernelThread: boolean;
}

interface Snapshot {
  busy: number;
  total: number;
  processes: Map<number, ProcessTimes>;
}

const PF_KTHREAD = 0x00200000;

function readProcess(pid: string): ProcessTimes | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name, which may hold spaces: state is field 3.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return {
      ticks: [11, 12, 13, 14].reduce((sum, i) => sum + Number(f[i]), 0),
      ppid: Number(f[1]),
      start: f[19] ?? "",
      kernelThread: (Number(f[6]) & PF_KTHREAD) !== 0,
    };
  } catch {
    return undefined; // gone meanwhile
  }
}

function snapshot(): Snapshot | undefined {
  try {
    const cpu = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
    const ticks = cpu.trim().split(/\s+/).slice(1, 9).map(Number);
    const total = ticks.reduce((a, b) => a + b, 0);
    const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
    const processes = new Map<number, ProcessTimes>();
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      const times = readProcess(entry);
      if (times !== undefined) processes.set(Number(entry), times);
    }
    return { busy: total - idle, total, processes };
  } catch {
    return undefined;
  }
}

/** Pids of this process and its descendants in either snapshot. */
function ownTree(...snapshots: Snapshot[]): Set<number> {
  const own = new Set([process.pid]);
  for (let grew = true; grew;) {
    grew = false;
    for (const s of snapshots) {
      for (const [pid, p] of s.processes) {
        if (!own.has(pid) && own.has(p.ppid)) {
          own.add(pid);
          grew = true;
        }
      }
    }
  }
  return own;
}

/** Starts measuring; the returned function gives the load since then. */
export function startLoadMeter(): () => Load | undefined {
  const start = snapshot();
  return () => {
    const end = snapshot();
    if (start === undefined || end === undefined || end.total <= start.total) return undefined;
    const own = ownTree(start, end);
    let bench = 0;
    let others = 0;
    for (const [pid, p] of end.processes) {
      const before = start.processes.get(pid);
      const delta = p.ticks - (before !== undefined && before.start === p.start ? before.ticks : 0);
      if (own.has(pid)) bench += delta;
      else if (!p.kernelThread) others += delta;
    }
    // A process that ended was reaped into its parent's cutime with its whole
    // life: take back the part it had lived before the span began.
    for (const [pid, p] of start.processes) {
      const after = end.processes.get(pid);
      if (after !== undefined && after.start === p.start) continue;
      if (own.has(pid)) bench -= p.ticks;
      else if (!p.kernelThread) others -= p.ticks;
    }
    const total = end.total - start.total;
    const busy = end.busy - start.busy;
    bench = Math.min(Math.max(0, bench), busy);
    others = Math.min(Math.max(0, others), busy - bench);
    const kernel = Math.max(0, busy - bench - others);
    return {
      others: share(others, total),
      bench: share(bench, total),
      kernel: share(kernel, total),
    };
  };
}

/** The load over `ms` milliseconds while the bench waits. */
export async function sampleLoad(ms: number): Promise<Load | undefined> {
  const stop = startLoadMeter();
  await new Promise((resolve) => setTimeout(resolve, ms));
  return stop();
}

function share(ticks: number, total: number): number {
  return Math.round(Math.min(1, ticks / total) * 1000) / 1000;
}
