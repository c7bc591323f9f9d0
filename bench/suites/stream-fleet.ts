/**
 * The processes of the stream suite, as the bench drives them: a Commy
 * server (bench/servers/commy-server.ts), subscriber processes
 * (stream-subscriber.ts) that share each group of connections between
 * them, and one writer (stream-writer.ts). Each child answers one request
 * at a time; every wait is bounded.
 */
import { existsSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { BenchChild, type Message } from "../lib/child.js";
import { commyClients } from "../lib/commy-client.js";
import { CommyServerProcess } from "../lib/commy-server.js";

const SUBSCRIBER = new URL("./stream-subscriber.ts", import.meta.url);
const WRITER = new URL("./stream-writer.ts", import.meta.url);

const ANSWER_MS = 60_000;

async function ask(
  child: BenchChild,
  message: Message,
  answer: string,
  timeoutMs = ANSWER_MS,
): Promise<Message> {
  child.send(message);
  return child.next(answer, timeoutMs);
}

export interface ServiceSetup {
  name: string;
  variables: string[];
}

/**
 * A Commy server in a child process (bench/lib/commy-server.ts), whose data
 * directory is the only entry of `baseDir`, so that the service files a
 * local writer maps can be found.
 */
export class StreamServer {
  private constructor(
    readonly process: CommyServerProcess,
    readonly baseDir: string,
  ) {}

  static async start(baseDir: string, adminToken: string): Promise<StreamServer> {
    mkdirSync(baseDir, { recursive: true });
    const server = await CommyServerProcess.start({ baseDir, name: "commy", adminToken });
    return new StreamServer(server, baseDir);
  }

  get url(): string {
    return this.process.baseUrl;
  }

  /**
   * Creates the tenant, services and variables through the API; returns
   * each service file's path (where src/core/service-file-registry.ts keeps it).
   */
  async setup(
    tenantId: string,
    services: ServiceSetup[],
    valueBytes: number,
  ): Promise<Record<string, string>> {
    const [dataDir] = readdirSync(this.baseDir);
    if (dataDir === undefined) throw new Error(`no data directory in ${this.baseDir}`);
    const clients = commyClients(this.url, this.process.adminToken);
    const paths: Record<string, string> = {};
    try {
      await clients.commy.createTenant({ tenantId });
      for (const { name: serviceName, variables } of services) {
        const created = await clients.commy.createService({ tenantId, serviceName });
        const path = join(this.baseDir, dataDir, "services", `${created.service?.serviceId}.commy`);
        if (!existsSync(path)) throw new Error(`no service file at ${path}`);
        paths[serviceName] = path;
        // 100 at a time: one HTTP/2 connection, bounded concurrency.
        for (let i = 0; i < variables.length; i += 100) {
          await Promise.all(
            variables.slice(i, i + 100).map((variableName) =>
              clients.commy.allocateVariable({
                tenantId,
                serviceName,
                variableName,
                initialData: new Uint8Array(valueBytes),
              }),
            ),
          );
        }
      }
    } finally {
      clients.close();
    }
    return paths;
  }

  /** CPU time the server has used so far (all threads), µs. */
  async cpuMicros(): Promise<number> {
    return (await this.process.usage()).cpuMicros;
  }

  /** RSS and JS heap in use after a full collection, bytes. */
  async memory(): Promise<{ rss: number; heapUsed: number }> {
    const usage = await this.process.usage({ collect: true });
    return { rss: usage.rssBytes, heapUsed: usage.heapUsedBytes };
  }

  /** Closes the server gracefully (bounded) and removes its data directory. */
  close(): Promise<void> {
    return this.process.stop();
  }
}

/** What a group's subscribers saw in one run, over all processes. */
export interface Collected {
  /** One-way latency of each write each connection saw, µs. */
  latencies: number[];
  /** Writes × connections not seen (on their own). */
  lost: number;
  events: number;
  covered: number;
  skipped: number;
  /** When the last event arrived (CLOCK_MONOTONIC ns). */
  lastNs: bigint;
  /** Connections that had not seen the run's last write at the timeout. */
  unfinished: number;
  broken: string[];
  /** CPU the subscriber processes used from arm to collect, over that time (1 = one core). */
  cpuShare: number;
}

/**
 * Adds up the "collected" answers of the processes that hold a group's
 * connections (stream-subscriber.ts, or bench/load/fanout-subscriber.c):
 * latencies in µs, counts, lastNs as a decimal string, cpuMicros over
 * wallMicros since the run was armed, and `broken` when streams broke.
 */
export function sumCollected(parts: readonly Message[]): Collected {
  const total: Collected = {
    latencies: [],
    lost: 0,
    events: 0,
    covered: 0,
    skipped: 0,
    lastNs: 0n,
    unfinished: 0,
    broken: [],
    cpuShare: 0,
  };
  for (const part of parts) {
    for (const latency of part.latencies as number[]) total.latencies.push(latency);
    total.lost += Number(part.lost);
    total.events += Number(part.events);
    total.covered += Number(part.covered);
    total.skipped += Number(part.skipped);
    total.unfinished += Number(part.unfinished);
    const last = BigInt(String(part.lastNs));
    if (last > total.lastNs) total.lastNs = last;
    if (part.broken !== undefined) total.broken.push(String(part.broken));
    total.cpuShare += Number(part.cpuMicros) / Number(part.wallMicros);
  }
  return total;
}

/** Whoever holds subscriber connections for the cases: Node processes or the C fleet. */
export interface Subscribers {
  /** Opens `connections` connections of `group` (`first`: which process takes the first, if it matters). */
  open(group: string, spec: GroupSpec, connections: number, first?: number): Promise<void>;
  /** Starts a run: `count` > 0 writes 1..count, 0 a throughput run ended by END_SEQ. */
  arm(group: string, count: number): Promise<void>;
  /** Waits (bounded) for the run's last write on every connection, then reports. */
  collect(group: string, timeoutMs: number): Promise<Collected>;
  close(group: string): Promise<void>;
}

export type GroupSpec =
  | {
      kind: "commy";
      url: string;
      token: string;
      tenant: string;
      service: string;
      variables: readonly string[];
    }
  | { kind: "redis"; port: number; channel: string };

/** Subscriber processes, each holding its share of every group's connections. */
export class SubscriberFleet implements Subscribers {
  readonly #children: BenchChild[];
  /** group → the children that hold part of it. */
  readonly #groups = new Map<string, BenchChild[]>();

  private constructor(children: BenchChild[]) {
    this.#children = children;
  }

  static async start(processes: number): Promise<SubscriberFleet> {
    const children = Array.from({ length: processes }, () => new BenchChild(SUBSCRIBER));
    try {
      await Promise.all(children.map((child) => child.next("ready")));
    } catch (error) {
      await Promise.all(children.map((child) => child.stop()));
      throw error;
    }
    return new SubscriberFleet(children);
  }

  get pids(): (number | undefined)[] {
    return this.#children.map((child) => child.pid);
  }

  /**
   * Opens `connections` connections of `group`, shared evenly by the
   * processes; `first` is the process that takes the first (or only) one.
   */
  async open(group: string, spec: GroupSpec, connections: number, first = 0): Promise<void> {
    const count = this.#children.length;
    const shares = new Map<BenchChild, number>();
    for (let i = 0; i < connections; i++) {
      const child = this.#children[(first + i) % count] as BenchChild;
      shares.set(child, (shares.get(child) ?? 0) + 1);
    }
    this.#groups.set(group, [...shares.keys()]);
    await Promise.all(
      [...shares].map(([child, share]) =>
        ask(child, { type: "open", group, connections: share, ...spec }, "opened"),
      ),
    );
  }

  /** Adds subscriptions to `variables` on every stream of a Commy group. */
  async subscribe(group: string, variables: readonly string[]): Promise<void> {
    await this.#each(group, { type: "subscribe", group, variables }, "subscribed");
  }

  async arm(group: string, count: number): Promise<void> {
    await this.#each(group, { type: "arm", group, count }, "armed");
  }

  async collect(group: string, timeoutMs: number): Promise<Collected> {
    const parts = await this.#each(
      group,
      { type: "collect", group, timeoutMs },
      "collected",
      timeoutMs + ANSWER_MS,
    );
    return sumCollected(parts);
  }

  async close(group: string): Promise<void> {
    await this.#each(group, { type: "close", group }, "closed");
    this.#groups.delete(group);
  }

  async stop(): Promise<void> {
    await Promise.all(this.#children.map((child) => child.stop()));
  }

  #each(group: string, message: Message, answer: string, timeoutMs?: number): Promise<Message[]> {
    const children = this.#groups.get(group);
    if (children === undefined) throw new Error(`no group ${group}`);
    return Promise.all(children.map((child) => ask(child, message, answer, timeoutMs)));
  }
}

