/**
 * Watch streams (docs/streaming.md): how fast a write reaches remote
 * subscribers, how many events one server fans out per second, and what an
 * idle subscription costs the server — next to Redis pub/sub on loopback
 * and the transport floor (the bench EchoService on the same server stack),
 * measured in the same run.
 *
 * Processes: the Commy server, two subscriber processes sharing each
 * group's connections, one writer and (for the comparison) redis-server;
 * the bench itself only orchestrates. Each HTTP/2 connection carries one
 * Watch stream; each Redis subscriber has its own connection. Every value
 * carries the writer's CLOCK_MONOTONIC stamp (stream-value.ts), and the
 * receiver computes the one-way latency.
 *
 * Parts: latency, throughput, memory. Every loop is bounded by a count or a
 * deadline; the data directory is removed at the end.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type RedisServer, startRedis } from "../lib/redis-server.js";
import { distribution, median } from "../lib/stats.js";
import {
  type Metric,
  type Suite,
  type SuiteContext,
  type Unit,
  metricFromRuns,
} from "../lib/suite.js";
import { CSubscriberFleet } from "../load/fanout-subscribers.js";
import {
  type GroupSpec,
  StreamServer,
  SubscriberFleet,
  type Subscribers,
  WriterChild,
} from "./stream-fleet.js";
import { VALUE_BYTES } from "./stream-value.js";
import { DEFAULT_WATCH_LIMITS } from "../../src/core/watch-session.js";

const TENANT = "bench";
const VARIABLE = "v";
/** Processes the subscribers' connections are shared among. */
const SUBSCRIBER_PROCESSES = 2;
/** Writes per second of the latency cases. */
const RATE = 1_000;
/** Writes per run of each latency case (after one warm-up run of WARMUP_WRITES). */
const LATENCY_WRITES = 1_500;
const WARMUP_WRITES = 500;
/** Subscribers (connections) of the fan-out latency case. */
const FANOUT = 100;
/** The fan-out case again at a tenth of the rate: the latency of a server that keeps up. */
const SLOW_RATE = 100;
const SLOW_WRITES = 300;
/** Subscribers of the throughput cases, and the writer's time and window. */
const FLOOD_SUBSCRIBERS = 10;
/**
 * Variables of the throughput cases' service, written in turn; their
 * subscribers follow the whole service. (With one variable every change
 * between two reads of the change ring is one event: the figure would be
 * the server's wake-up rate, not its fan-out.)
 */
const FLOOD_VARIABLES = 1_000;
/** A subscription's variable_name for every variable of the service. */
const WHOLE_SERVICE = "";
const FLOOD_MS = 1_500;
const WARMUP_FLOOD_MS = 500;
/** Calls in flight for the unary writer, and messages for the echo floor. */
const FLOOD_WINDOW = 256;
/**
 * Unanswered writes of a pipelining writer (Watch writes, Redis PUBLISH):
 * deep enough that the writer's round trip does not cap what the server
 * delivers.
 */
const PIPELINE_WINDOW = 1024;
/** How long subscribers may take after the last write before the run is cut. */
const COLLECT_MS = 20_000;
/** Memory: streams × subscriptions each, on one server (the per-stream limit). */
const MEMORY_STREAMS = 10;
const MEMORY_PER_STREAM = DEFAULT_WATCH_LIMITS.maxSubscriptions;
/** Writes (and their rate) to one variable, with and without all those subscriptions. */
const MEMORY_WRITES = 200;
const MEMORY_RATE = 200;
/** The target of the memory part: bytes per idle subscription. */
const KB = 1_024;

/**
 * Bytes are not among the harness's units (bench/lib/suite.ts); the report
 * prints any unit string as it is.
 */
const BYTES = "B" as Unit;

