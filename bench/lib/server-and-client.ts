/**
 * The usual two ends of an API benchmark: a Commy server process with its
 * main thread on one CPU, and a Node client process (a bench child that
 * says "ready") on the other.
 */
import { BenchChild } from "./child.js";
import { CPU_ENV } from "./affinity.js";
import { CommyServerProcess } from "./commy-server.js";
import type { SuiteWorkspace } from "./workspace.js";

export interface ServerAndClient {
  server: CommyServerProcess;
  client: BenchChild;
  /** Stops both (bounded). */
  stop(): Promise<void>;
}

/** Starts both; if either fails to start, stops what did and throws. */
export async function startServerAndClient(
  workspace: SuiteWorkspace,
  name: string,
  clientScript: URL,
): Promise<ServerAndClient> {
  const { dir, pinned } = workspace;
  const server = await CommyServerProcess.start({ baseDir: dir, name, cpu: pinned?.reader });
  const client = new BenchChild(clientScript, [], {
    [CPU_ENV]: pinned === undefined ? "" : String(pinned.writer),
  });
  const stop = async (): Promise<void> => {
    await client.stop();
    await server.stop();
  };
  try {
    await client.next("ready", 60_000);
  } catch (error) {
    await stop();
    throw error;
  }
  return { server, client, stop };
}
