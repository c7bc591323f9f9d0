/**
 * CommyClient.subscribe against real servers: a snapshot then every
 * update; resume with nothing lost after the connection is cut and after
 * the server restarts on the same data directory (behind a loopback relay
 * that follows it to its new port); ending by a deletion, by break, by
 * close() and by an AbortSignal; refusals that are final.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  type Subscription,
  type VariableChange,
  isNotFound,
  isPermissionDenied,
} from "../../src/client/index.js";
import { createActor } from "../helpers/identity-fixtures.js";
import { type TestServer, createTestDataDir, startTestServer } from "../helpers/test-server.js";
import {
  bytes,
  createClientPool,
  expectNoLostVersions,
  takeUntil,
  text,
} from "./client-fixtures.js";
import { type TcpRelay, startTcpRelay } from "./tcp-relay.js";

const pool = createClientPool();
/** Fast, bounded reconnects: the relay refuses while a server restarts. */
const RECONNECT = { initialBackoffMs: 5, maxBackoffMs: 100, maxAttempts: 200 };

afterAll(() => pool.closeAll());

describe("one server", () => {
  let test: TestServer;
  let relay: TcpRelay;
  const tenantId = "sub";
  const ref = { tenantId, serviceName: "s", variableName: "v" };

  beforeAll(async () => {
    test = await startTestServer();
    relay = await startTcpRelay(test.server.port);
    const admin = pool.client(test.server.url);
    await admin.createTenant(tenantId);
    await admin.createService(ref);
    await admin.allocateVariable(ref, { initialData: bytes("1") });
  });

  afterEach(() => {
    relay.target = test.server.port;
  });

  afterAll(async () => {
    await relay.close();
    await test.close();
  });

  it("delivers a snapshot, then every update in order", async () => {
    const writer = pool.client(test.server.url);
    const subscription = pool.client(test.server.url).subscribe(ref);
    const changes = subscription[Symbol.asyncIterator]();
    const [snapshot] = await takeUntil(changes, () => true);
    expect(snapshot?.kind).toBe("snapshot");
    const start = snapshot?.version ?? 0;
    for (let i = 1; i <= 5; i++) await writer.writeVariable(ref, bytes(`w${i}`));
    const updates = await takeUntil(changes, (c) => c.version === start + 5);
    expectNoLostVersions(updates, start);
    expect(updates.every((c) => c.kind === "update" && c.skipped === 0)).toBe(true);
    expect(text(updates.at(-1)?.data ?? new Uint8Array())).toBe("w5");
    expect(subscription.lastVersions.get("v")).toBe(start + 5);
    subscription.close();
    expect(await changes.next()).toEqual({ done: true, value: undefined });
  });

  it.each(["2", "1.1"] as const)(
    "over HTTP/%s: resumes after the connection is cut, losing no version",
    async (httpVersion) => {
      const writer = pool.client(test.server.url);
      const reconnects: string[] = [];
      const subscription = pool.client(relay.url, { httpVersion }).subscribe(ref, {
        reconnect: RECONNECT,
        onReconnect: (error) => reconnects.push(error.code),
      });
      const changes = subscription[Symbol.asyncIterator]();
      const [snapshot] = await takeUntil(changes, () => true);
      const start = snapshot?.version ?? 0;
      await writer.writeVariable(ref, bytes("before"));
      const before = await takeUntil(changes, (c) => c.version === start + 1);

      relay.cutConnections();
      // Written while the subscriber may be away: it gets them on its return.
      let last = start + 1;
      for (let i = 0; i < 3; i++) last = await writer.writeVariable(ref, bytes(`during${i}`));
      const after = await takeUntil(changes, (c) => c.version === last);
      expectNoLostVersions([...before, ...after], start);
      expect(reconnects.length).toBeGreaterThanOrEqual(1);
      expect(reconnects.every((code) => code === "CONNECTION_LOST")).toBe(true);
      expect(subscription.reconnects).toBe(reconnects.length);
      await changes.return?.();
    },
  );

  it("a whole-service subscription resumes every variable from its own last version", async () => {
    const writer = pool.client(test.server.url);
    const serviceRef = { tenantId, serviceName: "whole" };
    await writer.createService(serviceRef);
    await writer.allocateVariable({ ...serviceRef, variableName: "a" });
    await writer.allocateVariable({ ...serviceRef, variableName: "b" });
    const subscription = pool.client(relay.url).subscribe(serviceRef, { reconnect: RECONNECT });
    const changes = subscription[Symbol.asyncIterator]();
    const snapshots = await takeUntil(changes, () => subscription.lastVersions.size === 2);
    expect(snapshots.map((c) => c.kind)).toEqual(["snapshot", "snapshot"]);

    relay.cutConnections();
    await writer.writeVariable({ ...serviceRef, variableName: "a" }, bytes("a2"));
    await writer.writeVariable({ ...serviceRef, variableName: "a" }, bytes("a3"));
    await writer.writeVariable({ ...serviceRef, variableName: "c" }, bytes("c1"), {
      createIfMissing: true,
    });
    const seen = await takeUntil(
      changes,
      () => subscription.lastVersions.get("a") === 3 && subscription.lastVersions.get("c") === 1,
    );
    expectNoLostVersions(
      seen.filter((c) => c.variableName === "a"),
      1,
    );
    // "b" did not change: resuming from its version sends nothing for it.
    expect(seen.filter((c) => c.variableName === "b")).toEqual([]);
    subscription.close();
  });

  it("ends quietly when its variable is deleted, after the deleted change", async () => {
    const writer = pool.client(test.server.url);
    const doomed = { ...ref, variableName: "doomed" };
    await writer.allocateVariable(doomed, { initialData: bytes("x") });
    const changes = pool.client(test.server.url).subscribe(doomed)[Symbol.asyncIterator]();
    await takeUntil(changes, () => true);
    await writer.deallocateVariable(doomed);
    const [deleted] = await takeUntil(changes, () => true);
    expect(deleted?.kind).toBe("deleted");
    expect(await changes.next()).toEqual({ done: true, value: undefined });
  });

  it("ends quietly when its AbortSignal aborts, and when the consumer breaks out", async () => {
    const controller = new AbortController();
    const subscription = pool.client(test.server.url).subscribe(ref, {
      signal: controller.signal,
    });
    const received: number[] = [];
    for await (const change of subscription) {
      received.push(change.version);
      controller.abort();
    }
    expect(received).toHaveLength(1);

    const again = pool.client(test.server.url).subscribe(ref);
    for await (const change of again) {
      expect(change.kind).toBe("snapshot");
      break;
    }
    expect(() => again[Symbol.asyncIterator]()).toThrow(/only once/);
  });

  it("fails for good, without reconnecting, when subscribing is refused", async () => {
    const missing = pool.client(test.server.url).subscribe({ ...ref, variableName: "nope" });
    await expect(firstChange(missing)).rejects.toSatisfy(isNotFound);
    expect(missing.reconnects).toBe(0);

    const actor = await createActor(test, tenantId, "reader-only", [
      { permission: "variable:read" },
    ]);
    const denied = pool.client(test.server.url, { token: actor.apiKey }).subscribe(ref);
    await expect(firstChange(denied)).rejects.toSatisfy(isPermissionDenied);
    expect(denied.reconnects).toBe(0);
  });
});

