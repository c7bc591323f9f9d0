/**
 * Which code was measured: the commit, and the files of src/ that differ
 * from it (a figure taken from a working tree with local changes says so).
 */
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const PACKAGE_ROOT = fileURLToPath(new URL("../../", import.meta.url));

export interface SourceState {
  commit?: string;
  /** Files under `paths` changed against the commit (git status --porcelain). */
  changed?: string[];
}

export function sourceState(paths: readonly string[] = ["src", "native"]): SourceState {
  const git = (args: string[]): string =>
    execFileSync("git", args, {
      cwd: PACKAGE_ROOT,
      encoding: "utf8",
      timeout: 10_000,
      stdio: "pipe",
    });
  try {
    const commit = git(["rev-parse", "--short", "HEAD"]).trim();
    const changed = git(["status", "--porcelain", "--", ...paths])
      .split("\n")
      .filter((line) => line.trim() !== "")
      .map((line) => line.slice(3));
    return { commit, changed };
  } catch {
    return {}; // not a git checkout
  }
}

/** A note for the table when the measured code has local changes. */
export function sourceNote(state: SourceState): string | undefined {
  if (state.changed === undefined || state.changed.length === 0) return undefined;
  return `measured on ${state.commit ?? "?"} with local changes in ${state.changed.join(", ")}`;
}
