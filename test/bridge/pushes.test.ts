/**
 * Pushes (legacy-ws-protocol.md §4.2–4.3): an extended-mode subscriber gets
 * VariableChanged for every write, whichever door it came through (the
 * bridge or Connect), in version order, without a request_id; bridge writes
 * reach Connect Watch subscribers and Connect writes reach bridge
 * subscribers; Unsubscribe stops the pushes; a legacy-mode connection
 * never gets a push, even after Subscribe and writes. Every wait is on a
 * message, never on the clock.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testAdminToken } from "../helpers/identity-fixtures.js";
import { LegacyWs, type ServerFrame, authenticate, expectShape } from "../helpers/legacy-ws.js";
import { type WatchTestServer, bytes, startWatchServer } from "../helpers/watch-fixtures.js";

let test: WatchTestServer;
let wsUrl: string;
let testNumber = 0;

beforeAll(async () => {
  test = await startWatchServer();
  wsUrl = test.server.url.replace(/^http/, "ws");
});

afterAll(async () => {
  await test?.close();
});

interface Fixture {
  tenantId: string;
  serviceId: string;
  client: LegacyWs;
}

/** A fresh tenant with service "svc" holding "v" and "w" (both [0], version 1), and a connection. */
async function fixture(label: string): Promise<Fixture> {
  const tenantId = `push${++testNumber}`;
  await test.admin.createTenant({ tenantId });
  const { service } = await test.admin.createService({ tenantId, serviceName: "svc" });
  for (const variableName of ["v", "w"]) {
    await test.admin.allocateVariable({
      tenantId,
      serviceName: "svc",
      variableName,
      initialData: new Uint8Array([0]),
    });
  }
  const client = await LegacyWs.open(wsUrl, {}, label);
  await authenticate(client, tenantId, testAdminToken());
  return { tenantId, serviceId: service?.serviceId ?? "", client };
}

/** Subscribes in extended mode; takes the Result and the snapshot of the current value. */
async function subscribeExtended(f: Fixture, variableName: string, requestId: string) {
  const reply = await f.client.request({
    type: "Subscribe",
    data: { service_id: f.serviceId, variable_name: variableName, request_id: requestId },
  });
  expect(expectShape(reply, "Result", { requestId }).success).toBe(true);
  const snapshot = expectShape(await f.client.next("the snapshot"), "VariableChanged");
  expect(snapshot.variable_name).toBe(variableName);
}

const pushesOf = (client: LegacyWs, variableName: string): ServerFrame[] =>
  client.received.filter(
    (f) => f.type === "VariableChanged" && f.data.variable_name === variableName,
  );

/** Waits until `client` has received a push of `variableName` at `version` or later. */
const reachPush = (client: LegacyWs, variableName: string, version: number) =>
  client.until(
    () => pushesOf(client, variableName).find((f) => (f.data.version as number) >= version),
    `a VariableChanged push of ${variableName} at version ${version}`,
  );

const connectWrite = (f: Fixture, variableName: string, data: number[]) =>
  test.admin.writeVariable({
    tenantId: f.tenantId,
    serviceName: "svc",
    variableName,
    data: new Uint8Array(data),
  });

