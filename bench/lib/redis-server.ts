/**
 * A throw-away Redis server for comparisons: Debian's redis-server,
 * installed with apt-get when it is missing (as root, the way this
 * project's machines are set up), started on a free loopback port without
 * persistence, and stopped by its own pid.
 *
 * COMMY_BENCH_REDIS=0 skips Redis (and so the comparison) altogether.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RespConnection } from "./resp-client.js";

/** A running redis-server, or why there is none. */
export type RedisStart = { server: RedisServer } | { skipped: string };

export interface RedisServer {
  readonly port: number;
  /** What `redis-server --version` says. */
  readonly version: string;
  stop(): Promise<void>;
}

const INSTALL_TIMEOUT_MS = 300_000;

/** The redis-server version line, or undefined when it is not installed. */
function installedVersion(): string | undefined {
  try {
    return execFileSync("redis-server", ["--version"], { encoding: "utf8", stdio: "pipe" }).trim();
  } catch {
    return undefined;
  }
}

/** Installs redis-server with apt-get (updating the lists if the first try fails). */
function install(log: (message: string) => void): string | undefined {
  if (process.platform !== "linux") return "redis-server is missing (apt-get is for Linux only)";
  if (process.getuid?.() !== 0) return "redis-server is missing and installing it needs root";
  const apt = (args: string[]): boolean => {
    try {
      execFileSync("apt-get", args, {
        stdio: "ignore",
        timeout: INSTALL_TIMEOUT_MS,
        env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
      });
      return true;
    } catch {
      return false;
    }
  };
  log("redis-server is missing: apt-get install -y redis-server");
  if (apt(["install", "-y", "redis-server"])) return undefined;
  log("apt-get install failed: apt-get update, then again");
  if (apt(["update"]) && apt(["install", "-y", "redis-server"])) return undefined;
  return "apt-get could not install redis-server";
}

/** A TCP port nobody listens on right now (the OS picks it). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

/** Answers PING within `timeoutMs`, polling every 50 ms. */
async function waitUntilServing(port: number, child: ChildProcess, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && child.exitCode === null) {
    try {
      const connection = await RespConnection.connect(port, 1_000);
      const reply = await connection.command(["PING"]);
      connection.close();
      if (reply === "PONG") return true;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}

/**
 * Starts redis-server on a free loopback port: no RDB, no AOF, its working
 * directory a fresh temporary one, and no output-buffer limit for pub/sub
 * clients (the throughput case lets subscribers fall behind for a moment;
 * with the default limits Redis would cut them off, which is not what is
 * measured).
 */
export async function startRedis(log: (message: string) => void): Promise<RedisStart> {
  if (process.env.COMMY_BENCH_REDIS === "0") return { skipped: "COMMY_BENCH_REDIS=0" };
  let version = installedVersion();
  if (version === undefined) {
    const failure = install(log);
    version = installedVersion();
    if (version === undefined) return { skipped: failure ?? "redis-server is not installed" };
  }
  const dir = mkdtempSync(join(tmpdir(), "commy-bench-redis-"));
  // Two tries: another process may take the free port between probe and listen.
  for (let attempt = 0; attempt < 2; attempt++) {
    const port = await freePort();
    const child = spawn(
      "redis-server",
      [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        dir,
        "--client-output-buffer-limit",
        "pubsub 0 0 0",
        "--daemonize",
        "no",
      ],
      { stdio: "ignore" },
    );
    const exit = new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      child.once("error", () => resolve()); // could not even start
    });
    // Bounded: a process that does not go within 5 s is left to SIGKILL.
    const exited = (): Promise<boolean> =>
      new Promise((resolve) => {
        const timer = setTimeout(() => resolve(false), 5_000);
        void exit.then(() => {
          clearTimeout(timer);
          resolve(true);
        });
      });
    if (await waitUntilServing(port, child, 5_000)) {
      const stop = async (): Promise<void> => {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
        if (!(await exited())) {
          child.kill("SIGKILL");
          await exited();
        }
        rmSync(dir, { recursive: true, force: true });
      };
      return { server: { port, version, stop } };
    }
    child.kill("SIGKILL");
    await exited();
  }
  rmSync(dir, { recursive: true, force: true });
  return { skipped: "redis-server did not start (see its log by running it by hand)" };
}
