/**
 * The bench's C programs (load generators and floors, so that the server
 * rather than a Node client on the same two CPUs is measured) are built at
 * run time with `cc -O2`; where that cannot be done, the caller skips or
 * falls back with the reason.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";

/**
 * Builds `source` into `workDir/name` with `flags` added; returns the
 * binary's path, or why it could not be built here.
 */
export function buildCProgram(
  source: string,
  workDir: string,
  name: string,
  flags: readonly string[] = [],
): string | { skipped: string } {
  if (process.platform !== "linux") return { skipped: `${name} is built for Linux only` };
  const binary = join(workDir, name);
  const result = spawnSync("cc", ["-O2", "-Wall", ...flags, "-o", binary, source], {
    encoding: "utf8",
  });
  if (result.error !== undefined) {
    return { skipped: `no C compiler (cc): ${result.error.message}` };
  }
  if (result.status !== 0) return { skipped: `cc failed: ${result.stderr.trim()}` };
  return binary;
}
