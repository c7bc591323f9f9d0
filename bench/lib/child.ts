/**
 * Child processes for cross-process measurements: a TypeScript script run
 * under tsx, talking to the bench over an IPC channel. Every wait for a
 * message is bounded, and `stop()` kills what is still running.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const PACKAGE_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** A message either side sends; every message has a `type`. */
export interface Message {
  type: string;
  [key: string]: unknown;
}

export class BenchChild {
  readonly #process: ChildProcess;
  readonly #inbox: Message[] = [];
  #stderr = "";
  #exit: string | undefined;
  readonly #waiting = new Set<() => void>();

  /** Runs `script` (a path or file: URL) with `args` under tsx, with `env` added. */
  constructor(script: string | URL, args: readonly string[] = [], env: NodeJS.ProcessEnv = {}) {
    const path = script instanceof URL ? fileURLToPath(script) : script;
    this.#process = spawn(process.execPath, ["--import", "tsx", path, ...args], {
      cwd: PACKAGE_ROOT,
      env: { ...process.env, ...env },
      stdio: ["ignore", "inherit", "pipe", "ipc"],
    });
    this.#process.stderr?.setEncoding("utf8");
    this.#process.stderr?.on("data", (chunk: string) => (this.#stderr += chunk));
    this.#process.on("message", (message: Message) => {
      this.#inbox.push(message);
      this.#wakeWaiting();
    });
    this.#process.on("exit", (code, signal) => {
      this.#exit = `code ${String(code)}, signal ${String(signal)}`;
      this.#wakeWaiting();
    });
  }

  get pid(): number | undefined {
    return this.#process.pid;
  }

  send(message: Message): void {
    this.#process.send(message);
  }

  /** The next message of `type`; rejects on an "error" message, an exit or the timeout. */
  next(type: string, timeoutMs = 30_000): Promise<Message> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(check);
        reject(new Error(`no "${type}" from the child within ${timeoutMs} ms\n${this.#stderr}`));
      }, timeoutMs);
      const check = (): void => {
        const index = this.#inbox.findIndex((m) => m.type === type || m.type === "error");
        const found = index >= 0 ? this.#inbox.splice(index, 1)[0] : undefined;
        if (found === undefined && this.#exit === undefined) return;
        clearTimeout(timer);
        this.#waiting.delete(check);
        if (found?.type === type) resolve(found);
        else if (found !== undefined) reject(new Error(`child failed: ${String(found.message)}`));
        else reject(new Error(`child exited (${this.#exit}) before "${type}"\n${this.#stderr}`));
      };
      this.#waiting.add(check);
      check();
    });
  }

  /** Kills the child if it still runs and waits until it is gone (bounded). */
  stop(): Promise<void> {
    return this.#exit === undefined ? killAndWait(this.#process) : Promise.resolve();
  }

  #wakeWaiting(): void {
    for (const check of [...this.#waiting]) check();
  }
}

/**
 * The child's side: reports an uncaught failure to the parent as an
 * "error" message, then exits. Call once at the top of a child script.
 */
export function reportFailuresToParent(): void {
  process.on("uncaughtException", reportFailure);
  process.on("unhandledRejection", reportFailure);
  // The bench went away: do not linger.
  process.on("disconnect", () => process.exit(0));
}

/** Sends a message to the parent; resolves once it is handed to the OS. */
export function sendToParent(message: Message): Promise<void> {
  return new Promise((resolve, reject) => {
    if (process.send === undefined) {
      reject(new Error("this script runs as a bench child (with an IPC channel) only"));
      return;
    }
    process.send(message, (error: Error | null) => (error ? reject(error) : resolve()));
  });
}

/** Calls `handle` for each message from the parent. */
export function onParentMessage(handle: (message: Message) => void | Promise<void>): void {
  process.on("message", (message: Message) => {
    void Promise.resolve()
      .then(() => handle(message))
      .catch(reportFailure);
  });
}

function reportFailure(error: unknown): void {
  const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
  if (process.send === undefined) {
    console.error(message);
    process.exit(1);
  }
  process.send({ type: "error", message }, () => process.exit(1));
}

/** Kills a child process that still runs and waits until it is gone (at most 5 s). */
export async function killAndWait(child: ChildProcess): Promise<void> {
  const gone = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGKILL");
  await Promise.race([gone, new Promise((resolve) => setTimeout(resolve, 5_000))]);
}
