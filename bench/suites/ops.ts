/**
 * What operability costs: ReadVariable throughput of a server with
 * Prometheus metrics on and logging at info, next to the same server with
 * metrics off and logging silent, measured in turn in every run (h2load,
 * 16 calls in flight on one HTTP/2 connection, the server pinned to one
 * CPU and h2load to the other).
 */
import { CommyService } from "../../gen/commy/v1/commy_service_pb.js";
import { createBenchVariable } from "../lib/commy-client.js";
import { CommyServerProcess } from "../lib/commy-server.js";
import type { Suite } from "../lib/suite.js";
import { suiteWorkspace } from "../lib/workspace.js";
import {
  caseDetails,
  cpuMetric,
  measureCases,
  medianRatio,
  placementNotes,
  rateMetric,
  runsOf,
  withRatio,
} from "../lib/unary-cases.js";
import { connectUnaryCall, loadGenerator } from "../lib/unary-load.js";

const VALUE_BYTES = 64;
const IN_FLIGHT = 16;
const SECONDS = 3;
const TENANT = "bench";
const SERVICE = "ops";

export const opsSuite: Suite = {
  name: "ops",
  description: "cost of metrics and info logging on ReadVariable throughput (on vs off)",
  async run(context) {
    const workspace = suiteWorkspace("ops");
    const { dir, notes, source, plan, pinned } = workspace;
    const servers: CommyServerProcess[] = [];
    try {
      const load = loadGenerator(dir, context.log, pinned?.writer);
      notes.push(...placementNotes(plan, load, "server main threads"));
      context.log("starting two servers: metrics on + info logs, metrics off + silent");
      const on = await CommyServerProcess.start({
        baseDir: dir,
        name: "on",
        cpu: pinned?.reader,
        metrics: true,
        logLevel: "info",
      });
      servers.push(on);
      const off = await CommyServerProcess.start({
        baseDir: dir,
        name: "off",
        cpu: pinned?.reader,
        metrics: false,
        logLevel: "silent",
      });
      servers.push(off);
      for (const server of servers) await setUp(server);
      const read = (server: CommyServerProcess) =>
        connectUnaryCall(
          "read",
          CommyService.method.readVariable,
          { tenantId: TENANT, serviceName: SERVICE, variableName: "read64" },
          server.adminToken,
        );
      const spec = (server: CommyServerProcess) => ({
        call: read(server),
        inFlight: IN_FLIGHT,
        seconds: SECONDS,
      });
      const results = await measureCases(
        [
          { id: "off", server: off, spec: spec(off) },
          { id: "on", server: on, spec: spec(on) },
        ],
        load,
        context.runs,
        context.log,
      );
      const offRuns = runsOf(results, "off");
      const onRuns = runsOf(results, "on");
      const b = `${VALUE_BYTES} B`;
      return {
        metrics: [
          rateMetric(
            { id: "off.rate", label: `ReadVariable ${b}, metrics off, logs silent` },
            offRuns,
          ),
          withRatio(
            rateMetric(
              {
                id: "on.rate",
                label: `ReadVariable ${b}, metrics on, logs at info`,
                target: "≥ 0.9× off (costs ≤ 10%)",
              },
              onRuns,
            ),
            "off",
            { median: medianRatio(onRuns, offRuns, (r) => r.rate) },
            (ratio) => ratio >= 0.9,
          ),
          cpuMetric({ id: "off.cpu", label: "server CPU per call, metrics off" }, offRuns),
          withRatio(
            cpuMetric({ id: "on.cpu", label: "server CPU per call, metrics on" }, onRuns),
            "off",
            { median: medianRatio(onRuns, offRuns, (r) => r.cpuPerCall) },
          ),
        ],
        notes,
        details: { source, calls: caseDetails(results) },
        config: {
          loadGenerator: load.description,
          inFlight: IN_FLIGHT,
          secondsPerRun: SECONDS,
          valueBytes: VALUE_BYTES,
        },
      };
    } finally {
      for (const server of servers) await server.stop();
      workspace.remove();
    }
  },
};

async function setUp(server: CommyServerProcess): Promise<void> {
  const ref = { tenantId: TENANT, serviceName: SERVICE, variableName: "read64" };
  await createBenchVariable(server.baseUrl, server.adminToken, ref, VALUE_BYTES);
}
