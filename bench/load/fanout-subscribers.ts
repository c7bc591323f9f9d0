/**
 * The subscriber fleet in C (fanout-subscriber.c, built at run time with
 * `cc -O2`): one process per group, one epoll thread holding all of the
 * group's connections, for Commy, its fan-out floor and Redis alike. It answers the same
 * questions as the Node subscribers (stream-fleet.ts), so the stream
 * suite's cases run on either. Every wait is bounded; `stop()` kills what
 * still runs, by pid.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { type MessageInitShape, create, toBinary } from "@bufbuild/protobuf";
import { WatchRequestSchema } from "../../gen/commy/v1/watch_pb.js";
import { buildCProgram } from "../lib/c-program.js";
import { type Message, killAndWait } from "../lib/child.js";
import { grpcFrame } from "../lib/grpc-frame-stream.js";
import {
  type Collected,
  type GroupSpec,
  type Subscribers,
  sumCollected,
} from "../suites/stream-fleet.js";

const SOURCE = fileURLToPath(new URL("./fanout-subscriber.c", import.meta.url));
/** Opening waits for every subscription's answer; the program itself gives up after 60 s. */
const OPEN_MS = 90_000;
const ANSWER_MS = 60_000;

type WatchRequestInit = MessageInitShape<typeof WatchRequestSchema>;

/** Listen streams of the bench EchoService: the fan-out floor (the C fleet alone follows them). */
export interface ListenSpec {
  kind: "listen";
  url: string;
  token: string;
}

export class CSubscriberFleet implements Subscribers {
  readonly #groups = new Map<string, FanoutProcess>();

  private constructor(readonly binary: string) {}

  /**
   * Builds the program into `workDir`. Returns a reason instead when it
   * cannot be built here (no `cc`, not Linux), so the caller can fall back.
   */
  static build(workDir: string): CSubscriberFleet | { skipped: string } {
    const binary = buildCProgram(SOURCE, workDir, "fanout-subscriber", ["-Wextra"]);
    return typeof binary === "string" ? new CSubscriberFleet(binary) : binary;
  }

  async open(group: string, spec: GroupSpec | ListenSpec, connections: number): Promise<void> {
    if (this.#groups.has(group)) throw new Error(`group ${group} is open already`);
    const token = spec.kind === "redis" ? "" : spec.token;
    const child = new FanoutProcess(this.binary, argumentsFor(spec, connections), token);
    this.#groups.set(group, child);
    try {
      await child.next("opened", OPEN_MS);
    } catch (error) {
      await this.#stopGroup(group);
      throw error;
    }
  }

  async arm(group: string, count: number): Promise<void> {
    await this.#ask(group, `arm ${count}`, "armed", ANSWER_MS);
  }

  async collect(group: string, timeoutMs: number): Promise<Collected> {
    const answer = await this.#ask(
      group,
      `collect ${timeoutMs}`,
      '{"type":"collected"',
      timeoutMs + ANSWER_MS,
    );
    return sumCollected([JSON.parse(answer) as Message]);
  }

  async close(group: string): Promise<void> {
    await this.#ask(group, "close", "closed", ANSWER_MS);
    await this.#stopGroup(group);
  }

  async stop(): Promise<void> {
    for (const group of [...this.#groups.keys()]) await this.#stopGroup(group);
  }

  #ask(group: string, command: string, answer: string, timeoutMs: number): Promise<string> {
    const child = this.#groups.get(group);
    if (child === undefined) throw new Error(`no group ${group}`);
    child.send(command);
    return child.next(answer, timeoutMs);
  }

  async #stopGroup(group: string): Promise<void> {
    await this.#groups.get(group)?.stop();
    this.#groups.delete(group);
  }
}

/** The program's command line for one group (a Commy token goes in the environment). */
function argumentsFor(spec: GroupSpec | ListenSpec, connections: number): string[] {
  if (spec.kind === "redis") return ["redis", String(spec.port), String(connections), spec.channel];
  const url = new URL(spec.url);
  if (spec.kind === "listen") return ["listen", url.port, String(connections), url.host];
  return ["commy", url.port, String(connections), url.host, watchRequests(spec).toString("hex")];
}

/**
 * What each Watch stream sends: a subscription to each variable, then a
 * ping, whose pong tells the program that every subscription was answered.
 */
function watchRequests(spec: Extract<GroupSpec, { kind: "commy" }>): Buffer {
  const where = { tenantId: spec.tenant, serviceName: spec.service };
  const commands: WatchRequestInit["command"][] = spec.variables.map((variableName, i) => ({
    case: "subscribe",
    value: { requestId: String(i + 1), subscription: { ...where, variableName } },
  }));
  commands.push({ case: "ping", value: { requestId: String(spec.variables.length + 1) } });
  return Buffer.concat(
    commands.map((command) =>
      grpcFrame(toBinary(WatchRequestSchema, create(WatchRequestSchema, { command }))),
    ),
  );
}

/**
 * One running fanout-subscriber: commands go to its stdin, one a line;
 * each answer is one line of its stdout ("error …" fails the wait).
 */
class FanoutProcess {
  readonly #process: ChildProcess;
  readonly #lines: string[] = [];
  #stderr = "";
  #exit: string | undefined;
  #wake: (() => void) | undefined;

  constructor(binary: string, args: readonly string[], token: string) {
    this.#process = spawn(binary, args, {
      env: { ...process.env, COMMY_BENCH_TOKEN: token },
      stdio: ["pipe", "pipe", "pipe"],
    });
    this.#process.stderr?.setEncoding("utf8");
    this.#process.stderr?.on("data", (chunk: string) => (this.#stderr += chunk));
    // A failure to write shows as the process's exit; without a listener it would throw.
    this.#process.stdin?.on("error", () => undefined);
    if (this.#process.stdout !== null) {
      createInterface({ input: this.#process.stdout, crlfDelay: Infinity }).on("line", (line) => {
        this.#lines.push(line);
        this.#wake?.();
      });
    }
    this.#process.on("exit", (code, signal) => {
      this.#exit = `code ${String(code)}, signal ${String(signal)}`;
      this.#wake?.();
    });
    this.#process.on("error", (error) => {
      this.#exit = error.message;
      this.#wake?.();
    });
  }

  send(command: string): void {
    this.#process.stdin?.write(`${command}\n`);
  }

  /**
   * The next line the program prints, which must start with `answer`;
   * rejects on "error …", another line, its exit or the timeout.
   */
  next(answer: string, timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        reject(
          new Error(`no answer from fanout-subscriber within ${timeoutMs} ms\n${this.#stderr}`),
        );
      }, timeoutMs);
      const check = (): void => {
        const line = this.#lines.shift();
        if (line === undefined && this.#exit === undefined) return;
        clearTimeout(timer);
        this.#wake = undefined;
        if (line === undefined)
          reject(new Error(`fanout-subscriber exited (${this.#exit})\n${this.#stderr}`));
        else if (line.startsWith(answer)) resolve(line);
        else reject(new Error(`fanout-subscriber: ${line.slice(0, 500)}`));
      };
      this.#wake = check;
      check();
    });
  }

  /** Ends the program if it still runs and waits until it is gone (bounded). */
  stop(): Promise<void> {
    return this.#exit === undefined ? killAndWait(this.#process) : Promise.resolve();
  }
}
