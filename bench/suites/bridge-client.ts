/**
 * The bridge benchmark's client process (bench/suites/bridge.ts): Node
 * clients of a Commy server in another process, pinned to the other CPU.
 *
 * {type:"sequential", baseUrl, token, tenantId, serviceName, variableName, calls}
 *   → {type:"sequential", connect: number[], bridge: number[]} — latencies (µs)
 *   of `calls` ReadVariable calls one at a time over Connect (HTTP/2,
 *   binary) and over the legacy WebSocket bridge (legacy mode), in turn.
 * {type:"fleet", baseUrl, token, tenantId, serviceId, variableName, connections, seconds}
 *   → {type:"fleet", latencies: number[], errors: number, setupMs: number}:
 *   `connections` WebSocket connections, each authenticated, each sending
 *   one ReadVariable a second at its own phase for `seconds`.
 */
import { WebSocket } from "ws";
import { pinFromEnvironment } from "../lib/affinity.js";
import { onParentMessage, reportFailuresToParent, sendToParent } from "../lib/child.js";
import { commyClients } from "../lib/commy-client.js";
import { elapsedNs, nowNs } from "../lib/timing.js";

reportFailuresToParent();
pinFromEnvironment();

/** A legacy-mode WebSocket client that waits for each reply. */
class BridgeClient {
  readonly #ws: WebSocket;
  #waiting: ((text: string) => void) | undefined;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.on("message", (data: Buffer) => {
      const resolve = this.#waiting;
      this.#waiting = undefined;
      resolve?.(data.toString("utf8"));
    });
  }

  static async open(url: string): Promise<BridgeClient> {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    return new BridgeClient(ws);
  }

  request(text: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no reply within 10 s")), 10_000);
      this.#waiting = (reply) => {
        clearTimeout(timer);
        resolve(reply);
      };
      this.#ws.send(text);
    });
  }

  close(): void {
    this.#ws.close();
  }
}

function wsUrl(baseUrl: string): string {
  return `${baseUrl.replace(/^http/, "ws")}/`;
}

async function authenticated(baseUrl: string, tenantId: string, token: string) {
  const client = await BridgeClient.open(wsUrl(baseUrl));
  const reply = await client.request(
    JSON.stringify({
      type: "Authenticate",
      data: { tenant_id: tenantId, client_version: "0.1.0", method: "api_key", key: token },
    }),
  );
  if (!reply.includes('"success":true')) throw new Error(`Authenticate failed: ${reply}`);
  return client;
}

interface SequentialRequest {
  baseUrl: string;
  token: string;
  tenantId: string;
  serviceName: string;
  serviceId: string;
  variableName: string;
  calls: number;
}

async function sequential(request: SequentialRequest): Promise<void> {
  const clients = commyClients(request.baseUrl, request.token);
  const bridge = await authenticated(request.baseUrl, request.tenantId, request.token);
  const ref = {
    tenantId: request.tenantId,
    serviceName: request.serviceName,
    variableName: request.variableName,
  };
  const frame = JSON.stringify({
    type: "ReadVariable",
    data: { service_id: request.serviceId, variable_name: request.variableName },
  });
  const connect: number[] = [];
  const overBridge: number[] = [];
  try {
    // Warm both paths first (JIT, connection set-up).
    for (let i = 0; i < 200; i++) {
      await clients.commy.readVariable(ref);
      await bridge.request(frame);
    }
    for (let i = 0; i < request.calls; i++) {
      let start = nowNs();
      await clients.commy.readVariable(ref);
      connect.push(elapsedNs(start) / 1000);
      start = nowNs();
      const reply = await bridge.request(frame);
      overBridge.push(elapsedNs(start) / 1000);
      if (!reply.startsWith('{"type":"VariableData"')) throw new Error(`bridge: ${reply}`);
    }
  } finally {
    clients.close();
    bridge.close();
  }
  await sendToParent({ type: "sequential", connect, bridge: overBridge });
}

interface FleetRequest {
  baseUrl: string;
  token: string;
  tenantId: string;
  serviceId: string;
  variableName: string;
  connections: number;
  seconds: number;
}

async function fleet(request: FleetRequest): Promise<void> {
  const setupStart = nowNs();
  const clients: BridgeClient[] = [];
  // Opened a few at a time: the figure is the steady state, not a connection storm.
  for (let i = 0; i < request.connections; i += 50) {
    const batch = Math.min(50, request.connections - i);
    clients.push(
      ...(await Promise.all(
        Array.from({ length: batch }, () =>
          authenticated(request.baseUrl, request.tenantId, request.token),
        ),
      )),
    );
  }
  const setupMs = elapsedNs(setupStart) / 1e6;
  const frame = JSON.stringify({
    type: "ReadVariable",
    data: { service_id: request.serviceId, variable_name: request.variableName },
  });
  const latencies: number[] = [];
  let errors = 0;
  const periodMs = 1000;
  const began = Date.now();
  await Promise.all(
    clients.map(async (client, index) => {
      // Each connection at its own phase within the second, like independent clients.
      const phase = (index / clients.length) * periodMs;
      for (let tick = 0; tick < request.seconds; tick++) {
        const due = began + phase + tick * periodMs;
        const wait = due - Date.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        const start = nowNs();
        try {
          const reply = await client.request(frame);
          if (!reply.startsWith('{"type":"VariableData"')) errors++;
          else latencies.push(elapsedNs(start) / 1000);
        } catch {
          errors++;
        }
      }
    }),
  );
  for (const client of clients) client.close();
  await sendToParent({ type: "fleet", latencies, errors, setupMs });
}

onParentMessage(async (message) => {
  if (message.type === "sequential") await sequential(message as unknown as SequentialRequest);
  else if (message.type === "fleet") await fleet(message as unknown as FleetRequest);
  else if (message.type === "exit") process.exit(0);
});
await sendToParent({ type: "ready" });
