/**
 * The client benchmark's client process (bench/suites/client.ts), pinned
 * to the CPU the server does not use.
 *
 * {type:"read", baseUrl, token, tenantId, serviceName, variableName, calls}
 *   → {type:"read", raw: number[], client: number[]} — latencies (µs) of
 *   `calls` ReadVariable calls one at a time through the raw generated
 *   client and through CommyClient (both Connect, binary, HTTP/2, each on
 *   its own connection), alternating call by call so both see the same
 *   machine noise.
 */
import { pinFromEnvironment } from "../lib/affinity.js";
import { onParentMessage, reportFailuresToParent, sendToParent } from "../lib/child.js";
import { commyClients } from "../lib/commy-client.js";
import { elapsedNs, nowNs } from "../lib/timing.js";
import { createCommyClient } from "../../src/client/index.js";

reportFailuresToParent();
pinFromEnvironment();

interface ReadRequest {
  baseUrl: string;
  token: string;
  tenantId: string;
  serviceName: string;
  variableName: string;
  calls: number;
}

async function read(request: ReadRequest): Promise<void> {
  const raw = commyClients(request.baseUrl, request.token);
  const client = createCommyClient({ baseUrl: request.baseUrl, token: request.token });
  const ref = {
    tenantId: request.tenantId,
    serviceName: request.serviceName,
    variableName: request.variableName,
  };
  const rawTimes: number[] = [];
  const clientTimes: number[] = [];
  try {
    // Warm both paths first (JIT, connection set-up).
    for (let i = 0; i < 300; i++) {
      await raw.commy.readVariable(ref);
      await client.readVariable(ref);
    }
    for (let i = 0; i < request.calls; i++) {
      // Alternate which goes first, so neither always follows the other.
      if (i % 2 === 0) {
        rawTimes.push(await timed(() => raw.commy.readVariable(ref)));
        clientTimes.push(await timed(() => client.readVariable(ref)));
      } else {
        clientTimes.push(await timed(() => client.readVariable(ref)));
        rawTimes.push(await timed(() => raw.commy.readVariable(ref)));
      }
    }
  } finally {
    raw.close();
    client.close();
  }
  await sendToParent({ type: "read", raw: rawTimes, client: clientTimes });
}

async function timed(call: () => Promise<unknown>): Promise<number> {
  const start = nowNs();
  await call();
  return elapsedNs(start) / 1000;
}

onParentMessage(async (message) => {
  if (message.type === "read") await read(message as unknown as ReadRequest);
  else if (message.type === "exit") process.exit(0);
});
await sendToParent({ type: "ready" });
