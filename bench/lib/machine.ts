/** What the numbers were measured on: printed with every table, stored with every result. */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";

export interface MachineInfo {
  /** Logical CPUs this process may run on (what `nproc` prints). */
  nproc: number;
  cpuModel: string;
  /** True when /proc/cpuinfo carries the `hypervisor` flag. */
  virtualized: boolean;
  memoryGiB: number;
  node: string;
  v8: string;
  os: string;
  /** Filesystem type of the directory that holds the benchmark's files. */
  filesystem?: string;
}

export function machineInfo(workDir?: string): MachineInfo {
  const cpuinfo = readOr("/proc/cpuinfo");
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? "unknown";
  const info: MachineInfo = {
    nproc: os.availableParallelism(),
    cpuModel: model.trim(),
    virtualized: /^flags\s*:.*\bhypervisor\b/m.test(cpuinfo),
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    v8: process.versions.v8,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
  };
  if (workDir !== undefined) info.filesystem = filesystemOf(workDir);
  return info;
}

/** "ext4", "tmpfs"…: findmnt (util-linux) names it exactly; stat -f is the fallback. */
function filesystemOf(dir: string): string | undefined {
  const attempts: [string, string[]][] = [
    ["findmnt", ["-n", "-o", "FSTYPE", "--target", dir]],
    ["stat", ["-f", "-c", "%T", dir]],
  ];
  for (const [command, args] of attempts) {
    try {
      const out = execFileSync(command, args, { encoding: "utf8", stdio: "pipe" }).trim();
      if (out !== "") return out;
    } catch {
      // Try the next way.
    }
  }
  return undefined;
}

/** One line for the top of a table. */
export function describeMachine(info: MachineInfo): string {
  const parts = [
    `${info.nproc} × ${info.cpuModel}${info.virtualized ? " (VM)" : ""}`,
    `${info.memoryGiB} GiB`,
    info.os,
    `node ${info.node}`,
  ];
  if (info.filesystem !== undefined) parts.push(`files on ${info.filesystem}`);
  return parts.join(", ");
}

function readOr(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}
