/**
 * The legacy WebSocket bridge: a ReadVariable over the bridge next to the
 * same call over Connect (one client, one call at a time, both from the
 * same Node client process), and a fleet of 1,000 bridge connections each
 * sending a request a second.
 *
 * The server runs in its own process (bench/servers/commy-server.ts) with
 * its main thread pinned to one CPU, the clients in another
 * (bench/suites/bridge-client.ts) pinned to the other. Every loop is
 * bounded by a count or a duration.
 */
import { BenchChild } from "../lib/child.js";
import { createBenchVariable } from "../lib/commy-client.js";
import { CommyServerProcess } from "../lib/commy-server.js";
import { median, percentile } from "../lib/stats.js";
import { type ServerAndClient, startServerAndClient } from "../lib/server-and-client.js";
import { type Metric, type Suite, type SuiteContext, metricFromRuns } from "../lib/suite.js";
import { suiteWorkspace } from "../lib/workspace.js";

const CLIENT_SCRIPT = new URL("./bridge-client.ts", import.meta.url);
const VALUE_BYTES = 64;
/** Calls of each path per sequential run. */
const SEQUENTIAL_CALLS = 2_000;
/** The fleet: connections, and seconds each sends one request a second. */
const FLEET_CONNECTIONS = 1_000;
const FLEET_SECONDS = 10;

const TENANT = "bench";
const SERVICE = "bridge";
const VARIABLE = "read64";

interface Target {
  serviceId: string;
}

export const bridgeSuite: Suite = {
  name: "bridge",
  description: "legacy WebSocket bridge: ReadVariable vs Connect, 1,000 connections at 1 req/s",
  parts: ["sequential", "fleet"],
  async run(context) {
    const wants = (part: string): boolean =>
      context.parts.length === 0 || context.parts.includes(part);
    const workspace = suiteWorkspace("bridge");
    const { notes, source } = workspace;
    let ends: ServerAndClient | undefined;
    try {
      context.log("starting the server and the client process");
      ends = await startServerAndClient(workspace, "bridge", CLIENT_SCRIPT);
      const { server, client } = ends;
      const target = await setUp(server);
      const metrics: Metric[] = [];
      const details: Record<string, unknown> = { source };
      if (wants("sequential")) {
        metrics.push(...(await sequential(server, client, target, context, details)));
      }
      if (wants("fleet")) metrics.push(...(await fleet(server, client, target, context, details)));
      return {
        metrics,
        notes,
        details,
        config: {
          valueBytes: VALUE_BYTES,
          sequentialCallsPerRun: SEQUENTIAL_CALLS,
          fleetConnections: FLEET_CONNECTIONS,
          fleetSecondsPerRun: FLEET_SECONDS,
          bridgeMode: "legacy (no request_id), authenticated with the admin token as api_key",
          connect: "connect-node, binary, HTTP/2, one connection",
        },
      };
    } finally {
      await ends?.stop();
      workspace.remove();
    }
  },
};

async function setUp(server: CommyServerProcess): Promise<Target> {
  const ref = { tenantId: TENANT, serviceName: SERVICE, variableName: VARIABLE };
  return {
    serviceId: await createBenchVariable(server.baseUrl, server.adminToken, ref, VALUE_BYTES),
  };
}