export const streamSuite: Suite = {
  name: "stream",
  description:
    "watch streams: write → subscribers latency, fan-out throughput, memory per subscription " +
    "(vs Redis pub/sub and the EchoStream floor)",
  parts: ["latency", "throughput", "memory"],
  async run(context) {
    const wants = (part: string): boolean =>
      context.parts.length === 0 || context.parts.includes(part);
    const notes: string[] = [];
    const details: Record<string, unknown> = {};
    const base = mkdtempSync(join(process.env.COMMY_BENCH_DIR ?? tmpdir(), "commy-bench-stream-"));
    const token = `ca_bench_${randomBytes(24).toString("hex")}`;
    const stops: (() => Promise<void>)[] = [];
    try {
      const fleet = await SubscriberFleet.start(SUBSCRIBER_PROCESSES);
      stops.push(() => fleet.stop());
      const built = CSubscriberFleet.build(base);
      const cFleet = "skipped" in built ? undefined : built;
      if (cFleet !== undefined) stops.push(() => cFleet.stop());
      notes.push(fanoutNote(built));
      const writer = await WriterChild.start();
      stops.push(() => writer.stop());
      const clocks = await writer.clocks();
      details.source = sourceVersion();
      details.clocks = clocks;
      notes.push(clockNote(clocks));
      const metrics: Metric[] = [];
      if (wants("latency") || wants("throughput")) {
        const redis = await redisOrNote(context, notes);
        if (redis !== undefined) stops.push(() => redis.stop());
        details.redis = redis?.version ?? null;
        const server = await StreamServer.start(join(base, "main"), token);
        let closed = false;
        const close = async (): Promise<void> => {
          if (!closed) await server.close();
          closed = true;
        };
        stops.push(close);
        const cases = await openCases(
          server,
          { node: fleet, c: cFleet },
          writer,
          redis,
          token,
          wants,
        );
        metrics.push(...(await measureCases(cases, context, notes, details)));
        await close(); // the memory part starts servers of its own
      }
      if (wants("memory")) {
        metrics.push(...(await memory(base, token, fleet, writer, context, notes, details)));
      }
      notes.push(
        `processes: Commy server, ${SUBSCRIBER_PROCESSES} Node subscriber processes sharing ` +
          "every other group's connections, 1 writer (Watch writes from a lean gRPC client over " +
          "HTTP/2, WriteVariable calls from connect-es, PUBLISH on a raw socket, or the mapped " +
          "file), " +
          "redis-server; one HTTP/2 connection per Commy subscriber, one TCP connection per " +
          `Redis subscriber; ${VALUE_BYTES}-byte values; the server's admin token as credential`,
      );
      return {
        metrics,
        notes,
        details,
        config: {
          subscriberProcesses: SUBSCRIBER_PROCESSES,
          fanoutSubscribers: cFleet === undefined ? "node" : "c",
          rate: RATE,
          latencyWritesPerRun: LATENCY_WRITES,
          warmupWrites: WARMUP_WRITES,
          fanout: FANOUT,
          slowRate: SLOW_RATE,
          slowWrites: SLOW_WRITES,
          floodSubscribers: FLOOD_SUBSCRIBERS,
          floodMs: FLOOD_MS,
          floodWindow: FLOOD_WINDOW,
          pipelineWindow: PIPELINE_WINDOW,
          floodVariables: FLOOD_VARIABLES,
          memoryStreams: MEMORY_STREAMS,
          memorySubscriptionsPerStream: MEMORY_PER_STREAM,
          memoryWrites: MEMORY_WRITES,
          memoryRate: MEMORY_RATE,
          valueBytes: VALUE_BYTES,
        },
      };
    } finally {
      for (const stop of stops.reverse()) await stop().catch(() => undefined);
      rmSync(base, { recursive: true, force: true });
    }
  },
};

