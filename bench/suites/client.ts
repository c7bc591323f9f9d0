/**
 * The client library's cost: ReadVariable through CommyClient next to the
 * same call through the raw generated connect-es client, in the same run
 * (target: CommyClient's p50 at most 10 % above the raw client's).
 *
 * The server runs in its own process (bench/servers/commy-server.ts) with
 * its main thread pinned to one CPU, both clients in another process
 * (bench/suites/client-reader.ts) pinned to the other. Every loop is
 * bounded by a count.
 */
import { createBenchVariable } from "../lib/commy-client.js";
import { CommyServerProcess } from "../lib/commy-server.js";
import { median, percentile } from "../lib/stats.js";
import { type ServerAndClient, startServerAndClient } from "../lib/server-and-client.js";
import { type Metric, type Suite, metricFromRuns } from "../lib/suite.js";
import { suiteWorkspace } from "../lib/workspace.js";

const CLIENT_SCRIPT = new URL("./client-reader.ts", import.meta.url);
const VALUE_BYTES = 64;
/** Calls of each client per run. */
const CALLS = 3_000;
/** The most CommyClient may add to the raw client's p50. */
const MAX_RATIO = 1.1;

const TENANT = "bench";
const SERVICE = "client";
const VARIABLE = "read64";

export const clientSuite: Suite = {
  name: "client",
  description: "CommyClient vs the raw generated client: ReadVariable p50",
  async run(context) {
    const workspace = suiteWorkspace("client");
    const { notes, source } = workspace;
    let ends: ServerAndClient | undefined;
    try {
      context.log("starting the server and the client process");
      ends = await startServerAndClient(workspace, "client", CLIENT_SCRIPT);
      const { server, client } = ends;
      await setUp(server);
      context.log(
        `ReadVariable, raw and CommyClient in turn: ${CALLS} calls each, ${context.runs} runs`,
      );
      const runs: { raw: number[]; client: number[] }[] = [];
      for (let run = 0; run <= context.runs; run++) {
        client.send({
          type: "read",
          baseUrl: server.baseUrl,
          token: server.adminToken,
          tenantId: TENANT,
          serviceName: SERVICE,
          variableName: VARIABLE,
          calls: CALLS,
        });
        const result = await client.next("read", 120_000);
        // Run 0 warms up the server.
        if (run > 0) runs.push({ raw: result.raw as number[], client: result.client as number[] });
      }
      const metrics = metricsOf(runs);
      return {
        metrics,
        notes,
        details: {
          source,
          rawP50: runs.map((r) => percentile(r.raw, 0.5)),
          clientP50: runs.map((r) => percentile(r.client, 0.5)),
        },
        config: {
          valueBytes: VALUE_BYTES,
          callsPerRun: CALLS,
          connect: "connect-node, binary, HTTP/2, one connection per client",
          client: "CommyClient with its defaults (10 s timeout, retries of reads)",
        },
      };
    } finally {
      await ends?.stop();
      workspace.remove();
    }
  },
};

async function setUp(server: CommyServerProcess): Promise<void> {
  const ref = { tenantId: TENANT, serviceName: SERVICE, variableName: VARIABLE };
  await createBenchVariable(server.baseUrl, server.adminToken, ref, VALUE_BYTES);
}

function metricsOf(runs: readonly { raw: number[]; client: number[] }[]): Metric[] {
  const p = (samples: number[], q: number): number => percentile(samples, q);
  const rawP50 = runs.map((r) => p(r.raw, 0.5));
  const clientP50 = runs.map((r) => p(r.client, 0.5));
  const ratios = runs.map((_, i) => (clientP50[i] as number) / (rawP50[i] as number));
  const rawRow = metricFromRuns(
    {
      id: "raw.read",
      label: `floor: raw generated client ReadVariable ${VALUE_BYTES} B, 1 call at a time`,
      unit: "µs",
    },
    rawP50,
    runs.map((r) => p(r.raw, 0.99)),
  );
  const clientRow = metricFromRuns(
    {
      id: "client.read",
      label: `CommyClient ReadVariable ${VALUE_BYTES} B, 1 call at a time`,
      unit: "µs",
      target: `p50 ≤ ${MAX_RATIO}× raw`,
    },
    clientP50,
    runs.map((r) => p(r.client, 0.99)),
  );
  clientRow.ratio = {
    floor: "raw client",
    median: median(ratios),
    p99: median(runs.map((r) => p(r.client, 0.99) / p(r.raw, 0.99))),
  };
  clientRow.pass = median(ratios) <= MAX_RATIO;
  return [rawRow, clientRow];
}
