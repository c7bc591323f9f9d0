/**
 * Load for Connect unary calls over HTTP/2 (h2c, one port): the same
 * request, again and again, with a fixed number of calls in flight on one
 * connection. Driven by h2load (Debian's nghttp2-client), a C client that
 * takes little CPU from the server on a 2-core machine; when h2load cannot
 * be had, by a Node HTTP/2 client in the bench process (the figures then
 * carry that client's cost, which a note says).
 *
 * A Connect unary call is a plain POST: the path is
 * /<package.Service>/<Method>, the body the binary request message with
 * `content-type: application/proto`, and the status 200 on success (an
 * error is a 4xx/5xx with a JSON body), so h2load can count successes by
 * status.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect as http2Connect, constants as http2Constants } from "node:http2";
import { join } from "node:path";
import {
  type DescMessage,
  type DescMethodUnary,
  type MessageInitShape,
  create,
  toBinary,
} from "@bufbuild/protobuf";
import { nowNs } from "./timing.js";

/** One unary call, ready to be sent any number of times. */
export interface UnaryCall {
  /** Short name, used for the request file. */
  name: string;
  /** "/commy.v1.CommyService/ReadVariable" */
  path: string;
  body: Uint8Array;
  headers: Record<string, string>;
}

/** The Connect unary call of `method` with the request `init`, as the holder of `bearer`. */
export function connectUnaryCall<I extends DescMessage, O extends DescMessage>(
  name: string,
  method: DescMethodUnary<I, O>,
  init: MessageInitShape<I>,
  bearer?: string,
): UnaryCall {
  const headers: Record<string, string> = {
    "content-type": "application/proto",
    "connect-protocol-version": "1",
  };
  if (bearer !== undefined) headers.authorization = `Bearer ${bearer}`;
  return {
    name,
    path: `/${method.parent.typeName}/${method.name}`,
    body: toBinary(method.input, create(method.input, init)),
    headers,
  };
}

/** How to load the server with one call. */
export interface LoadSpec {
  /** http://127.0.0.1:<port> */
  baseUrl: string;
  call: UnaryCall;
  /** Calls in flight at once on the one connection. */
  inFlight: number;
  /** Stop after this many calls… */
  requests?: number;
  /** …or after this many seconds (one of the two). */
  seconds?: number;
  /** Record each call's time (request sent → response ended). */
  latencies?: boolean;
  /** The status class every call must end with (default 2xx); anything else is an error. */
  expect?: "2xx" | "4xx";
}

export interface LoadResult {
  /** Calls that ended. */
  done: number;
  /** Calls ended with the expected status class. */
  expected: number;
  /** Completed calls per second over the measured time. */
  rate: number;
  /** Each call's time in µs, in the order calls ended (when asked for). */
  latenciesMicros?: Float64Array;
}

export interface LoadGenerator {
  /** "h2load nghttp2/1.52.0", or the Node fallback. */
  readonly description: string;
  /** Set when this is not h2load: why, for the notes. */
  readonly fallbackReason?: string;
  run(spec: LoadSpec): Promise<LoadResult>;
}

/**
 * h2load when it is there or can be installed (apt-get, as root; set
 * COMMY_BENCH_INSTALL=0 to never try), else the Node client
 * (COMMY_BENCH_LOAD=node picks it in any case). `dir` holds
 * request files and per-call logs; `cpu` pins h2load (taskset) there.
 */
export function loadGenerator(
  dir: string,
  log: (message: string) => void,
  cpu?: number,
): LoadGenerator {
  if (process.env.COMMY_BENCH_LOAD === "node") {
    return new NodeHttp2Load("COMMY_BENCH_LOAD=node asks for the Node client");
  }
  const found = findH2load(log);
  if ("version" in found) return new H2load(dir, found.version, cpu);
  log(`h2load unavailable (${found.missing}): using the Node HTTP/2 client`);
  return new NodeHttp2Load(found.missing);
}

