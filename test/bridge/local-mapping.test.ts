/**
 * Local mapping (legacy-ws-protocol.md §4.6): a client on the server's
 * machine that may read a service's variables is told where its file is —
 * in Service replies (file_path) and by GetServiceFilePath — and one that
 * may not is not. ReportVariableChanges writes through the core: Connect
 * readers see the new value and version, subscribers are notified, and the
 * reply is VariableChangesAcknowledged. (Every test client is on loopback,
 * so the refusal to remote clients is not exercised here.)
 */
import { existsSync, statSync } from "node:fs";
import { isAbsolute } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type PermissionName, createActor } from "../helpers/identity-fixtures.js";
import { LegacyWs, authenticate, expectError, expectShape } from "../helpers/legacy-ws.js";
import { type WatchTestServer, startWatchServer } from "../helpers/watch-fixtures.js";

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

/** A fresh tenant with service "svc" ("v" = [1]) and a connection of a principal with `grants`. */
async function fixture(grants: readonly PermissionName[]): Promise<Fixture> {
  const tenantId = `local${++testNumber}`;
  await test.admin.createTenant({ tenantId });
  const { service } = await test.admin.createService({ tenantId, serviceName: "svc" });
  await test.admin.allocateVariable({
    tenantId,
    serviceName: "svc",
    variableName: "v",
    initialData: new Uint8Array([1]),
  });
  const actor = await createActor(
    test,
    tenantId,
    "local",
    grants.map((permission) => ({ permission })),
  );
  const client = await LegacyWs.open(wsUrl, {}, `${tenantId} ${grants.join(",")}`);
  await authenticate(client, tenantId, actor.apiKey);
  return { tenantId, serviceId: service?.serviceId ?? "", client };
}

const getService = (f: Fixture, serviceName = "svc") =>
  f.client.request({
    type: "GetService",
    data: { tenant_id: f.tenantId, service_name: serviceName },
  });

describe("file_path in Service replies", () => {
  it("is there for a loopback client with variable:read, and names the service's file", async () => {
    const f = await fixture(["service:read", "variable:read"]);
    const service = expectShape(await getService(f), "Service");
    const filePath = service.file_path as string;
    expect(isAbsolute(filePath)).toBe(true);
    expect(existsSync(filePath)).toBe(true);
    expect(filePath).toBe(test.serviceFilePath(f.serviceId));
  });

  it("is not there without variable:read", async () => {
    const f = await fixture(["service:read", "service:create"]);
    expect("file_path" in expectShape(await getService(f), "Service")).toBe(false);
    const created = await f.client.request({
      type: "CreateService",
      data: { tenant_id: f.tenantId, service_name: "made" },
    });
    expect("file_path" in expectShape(created, "Service")).toBe(false);
  });

  it("is in the CreateService reply of a client that may read what it creates", async () => {
    const f = await fixture(["service:create", "variable:read"]);
    const created = expectShape(
      await f.client.request({
        type: "CreateService",
        data: { tenant_id: f.tenantId, service_name: "made" },
      }),
      "Service",
    );
    expect(existsSync(created.file_path as string)).toBe(true);
    expect(created.file_path).toBe(test.serviceFilePath(created.service_id as string));
  });
});

describe("GetServiceFilePath", () => {
  it("answers ServiceFilePath with the file's absolute path and size", async () => {
    const f = await fixture(["variable:read"]);
    const reply = expectShape(
      await f.client.request({
        type: "GetServiceFilePath",
        data: { tenant_id: f.tenantId, service_name: "svc" },
      }),
      "ServiceFilePath",
    );
    const filePath = reply.file_path as string;
    expect(reply.service_id).toBe(f.serviceId);
    expect(isAbsolute(filePath)).toBe(true);
    expect(filePath).toBe(test.serviceFilePath(f.serviceId));
    expect(reply.file_size).toBe(statSync(filePath).size);
  });

  it("is refused without variable:read", async () => {
    const f = await fixture(["service:read", "variable:write"]);
    expectError(
      await f.client.request({
        type: "GetServiceFilePath",
        data: { tenant_id: f.tenantId, service_name: "svc" },
      }),
      "PERMISSION_DENIED",
    );
  });
});

describe("ReportVariableChanges", () => {
  it("writes through the core: Connect sees the values and versions; the reply acknowledges", async () => {
    const f = await fixture(["variable:write", "variable:read"]);
    const reply = await f.client.request({
      type: "ReportVariableChanges",
      data: {
        service_id: f.serviceId,
        changed_variables: ["v", "n"],
        new_values: [
          ["v", [2, 2]],
          ["n", [3]],
        ],
      },
    });
    expect(expectShape(reply, "VariableChangesAcknowledged")).toEqual({
      service_id: f.serviceId,
      changed_variables: ["v", "n"],
    });
    const v = await test.admin.readVariable({
      tenantId: f.tenantId,
      serviceName: "svc",
      variableName: "v",
    });
    expect([[...v.data], v.version]).toEqual([[2, 2], 2n]);
    const n = await test.admin.readVariable({
      tenantId: f.tenantId,
      serviceName: "svc",
      variableName: "n",
    });
    expect([[...n.data], n.version]).toEqual([[3], 1n]);
  });

  it("notifies a bridge subscriber (extended mode)", async () => {
    const f = await fixture(["variable:write", "variable:read", "variable:subscribe"]);
    const subscriber = await LegacyWs.open(wsUrl, {}, "subscriber");
    await authenticate(subscriber, f.tenantId, (await subscriberOf(f.tenantId)).apiKey);
    subscriber.send({
      type: "Subscribe",
      data: { service_id: f.serviceId, variable_name: "v", request_id: "s" },
    });
    expect(expectShape(await subscriber.replyTo("s"), "Result", { requestId: "s" }).success).toBe(
      true,
    );
    const reply = await f.client.request({
      type: "ReportVariableChanges",
      data: { service_id: f.serviceId, changed_variables: ["v"], new_values: [["v", [9]]] },
    });
    expectShape(reply, "VariableChangesAcknowledged");
    const push = await subscriber.until(
      () =>
        subscriber.received.find((fr) => fr.type === "VariableChanged" && fr.data.version === 2),
      "the push of version 2",
    );
    expect(expectShape(push, "VariableChanged")).toEqual({
      service_id: f.serviceId,
      variable_name: "v",
      data: [9],
      version: 2,
    });
    await subscriber.close();
  });

  it("notifies a Connect Watch subscriber", async () => {
    const f = await fixture(["variable:write"]);
    const watch = test.openWatch({ label: "watcher" });
    const subscriptionId = await watch.subscribeOk({
      tenantId: f.tenantId,
      serviceName: "svc",
      variableName: "v",
    });
    expectShape(
      await f.client.request({
        type: "ReportVariableChanges",
        data: { service_id: f.serviceId, changed_variables: ["v"], new_values: [["v", [4, 4]]] },
      }),
      "VariableChangesAcknowledged",
    );
    const change = await watch.reachVersion(subscriptionId, "v", 2n);
    expect([...change.data]).toEqual([4, 4]);
    watch.abort();
  });
});

/** A subscriber principal of the tenant (subscribe and read). */
function subscriberOf(tenantId: string) {
  return createActor(test, tenantId, `sub${testNumber}`, [
    { permission: "variable:subscribe" },
    { permission: "variable:read" },
  ]);
}
