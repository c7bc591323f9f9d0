/**
 * Pairs of Connect unary calls driven by a C program
 * (bench/load/connect_pairs.c, built at run time with `cc -O2`): each pair
 * sends one call, waits for it, sends the other. With a counter, both
 * bodies carry the pair's number at the same place, so that each
 * CreateService + DeleteService pair names a service never used before —
 * what h2load, which repeats one body, cannot do.
 */
import { fileURLToPath } from "node:url";
import { buildCProgram } from "./c-program.js";
import { type UnaryCall, runBounded } from "./unary-load.js";

const SOURCE = fileURLToPath(new URL("../load/connect_pairs.c", import.meta.url));

/** Where in both bodies the pair's number goes, as `width` zero-padded decimal digits. */
export interface PairCounter {
  offset: number;
  width: number;
}

export interface PairSpec {
  /** http://127.0.0.1:<port> */
  baseUrl: string;
  first: UnaryCall;
  second: UnaryCall;
  /** Absent: both calls are sent as they are (the Echo floor). */
  counter?: PairCounter;
  /** Connections, each with one pair in flight. */
  connections: number;
  pairs: number;
  /** A run stops after this long in any case. */
  limitSeconds: number;
}

export interface PairResult {
  /** Pairs that ended (all with status 200: any other fails the run). */
  pairs: number;
  seconds: number;
  /** Each pair's time in µs, in the order pairs ended. */
  pairMicros: number[];
}

export class PairLoad {
  readonly description = "bench/load/connect_pairs.c: Connect unary over HTTP/1.1 keep-alive";

  private constructor(
    private readonly binary: string,
    private readonly cpu: number | undefined,
  ) {}

  /**
   * Builds the program into `workDir`; `cpu` pins it there (taskset).
   * Returns a reason instead when it cannot be built here.
   */
  static build(workDir: string, cpu: number | undefined): PairLoad | { skipped: string } {
    const binary = buildCProgram(SOURCE, workDir, "connect_pairs", ["-pthread"]);
    return typeof binary === "string" ? new PairLoad(binary, cpu) : binary;
  }

  async run(spec: PairSpec): Promise<PairResult> {
    const url = new URL(spec.baseUrl);
    const args = [
      this.binary,
      url.hostname,
      url.port,
      String(spec.connections),
      String(spec.pairs),
      String(spec.limitSeconds),
      spec.first.path,
      Buffer.from(spec.first.body).toString("hex"),
      spec.second.path,
      Buffer.from(spec.second.body).toString("hex"),
      String(spec.counter?.offset ?? -1),
      String(spec.counter?.width ?? 0),
    ];
    const command = this.cpu === undefined ? args : ["taskset", "-c", String(this.cpu), ...args];
    const output = await runBounded(command, (spec.limitSeconds + 30) * 1000, {
      COMMY_BENCH_AUTHORIZATION: spec.first.headers.authorization ?? "",
    });
    return parsePairOutput(output);
  }
}

/**
 * The counter of two calls whose bodies hold `placeholder` (a run of
 * `width` zeros in a name) at the same offset.
 */
export function pairCounter(first: UnaryCall, second: UnaryCall, placeholder: string): PairCounter {
  const offsets = [first, second].map((call) => Buffer.from(call.body).indexOf(placeholder));
  const [offset] = offsets;
  if (offset === undefined || offset < 0 || offsets.some((o) => o !== offset)) {
    throw new Error(`"${placeholder}" is not at one offset in both bodies`);
  }
  return { offset, width: placeholder.length };
}

function parsePairOutput(output: string): PairResult {
  const [summary, ...lines] = output.trim().split("\n");
  const match = /^pairs (\d+) seconds ([\d.]+)$/.exec(summary ?? "");
  if (match === null) throw new Error(`cannot read connect_pairs' output:\n${output}`);
  return {
    pairs: Number(match[1]),
    seconds: Number(match[2]),
    pairMicros: lines.map(Number),
  };
}
