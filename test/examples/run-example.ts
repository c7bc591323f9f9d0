/**
 * Runs a program of examples/ (or a shell command) as its own process,
 * the way a user would, with a bound on its run time: what the examples'
 * smoke test and the docs test share.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The repository's root, where the examples are run from. */
export const PACKAGE_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** What a finished process left. */
export interface ProcessOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** How to run a process. */
export interface RunOptions {
  /** Added to this process's environment. */
  env?: Record<string, string>;
  /** Default: the repository's root. */
  cwd?: string;
  /** Killed (SIGKILL) after this long. */
  timeoutMs: number;
}

/** Runs `command` with `args` to its end (or its time limit), collecting its output. */
export function runProcess(
  command: string,
  args: readonly string[],
  options: RunOptions,
): Promise<ProcessOutcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd ?? PACKAGE_ROOT,
      env: { ...process.env, ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    const timer = setTimeout(() => {
      stderr += `\n(killed after ${options.timeoutMs} ms)`;
      child.kill("SIGKILL");
    }, options.timeoutMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Runs examples/<name> with `node --import tsx`, as the examples' comments say. */
export function runExample(
  name: string,
  env: Record<string, string>,
  timeoutMs = 60_000,
): Promise<ProcessOutcome> {
  return runProcess(process.execPath, ["--import", "tsx", `examples/${name}`], { env, timeoutMs });
}
