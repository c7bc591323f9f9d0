/**
 * Shared helpers of the service-file tests: temporary directories and child
 * processes that run test/shm/fixtures/shm-child.ts under tsx and talk back
 * over an IPC channel. Tests synchronise on those messages, never on sleeps.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ShmError, type ShmErrorCode } from "../../src/shm/index.js";

const CHILD_SCRIPT = fileURLToPath(new URL("./fixtures/shm-child.ts", import.meta.url));
const PACKAGE_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** A fresh directory under os.tmpdir(); `cleanup()` removes it. */
export function makeTempDir(prefix = "commy-shm-"): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A message a child sends; every message has a `type`. */
export interface ChildMessage {
  type: string;
  [key: string]: unknown;
}

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A child process running one mode of the fixture script. */
export class Child {
  readonly process: ChildProcess;
  readonly exited: Promise<ChildExit>;
  #exit: ChildExit | undefined;
  #stderr = "";
  readonly #inbox: ChildMessage[] = [];
  readonly #waiting = new Set<() => void>();

  constructor(mode: string, options: Record<string, unknown>) {
    this.process = spawn(
      process.execPath,
      ["--import", "tsx", CHILD_SCRIPT, mode, JSON.stringify(options)],
      { cwd: PACKAGE_ROOT, stdio: ["ignore", "inherit", "pipe", "ipc"] },
    );
    this.process.stderr?.setEncoding("utf8");
    this.process.stderr?.on("data", (chunk: string) => (this.#stderr += chunk));
    this.process.on("message", (message: ChildMessage) => {
      this.#inbox.push(message);
      this.#notify();
    });
    this.exited = new Promise((resolve) => {
      this.process.on("exit", (code, signal) => {
        this.#exit = { code, signal };
        this.#notify();
        resolve(this.#exit);
      });
    });
  }

  get pid(): number {
    return this.process.pid as number;
  }

  get stderr(): string {
    return this.#stderr;
  }

  /** Every message received so far. */
  get messages(): readonly ChildMessage[] {
    return this.#inbox;
  }

  send(message: ChildMessage): void {
    this.process.send(message);
  }

  /**
   * The first not yet taken message of this type: waits for it, and fails
   * when the child exits first, reports an error, or the time runs out.
   */
  next(type: string, timeoutMs = 15_000): Promise<ChildMessage> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const index = this.#inbox.findIndex((m) => m.type === type);
        if (index >= 0) {
          finish();
          resolve(this.#inbox.splice(index, 1)[0] as ChildMessage);
          return;
        }
        const failure = this.#inbox.find((m) => m.type === "error");
        if (failure !== undefined) {
          finish();
          reject(new Error(`child failed: ${String(failure.message)}\n${this.#stderr}`));
          return;
        }
        if (this.#exit !== undefined) {
          finish();
          reject(
            new Error(
              `child exited (${JSON.stringify(this.#exit)}) before sending "${type}"\n${this.#stderr}`,
            ),
          );
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`no "${type}" message from the child within ${timeoutMs} ms`));
      }, timeoutMs);
      const finish = (): void => {
        clearTimeout(timer);
        this.#waiting.delete(check);
      };
      this.#waiting.add(check);
      check();
    });
  }

  /** Kills the child (SIGKILL unless told otherwise) and waits for it to be gone. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<ChildExit> {
    if (this.#exit === undefined) this.process.kill(signal);
    return this.exited;
  }

  /** Waits for the child to exit by itself; fails on a non-zero exit. */
  async done(timeoutMs = 15_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const exit = await Promise.race([
      this.exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("the child did not exit in time")), timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
    if (exit.code !== 0) {
      throw new Error(`child exited with ${JSON.stringify(exit)}\n${this.#stderr}`);
    }
  }

  #notify(): void {
    for (const check of [...this.#waiting]) check();
  }
}

/** Starts children and kills whatever is still running at the end of a test. */
export class Children {
  readonly #all: Child[] = [];

  start(mode: string, options: Record<string, unknown>): Child {
    const child = new Child(mode, options);
    this.#all.push(child);
    return child;
  }

  async killAll(): Promise<void> {
    await Promise.all(this.#all.map((child) => child.kill()));
    this.#all.length = 0;
  }
}

/** Runs `fn` and returns the ShmError code it throws; fails if it throws anything else. */
export function shmErrorCode(fn: () => unknown): ShmErrorCode | "no error" {
  try {
    fn();
  } catch (error) {
    if (error instanceof ShmError) return error.code;
    throw error;
  }
  return "no error";
}

/** A value whose every byte is `version & 0xff`: a torn copy cannot pass `isUniform`. */
export function uniformValue(version: number, length: number): Buffer {
  return Buffer.alloc(length, version & 0xff);
}

/** True when every byte of `data` is `version & 0xff`. */
export function isUniform(data: Uint8Array, version: number): boolean {
  const byte = version & 0xff;
  for (const b of data) if (b !== byte) return false;
  return true;
}