describe("a server restarted on the same data directory", () => {
  it("resumes from the last version seen before the restart, losing none", async () => {
    const dataDir = createTestDataDir();
    let server: TestServer | undefined = await startTestServer({ dataDir: dataDir.path });
    const relay = await startTcpRelay(server.server.port);
    const ref = { tenantId: "restart", serviceName: "s", variableName: "v" };
    try {
      const first = pool.client(server.server.url);
      await first.createTenant(ref.tenantId);
      await first.createService(ref);
      await first.allocateVariable(ref, { initialData: bytes("1") });
      const subscription = pool.client(relay.url).subscribe(ref, { reconnect: RECONNECT });
      const changes = subscription[Symbol.asyncIterator]();
      const [snapshot] = await takeUntil(changes, () => true);
      await first.writeVariable(ref, bytes("2"));
      const before = [snapshot, ...(await takeUntil(changes, (c) => c.version === 2))];

      // Down: the relay refuses while no server listens.
      relay.target = undefined;
      await server.close();
      server = await startTestServer({ dataDir: dataDir.path });
      const second = pool.client(server.server.url);
      await second.writeVariable(ref, bytes("3"));
      await second.writeVariable(ref, bytes("4"));
      relay.target = server.server.port;
      await second.writeVariable(ref, bytes("5"));

      const after = await takeUntil(changes, (c) => c.version === 5);
      expect(before[0]?.version).toBe(1);
      expectNoLostVersions([...before.slice(1), ...after] as VariableChange[], 1);
      expect(text(after.at(-1)?.data ?? new Uint8Array())).toBe("5");
      expect(subscription.reconnects).toBeGreaterThanOrEqual(1);
      subscription.close();
    } finally {
      await relay.close();
      await server?.close();
      dataDir.remove();
    }
  });
});

/** The first change of a subscription (or its failure). */
async function firstChange(subscription: Subscription): Promise<unknown> {
  for await (const change of subscription) return change;
  return undefined;
}
