/**
 * A Commy server in its own process, so that the API benchmarks measure the
 * server and not a client sharing its event loop. Started by
 * bench/lib/commy-server.ts; alone (`node --import tsx
 * bench/servers/commy-server.ts <data-dir>`) it prints its port and serves
 * until killed.
 *
 * argv[2]: the data directory (made by the caller, removed by it).
 * Environment: COMMY_BENCH_ADMIN_TOKEN (the admin token; else the data
 * directory's own), COMMY_BENCH_SKIP_AUTH=1 (every call runs as the admin
 * without credentials: the "unauthenticated" baseline), COMMY_BENCH_METRICS=0
 * (metrics off), COMMY_BENCH_LOG_LEVEL (default silent), COMMY_BENCH_CPU
 * (the CPU to pin the main thread to, see bench/lib/affinity.ts).
 *
 * Over the IPC channel: sends {type:"ready", port, pid}; answers
 * {type:"usage", collect?} with {type:"usage", cpuMicros, rssBytes,
 * heapUsedBytes} (CPU this process used so far, all threads; the heap after
 * a full collection when asked and node runs with --expose-gc) and
 * {type:"close"} with {type:"closed"} once the server has shut down.
 */
import { pinFromEnvironment } from "../lib/affinity.js";
import { onParentMessage, reportFailuresToParent, sendToParent } from "../lib/child.js";
import type { ServerConfig } from "../../src/config.js";
import { startServer } from "../../src/server.js";

const dataDir = process.argv[2];
if (dataDir === undefined || dataDir === "") {
  throw new Error("usage: commy-server.ts <data-dir>");
}
const withParent = process.send !== undefined;
if (withParent) reportFailuresToParent();
pinFromEnvironment();

const server = await startServer(
  {
    port: 0,
    host: "127.0.0.1",
    dataDir,
    logLevel: (process.env.COMMY_BENCH_LOG_LEVEL || "silent") as ServerConfig["logLevel"],
    metrics: process.env.COMMY_BENCH_METRICS !== "0",
  },
  {
    benchEcho: true,
    adminToken: process.env.COMMY_BENCH_ADMIN_TOKEN || undefined,
    unsafeSkipAuthenticationForBenchmarks: process.env.COMMY_BENCH_SKIP_AUTH === "1",
  },
);

if (withParent) {
  onParentMessage(async (message) => {
    if (message.type === "usage") {
      const gc = (globalThis as { gc?: () => void }).gc;
      if (message.collect === true && gc !== undefined) gc();
      const used = process.cpuUsage();
      const memory = process.memoryUsage();
      await sendToParent({
        type: "usage",
        cpuMicros: used.user + used.system,
        rssBytes: memory.rss,
        heapUsedBytes: memory.heapUsed,
      });
    } else if (message.type === "close") {
      await server.close();
      await sendToParent({ type: "closed" });
      process.exit(0);
    }
  });
  await sendToParent({ type: "ready", port: server.port, pid: process.pid });
} else {
  process.stdout.write(`${server.port}\n`);
  const stop = (): void => void server.close().then(() => process.exit(0));
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}
