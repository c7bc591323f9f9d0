/**
 * The typed API (commy.v1.CommyService over Connect, binary, HTTP/2): what
 * a ReadVariable and a WriteVariable cost next to the floor of every unary
 * call — commy.bench.v1.EchoService/Echo on the same server stack, same
 * payload size, same headers — and how fast services can be created and
 * deleted.
 *
 * The server runs in a child process (bench/servers/commy-server.ts), its
 * main thread pinned to one CPU and h2load (bench/lib/unary-load.ts) to the
 * other, so that the figures are the server's and not a Node client's
 * sharing its cores. Service pairs need a fresh name each, which h2load
 * cannot send: a C generator does them (bench/lib/pair-load.ts, over
 * HTTP/1.1, on h2load's CPU) for the judged rows, and the typed Node client
 * again for rows that show what such a client sees. Each is measured next
 * to Echo pairs sent the same way. Calls carry the admin token. Every loop
 * is bounded by a count or a duration.
 */
import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync, unlinkSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Client, createClient } from "@connectrpc/connect";
import { Http2SessionManager, createConnectTransport } from "@connectrpc/connect-node";
import { EchoService } from "../../gen/commy/bench/v1/echo_pb.js";
import { CommyService } from "../../gen/commy/v1/commy_service_pb.js";
import { ServiceFileRegistry } from "../../src/core/service-file-registry.js";
import { openSqliteControlStore } from "../../src/store/sqlite-control-store.js";
import { pinPlan } from "../lib/affinity.js";
import { type CommyClients, commyClients } from "../lib/commy-client.js";
import { sourceNote, sourceState } from "../lib/source-state.js";
import { CommyServerProcess } from "../lib/commy-server.js";
import { distribution, median } from "../lib/stats.js";
import { type Metric, type Suite, type SuiteContext, metricFromRuns } from "../lib/suite.js";
import { collectGarbage, elapsedNs, nowNs } from "../lib/timing.js";
import { machineInfo } from "../lib/machine.js";
import {
  type CaseRuns,
  type UnaryCase,
  caseDetails,
  cpuMetric,
  judged,
  latencyMetric,
  measureCases,
  medianRatio,
  placementNotes,
  rateMetric,
  runsOf,
  withRatio,
} from "../lib/unary-cases.js";
import { connectUnaryCall, loadGenerator } from "../lib/unary-load.js";
import { PairLoad, pairCounter } from "../lib/pair-load.js";

/** Size of the value read and written, and of the echo payload. */
const VALUE_BYTES = 64;
/** Calls of each one-in-flight latency run. */
const LATENCY_CALLS = 2_000;
/** Calls in flight on the one connection in the throughput runs. */
const IN_FLIGHT = 16;
/** Length of each throughput run, seconds. */
const THROUGHPUT_SECONDS = 2;
/** CreateService + DeleteService pairs per run, and how many go on at once. */
const PAIRS = 800;
const PAIRS_IN_FLIGHT = 8;
/** A run of pairs gives up after this long in any case. */
const PAIRS_LIMIT_MS = 60_000;

const TENANT = "bench";
const SERVICE = "api";