/** The commit measured, and whether src/ differed from it (the work tree is shared). */
function sourceVersion(): { commit?: string; srcChanged?: boolean } {
  const git = (args: string[]): string =>
    execFileSync("git", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  try {
    return {
      commit: git(["rev-parse", "HEAD"]),
      srcChanged: git(["status", "--porcelain", "--", "src"]) !== "",
    };
  } catch {
    return {}; // not a git checkout
  }
}

/** Who holds the judged fan-out cases' subscribers, and why. */
function fanoutNote(built: CSubscriberFleet | { skipped: string }): string {
  if ("skipped" in built) {
    return (
      `fan-out subscribers: the Node processes (the C fleet could not be built: ${built.skipped}); ` +
      "they compete with the server for the CPUs, so the fan-out figures measure them too"
    );
  }
  return (
    `fan-out subscribers (latency.commy.100, latency.floor.fanout, latency.redis.100, ` +
    "latency.commy.100.slow and the throughput cases): bench/load/fanout-subscriber.c, one " +
    "single-threaded epoll process per case holding all its connections, the same program for " +
    "Commy and its floor (a minimal HTTP/2 + gRPC client) and Redis (RESP), so that the server " +
    "rather than a Node client is measured; the .node rows " +
    `are the same cases with the ${SUBSCRIBER_PROCESSES} Node subscriber processes`
  );
}

function clockNote(clocks: { monotonicNs: number; boundNs: number; timeOriginNs: number }) {
  const us = (ns: number): string => (ns / 1000).toFixed(1);
  return (
    "clock: every process stamps and reads process.hrtime.bigint(), i.e. CLOCK_MONOTONIC, one " +
    `clock for the whole machine (checked: the writer's reads ${us(clocks.monotonicNs)} µs from ` +
    `the bench's, within ±${us(clocks.boundNs)} µs of IPC round trip). Not used: ` +
    "performance.timeOrigin + performance.now(), the wall clock read once at each process's " +
    "start plus a per-process monotonic offset, so two processes agree only as well as those " +
    `two wall-clock reads did (here ${us(clocks.timeOriginNs)} µs apart; an NTP step between ` +
    "two starts would show in every latency)"
  );
}

async function redisOrNote(
  context: SuiteContext,
  notes: string[],
): Promise<RedisServer | undefined> {
  const started = await startRedis(context.log);
  if ("server" in started) {
    context.log(`${started.server.version} on port ${started.server.port}`);
    return started.server;
  }
  notes.push(`Redis comparison skipped: ${started.skipped}`);
  context.log(`Redis skipped: ${started.skipped}`);
  return undefined;
}

// ---- the cases of the latency and throughput parts ----

/** One run's figures of a case. */
interface CaseRun {
  /** Latency cases: p50 and p99 in ms, and what was lost. */
  p50?: number;
  p99?: number;
  latencies?: number[];
  lost?: number;
  expected?: number;
  unfinished?: number;
  /** Throughput cases: events (and versions) delivered per second, writes per second. */
  rate?: number;
  coveredRate?: number;
  writeRate?: number;
  /** Server CPU over wall time during the run (0..1 per core). */
  serverCpu?: number;
  /** Server CPU time per event delivered (per message echoed, for the floors), µs. */
  serverMicrosPerEvent?: number;
  /** The subscriber processes' CPU over wall time, together. */
  subscriberCpu?: number;
  /** The writer process's CPU over the time it wrote. */
  writerCpu?: number;
  errors?: number;
  broken?: string[];
}

interface Case {
  id: string;
  part: "latency" | "throughput";
  /** One run; `warmup` makes it short and its figures are dropped. */
  run(warmup: boolean): Promise<CaseRun>;
}

async function openCases(
  server: StreamServer,
  fleets: { node: SubscriberFleet; c: CSubscriberFleet | undefined },
  writer: WriterChild,
  redis: RedisServer | undefined,
  token: string,
  wants: (part: string) => boolean,
): Promise<Case[]> {
  const fleet = fleets.node;
  /** Who holds each group's connections. */
  const holders = new Map<string, Subscribers>();
  const open = async (
    subscribers: Subscribers,
    group: string,
    spec: GroupSpec,
    connections: number,
    first?: number,
  ): Promise<void> => {
    holders.set(group, subscribers);
    await subscribers.open(group, spec, connections, first);
  };
  const holder = (group: string): Subscribers => {
    const subscribers = holders.get(group);
    if (subscribers === undefined) throw new Error(`no group ${group}`);
    return subscribers;
  };
  /** The judged fan-out and throughput cases' subscribers: the C fleet when it was built. */
  const fanoutFleet = fleets.c ?? fleet;
  const floodVariables = Array.from(
    { length: FLOOD_VARIABLES },
    (_, i) => `f${String(i).padStart(4, "0")}`,
  );
  const paths = await server.setup(
    TENANT,
    [
      ...["fanout", "fanout-node", "single", "local"].map((name) => ({
        name,
        variables: [VARIABLE],
      })),
      ...["flood", "flood-local"].map((name) => ({ name, variables: floodVariables })),
    ],
    VALUE_BYTES,
  );
  const url = server.url;
  /** Subscribers of one variable, or (WHOLE_SERVICE) of every variable of the service. */
  const commy = (service: string, variable = VARIABLE) =>
    ({ kind: "commy", url, token, tenant: TENANT, service, variables: [variable] }) as const;
  const commyWriter = (service: string, variables: readonly string[] = [VARIABLE]) =>
    ({ kind: "commy-watch", url, token, tenant: TENANT, service, variables }) as const;
  const cases: Case[] = [];
  /** Runs `measure`, noting the server's CPU time (µs) and its share of the wall time. */
  const cpu = async <T>(
    measure: () => Promise<T>,
  ): Promise<{ result: T; share: number; micros: number }> => {
    const before = await server.cpuMicros();
    const start = process.hrtime.bigint();
    const result = await measure();
    const wallMicros = Number(process.hrtime.bigint() - start) / 1000;
    const micros = (await server.cpuMicros()) - before;
    return { result, share: micros / wallMicros, micros };
  };

  /** A paced latency case: `group` subscribes, the writer writes into `target`. */
  const latencyCase = (
    id: string,
    group: string | undefined,
    target: string,
    rate = RATE,
    writes = LATENCY_WRITES,
  ): Case => ({
    id,
    part: "latency",
    run: async (warmup) => {
      const count = warmup ? Math.min(WARMUP_WRITES, writes) : writes;
      if (group === undefined) {
        // The floor: the writer notes the echo's round trip itself.
        const { result, share, micros } = await cpu(() => writer.paced(target, count, rate));
        const run = latencyRun(
          result.roundTrips,
          count,
          count - result.roundTrips.length,
          0,
          share,
        );
        run.serverMicrosPerEvent = micros / result.roundTrips.length;
        return run;
      }
      await holder(group).arm(group, count);
      const { result, share, micros } = await cpu(async () => {
        const outcome = await writer.paced(target, count, rate);
        return { outcome, seen: await holder(group).collect(group, COLLECT_MS) };
      });
      const connections = result.seen.latencies.length + result.seen.lost;
      const run = latencyRun(
        result.seen.latencies,
        connections,
        result.seen.lost,
        result.seen.unfinished,
        share,
      );
      run.errors = result.outcome.errors;
      run.broken = result.seen.broken;
      run.subscriberCpu = result.seen.cpuShare;
      run.serverMicrosPerEvent = micros / result.seen.events;
      return run;
    },
  });

  /** A throughput case: `group` counts, the writer floods `target`. */
  const floodCase = (id: string, group: string | undefined, target: string, window: number) => ({
    id,
    part: "throughput" as const,
    run: async (warmup: boolean): Promise<CaseRun> => {
      const duration = warmup ? WARMUP_FLOOD_MS : FLOOD_MS;
      if (group === undefined) {
        const { result, share, micros } = await cpu(() => writer.flood(target, duration, window));
        const seconds = Number((result.lastEchoNs ?? 0n) - result.startNs) / 1e9;
        return {
          rate: (result.echoed ?? 0) / seconds,
          serverMicrosPerEvent: micros / (result.echoed ?? 0),
          writeRate: result.writes / seconds,
          serverCpu: share,
          writerCpu: result.cpuMicros / (seconds * 1e6),
          errors: result.errors,
        };
      }
      await holder(group).arm(group, 0);
      const { result, share, micros } = await cpu(async () => {
        const outcome = await writer.flood(target, duration, window);
        return { outcome, seen: await holder(group).collect(group, COLLECT_MS) };
      });
      const { outcome, seen } = result;
      // From the first write to the last event received: everything delivered in between.
      const seconds = Number(seen.lastNs - outcome.startNs) / 1e9;
      return {
        rate: seen.events / seconds,
        serverMicrosPerEvent: micros / seen.events,
        coveredRate: seen.covered / seconds,
        writeRate: outcome.writes / (Number(outcome.endNs - outcome.startNs) / 1e9),
        unfinished: seen.unfinished,
        serverCpu: share,
        subscriberCpu: seen.cpuShare,
        writerCpu: outcome.cpuMicros / (Number(outcome.endNs - outcome.startNs) / 1e3),
        errors: outcome.errors,
        broken: seen.broken,
      };
    },
  });

  if (wants("latency")) {
    await writer.open("echo", { kind: "echo", url, token, connections: 1 });
    cases.push(latencyCase("latency.floor.echo", undefined, "echo"));
    await open(fleet, "single", commy("single"), 1, 0);
    await writer.open("commy-single", commyWriter("single"));
    cases.push(latencyCase("latency.commy.1", "single", "commy-single"));
    if (redis !== undefined) {
      const channel = { kind: "redis", port: redis.port, channel: "fanout" } as const;
      await open(fanoutFleet, "redis-fanout", channel, FANOUT);
      await writer.open("redis-fanout", channel);
      cases.push(latencyCase("latency.redis.100", "redis-fanout", "redis-fanout"));
    }
    if (fleets.c !== undefined) {
      // The fan-out floor, which only the C fleet follows.
      holders.set("floor-fanout", fleets.c);
      await fleets.c.open("floor-fanout", { kind: "listen", url, token }, FANOUT);
      await writer.open("floor-fanout", { kind: "broadcast", url, token });
      cases.push(latencyCase("latency.floor.fanout", "floor-fanout", "floor-fanout"));
    }
    await open(fanoutFleet, "fanout", commy("fanout"), FANOUT);
    await writer.open("commy-fanout", commyWriter("fanout"));
    cases.push(latencyCase("latency.commy.100", "fanout", "commy-fanout"));
    if (fleets.c !== undefined) {
      // The same cases with the Node subscribers, on a channel and a service of their own.
      if (redis !== undefined) {
        const channel = { kind: "redis", port: redis.port, channel: "fanout-node" } as const;
        await open(fleet, "redis-fanout-node", channel, FANOUT);
        await writer.open("redis-fanout-node", channel);
        cases.push(latencyCase("latency.redis.100.node", "redis-fanout-node", "redis-fanout-node"));
      }
      await open(fleet, "fanout-node", commy("fanout-node"), FANOUT);
      await writer.open("commy-fanout-node", commyWriter("fanout-node"));
      cases.push(latencyCase("latency.commy.100.node", "fanout-node", "commy-fanout-node"));
    }
    // The same three at a tenth of the rate, measured one after the other.
    if (redis !== undefined) {
      cases.push(
        latencyCase(
          "latency.redis.100.slow",
          "redis-fanout",
          "redis-fanout",
          SLOW_RATE,
          SLOW_WRITES,
        ),
      );
    }
    if (fleets.c !== undefined) {
      cases.push(
        latencyCase(
          "latency.floor.fanout.slow",
          "floor-fanout",
          "floor-fanout",
          SLOW_RATE,
          SLOW_WRITES,
        ),
      );
    }
    cases.push(
      latencyCase("latency.commy.100.slow", "fanout", "commy-fanout", SLOW_RATE, SLOW_WRITES),
    );
    await open(fleet, "local", commy("local"), 1, 1);
    await writer.open("local", {
      kind: "local",
      path: paths.local as string,
      variables: [VARIABLE],
    });
    cases.push(latencyCase("latency.local.1", "local", "local"));
  }
  if (wants("throughput")) {
    await writer.open("echo-flood", {
      kind: "echo",
      url,
      token,
      connections: FLOOD_SUBSCRIBERS,
    });
    cases.push(floodCase("throughput.floor.echo", undefined, "echo-flood", FLOOD_WINDOW));
    if (redis !== undefined) {
      const channel = { kind: "redis", port: redis.port, channel: "flood" } as const;
      await open(fanoutFleet, "redis-flood", channel, FLOOD_SUBSCRIBERS);
      await writer.open("redis-flood", channel);
      cases.push(floodCase("throughput.redis", "redis-flood", "redis-flood", PIPELINE_WINDOW));
    }
    await open(fanoutFleet, "flood", commy("flood", WHOLE_SERVICE), FLOOD_SUBSCRIBERS);
    await writer.open("commy-flood", commyWriter("flood", floodVariables));
    cases.push(floodCase("throughput.commy.watch", "flood", "commy-flood", PIPELINE_WINDOW));
    await writer.open("commy-flood-unary", {
      ...commyWriter("flood", floodVariables),
      kind: "commy-unary",
    });
    cases.push(floodCase("throughput.commy.unary", "flood", "commy-flood-unary", FLOOD_WINDOW));
    await open(fanoutFleet, "flood-local", commy("flood-local", WHOLE_SERVICE), FLOOD_SUBSCRIBERS);
    await writer.open("local-flood", {
      kind: "local",
      path: paths["flood-local"] as string,
      variables: floodVariables,
    });
    cases.push(floodCase("throughput.commy.local", "flood-local", "local-flood", 0));
  }
  return cases;
}

function latencyRun(
  latenciesMicros: number[],
  expected: number,
  lost: number,
  unfinished: number,
  serverCpu: number,
): CaseRun {
  const shape = distribution(latenciesMicros);
  return {
    p50: shape.p50 / 1000,
    p99: shape.p99 / 1000,
    latencies: latenciesMicros,
    lost,
    expected,
    unfinished,
    serverCpu,
  };
}

/** How each case becomes a row. */
interface Row {
  id: string;
  /** The case whose runs the row shows, when not the one its id names. */
  case?: string;
  label: string;
  unit: Unit;
  /** Which figure of a run: latency p50 (+p99), or a rate. */
  figure: "latency" | "rate" | "covered" | "writes";
  target?: string;
  /** The case whose figures of the same run this row is held against. */
  against?: { id: string; name: string };
  check?: (metric: Metric, runs: CaseRun[]) => boolean;
  note?: string;
}

const ROWS: Row[] = [
  {
    id: "latency.floor.echo",
    label: `floor: EchoStream round trip, writer → server → writer, ${RATE}/s`,
    unit: "ms",
    figure: "latency",
    note: "the same stack, two hops like write → server → subscriber",
  },
  {
    id: "latency.commy.1",
    label: `Commy: Watch write → 1 subscriber, ${RATE} writes/s`,
    unit: "ms",
    figure: "latency",
    against: { id: "latency.floor.echo", name: "echo" },
  },
  {
    id: "latency.redis.100",
    label: `Redis: PUBLISH → ${FANOUT} subscribers on ${FANOUT} connections, ${RATE}/s`,
    unit: "ms",
    figure: "latency",
    against: { id: "latency.floor.echo", name: "echo" },
  },
  {
    id: "latency.floor.fanout",
    label: `floor: EchoService Broadcast → ${FANOUT} Listen streams on ${FANOUT} HTTP/2 connections, ${RATE}/s`,
    unit: "ms",
    figure: "latency",
    against: { id: "latency.redis.100", name: "Redis" },
    note: "the same stack writing each message to every stream, with no Commy code in between",
  },
  {
    id: "latency.commy.100",
    label: `Commy: Watch write → ${FANOUT} subscribers on ${FANOUT} HTTP/2 connections, ${RATE} writes/s`,
    unit: "ms",
    figure: "latency",
    target: "p50 ≤ 1 ms, p99 ≤ 5 ms, none lost",
    against: { id: "latency.redis.100", name: "Redis" },
    check: (metric, runs) =>
      metric.median <= 1 && (metric.p99 ?? Infinity) <= 5 && runs.every((r) => r.lost === 0),
  },
  {
    id: "latency.commy.100.vs-floor",
    case: "latency.commy.100",
    label: "  … the same, held against the fan-out floor",
    unit: "ms",
    figure: "latency",
    against: { id: "latency.floor.fanout", name: "fan-out floor" },
  },
  {
    id: "latency.redis.100.node",
    label: `  … Redis, the same with the Node subscribers (${SUBSCRIBER_PROCESSES} processes)`,
    unit: "ms",
    figure: "latency",
    against: { id: "latency.floor.echo", name: "echo" },
  },
  {
    id: "latency.commy.100.node",
    label: `  … Commy, the same with the Node subscribers (${SUBSCRIBER_PROCESSES} processes)`,
    unit: "ms",
    figure: "latency",
    against: { id: "latency.redis.100.node", name: "Redis" },
  },
  {
    id: "latency.redis.100.slow",
    label: `Redis: the same ${FANOUT} subscribers at ${SLOW_RATE}/s`,
    unit: "ms",
    figure: "latency",
    against: { id: "latency.floor.echo", name: "echo" },
  },
  {
    id: "latency.floor.fanout.slow",
    label: `floor: the same ${FANOUT} Listen streams at ${SLOW_RATE}/s`,
    unit: "ms",
    figure: "latency",
    against: { id: "latency.redis.100.slow", name: "Redis" },
  },
  {
    id: "latency.commy.100.slow",
    label: `Commy: the same ${FANOUT} subscribers at ${SLOW_RATE} writes/s`,
    unit: "ms",
    figure: "latency",
    against: { id: "latency.redis.100.slow", name: "Redis" },
    note: "below the server's fan-out capacity: delivery, not queueing",
  },
  {
    id: "latency.commy.100.slow.vs-floor",
    case: "latency.commy.100.slow",
    label: "  … the same, held against the fan-out floor",
    unit: "ms",
    figure: "latency",
    against: { id: "latency.floor.fanout.slow", name: "fan-out floor" },
  },
  {
    id: "latency.local.1",
    label: `Commy: local write in the mapped file → 1 remote subscriber, ${RATE}/s`,
    unit: "ms",
    figure: "latency",
    target: "p50 ≤ 1 ms",
    against: { id: "latency.floor.echo", name: "echo" },
    check: (metric) => metric.median <= 1,
    note: "one network hop (server → subscriber) against the floor's two",
  },
  {
    id: "throughput.floor.echo",
    label: `floor: EchoStream messages echoed/s, ${FLOOD_SUBSCRIBERS} connections, window ${FLOOD_WINDOW}`,
    unit: "ops/s",
    figure: "rate",
  },
  {
    id: "throughput.redis",
    label: `Redis: messages delivered/s, ${FLOOD_SUBSCRIBERS} subscribers, PUBLISH pipelined × ${PIPELINE_WINDOW}`,
    unit: "ops/s",
    figure: "rate",
  },
  {
    id: "throughput.commy.watch",
    label: `Commy: events delivered/s, ${FLOOD_SUBSCRIBERS} subscribers, Watch writes pipelined × ${PIPELINE_WINDOW}`,
    unit: "ops/s",
    figure: "rate",
    target: "≥ 300,000/s",
    against: { id: "throughput.redis", name: "Redis" },
    check: (metric) => metric.median >= 300_000,
  },
  {
    id: "throughput.commy.watch.covered",
    label: "  … versions covered/s (events + versions they skipped)",
    unit: "ops/s",
    figure: "covered",
  },
  {
    id: "throughput.commy.watch.writes",
    label: "  … writes applied/s",
    unit: "ops/s",
    figure: "writes",
  },
  {
    id: "throughput.commy.unary",
    label: `Commy: events delivered/s, ${FLOOD_SUBSCRIBERS} subscribers, WriteVariable × ${FLOOD_WINDOW} in flight`,
    unit: "ops/s",
    figure: "rate",
    // Not held against the target: a unary call per write is bounded by the
    // unary floor (bench api: a few thousand calls/s here), whatever the
    // fan-out does. A writer that floods uses the stream.
    against: { id: "throughput.redis", name: "Redis" },
  },
  {
    id: "throughput.commy.unary.covered",
    label: "  … versions covered/s (events + versions they skipped)",
    unit: "ops/s",
    figure: "covered",
  },
  {
    id: "throughput.commy.unary.writes",
    label: "  … writes applied/s",
    unit: "ops/s",
    figure: "writes",
  },
  {
    id: "throughput.commy.local",
    label: `Commy: events delivered/s, ${FLOOD_SUBSCRIBERS} subscribers, local writer in the mapped file`,
    unit: "ops/s",
    figure: "rate",
    target: "≥ 300,000/s",
    against: { id: "throughput.redis", name: "Redis" },
    check: (metric) => metric.median >= 300_000,
  },
  {
    id: "throughput.commy.local.covered",
    label: "  … versions covered/s (events + versions they skipped)",
    unit: "ops/s",
    figure: "covered",
  },
  {
    id: "throughput.commy.local.writes",
    label: "  … local writes/s",
    unit: "ops/s",
    figure: "writes",
  },
];

async function measureCases(
  cases: Case[],
  context: SuiteContext,
  notes: string[],
  details: Record<string, unknown>,
): Promise<Metric[]> {
  context.log(`warm-up run of ${cases.length} cases`);
  for (const c of cases) await c.run(true);
  // Run by run, every case in turn: a floor and the figure held against it
  // are measured seconds apart, so that drift on a shared VM hits both.
  const runs = new Map<string, CaseRun[]>();
  for (let run = 0; run < context.runs; run++) {
    context.log(`run ${run + 1}/${context.runs}`);
    for (const c of cases) {
      const result = await c.run(false);
      runs.set(c.id, [...(runs.get(c.id) ?? []), result]);
    }
  }
  const metrics: Metric[] = [];
  for (const row of ROWS) {
    const caseId = row.case ?? row.id.replace(/\.(covered|writes)$/, "");
    const caseRuns = runs.get(caseId);
    if (caseRuns === undefined) continue;
    const metric = rowMetric(row, caseRuns);
    const against = row.against === undefined ? undefined : runs.get(row.against.id);
    if (row.against !== undefined && against !== undefined) {
      const ours = figureOf(row, caseRuns);
      const theirs = figureOf(row, against);
      metric.ratio = {
        floor: row.against.name,
        median: median(ours.values.map((v, i) => v / (theirs.values[i] as number))),
      };
      if (ours.p99 !== undefined && theirs.p99 !== undefined) {
        const p99 = theirs.p99;
        metric.ratio.p99 = median(ours.p99.map((v, i) => v / (p99[i] as number)));
      }
    }
    if (row.check !== undefined) metric.pass = row.check(metric, caseRuns);
    metrics.push(metric);
  }
  details.cases = Object.fromEntries(
    [...runs].map(([id, caseRuns]) => [id, caseDetails(caseRuns)]),
  );
  notes.push(...caseNotes(runs));
  return metrics;
}

function figureOf(row: Row, runs: CaseRun[]): { values: number[]; p99?: number[] } {
  switch (row.figure) {
    case "latency":
      return { values: runs.map((r) => r.p50 ?? NaN), p99: runs.map((r) => r.p99 ?? NaN) };
    case "rate":
      return { values: runs.map((r) => r.rate ?? NaN) };
    case "covered":
      return { values: runs.map((r) => r.coveredRate ?? NaN) };
    case "writes":
      return { values: runs.map((r) => r.writeRate ?? NaN) };
  }
}

function rowMetric(row: Row, runs: CaseRun[]): Metric {
  const figure = figureOf(row, runs);
  return metricFromRuns(
    { id: row.id, label: row.label, unit: row.unit, target: row.target, note: row.note },
    figure.values,
    figure.p99,
  );
}

function caseDetails(runs: CaseRun[]) {
  const pooled = runs.flatMap((r) => r.latencies ?? []);
  return {
    runs: runs.map(({ latencies: _omitted, ...rest }) => rest),
    ...(pooled.length > 0 ? { pooledMicros: distribution(pooled) } : {}),
  };
}

function caseNotes(runs: Map<string, CaseRun[]>): string[] {
  const notes: string[] = [];
  const percent = (share: number): string => `${Math.round(share * 100)}%`;
  const cpu = [...runs]
    .map(([id, r]) => `${id} ${percent(median(r.map((x) => x.serverCpu ?? NaN)))}`)
    .join(", ");
  notes.push(`server CPU during each case (median of runs, 100% = one core): ${cpu}`);
  const perEvent = [...runs]
    .filter(([id]) => !id.startsWith("throughput.redis") && !id.startsWith("latency.redis"))
    .map(([id, r]) => `${id} ${median(r.map((x) => x.serverMicrosPerEvent ?? NaN)).toFixed(1)}`)
    .join(", ");
  notes.push(
    `server CPU per event delivered (floors: per message echoed), µs, median of runs: ${perEvent}`,
  );
  const subscribers = [...runs]
    .filter(([, r]) => r[0]?.subscriberCpu !== undefined)
    .map(([id, r]) => `${id} ${percent(median(r.map((x) => x.subscriberCpu ?? NaN)))}`)
    .join(", ");
  notes.push(`subscriber processes' CPU, together: ${subscribers}`);
  const writers = [...runs]
    .filter(([, r]) => r[0]?.writerCpu !== undefined)
    .map(([id, r]) => `${id} ${percent(median(r.map((x) => x.writerCpu ?? NaN)))}`)
    .join(", ");
  notes.push(`writer process's CPU while it wrote: ${writers}`);
  for (const [id, caseRuns] of runs) {
    const lost = caseRuns.reduce((sum, r) => sum + (r.lost ?? 0), 0);
    const expected = caseRuns.reduce((sum, r) => sum + (r.expected ?? 0), 0);
    const unfinished = caseRuns.reduce((sum, r) => sum + (r.unfinished ?? 0), 0);
    const errors = caseRuns.reduce((sum, r) => sum + (r.errors ?? 0), 0);
    const broken = caseRuns.flatMap((r) => r.broken ?? []);
    if (expected > 0) {
      notes.push(
        `${id}: ${lost.toLocaleString("en-US")} of ${expected.toLocaleString("en-US")} ` +
          "deliveries (writes × subscribers) lost or coalesced" +
          (unfinished > 0 ? `; ${unfinished} subscriber runs cut at the timeout` : ""),
      );
    } else if (unfinished > 0) {
      notes.push(`${id}: ${unfinished} subscriber runs did not see the last write in time`);
    }
    if (errors > 0) notes.push(`${id}: ${errors} writes failed or were not answered`);
    if (broken.length > 0) notes.push(`${id}: ${broken.join("; ")}`);
  }
  return notes;
}

// ---- memory: 10,000 idle subscriptions on one server ----

type Memory = Awaited<ReturnType<StreamServer["memory"]>>;

/** One memory run's figures. */
interface MemoryRun {
  perSubscriptionRss: number;
  perSubscriptionHeap: number;
  /** As many subscriptions again, on more streams, while the first ones are held. */
  againRss: number;
  againHeap: number;
  perStreamRss: number;
  perStreamHeap: number;
  /** Writes to a variable 10 streams follow: alone, then among all the subscriptions. */
  alone: WritesFigures;
  crowded: WritesFigures;
  samples: { before: Memory; streams: Memory; subscribed: Memory; again: Memory[] };
}

interface WritesFigures {
  p50: number;
  p99: number;
  lost: number;
  /** Server CPU per write, µs. */
  cpuPerWrite: number;
}

async function memory(
  base: string,
  token: string,
  fleet: SubscriberFleet,
  writer: WriterChild,
  context: SuiteContext,
  notes: string[],
  details: Record<string, unknown>,
): Promise<Metric[]> {
  const variables = Array.from(
    { length: MEMORY_PER_STREAM },
    (_, i) => `var-${String(i).padStart(4, "0")}`,
  );
  const runs: MemoryRun[] = [];
  for (let run = 0; run < context.runs; run++) {
    context.log(`memory run ${run + 1}/${context.runs}`);
    runs.push(await memoryRun(join(base, `memory-${run}`), token, variables, fleet, writer));
  }
  details.memory = runs;
  const lost = runs.reduce((sum, r) => sum + r.alone.lost + r.crowded.lost, 0);
  if (lost > 0) {
    notes.push(`memory: ${lost} writes to var-0000 not seen (on their own) by its subscribers`);
  }
  const total = (MEMORY_STREAMS * MEMORY_PER_STREAM).toLocaleString("en-US");
  const target = `≤ 1 KB (${KB} B)`;
  const bytes = (
    id: string,
    label: string,
    values: number[],
    judged: boolean,
    note?: string,
  ): Metric => {
    const metric = metricFromRuns(
      { id, label, unit: BYTES, target: judged ? target : undefined, note },
      values,
    );
    if (judged) metric.pass = metric.median <= KB;
    return metric;
  };
  const crowded = metricFromRuns(
    {
      id: "latency.commy.10k",
      label:
        `Commy: write → ${MEMORY_STREAMS} subscribers of it, ${total} subscriptions ` +
        `on the service, ${MEMORY_RATE}/s`,
      unit: "ms",
      note: `each stream holds ${MEMORY_PER_STREAM} subscriptions, one of them to the written variable`,
    },
    runs.map((r) => r.crowded.p50),
    runs.map((r) => r.crowded.p99),
  );
  crowded.ratio = {
    floor: "alone",
    median: median(runs.map((r) => r.crowded.p50 / r.alone.p50)),
    p99: median(runs.map((r) => r.crowded.p99 / r.alone.p99)),
  };
  const cpu = metricFromRuns(
    {
      id: "cpu.commy.10k",
      label: `  … server CPU per write, ${total} subscriptions on the service`,
      unit: "µs",
    },
    runs.map((r) => r.crowded.cpuPerWrite),
  );
  cpu.ratio = {
    floor: "alone",
    median: median(runs.map((r) => r.crowded.cpuPerWrite / r.alone.cpuPerWrite)),
  };
  return [
    bytes(
      "memory.subscription.heap",
      `server JS heap per idle subscription, ${MEMORY_STREAMS} streams × ${MEMORY_PER_STREAM}`,
      runs.map((r) => r.perSubscriptionHeap),
      true,
      "heap in use after a full collection: what the subscriptions hold",
    ),
    bytes(
      "memory.subscription.rss",
      "server RSS per idle subscription (same runs)",
      runs.map((r) => r.perSubscriptionRss),
      true,
      "whole process, after a full collection; a fresh server per run: the first storm of subscriptions",
    ),
    bytes(
      "memory.subscription.heap.again",
      `  … JS heap per subscription, ${total} more on top of those`,
      runs.map((r) => r.againHeap),
      false,
    ),
    bytes(
      "memory.subscription.rss.again",
      `  … RSS per subscription, ${total} more on top of those`,
      runs.map((r) => r.againRss),
      false,
      "the marginal cost: the first storm's one-time growth of the process left out",
    ),
    bytes(
      "memory.stream.heap",
      "server JS heap per Watch stream (own HTTP/2 connection) with 1 subscription",
      runs.map((r) => r.perStreamHeap),
      false,
      "RSS per stream is below the noise of 10 streams, and left out",
    ),
    metricFromRuns(
      {
        id: "latency.commy.10.alone",
        label: `Commy: write → ${MEMORY_STREAMS} subscribers of it, no other subscription, ${MEMORY_RATE}/s`,
        unit: "ms",
      },
      runs.map((r) => r.alone.p50),
      runs.map((r) => r.alone.p99),
    ),
    metricFromRuns(
      {
        id: "cpu.commy.10.alone",
        label: "  … server CPU per write, no other subscription",
        unit: "µs",
      },
      runs.map((r) => r.alone.cpuPerWrite),
    ),
    crowded,
    cpu,
  ];
}

/**
 * A fresh server (RSS only ever grows within a process) with one service of
 * MEMORY_PER_STREAM variables; MEMORY_STREAMS streams subscribe to the
 * first, are written to, then subscribe to all the others and are written
 * to again.
 */
async function memoryRun(
  baseDir: string,
  token: string,
  variables: string[],
  fleet: SubscriberFleet,
  writer: WriterChild,
): Promise<MemoryRun> {
  const server = await StreamServer.start(baseDir, token);
  try {
    await server.setup(TENANT, [{ name: "memory", variables }], VALUE_BYTES);
    const [first, ...others] = variables as [string, ...string[]];
    const before = await server.memory();
    const where = { url: server.url, token, tenant: TENANT, service: "memory" };
    await fleet.open("memory", { kind: "commy", ...where, variables: [first] }, MEMORY_STREAMS);
    const streams = await server.memory();
    await writer.open("memory", { kind: "commy-watch", ...where, variables: [first] });
    const writes = async (): Promise<WritesFigures> => {
      await fleet.arm("memory", MEMORY_WRITES);
      const cpuBefore = await server.cpuMicros();
      await writer.paced("memory", MEMORY_WRITES, MEMORY_RATE);
      const seen = await fleet.collect("memory", COLLECT_MS);
      const cpuPerWrite = ((await server.cpuMicros()) - cpuBefore) / MEMORY_WRITES;
      const shape = distribution(seen.latencies);
      return { p50: shape.p50 / 1000, p99: shape.p99 / 1000, lost: seen.lost, cpuPerWrite };
    };
    await writes(); // a fresh process: compiles the write and delivery paths
    const alone = await writes();
    await fleet.subscribe("memory", others);
    const subscribed = await server.memory();
    const crowded = await writes();
    await writer.close("memory");
    // As many again on top: the marginal cost of a subscription, without the
    // first storm's one-time growth of V8's young generation and of malloc's
    // arenas (they stay with the process whatever is subscribed later).
    await fleet.open(
      "memory-more",
      { kind: "commy", ...where, variables: [first] },
      MEMORY_STREAMS,
    );
    const streamsAgain = await server.memory();
    await fleet.subscribe("memory-more", others);
    const subscribedAgain = await server.memory();
    await fleet.close("memory-more");
    await fleet.close("memory");
    const added = MEMORY_STREAMS * others.length;
    return {
      perSubscriptionRss: (subscribed.rss - streams.rss) / added,
      perSubscriptionHeap: (subscribed.heapUsed - streams.heapUsed) / added,
      againRss: (subscribedAgain.rss - streamsAgain.rss) / added,
      againHeap: (subscribedAgain.heapUsed - streamsAgain.heapUsed) / added,
      perStreamRss: (streams.rss - before.rss) / MEMORY_STREAMS,
      perStreamHeap: (streams.heapUsed - before.heapUsed) / MEMORY_STREAMS,
      alone,
      crowded,
      samples: { before, streams, subscribed, again: [streamsAgain, subscribedAgain] },
    };
  } finally {
    await server.close();
  }
}
