/**
 * Timeouts, retries and cancellation of CommyClient calls, against a real
 * server behind a loopback relay that fails connections the way a network
 * does. Reads (no side effects) are tried again after a lost connection;
 * writes are sent once, so a write is never applied twice.
 */
import type { Interceptor } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { isConnectionLost, isTimeout } from "../../src/client/index.js";
import { type TestServer, startTestServer } from "../helpers/test-server.js";
import { bytes, createClientPool } from "./client-fixtures.js";
import { type TcpRelay, startTcpRelay } from "./tcp-relay.js";

let test: TestServer;
let relay: TcpRelay;
const pool = createClientPool();
const ref = { tenantId: "policy", serviceName: "s", variableName: "v" };

/** Counts the calls (tries) that reach the transport, by method name. */
function attemptCounter(): { interceptor: Interceptor; count: (method: string) => number } {
  const counts = new Map<string, number>();
  return {
    interceptor: (next) => (request) => {
      counts.set(request.method.name, (counts.get(request.method.name) ?? 0) + 1);
      return next(request);
    },
    count: (method) => counts.get(method) ?? 0,
  };
}

beforeAll(async () => {
  test = await startTestServer();
  relay = await startTcpRelay(test.server.port);
  const admin = pool.client(test.server.url);
  await admin.createTenant(ref.tenantId);
  await admin.createService(ref);
  await admin.allocateVariable(ref, { initialData: bytes("v1") });
});

afterEach(() => {
  relay.mode = "forward";
  relay.target = test.server.port;
  relay.resetNext(0);
});

afterAll(async () => {
  pool.closeAll();
  await relay.close();
  await test.close();
});

describe.each(["2", "1.1"] as const)("over HTTP/%s", (httpVersion) => {
  it("a read whose connection is reset is tried again and succeeds", async () => {
    const counter = attemptCounter();
    const client = pool.client(relay.url, {
      httpVersion,
      interceptors: [counter.interceptor],
      retry: { initialBackoffMs: 1 },
    });
    relay.resetNext(1);
    const read = await client.readVariable(ref);
    expect(read.version).toBeGreaterThanOrEqual(1);
    expect(counter.count("ReadVariable")).toBe(2);
  });

  it("a write whose connection is reset fails with CONNECTION_LOST and is not sent again", async () => {
    const counter = attemptCounter();
    const client = pool.client(relay.url, {
      httpVersion,
      interceptors: [counter.interceptor],
      retry: { initialBackoffMs: 1 },
    });
    const before = await pool.client(test.server.url).readVariable(ref);
    relay.resetNext(1);
    const error: unknown = await client.writeVariable(ref, bytes("once")).catch((e: unknown) => e);
    expect(isConnectionLost(error)).toBe(true);
    expect(counter.count("WriteVariable")).toBe(1);
    expect(await pool.client(test.server.url).readVariable(ref)).toEqual(before);
  });

  it("reads give up after maxAttempts tries", async () => {
    const counter = attemptCounter();
    const client = pool.client(relay.url, {
      httpVersion,
      interceptors: [counter.interceptor],
      retry: { initialBackoffMs: 1, maxAttempts: 4 },
    });
    relay.target = undefined;
    const error: unknown = await client.getTenant(ref.tenantId).catch((e: unknown) => e);
    expect(isConnectionLost(error)).toBe(true);
    expect(counter.count("GetTenant")).toBe(4);
  });

  it("a call that gets no answer fails with TIMEOUT after its timeoutMs, and is not retried", async () => {
    const counter = attemptCounter();
    const client = pool.client(relay.url, {
      httpVersion,
      interceptors: [counter.interceptor],
      timeoutMs: 150,
    });
    relay.mode = "stall";
    const started = performance.now();
    const read: unknown = await client.readVariable(ref).catch((e: unknown) => e);
    expect(isTimeout(read)).toBe(true);
    const write: unknown = await client
      .writeVariable(ref, bytes("late"), { timeoutMs: 100 })
      .catch((e: unknown) => e);
    expect(isTimeout(write)).toBe(true);
    expect(performance.now() - started).toBeGreaterThanOrEqual(240);
    expect(counter.count("ReadVariable")).toBe(1);
    expect(counter.count("WriteVariable")).toBe(1);
  });

  it("an AbortSignal cancels a call in flight; it rejects with the signal's reason", async () => {
    const client = pool.client(relay.url, { httpVersion });
    relay.mode = "stall";
    const accepted = relay.accepted;
    const controller = new AbortController();
    const call = client.readVariable(ref, { signal: controller.signal });
    await relay.waitForAccepted(accepted + 1);
    const reason = new Error("stop");
    controller.abort(reason);
    await expect(call).rejects.toBe(reason);
  });

  it("an already aborted signal fails the call at once, without a round trip", async () => {
    const client = pool.client(test.server.url, { httpVersion });
    const signal = AbortSignal.abort();
    await expect(client.writeVariable(ref, bytes("no"), { signal })).rejects.toBe(signal.reason);
  });
});