export const apiSuite: Suite = {
  name: "api",
  description: "typed API over Connect/HTTP/2: ReadVariable, WriteVariable, service churn vs Echo",
  parts: ["calls", "services"],
  async run(context) {
    const wants = (part: string): boolean =>
      context.parts.length === 0 || context.parts.includes(part);
    const base = process.env.COMMY_BENCH_DIR ?? tmpdir();
    const dir = mkdtempSync(join(base, "commy-bench-api-"));
    const notes: string[] = [];
    const source = sourceState();
    const details: Record<string, unknown> = { source };
    const changed = sourceNote(source);
    if (changed !== undefined) notes.push(changed);
    const plan = pinPlan();
    const pinned = "skipped" in plan ? undefined : plan;
    let server: CommyServerProcess | undefined;
    try {
      const load = loadGenerator(dir, context.log, pinned?.writer);
      notes.push(...placementNotes(plan, load, "server main thread"));
      context.log("starting the server");
      server = await CommyServerProcess.start({ baseDir: dir, name: "api", cpu: pinned?.reader });
      await setUp(server);
      const metrics: Metric[] = [];
      if (wants("calls")) metrics.push(...(await calls(server, load, context, details)));
      if (wants("services")) {
        metrics.push(...(await servicePairs(server, dir, pinned?.writer, context, notes, details)));
        metrics.push(...(await pairParts(dir, context)));
      }
      return {
        metrics,
        notes,
        details,
        machine: { filesystem: machineInfo(dir).filesystem },
        config: {
          loadGenerator: load.description,
          valueBytes: VALUE_BYTES,
          latencyCallsPerRun: LATENCY_CALLS,
          inFlight: IN_FLIGHT,
          throughputSeconds: THROUGHPUT_SECONDS,
          pairsPerRun: PAIRS,
          pairsInFlight: PAIRS_IN_FLIGHT,
          pairLoadGenerators:
            "C: bench/load/connect_pairs.c (HTTP/1.1); typed: connect-es (HTTP/2)",
          credentials: "the admin token on every call",
          transport: "Connect, binary (application/proto), HTTP/2 cleartext, one connection",
        },
      };
    } finally {
      await server?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

/** A tenant, a service and two 64-byte variables: one to read, one to write. */
async function setUp(server: CommyServerProcess): Promise<void> {
  const clients = commyClients(server.baseUrl, server.adminToken);
  try {
    const { commy } = clients;
    await commy.createTenant({ tenantId: TENANT });
    await commy.createService({ tenantId: TENANT, serviceName: SERVICE });
    for (const variableName of ["read64", "write64"]) {
      await commy.allocateVariable({
        tenantId: TENANT,
        serviceName: SERVICE,
        variableName,
        initialData: new Uint8Array(VALUE_BYTES).fill(7),
      });
    }
    const read = await commy.readVariable({
      tenantId: TENANT,
      serviceName: SERVICE,
      variableName: "read64",
    });
    if (read.data.length !== VALUE_BYTES)
      throw new Error("set-up: ReadVariable returned a wrong value");
  } finally {
    clients.close();
  }
}

// ---- ReadVariable and WriteVariable against Echo ----

async function calls(
  server: CommyServerProcess,
  load: ReturnType<typeof loadGenerator>,
  context: SuiteContext,
  details: Record<string, unknown>,
): Promise<Metric[]> {
  const token = server.adminToken;
  const payload = new Uint8Array(VALUE_BYTES).fill(9);
  const echo = connectUnaryCall("echo", EchoService.method.echo, { payload }, token);
  const ref = { tenantId: TENANT, serviceName: SERVICE };
  const read = connectUnaryCall(
    "read",
    CommyService.method.readVariable,
    { ...ref, variableName: "read64" },
    token,
  );
  const write = connectUnaryCall(
    "write",
    CommyService.method.writeVariable,
    { ...ref, variableName: "write64", data: payload },
    token,
  );
  details.requestBytes = {
    echo: echo.body.length,
    read: read.body.length,
    write: write.body.length,
  };
  const latency = (id: string, call: typeof echo): UnaryCase => ({
    id,
    server,
    spec: { call, inFlight: 1, requests: LATENCY_CALLS, latencies: true },
  });
  const throughput = (id: string, call: typeof echo): UnaryCase => ({
    id,
    server,
    spec: { call, inFlight: IN_FLIGHT, seconds: THROUGHPUT_SECONDS },
  });
  context.log(
    `Echo, ReadVariable, WriteVariable: ${LATENCY_CALLS} calls one at a time, then ` +
      `${THROUGHPUT_SECONDS} s with ${IN_FLIGHT} in flight; ${context.runs} runs`,
  );
  const results = await measureCases(
    [
      latency("echo.latency", echo),
      latency("read.latency", read),
      latency("write.latency", write),
      throughput("echo.throughput", echo),
      throughput("read.throughput", read),
      throughput("write.throughput", write),
    ],
    load,
    context.runs,
    context.log,
  );
  details.calls = caseDetails(results);
  return callMetrics(results);
}

function callMetrics(results: CaseRuns): Metric[] {
  const echoLatency = runsOf(results, "echo.latency");
  const echoRate = runsOf(results, "echo.throughput");
  const latencyRatio = (id: string) => ({
    median: medianRatio(runsOf(results, id), echoLatency, (r) => r.p50 as number),
    p99: medianRatio(runsOf(results, id), echoLatency, (r) => r.p99 as number),
  });
  const rateRatio = (id: string) => ({
    median: medianRatio(runsOf(results, id), echoRate, (r) => r.rate),
  });
  const cpuRatio = (id: string, floor: string) => ({
    median: medianRatio(runsOf(results, id), runsOf(results, floor), (r) => r.cpuPerCall),
  });
  const b = `${VALUE_BYTES} B`;
  return [
    latencyMetric(
      { id: "echo.latency", label: `floor: Echo ${b}, 1 call in flight (latency)` },
      echoLatency,
    ),
    withRatio(
      latencyMetric(
        {
          id: "read.latency",
          label: `ReadVariable ${b}, 1 call in flight (latency)`,
          target: "p50 ≤ 1.3× Echo",
        },
        runsOf(results, "read.latency"),
      ),
      "Echo",
      latencyRatio("read.latency"),
      (ratio) => ratio <= 1.3,
    ),
    withRatio(
      latencyMetric(
        { id: "write.latency", label: `WriteVariable ${b}, 1 call in flight (latency)` },
        runsOf(results, "write.latency"),
      ),
      "Echo",
      latencyRatio("write.latency"),
    ),
    rateMetric(
      { id: "echo.throughput", label: `floor: Echo ${b}, ${IN_FLIGHT} in flight, 1 connection` },
      echoRate,
    ),
    withRatio(
      rateMetric(
        {
          id: "read.throughput",
          label: `ReadVariable ${b}, ${IN_FLIGHT} in flight, 1 connection`,
          target: "≥ 0.8× Echo",
        },
        runsOf(results, "read.throughput"),
      ),
      "Echo",
      rateRatio("read.throughput"),
      (ratio) => ratio >= 0.8,
    ),
    withRatio(
      rateMetric(
        {
          id: "write.throughput",
          label: `WriteVariable ${b}, ${IN_FLIGHT} in flight, 1 connection`,
          target: "≥ 0.7× Echo",
        },
        runsOf(results, "write.throughput"),
      ),
      "Echo",
      rateRatio("write.throughput"),
      (ratio) => ratio >= 0.7,
    ),
    cpuMetric(
      {
        id: "echo.cpu",
        label: `server CPU per call: Echo (${IN_FLIGHT} in flight)`,
        note: "the server process's CPU time (all threads) over the calls of the run",
      },
      echoRate,
    ),
    withRatio(
      cpuMetric(
        { id: "read.cpu", label: `server CPU per call: ReadVariable (${IN_FLIGHT} in flight)` },
        runsOf(results, "read.throughput"),
      ),
      "Echo",
      cpuRatio("read.throughput", "echo.throughput"),
    ),
    withRatio(
      cpuMetric(
        { id: "write.cpu", label: `server CPU per call: WriteVariable (${IN_FLIGHT} in flight)` },
        runsOf(results, "write.throughput"),
      ),
      "Echo",
      cpuRatio("write.throughput", "echo.throughput"),
    ),
  ];
}

// ---- CreateService + DeleteService ----

/** One way of sending pairs: the C generator over HTTP/1.1, or the typed client over HTTP/2. */
interface PairDriver {
  /** "C", "typed": the suffix of its rows' ids and labels. */
  name: string;
  /** `count` pairs of the kind asked for; names start with `prefix`. */
  run(which: "echo" | "pairs", prefix: string, count: number): Promise<PairTimes>;
  close(): void;
}

interface PairTimes {
  /** Each pair's time, µs. */
  times: number[];
  seconds: number;
}

/** What the runs of one driver measured, run by run (warm-up dropped). */
interface PairRuns {
  rates: number[];
  p50s: number[];
  p99s: number[];
  cpu: number[];
  echoRates: number[];
  echoCpu: number[];
  /** Runs that stopped at the time limit. */
  cut: number;
}

async function servicePairs(
  server: CommyServerProcess,
  dir: string,
  cpu: number | undefined,
  context: SuiteContext,
  notes: string[],
  details: Record<string, unknown>,
): Promise<Metric[]> {
  const drivers: PairDriver[] = [];
  const built = PairLoad.build(dir, cpu);
  if ("skipped" in built) notes.push(`service pairs: no C load generator (${built.skipped})`);
  else {
    drivers.push(cDriver(server, built));
    if (cpu !== undefined) notes.push(`the C pair generator pinned to CPU ${cpu}`);
  }
  drivers.push(typedDriver(server));
  const metrics: Metric[] = [];
  for (const driver of drivers) {
    context.log(
      `CreateService + DeleteService: ${PAIRS} pairs, ${PAIRS_IN_FLIGHT} at once, ` +
        `${context.runs} runs (${driver.name} client), each next to Echo pairs`,
    );
    let runs: PairRuns;
    try {
      runs = await measurePairs(server, driver, context.runs);
    } finally {
      driver.close();
    }
    if (runs.cut > 0) {
      notes.push(`service pairs (${driver.name}): ${runs.cut} runs stopped at the time limit`);
    }
    details[`servicePairs.${driver.name}`] = { ...runs, rates: runs.rates.map(Math.round) };
    // The first driver's rows are the judged ones; the others' are there to be read.
    metrics.push(...pairMetrics(driver.name, runs, metrics.length === 0));
  }
  return metrics;
}

/** Pairs and Echo pairs in turn, the floor first in odd runs and second in even ones. */
async function measurePairs(
  server: CommyServerProcess,
  driver: PairDriver,
  measuredRuns: number,
): Promise<PairRuns> {
  const runs: PairRuns = {
    rates: [],
    p50s: [],
    p99s: [],
    cpu: [],
    echoRates: [],
    echoCpu: [],
    cut: 0,
  };
  for (let run = 0; run <= measuredRuns; run++) {
    const count = run === 0 ? PAIRS / 5 : PAIRS;
    // Both meet the same moments of a shared machine.
    const order = run % 2 === 1 ? (["echo", "pairs"] as const) : (["pairs", "echo"] as const);
    for (const which of order) {
      const before = await server.usage();
      const { times, seconds } = await driver.run(which, `${driver.name}${run}-`, count);
      const after = await server.usage();
      if (run === 0) continue; // warm-up
      const cpuPerPair = (after.cpuMicros - before.cpuMicros) / times.length;
      const rate = times.length / seconds;
      if (which === "echo") {
        runs.echoRates.push(rate);
        runs.echoCpu.push(cpuPerPair);
        continue;
      }
      if (times.length < count) runs.cut++;
      runs.rates.push(rate);
      const shape = distribution(times);
      runs.p50s.push(shape.p50);
      runs.p99s.push(shape.p99);
      runs.cpu.push(cpuPerPair);
    }
  }
  return runs;
}

function pairMetrics(name: string, runs: PairRuns, judge: boolean): Metric[] {
  const perRun = (ours: number[], floor: number[]): number =>
    median(ours.map((value, i) => value / (floor[i] as number)));
  const suffix = judge ? "" : `.${name}`;
  const how =
    name === "C"
      ? "C client (bench/load/connect_pairs.c), HTTP/1.1, one connection per pair in flight"
      : "typed connect-es client in the bench process, HTTP/2, one connection";
  const rate = metricFromRuns(
    {
      id: `service.pairs${suffix}`,
      label: `CreateService + DeleteService pairs, ${PAIRS_IN_FLIGHT} at once (${name} client)`,
      unit: "ops/s",
      note: `${how}; each pair creates and unlinks a service file`,
    },
    runs.rates,
  );
  if (judge) {
    rate.target = "≥ 1,000 pairs/s";
    judged(rate, (m) => m.median >= 1_000);
  }
  return [
    metricFromRuns(
      {
        id: `echo.pairs${suffix}`,
        label: `floor: Echo 64 B twice, ${PAIRS_IN_FLIGHT} such pairs at once (${name} client)`,
        unit: "ops/s",
        note: "the same client and connections, two calls per pair",
      },
      runs.echoRates,
    ),
    withRatio(rate, "Echo pairs", { median: perRun(runs.rates, runs.echoRates) }),
    metricFromRuns(
      {
        id: `service.pair.latency${suffix}`,
        label: `one pair (create, then delete), ${PAIRS_IN_FLIGHT} at once (${name} client)`,
        unit: "µs",
      },
      runs.p50s,
      runs.p99s,
    ),
    metricFromRuns(
      {
        id: `echo.pair.cpu${suffix}`,
        label: `server CPU per Echo pair (${name} client)`,
        unit: "µs",
      },
      runs.echoCpu.length > 0 ? runs.echoCpu : [Number.NaN],
    ),
    withRatio(
      metricFromRuns(
        {
          id: `service.pair.cpu${suffix}`,
          label: `server CPU per pair (${name} client)`,
          unit: "µs",
        },
        runs.cpu.length > 0 ? runs.cpu : [Number.NaN],
      ),
      "Echo pair",
      { median: runs.cpu.length > 0 ? perRun(runs.cpu, runs.echoCpu) : Number.NaN },
    ),
  ];
}

/** The C generator: a fresh name per pair goes into both bodies at one offset. */
function cDriver(server: CommyServerProcess, load: PairLoad): PairDriver {
  const token = server.adminToken;
  const payload = new Uint8Array(VALUE_BYTES).fill(7);
  const echo = connectUnaryCall("echo", EchoService.method.echo, { payload }, token);
  const digits = "0".repeat(8);
  return {
    name: "C",
    async run(which, prefix, count) {
      const spec = { baseUrl: server.baseUrl, connections: PAIRS_IN_FLIGHT, pairs: count };
      const limitSeconds = PAIRS_LIMIT_MS / 1000;
      if (which === "echo") {
        const result = await load.run({ ...spec, first: echo, second: echo, limitSeconds });
        return { times: result.pairMicros, seconds: result.seconds };
      }
      const ref = { tenantId: TENANT, serviceName: `${prefix}${digits}` };
      const create = connectUnaryCall("create", CommyService.method.createService, ref, token);
      const remove = connectUnaryCall("delete", CommyService.method.deleteService, ref, token);
      const counter = pairCounter(create, remove, digits);
      const result = await load.run({
        ...spec,
        first: create,
        second: remove,
        counter,
        limitSeconds,
      });
      return { times: result.pairMicros, seconds: result.seconds };
    },
    close: () => undefined,
  };
}

/** The typed clients in this process, on one HTTP/2 connection. */
function typedDriver(server: CommyServerProcess): PairDriver {
  const clients = pairClients(server.baseUrl, server.adminToken);
  return {
    name: "typed",
    async run(which, prefix, count) {
      const start = nowNs();
      const times =
        which === "echo" ? await echoPairs(clients, count) : await pairs(clients, prefix, count);
      return { times, seconds: Number(nowNs() - start) / 1e9 };
    },
    close: () => clients.close(),
  };
}

/** The typed clients of the service pairs and of their floor, on one HTTP/2 connection. */
interface PairClients extends Pick<CommyClients, "commy" | "close"> {
  echo: Client<typeof EchoService>;
}

function pairClients(baseUrl: string, bearer: string): PairClients {
  const sessionManager = new Http2SessionManager(baseUrl);
  const transport = createConnectTransport({
    baseUrl,
    httpVersion: "2",
    sessionManager,
    useBinaryFormat: true,
    interceptors: [
      (next) => (request) => {
        request.header.set("authorization", `Bearer ${bearer}`);
        return next(request);
      },
    ],
  });
  return {
    commy: createClient(CommyService, transport),
    echo: createClient(EchoService, transport),
    close: () => sessionManager.abort(),
  };
}

/** `count` pairs of Echo calls, `PAIRS_IN_FLIGHT` workers: the transport's share of a pair. */
async function echoPairs(clients: PairClients, count: number): Promise<number[]> {
  const times: number[] = [];
  const payload = new Uint8Array(VALUE_BYTES).fill(7);
  const deadline = performance.now() + PAIRS_LIMIT_MS;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count && performance.now() < deadline) {
      next++;
      const t0 = nowNs();
      await clients.echo.echo({ payload });
      await clients.echo.echo({ payload });
      times.push(Number(nowNs() - t0) / 1000);
    }
  };
  await Promise.all(Array.from({ length: PAIRS_IN_FLIGHT }, worker));
  return times;
}

/** `count` pairs, `PAIRS_IN_FLIGHT` workers; each pair's time in µs. */
async function pairs(clients: PairClients, prefix: string, count: number): Promise<number[]> {
  const times: number[] = [];
  const deadline = performance.now() + PAIRS_LIMIT_MS;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count && performance.now() < deadline) {
      const serviceName = `${prefix}-${next++}`;
      const t0 = nowNs();
      await clients.commy.createService({ tenantId: TENANT, serviceName });
      await clients.commy.deleteService({ tenantId: TENANT, serviceName });
      times.push(Number(nowNs() - t0) / 1000);
    }
  };
  await Promise.all(Array.from({ length: PAIRS_IN_FLIGHT }, worker));
  return times;
}

