/**
 * What the CLI tests (test/cli) share: the `commy` command compiled once
 * per test file (tsc without type checks into node_modules/.cache, so that
 * `npm ci && npm test` needs no prior build and never touches dist/), run
 * as a real process with a clean environment, bounded in time; and a
 * long-running one (var watch) read line by line.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const PACKAGE_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const BUILD_ROOT = join(PACKAGE_ROOT, "node_modules/.cache/commy-cli-test");

/** The compiled CLI, and how to remove it. */
export interface BuiltCli {
  /** The compiled src/cli/main.ts. */
  readonly main: string;
  remove(): void;
}

/** Compiles src/ and gen/ (no type check: lint does that) into a fresh folder. */
export async function buildCli(): Promise<BuiltCli> {
  mkdirSync(BUILD_ROOT, { recursive: true });
  linkNativeBuild();
  const outDir = mkdtempSync(join(BUILD_ROOT, "build-"));
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  const args = [
    tsc,
    ...["-p", "tsconfig.build.json", "--outDir", outDir, "--noCheck"],
    ...["--declaration", "false", "--sourceMap", "false"],
  ];
  await new Promise<void>((resolve, reject) =>
    execFile(process.execPath, args, { cwd: PACKAGE_ROOT, timeout: 120_000 }, (error, stdout) =>
      error === null ? resolve() : reject(new Error(`tsc failed: ${error.message}\n${stdout}`)),
    ),
  );
  // Bundled as `npm run prepare` does: the tests run what the `commy` bin runs.
  await new Promise<void>((resolve, reject) =>
    execFile(
      process.execPath,
      [join(PACKAGE_ROOT, "scripts/bundle-cli.mjs"), outDir],
      { cwd: PACKAGE_ROOT, timeout: 60_000 },
      (error, stdout) =>
        error === null
          ? resolve()
          : reject(new Error(`bundling failed: ${error.message}\n${stdout}`)),
    ),
  );
  return {
    main: join(outDir, "src/cli/commy.js"),
    remove: () => rmSync(outDir, { recursive: true, force: true }),
  };
}

/**
 * The native addon is found relative to the compiled src/shm/native.js
 * ("../../../build/Release", as from dist/src/shm): a link next to the
 * build folders lets `commy serve` from them load the package's build/.
 */
function linkNativeBuild(): void {
  try {
    symlinkSync(join(PACKAGE_ROOT, "build"), join(BUILD_ROOT, "build"), "dir");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
}

/** What a finished CLI process left. */
export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** How to run one command. */
export interface RunOptions {
  /** Environment on top of a clean one (no COMMY_*, HOME and XDG_CONFIG_HOME in `home`). */
  env?: Record<string, string>;
  /** Written to standard input, which is then closed. */
  input?: string | Uint8Array;
  timeoutMs?: number;
}

/** A folder that stands in for the user's home (and ~/.config) in a test. */
export interface FakeHome {
  readonly path: string;
  readonly configDir: string;
  remove(): void;
}

export function createFakeHome(): FakeHome {
  const path = mkdtempSync(join(tmpdir(), "commy-cli-home-"));
  const configDir = join(path, ".config");
  return { path, configDir, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** A clean environment: the parent's without COMMY_*, with a fake home. */
function cleanEnv(home: FakeHome, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith("COMMY_") && name !== "XDG_CONFIG_HOME" && name !== "NODE_OPTIONS")
      env[name] = value;
  }
  return { ...env, HOME: home.path, XDG_CONFIG_HOME: home.configDir, ...extra };
}

/** Runs the CLI with `home` as the user's home; kills it and fails after the timeout. */
export function runCli(
  cli: BuiltCli,
  home: FakeHome,
  args: readonly string[],
  options: RunOptions = {},
): Promise<CliResult> {
  const timeoutMs = options.timeoutMs ?? 15_000;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli.main, ...args], {
      env: cleanEnv(home, options.env),
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`commy ${args.join(" ")} ran longer than ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.end(options.input ?? "");
  });
}

/** A CLI process that keeps running (var watch), read line by line. */
export interface RunningCli {
  /** Waits (bounded) for a stdout line that satisfies `match`; returns it. */
  waitForLine(match: (line: string) => boolean, timeoutMs?: number): Promise<string>;
  /** Sends `signal` and waits (bounded) for the process to end. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<CliResult>;
}

export function startCli(
  cli: BuiltCli,
  home: FakeHome,
  args: readonly string[],
  options: RunOptions = {},
): RunningCli {
  const child: ChildProcess = spawn(process.execPath, [cli.main, ...args], {
    env: cleanEnv(home, options.env),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString("utf8");
    const complete = stdout.split("\n").slice(0, -1);
    lines.splice(0, lines.length, ...complete);
    for (const wake of waiters) wake();
  });
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  const closed = new Promise<CliResult>((resolve) =>
    child.on("close", (code, signal) => {
      for (const wake of waiters) wake();
      resolve({ code, signal, stdout, stderr });
    }),
  );
  return {
    waitForLine: (match, timeoutMs = 15_000) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          const found = lines.find(match);
          if (found !== undefined) return finish(() => resolve(found));
          if (child.exitCode !== null || child.signalCode !== null) {
            finish(() =>
              reject(new Error(`commy exited before the line came\n${stdout}\n${stderr}`)),
            );
          }
        };
        const timer = setTimeout(
          () =>
            finish(() =>
              reject(new Error(`no such line in ${timeoutMs} ms\n${stdout}\n${stderr}`)),
            ),
          timeoutMs,
        );
        const finish = (settle: () => void): void => {
          clearTimeout(timer);
          waiters.delete(check);
          settle();
        };
        waiters.add(check);
        check();
      }),
    stop: async (signal = "SIGINT", timeoutMs = 15_000) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          child.kill("SIGKILL");
          reject(new Error(`commy did not stop within ${timeoutMs} ms after ${signal}`));
        }, timeoutMs);
      });
      try {
        return await Promise.race([closed, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
