/**
 * grpc.health.v1.Health over Connect: Check, Watch and List for the whole
 * server ("") and for each service it serves, all backed by one
 * HealthMonitor (every service shares the server's fate).
 */
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  type Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../../gen/grpc/health/v1/health_pb.js";
import type { HealthMonitor } from "./health-monitor.js";

export function createHealthServiceHandlers(
  monitor: HealthMonitor,
  serviceNames: readonly string[],
): ServiceImpl<typeof Health> {
  const known = new Set(["", ...serviceNames]);
  const status = (): ServingStatus =>
    monitor.report().serving ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  return {
    check(request) {
      if (!known.has(request.service)) {
        throw new ConnectError(`unknown service ${request.service}`, Code.NotFound);
      }
      return { status: status() };
    },
    async *watch(request, context) {
      if (!known.has(request.service)) {
        // The protocol's answer to an unknown service on Watch (not an error: it may appear later).
        yield { status: ServingStatus.SERVICE_UNKNOWN };
        await untilAborted(context.signal);
        return;
      }
      const changes: ServingStatus[] = [];
      let wake: (() => void) | undefined;
      const stop = monitor.watch((serving) => {
        changes.push(serving ? ServingStatus.SERVING : ServingStatus.NOT_SERVING);
        wake?.();
      });
      try {
        let current = status();
        yield { status: current };
        while (!context.signal.aborted) {
          const next = changes.shift();
          if (next === undefined) {
            await new Promise<void>((resolve) => {
              wake = resolve;
              context.signal.addEventListener("abort", () => resolve(), { once: true });
            });
            wake = undefined;
            continue;
          }
          if (next === current) continue;
          current = next;
          yield { status: current };
          // A stopping server ends its watches after saying so.
          if (
            current === ServingStatus.NOT_SERVING &&
            monitor.report().failing[0] === "shutting down"
          )
            return;
        }
      } finally {
        stop();
      }
    },
    list() {
      const value = status();
      return {
        statuses: Object.fromEntries([...known].map((name) => [name, { status: value }])),
      };
    },
  };
}

function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}