// ---- what a pair is made of, measured in this process ----

/** Operations per run of each in-process part. */
const PART_OPS = 300;

/**
 * The parts of a pair without the RPC: the service file (made, marked
 * deleted, closed, unlinked: src/core/service-file-registry.ts; the unlink
 * on the threadpool, waited for), and of that what the request path itself
 * does (take a spare file, mark it deleted) while the registry's upkeep
 * runs between calls; the store rows
 * (the service row in and out, each in one transaction with its audit
 * row); and the bare filesystem work under a file (create, size, close,
 * unlink), all in the data directory's filesystem.
 */
async function pairParts(dir: string, context: SuiteContext): Promise<Metric[]> {
  context.log(`the parts of a pair, in this process: ${PART_OPS} of each, ${context.runs} runs`);
  const partsDir = mkdtempSync(join(dir, "parts-"));
  const registry = new ServiceFileRegistry(partsDir);
  const store = openSqliteControlStore(join(partsDir, "commy.db"));
  store.insertTenant({ tenantId: TENANT, tenantName: TENANT, createdBy: "admin", createdAt: 0 });
  const runs = {
    fs: [] as number[],
    file: [] as number[],
    requestPath: [] as number[],
    store: [] as number[],
  };
  const audit = (action: string): void =>
    store.appendAudit({
      time: Date.now(),
      principalId: "admin",
      tenantId: TENANT,
      action,
      resource: `${TENANT}/x`,
      outcome: "ok",
      clientAddress: "127.0.0.1:1",
      detail: "",
    });
  try {
    for (let run = 0; run <= context.runs; run++) {
      collectGarbage();
      let start = nowNs();
      for (let i = 0; i < PART_OPS; i++) {
        const path = join(partsDir, `bare-${i}`);
        const fd = openSync(path, "wx+", 0o600);
        ftruncateSync(fd, 256 * 1024);
        closeSync(fd);
        unlinkSync(path);
      }
      const fs = elapsedNs(start) / PART_OPS / 1000;
      start = nowNs();
      for (let i = 0; i < PART_OPS; i++) {
        const serviceId = randomUUID();
        registry.create(serviceId);
        registry.remove(serviceId);
        registry.finishRemovals();
        await registry.settled();
      }
      const file = elapsedNs(start) / PART_OPS / 1000;
      let requestPathNs = 0;
      for (let i = 0; i < PART_OPS; i++) {
        await registry.settled();
        start = nowNs();
        registry.remove(registry.claim().serviceId);
        requestPathNs += elapsedNs(start);
      }
      await registry.settled();
      const requestPath = requestPathNs / PART_OPS / 1000;
      start = nowNs();
      for (let i = 0; i < PART_OPS; i++) {
        const serviceName = `r${run}-${i}`;
        store.transaction(() => {
          store.getTenant(TENANT);
          store.insertService({
            serviceId: randomUUID(),
            tenantId: TENANT,
            serviceName,
            createdBy: "admin",
            createdAt: Date.now(),
          });
          audit("service.create");
        });
        store.transaction(() => {
          store.deleteService(TENANT, serviceName);
          audit("service.delete");
        });
      }
      const rows = elapsedNs(start) / PART_OPS / 1000;
      if (run === 0) continue; // warm-up
      runs.fs.push(fs);
      runs.file.push(file);
      runs.requestPath.push(requestPath);
      runs.store.push(rows);
    }
  } finally {
    await registry.closeAll();
    store.close();
    rmSync(partsDir, { recursive: true, force: true });
  }
  return [
    metricFromRuns(
      {
        id: "pair.part.file",
        label: "in process: service file made + removed (registry, all of it, wall time)",
        unit: "µs",
        note:
          "256 KiB file, 1 GiB mapping, made on the event loop; marked deleted, then unmapped " +
          "and unlinked on the threadpool, waited for",
      },
      runs.file,
    ),
    metricFromRuns(
      {
        id: "pair.part.file.request",
        label: "in process: of which on the request path (spare taken, marked deleted)",
        unit: "µs",
        note: "the rest runs in the registry's upkeep turns between calls",
      },
      runs.requestPath,
    ),
    metricFromRuns(
      {
        id: "pair.part.store",
        label: "in process: store rows of a pair (SQLite, 2 commits)",
        unit: "µs",
        note: "service row in and out, each in one transaction with its audit row (WAL, synchronous=NORMAL)",
      },
      runs.store,
    ),
    metricFromRuns(
      {
        id: "pair.part.fs",
        label: "floor: open(O_EXCL) + ftruncate 256 KiB + close + unlink",
        unit: "µs",
        note: "the filesystem's own cost under a service file",
      },
      runs.fs,
    ),
  ];
}