/** What the writer reports for a run. */
export interface WriterOutcome {
  writes: number;
  startNs: bigint;
  endNs: bigint;
  errors: number;
  /** µs */
  roundTrips: number[];
  echoed?: number;
  lastEchoNs?: bigint;
  /** CPU the writer process used during the run, µs. */
  cpuMicros: number;
}

export type TargetSpec =
  | {
      kind: "commy-watch" | "commy-unary";
      url: string;
      token: string;
      tenant: string;
      service: string;
      variables: readonly string[];
    }
  | { kind: "redis"; port: number; channel: string }
  | { kind: "echo"; url: string; token: string; connections: number }
  | { kind: "broadcast"; url: string; token: string }
  | { kind: "local"; path: string; variables: readonly string[] };

/** The writer process. */
export class WriterChild {
  private constructor(readonly child: BenchChild) {}

  static async start(): Promise<WriterChild> {
    const child = new BenchChild(WRITER);
    try {
      await child.next("ready");
    } catch (error) {
      await child.stop();
      throw error;
    }
    return new WriterChild(child);
  }

  async open(target: string, spec: TargetSpec): Promise<void> {
    await ask(this.child, { type: "open", target, ...spec }, "opened");
  }

  /** Writes 1..count at `rate` per second. */
  paced(target: string, count: number, rate: number): Promise<WriterOutcome> {
    return this.#run({ type: "paced", target, count, rate }, (count / rate) * 1000);
  }

