/**
 * What a suite that runs servers starts with: a fresh directory (under
 * $COMMY_BENCH_DIR or the OS temporary directory), the note saying which
 * source was measured, and where to pin the two ends of a measurement.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type PinPlan, pinPlan } from "./affinity.js";
import { type SourceState, sourceNote, sourceState } from "./source-state.js";

export interface SuiteWorkspace {
  dir: string;
  /** Notes for the table: the source state, and why nothing is pinned when it is not. */
  notes: string[];
  source: SourceState;
  plan: PinPlan;
  /** CPUs for the server (reader) and the load (writer), or undefined when not pinning. */
  pinned: { writer: number; reader: number } | undefined;
  remove(): void;
}

export function suiteWorkspace(name: string): SuiteWorkspace {
  const dir = mkdtempSync(join(process.env.COMMY_BENCH_DIR ?? tmpdir(), `commy-bench-${name}-`));
  const notes: string[] = [];
  const source = sourceState();
  const changed = sourceNote(source);
  if (changed !== undefined) notes.push(changed);
  const plan = pinPlan();
  if ("skipped" in plan) notes.push(`not pinned: ${plan.skipped}`);
  return {
    dir,
    notes,
    source,
    plan,
    pinned: "skipped" in plan ? undefined : plan,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