// ---- h2load ----

function h2loadVersion(): string | undefined {
  const probe = spawnSync("h2load", ["--version"], { encoding: "utf8", timeout: 10_000 });
  if (probe.status !== 0) return undefined;
  return probe.stdout.trim().split("\n")[0];
}

function findH2load(log: (message: string) => void): { version: string } | { missing: string } {
  const version = h2loadVersion();
  if (version !== undefined) return { version };
  if (process.env.COMMY_BENCH_INSTALL === "0") {
    return { missing: "not installed; COMMY_BENCH_INSTALL=0 forbids installing it" };
  }
  if (process.platform !== "linux" || process.getuid?.() !== 0) {
    return { missing: "not installed; install Debian's nghttp2-client (needs root)" };
  }
  const install = (): boolean => {
    try {
      execFileSync("apt-get", ["install", "-y", "nghttp2-client"], {
        stdio: "ignore",
        timeout: 300_000,
        env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
      });
      return true;
    } catch {
      return false;
    }
  };
  log("h2load is missing: apt-get install -y nghttp2-client");
  if (!install()) {
    log("install failed: apt-get update, then again");
    try {
      execFileSync("apt-get", ["update"], { stdio: "ignore", timeout: 300_000 });
    } catch {
      return { missing: "apt-get update failed" };
    }
    if (!install()) return { missing: "apt-get install nghttp2-client failed" };
  }
  const installed = h2loadVersion();
  return installed === undefined
    ? { missing: "installed nghttp2-client but h2load does not run" }
    : { version: installed };
}

class H2load implements LoadGenerator {
  readonly description: string;
  readonly #dir: string;
  readonly #cpu: number | undefined;
  readonly #bodies = new Map<string, string>();
  #runs = 0;

  constructor(dir: string, version: string, cpu: number | undefined) {
    this.#dir = dir;
    this.description = version;
    this.#cpu = cpu;
  }

  async run(spec: LoadSpec): Promise<LoadResult> {
    const args = ["-c", "1", "-t", "1", "-m", String(spec.inFlight), "-d", this.#bodyFile(spec)];
    for (const [name, value] of Object.entries(spec.call.headers))
      args.push("-H", `${name}: ${value}`);
    if (spec.requests !== undefined) args.push("-n", String(spec.requests));
    else if (spec.seconds !== undefined) args.push("-D", `${Math.round(spec.seconds * 1000)}ms`);
    else throw new Error("a load run needs requests or seconds");
    const logFile = join(this.#dir, `h2load-${++this.#runs}.log`);
    if (spec.latencies === true) args.push(`--log-file=${logFile}`);
    args.push(`${spec.baseUrl}${spec.call.path}`);
    // A generous bound: no run of the suites is meant to take over a minute.
    const limitMs = (spec.seconds ?? 60) * 1000 + 60_000;
    const command =
      this.#cpu === undefined
        ? ["h2load", ...args]
        : ["taskset", "-c", String(this.#cpu), "h2load", ...args];
    const output = await runBounded(command, limitMs);
    const result = parseH2load(output, spec.expect ?? "2xx");
    if (spec.latencies === true) {
      result.latenciesMicros = readLatencyLog(logFile);
      rmSync(logFile, { force: true });
    }
    return result;
  }

  #bodyFile(spec: LoadSpec): string {
    let path = this.#bodies.get(spec.call.name);
    if (path === undefined) {
      path = join(this.#dir, `${spec.call.name}.bin`);
      writeFileSync(path, spec.call.body);
      this.#bodies.set(spec.call.name, path);
    }
    return path;
  }
}

/** Runs a command, killing it after `limitMs`; resolves with its stdout, rejects on failure. */
export function runBounded(
  command: readonly string[],
  limitMs: number,
  env: Record<string, string> = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(command[0] as string, command.slice(1), {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), limitMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else
        reject(
          new Error(
            `${command.join(" ")} failed (code ${String(code)}, signal ${String(signal)})\n${stdout}${stderr}`,
          ),
        );
    });
  });
}

/** Reads h2load's summary: calls done, status classes, calls per second. */
export function parseH2load(output: string, expect: "2xx" | "4xx"): LoadResult {
  const finished = /finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(output);
  const requests = /requests: (\d+) total, (\d+) started, (\d+) done/.exec(output);
  const statuses = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(output);
  if (finished === null || requests === null || statuses === null) {
    throw new Error(`cannot read h2load's output:\n${output}`);
  }
  const done = Number(requests[3]);
  // Under -D, calls still in flight at the end have a status but are not "done".
  const counts = {
    "2xx": Number(statuses[1]),
    "3xx": Number(statuses[2]),
    "4xx": Number(statuses[3]),
    "5xx": Number(statuses[4]),
  };
  const expected = counts[expect];
  const others = Object.entries(counts).filter(([name, n]) => name !== expect && n > 0);
  if (done === 0 || expected === 0 || others.length > 0) {
    throw new Error(
      `h2load: ${done} calls ended, not all with ${expect} (the bench's calls are wrong):\n${output}`,
    );
  }
  return { done, expected: done, rate: Number(finished[1]) };
}

/** h2load --log-file: "start µs since the epoch \t status \t µs until the response ended". */
function readLatencyLog(path: string): Float64Array {
  const lines = readFileSync(path, "utf8")
    .split("\n")
    .filter((line) => line !== "");
  return Float64Array.from(lines, (line) => Number(line.split("\t")[2]));
}

// ---- the Node fallback ----

class NodeHttp2Load implements LoadGenerator {
  readonly description = `node:http2 client in the bench process (node ${process.version})`;
  constructor(readonly fallbackReason: string) {}