  /** Writes as fast as it can for `durationMs`, at most `window` unanswered (0: synchronous). */
  flood(target: string, durationMs: number, window: number): Promise<WriterOutcome> {
    return this.#run({ type: "flood", target, durationMs, window }, durationMs);
  }

  /**
   * The writer's clocks against ours, from the quickest of `samples`
   * questions: `monotonicNs` is how far its CLOCK_MONOTONIC is from ours,
   * within ±`boundNs` (half that question's round trip); `timeOriginNs` how
   * far its performance.timeOrigin + performance.now() is from ours.
   */
  async clocks(
    samples = 20,
  ): Promise<{ monotonicNs: number; boundNs: number; timeOriginNs: number }> {
    let best = { monotonicNs: NaN, boundNs: Infinity, timeOriginNs: NaN };
    for (let i = 0; i < samples; i++) {
      const before = process.hrtime.bigint();
      const answer = await ask(this.child, { type: "clock" }, "clock");
      const after = process.hrtime.bigint();
      const boundNs = Number(after - before) / 2;
      if (boundNs >= best.boundNs) continue;
      const ownMonotonic = process.hrtime.bigint();
      const ownOrigin = (performance.timeOrigin + performance.now()) * 1e6;
      best = {
        monotonicNs: Number(answer.monotonicNs) - Number(before + after) / 2,
        boundNs,
        // Each process's timeOrigin clock minus its monotonic one, compared.
        timeOriginNs: Number(answer.originMinusMonotonicNs) - (ownOrigin - Number(ownMonotonic)),
      };
    }
    return best;
  }

  async close(target: string): Promise<void> {
    await ask(this.child, { type: "close", target }, "closed");
  }

  stop(): Promise<void> {
    return this.child.stop();
  }

  async #run(message: Message, expectedMs: number): Promise<WriterOutcome> {
    const done = await ask(this.child, message, "done", expectedMs + ANSWER_MS);
    return {
      writes: Number(done.writes),
      startNs: BigInt(String(done.startNs)),
      endNs: BigInt(String(done.endNs)),
      errors: Number(done.errors),
      roundTrips: done.roundTrips as number[],
      echoed: done.echoed === undefined ? undefined : Number(done.echoed),
      lastEchoNs: done.lastEchoNs === undefined ? undefined : BigInt(String(done.lastEchoNs)),
      cpuMicros: Number(done.cpuMicros),
    };
  }
}