async function sequential(
  server: CommyServerProcess,
  client: BenchChild,
  target: Target,
  context: SuiteContext,
  details: Record<string, unknown>,
): Promise<Metric[]> {
  context.log(
    `ReadVariable, Connect and bridge in turn: ${SEQUENTIAL_CALLS} calls each, ${context.runs} runs`,
  );
  const runs: { connect: number[]; bridge: number[] }[] = [];
  for (let run = 0; run <= context.runs; run++) {
    client.send({
      type: "sequential",
      baseUrl: server.baseUrl,
      token: server.adminToken,
      tenantId: TENANT,
      serviceName: SERVICE,
      serviceId: target.serviceId,
      variableName: VARIABLE,
      calls: SEQUENTIAL_CALLS,
    });
    const result = await client.next("sequential", 120_000);
    // Run 0 warms up the server.
    if (run > 0)
      runs.push({ connect: result.connect as number[], bridge: result.bridge as number[] });
  }
  const p = (samples: number[], q: number): number => percentile(samples, q);
  const connectP50 = runs.map((r) => p(r.connect, 0.5));
  const bridgeP50 = runs.map((r) => p(r.bridge, 0.5));
  const ratios = runs.map((_, i) => (bridgeP50[i] as number) / (connectP50[i] as number));
  const ratioP99 = median(runs.map((r) => p(r.bridge, 0.99) / p(r.connect, 0.99)));
  details.sequential = { connectP50, bridgeP50, ratios };
  const connectRow = metricFromRuns(
    {
      id: "connect.read",
      label: `floor: Connect ReadVariable ${VALUE_BYTES} B, 1 client, 1 call at a time`,
      unit: "µs",
    },
    connectP50,
    runs.map((r) => p(r.connect, 0.99)),
  );
  const bridgeRow = metricFromRuns(
    {
      id: "bridge.read",
      label: `bridge ReadVariable ${VALUE_BYTES} B, 1 client, 1 call at a time`,
      unit: "µs",
      target: "p50 ≤ 1.5× Connect",
    },
    bridgeP50,
    runs.map((r) => p(r.bridge, 0.99)),
  );
  bridgeRow.ratio = { floor: "Connect", median: median(ratios), p99: ratioP99 };
  bridgeRow.pass = median(ratios) <= 1.5;
  return [connectRow, bridgeRow];
}

async function fleet(
  server: CommyServerProcess,
  client: BenchChild,
  target: Target,
  context: SuiteContext,
  details: Record<string, unknown>,
): Promise<Metric[]> {
  const runs = Math.max(1, Math.min(context.runs, 3));
  context.log(
    `${FLEET_CONNECTIONS} bridge connections × 1 ReadVariable/s for ${FLEET_SECONDS} s, ${runs} runs`,
  );
  const p50: number[] = [];
  const p99: number[] = [];
  const errors: number[] = [];
  const completed: number[] = [];
  const cpuPerRequest: number[] = [];
  const setupMs: number[] = [];
  for (let run = 0; run < runs; run++) {
    const before = await server.usage();
    client.send({
      type: "fleet",
      baseUrl: server.baseUrl,
      token: server.adminToken,
      tenantId: TENANT,
      serviceId: target.serviceId,
      variableName: VARIABLE,
      connections: FLEET_CONNECTIONS,
      seconds: FLEET_SECONDS,
    });
    const result = await client.next("fleet", (FLEET_SECONDS + 120) * 1000);
    const after = await server.usage();
    const latencies = result.latencies as number[];
    p50.push(percentile(latencies, 0.5) / 1000);
    p99.push(percentile(latencies, 0.99) / 1000);
    errors.push(result.errors as number);
    completed.push(latencies.length);
    setupMs.push(result.setupMs as number);
    // Includes opening and authenticating the connections: an upper bound.
    cpuPerRequest.push((after.cpuMicros - before.cpuMicros) / Math.max(1, latencies.length));
  }
  details.fleet = { p50, p99, errors, completed, setupMs, cpuPerRequest };
  const latencyRow = metricFromRuns(
    {
      id: "fleet.latency",
      label: `${FLEET_CONNECTIONS} bridge connections × 1 ReadVariable/s: latency`,
      unit: "ms",
      target: "p99 ≤ 10 ms, no errors",
    },
    p50,
    p99,
  );
  latencyRow.pass = (latencyRow.p99 as number) <= 10 && errors.every((e) => e === 0);
  return [
    latencyRow,
    metricFromRuns(
      { id: "fleet.errors", label: "… requests failed or unanswered", unit: "requests" },
      errors,
    ),
    metricFromRuns(
      { id: "fleet.completed", label: "… requests answered per run", unit: "requests" },
      completed,
    ),
    metricFromRuns(
      {
        id: "fleet.cpu",
        label: "… server CPU per request (incl. connection set-up)",
        unit: "µs",
      },
      cpuPerRequest,
    ),
  ];
}
