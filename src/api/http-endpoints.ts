/**
 * Plain HTTP endpoints beside the RPC routes (connect-node's fallback for
 * paths it does not serve): GET /healthz for load balancers, GET /metrics
 * for Prometheus. Anything else
 * is 404, as connect-node would answer.
 */
import type { connectNodeAdapter } from "@connectrpc/connect-node";
import type { HealthMonitor } from "./health-monitor.js";
import type { ServerMetrics } from "./server-metrics.js";

/** connect-node's handler for unrouted requests (its type is not exported by name). */
type NodeHandlerFn = NonNullable<Parameters<typeof connectNodeAdapter>[0]["fallback"]>;
type NodeServerResponse = Parameters<NodeHandlerFn>[1];

export interface HttpEndpointDependencies {
  health: HealthMonitor;
  /** Undefined when metrics are off: /metrics is then 404. */
  metrics: ServerMetrics | undefined;
}

export function createHttpEndpoints(deps: HttpEndpointDependencies): NodeHandlerFn {
  return (request, response) => {
    const path = (request.url ?? "").split("?")[0];
    if (path === "/healthz" && (request.method === "GET" || request.method === "HEAD")) {
      const report = deps.health.report();
      const body = report.serving ? "ok\n" : `not serving: ${report.failing.join("; ")}\n`;
      reply(response, report.serving ? 200 : 503, body);
      return;
    }
    if (path === "/metrics" && request.method === "GET" && deps.metrics !== undefined) {
      deps.metrics.scrape().then(
        ({ contentType, body }) => reply(response, 200, body, contentType),
        () => reply(response, 500, "metrics unavailable\n"),
      );
      return;
    }
    reply(response, 404, "not found\n");
  };
}

function reply(
  response: NodeServerResponse,
  status: number,
  body: string,
  contentType = "text/plain; charset=utf-8",
): void {
  response.writeHead(status, {
    "content-type": contentType,
    "cache-control": "no-store",
  });
  response.end(body);
}