  async run(spec: LoadSpec): Promise<LoadResult> {
    const session = http2Connect(spec.baseUrl);
    try {
      await new Promise<void>((resolve, reject) => {
        session.once("connect", () => resolve());
        session.once("error", reject);
      });
      return await runOnSession(session, spec);
    } finally {
      session.close();
    }
  }
}

async function runOnSession(
  session: ReturnType<typeof http2Connect>,
  spec: LoadSpec,
): Promise<LoadResult> {
  const expectedClass = spec.expect === "4xx" ? 4 : 2;
  const limit = spec.requests ?? Number.MAX_SAFE_INTEGER;
  // Bounded in any case: by count, by duration, or by a minute.
  const deadline = performance.now() + (spec.seconds ?? 60) * 1000;
  const latencies: number[] = [];
  let started = 0;
  let done = 0;
  let expected = 0;
  const headers = {
    [http2Constants.HTTP2_HEADER_METHOD]: "POST",
    [http2Constants.HTTP2_HEADER_PATH]: spec.call.path,
    ...spec.call.headers,
  };
  const begin = nowNs();
  await new Promise<void>((resolve, reject) => {
    const launch = (): void => {
      started++;
      const t0 = nowNs();
      const stream = session.request(headers);
      let status = 0;
      stream.on("response", (response) => (status = Number(response[":status"])));
      stream.on("data", () => undefined);
      stream.on("error", reject);
      stream.on("end", () => {
        done++;
        if (Math.floor(status / 100) === expectedClass) expected++;
        if (spec.latencies === true) latencies.push(Number(nowNs() - t0) / 1000);
        if (started < limit && performance.now() < deadline) launch();
        else if (done === started) resolve();
      });
      stream.end(spec.call.body);
    };
    for (let i = 0; i < Math.min(spec.inFlight, limit); i++) launch();
  });
  const seconds = Number(nowNs() - begin) / 1e9;
  if (expected !== done) {
    throw new Error(`${done} calls ended, only ${expected} with the expected status`);
  }
  const result: LoadResult = { done, expected, rate: done / seconds };
  if (spec.latencies === true) result.latenciesMicros = Float64Array.from(latencies);
  return result;
}
