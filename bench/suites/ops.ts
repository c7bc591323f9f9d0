/**
 * What operability costs: ReadVariable throughput of a server with
 * Prometheus metrics on and logging at info, next to the same server with
 * metrics off and logging silent, measured in turn in every run (h2load,
 * 16 calls in flight on one HTTP/2 connection, the server pinned to one
 * CPU and h2load to the other). Two processes of the same code differ by
 * about ±10 % in CPU per call, more than what is measured: each setting
 * runs in several processes, and a run's figure is their mean.
 */
import { CommyService } from "../../gen/commy/v1/commy_service_pb.js";
import { createBenchVariable } from "../lib/commy-client.js";
import { CommyServerProcess } from "../lib/commy-server.js";
import type { Suite } from "../lib/suite.js";
import { suiteWorkspace } from "../lib/workspace.js";
import {
  type CaseRun,
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
const SECONDS = 1;
/** Server processes per setting. */
const PROCESSES = 3;
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
      context.log(
        `starting ${PROCESSES} servers of each: metrics on + info logs, metrics off + silent`,
      );
      const settings = {
        on: { metrics: true, logLevel: "info" },
        off: { metrics: false, logLevel: "silent" },
      } as const;
      const cases: { id: string; server: CommyServerProcess; setting: "on" | "off" }[] = [];
      for (let i = 1; i <= PROCESSES; i++) {
        for (const setting of ["off", "on"] as const) {
          const server = await CommyServerProcess.start({
            baseDir: dir,
            name: `${setting}-${i}`,
            cpu: pinned?.reader,
            ...settings[setting],
          });
          servers.push(server);
          await setUp(server);
          cases.push({ id: `${setting}-${i}`, server, setting });
        }
      }
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
        cases.map(({ id, server }) => ({ id, server, spec: spec(server) })),
        load,
        context.runs,
        context.log,
      );
      const pooled = (setting: "on" | "off"): CaseRun[] =>
        meanPerRun(cases.filter((c) => c.setting === setting).map((c) => runsOf(results, c.id)));
      const offRuns = pooled("off");
      const onRuns = pooled("on");
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
          processesPerSetting: PROCESSES,
          valueBytes: VALUE_BYTES,
        },
      };
    } finally {
      for (const server of servers) await server.stop();
      workspace.remove();
    }
  },
};

/** Run by run, the mean rate and CPU per call over several processes' runs. */
function meanPerRun(processes: readonly CaseRun[][]): CaseRun[] {
  const first = processes[0] ?? [];
  const mean = (values: number[]): number =>
    values.reduce((sum, value) => sum + value, 0) / values.length;
  return first.map((run, i) => {
    const runs = processes.map((p) => p[i] as CaseRun);
    return {
      ...run,
      rate: mean(runs.map((r) => r.rate)),
      cpuPerCall: mean(runs.map((r) => r.cpuPerCall)),
      calls: runs.reduce((sum, r) => sum + r.calls, 0),
    };
  });
}

async function setUp(server: CommyServerProcess): Promise<void> {
  const ref = { tenantId: TENANT, serviceName: SERVICE, variableName: "read64" };
  await createBenchVariable(server.baseUrl, server.adminToken, ref, VALUE_BYTES);
}