describe("extended mode", () => {
  it("pushes writes from the bridge and from Connect in version order", async () => {
    const f = await fixture("extended subscriber");
    await subscribeExtended(f, "v", "sub-v");
    const written = new Map<number, number[]>([[1, [0]]]);
    for (let i = 0; i < 10; i++) {
      const value = [i, 100 + i];
      if (i % 2 === 0) {
        f.client.send({
          type: "WriteVariable",
          data: { service_id: f.serviceId, variable_name: "v", data: value, request_id: `w${i}` },
        });
        // Pushes may come between a request and its reply: the reply is found by its id.
        const result = await f.client.replyTo(`w${i}`);
        expect(expectShape(result, "Result", { requestId: `w${i}` }).success).toBe(true);
        written.set(i + 2, value);
      } else {
        const { version } = await connectWrite(f, "v", value);
        expect(version).toBe(BigInt(i + 2));
        written.set(i + 2, value);
      }
    }
    await reachPush(f.client, "v", 11);
    const pushes = pushesOf(f.client, "v");
    for (const push of pushes) {
      const data = expectShape(push, "VariableChanged");
      expect(data.service_id).toBe(f.serviceId);
      expect(data.data).toEqual(written.get(data.version as number));
    }
    const versions = pushes.map((p) => p.data.version as number);
    // The snapshot (version 1), then every write, in order, none twice.
    expect(versions).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    await f.client.close();
  });

  it("delivers a bridge write to a Connect Watch subscriber", async () => {
    const f = await fixture("bridge writer");
    const watch = test.openWatch({ label: "connect watcher" });
    const subscriptionId = await watch.subscribeOk({
      tenantId: f.tenantId,
      serviceName: "svc",
      variableName: "v",
    });
    f.client.send({
      type: "WriteVariable",
      data: { service_id: f.serviceId, variable_name: "v", data: [7, 7, 7] },
    });
    const change = await watch.reachVersion(subscriptionId, "v", 2n);
    expect(change.version).toBe(2n);
    expect([...change.data]).toEqual([7, 7, 7]);
    await f.client.expectNothing("a legacy WriteVariable");
    watch.abort();
    await f.client.close();
  });

  it("delivers a Connect Watch write to a bridge subscriber", async () => {
    const f = await fixture("bridge subscriber");
    await subscribeExtended(f, "v", "s1");
    const watch = test.openWatch({ label: "connect writer" });
    const reply = await watch.write({
      tenantId: f.tenantId,
      serviceName: "svc",
      variableName: "v",
      data: bytes("hi"),
    });
    expect(reply.error).toBeUndefined();
    const push = expectShape(await reachPush(f.client, "v", 2), "VariableChanged");
    expect(push).toEqual({
      service_id: f.serviceId,
      variable_name: "v",
      data: [...bytes("hi")],
      version: 2,
    });
    watch.abort();
    await f.client.close();
  });

  it("stops pushing a variable after Unsubscribe", async () => {
    const f = await fixture("unsubscriber");
    await subscribeExtended(f, "v", "sv");
    await subscribeExtended(f, "w", "sw");
    await connectWrite(f, "v", [1]);
    await reachPush(f.client, "v", 2);
    f.client.send({
      type: "Unsubscribe",
      data: { service_id: f.serviceId, variable_name: "v", request_id: "uv" },
    });
    expect(expectShape(await f.client.replyTo("uv"), "Result", { requestId: "uv" }).success).toBe(
      true,
    );
    const before = pushesOf(f.client, "v").length;
    await connectWrite(f, "v", [2]);
    await connectWrite(f, "w", [2]);
    // w is still followed: once its push is here, a push of v's write would have come first.
    await reachPush(f.client, "w", 2);
    expect(pushesOf(f.client, "v")).toHaveLength(before);
    // A second Unsubscribe finds nothing to end.
    f.client.send({
      type: "Unsubscribe",
      data: { service_id: f.serviceId, variable_name: "v", request_id: "uv2" },
    });
    const again = await f.client.replyTo("uv2");
    expect(expectShape(again, "Error", { requestId: "uv2" }).code).toBe("NOT_FOUND");
    await f.client.close();
  });
});

describe("legacy mode", () => {
  it("never receives a push, even after Subscribe and writes from both doors", async () => {
    const f = await fixture("legacy subscriber");
    f.client.send({ type: "Subscribe", data: { service_id: f.serviceId, variable_name: "v" } });
    await f.client.expectNothing("a legacy Subscribe");
    // A witness in extended mode on another connection follows the same variable.
    const witness: Fixture = { ...f, client: await LegacyWs.open(wsUrl, {}, "witness") };
    await authenticate(witness.client, f.tenantId, testAdminToken());
    await subscribeExtended(witness, "v", "witness");
    for (let i = 0; i < 3; i++) {
      f.client.send({
        type: "WriteVariable",
        data: { service_id: f.serviceId, variable_name: "v", data: [i] },
      });
      await f.client.expectNothing(`legacy write ${i}`);
      await connectWrite(f, "v", [10 + i]);
    }
    await reachPush(witness.client, "v", 7);
    await f.client.expectNothing("six writes to a variable it subscribed to");
    const read = await f.client.request({
      type: "ReadVariable",
      data: { service_id: f.serviceId, variable_name: "v" },
    });
    expect(expectShape(read, "VariableData")).toMatchObject({ data: [12], version: 7 });
    expect(f.client.received.filter((fr) => fr.type === "VariableChanged")).toEqual([]);
    await witness.client.close();
    await f.client.close();
  });
});
