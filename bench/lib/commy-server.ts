/**
 * A Commy server in a child process (bench/servers/commy-server.ts), for
 * the API benchmarks: the load generator and the bench process do not
 * share the server's event loop, and the server's own CPU time per call
 * can be read from it. Each server gets a fresh data directory, removed
 * when it stops.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { CPU_ENV } from "./affinity.js";
import { BenchChild } from "./child.js";

const SERVER_SCRIPT = new URL("../servers/commy-server.ts", import.meta.url);

export interface CommyServerOptions {
  /** The folder under which the server's data directory is made. */
  baseDir: string;
  /** A name for the data directory (and for messages). */
  name: string;
  /** Start it with unsafeSkipAuthenticationForBenchmarks: every call runs as the admin. */
  skipAuthentication?: boolean;
  /** The CPU the server's main thread is pinned to (see affinity.ts). */
  cpu?: number;
  /** The admin token; a random one by default. */
  adminToken?: string;
  /** Prometheus metrics on (the server's default) or off. */
  metrics?: boolean;
  /** The server's log level (default "silent": the bench measures the server, not its logging). */
  logLevel?: string;
}

/** What the server process has used so far. */
export interface ServerUsage {
  /** CPU time of the whole process (all threads), µs. */
  cpuMicros: number;
  rssBytes: number;
  /** Heap in use, after a full collection when the child can collect. */
  heapUsedBytes: number;
}

export class CommyServerProcess {
  readonly #child: BenchChild;
  readonly #dataDir: string;
  readonly name: string;
  readonly adminToken: string;
  #port = 0;

  private constructor(child: BenchChild, dataDir: string, name: string, adminToken: string) {
    this.#child = child;
    this.#dataDir = dataDir;
    this.name = name;
    this.adminToken = adminToken;
  }

  /** Starts a server and waits (bounded) until it listens. */
  static async start(options: CommyServerOptions): Promise<CommyServerProcess> {
    const dataDir = mkdtempSync(join(options.baseDir, `${options.name}-`));
    const adminToken = options.adminToken ?? `ca_bench_${randomBytes(24).toString("hex")}`;
    const child = new BenchChild(SERVER_SCRIPT, [dataDir], {
      COMMY_BENCH_ADMIN_TOKEN: adminToken,
      COMMY_BENCH_SKIP_AUTH: options.skipAuthentication === true ? "1" : "0",
      COMMY_BENCH_METRICS: options.metrics === false ? "0" : "1",
      COMMY_BENCH_LOG_LEVEL: options.logLevel ?? "silent",
      [CPU_ENV]: options.cpu === undefined ? "" : String(options.cpu),
      // Lets the child collect garbage before it reports its heap.
      NODE_OPTIONS: [process.env.NODE_OPTIONS ?? "", "--expose-gc"].join(" ").trim(),
    });
    const server = new CommyServerProcess(child, dataDir, options.name, adminToken);
    try {
      const ready = await child.next("ready", 60_000);
      server.#port = Number(ready.port);
    } catch (error) {
      await server.#kill();
      throw error;
    }
    return server;
  }

  get port(): number {
    return this.#port;
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** http://127.0.0.1:<port> */
  get baseUrl(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** CPU time and memory of the server process so far. */
  async usage(options: { collect?: boolean } = {}): Promise<ServerUsage> {
    this.#child.send({ type: "usage", collect: options.collect === true });
    const reply = await this.#child.next("usage", 30_000);
    return {
      cpuMicros: Number(reply.cpuMicros),
      rssBytes: Number(reply.rssBytes),
      heapUsedBytes: Number(reply.heapUsedBytes),
    };
  }

  /** Closes the server gracefully (bounded), then makes sure the process is gone. */
  async stop(): Promise<void> {
    try {
      this.#child.send({ type: "close" });
      await this.#child.next("closed", 10_000);
    } catch {
      // Not closing in time: killed below.
    }
    await this.#kill();
  }

  async #kill(): Promise<void> {
    await this.#child.stop();
    rmSync(this.#dataDir, { recursive: true, force: true });
  }
}
