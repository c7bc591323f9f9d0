/**
 * The server-wide limits, each provoked once: what the client sees, and
 * that the server keeps serving everyone else.
 */
import { connect as connectTcp, type Socket } from "node:net";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { Http2SessionManager, createConnectTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { CommyService } from "../../gen/commy/v1/commy_service_pb.js";
import { WatchService } from "../../gen/commy/v1/watch_pb.js";
import { testAdminToken } from "../helpers/identity-fixtures.js";
import { type TestServer, startTestServer } from "../helpers/test-server.js";

/** Connect clients sharing one HTTP/2 connection, as the admin. */
function overOneConnection(server: TestServer) {
  const sessionManager = new Http2SessionManager(server.server.url);
  const transport = createConnectTransport({
    baseUrl: server.server.url,
    httpVersion: "2",
    sessionManager,
    interceptors: [
      (next) => (request) => {
        request.header.set("authorization", `Bearer ${testAdminToken()}`);
        return next(request);
      },
    ],
  });
  return {
    commy: createClient(CommyService, transport),
    watch: createClient(WatchService, transport),
    close: () => sessionManager.abort(),
  };
}

function openSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connectTcp(port, "127.0.0.1", () => resolve(socket));
    socket.once("error", reject);
  });
}

function closedByServer(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) resolve();
    socket.once("close", () => resolve());
  });
}

async function failure(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("the call succeeded");
}

describe("limits", () => {
  it("a message over --max-message-bytes is refused with resource_exhausted; smaller ones go on", async () => {
    const server = await startTestServer({ config: { maxMessageBytes: 64 * 1024 } });
    const client = overOneConnection(server);
    try {
      const ref = { tenantId: "lim", serviceName: "s", variableName: "v" };
      await client.commy.createTenant({ tenantId: "lim" });
      await client.commy.createService({ tenantId: "lim", serviceName: "s" });
      await client.commy.allocateVariable({ ...ref, initialData: new Uint8Array(8) });
      const big = new Uint8Array(128 * 1024);
      const error = await failure(client.commy.writeVariable({ ...ref, data: big }));
      expect(error.code).toBe(Code.ResourceExhausted);
      const written = await client.commy.writeVariable({ ...ref, data: new Uint8Array(1024) });
      expect(written.version).toBe(2n);
    } finally {
      client.close();
      await server.close();
    }
  });

  it("connections beyond --max-connections are closed at once; open ones keep working", async () => {
    const server = await startTestServer({ config: { maxConnections: 2 } });
    const client = overOneConnection(server);
    const sockets: Socket[] = [];
    try {
      await client.commy.createTenant({ tenantId: "conn" });
      // The client's connection is one; a raw socket takes the second place.
      sockets.push(await openSocket(server.server.port));
      const refused = await openSocket(server.server.port);
      await closedByServer(refused);
      expect(refused.destroyed).toBe(true);
      const tenant = await client.commy.getTenant({ tenantId: "conn" });
      expect(tenant.tenant?.tenantId).toBe("conn");
    } finally {
      for (const socket of sockets) socket.destroy();
      client.close();
      await server.close();
    }
  });

  it("streams beyond --max-streams-per-connection wait for a free one (here: until their deadline)", async () => {
    const server = await startTestServer({ config: { maxStreamsPerConnection: 2 } });
    const client = overOneConnection(server);
    const stop = new AbortController();
    try {
      await client.commy.createTenant({ tenantId: "st" });
      await client.commy.createService({ tenantId: "st", serviceName: "s" });
      await client.commy.allocateVariable({
        tenantId: "st",
        serviceName: "s",
        variableName: "v",
        initialData: new Uint8Array([1]),
      });
      const subscription = { tenantId: "st", serviceName: "s", variableName: "" };
      const opened: Promise<void>[] = [];
      const streams = [0, 1].map(async () => {
        let received = 0;
        let markOpen = (): void => undefined;
        opened.push(new Promise<void>((resolve) => (markOpen = resolve)));
        try {
          for await (const message of client.watch.subscribe(
            { subscriptions: [subscription] },
            { signal: stop.signal },
          )) {
            void message;
            received++;
            markOpen();
          }
        } catch {
          // Ended by the test's abort.
        }
        return received;
      });
      // Both streams hold their place once each has its subscription's answer.
      await Promise.all(opened);
      const third = await failure(client.commy.getTenant({ tenantId: "st" }, { timeoutMs: 500 }));
      expect(third.code).toBe(Code.DeadlineExceeded);
      // Another connection is served meanwhile.
      const other = overOneConnection(server);
      try {
        await expect(other.commy.getTenant({ tenantId: "st" })).resolves.toBeDefined();
      } finally {
        other.close();
      }
      stop.abort();
      for (const received of await Promise.all(streams)) expect(received).toBeGreaterThan(0);
      // With the streams gone, the connection serves calls again.
      await expect(client.commy.getTenant({ tenantId: "st" })).resolves.toBeDefined();
    } finally {
      stop.abort();
      client.close();
      await server.close();
    }
  });
});
