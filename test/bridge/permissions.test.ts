/**
 * Each permission over the bridge, granted once and refused once: a
 * principal holding just that permission may do the thing; one holding
 * every other permission (tenant admin aside) is refused with
 * PERMISSION_DENIED, nothing changes, and the refusal is audited — also
 * for the messages that legacy mode never answers.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type AuditTail,
  PERMISSION_NAMES,
  type PermissionName,
  auditFields,
  createActor,
  createAuditTail,
  expectNotFound,
} from "../helpers/identity-fixtures.js";
import {
  type BridgeTestServer,
  LegacyWs,
  authenticate,
  expectError,
  expectShape,
  startBridgeServer,
} from "../helpers/legacy-ws.js";
import type { CommyClient } from "../helpers/test-server.js";

let test: BridgeTestServer;
let admin: CommyClient;
let audit: AuditTail;
let testNumber = 0;

beforeAll(async () => {
  test = await startBridgeServer();
  admin = test.connectClient("connect", "1.1");
  audit = createAuditTail(test);
});

afterAll(async () => {
  await test?.close();
});

interface Fixture {
  tenantId: string;
  serviceId: string;
  client: LegacyWs;
  principalId: string;
}

/** A fresh tenant with service "svc" (variable "v" = [1]) and a connection of a principal with `grants`. */
async function fixture(grants: readonly PermissionName[]): Promise<Fixture> {
  const tenantId = `p${++testNumber}`;
  await admin.createTenant({ tenantId });
  const { service } = await admin.createService({ tenantId, serviceName: "svc" });
  await admin.allocateVariable({
    tenantId,
    serviceName: "svc",
    variableName: "v",
    initialData: new Uint8Array([1]),
  });
  const actor = await createActor(
    test,
    tenantId,
    "someone",
    grants.map((permission) => ({ permission })),
  );
  const client = await LegacyWs.open(test.wsUrl(), {}, `${tenantId} ${grants.join(",")}`);
  await authenticate(client, tenantId, actor.apiKey);
  return { tenantId, serviceId: service?.serviceId ?? "", client, principalId: actor.principalId };
}

interface PermissionCase {
  name: string;
  permission: PermissionName;
  /** The audit action of the refusal. */
  action: string;
  message: (f: Fixture) => { type: string; data: Record<string, unknown> };
  /** The reply when allowed. */
  reply: string;
  /** What an allowed call changed, or a refused one did not. */
  effect?: (f: Fixture, allowed: boolean) => Promise<void>;
}

const readV = (f: Fixture, variableName = "v") =>
  admin.readVariable({ tenantId: f.tenantId, serviceName: "svc", variableName });

const CASES: PermissionCase[] = [
  {
    name: "CreateService",
    permission: "service:create",
    action: "service.create",
    message: (f) => ({
      type: "CreateService",
      data: { tenant_id: f.tenantId, service_name: "new" },
    }),
    reply: "Service",
    effect: async (f, allowed) => {
      const got = admin.getService({ tenantId: f.tenantId, serviceName: "new" });
      if (allowed) expect((await got).service?.serviceName).toBe("new");
      else await expectNotFound(got);
    },
  },
  {
    name: "GetService",
    permission: "service:read",
    action: "service.read",
    message: (f) => ({ type: "GetService", data: { tenant_id: f.tenantId, service_name: "svc" } }),
    reply: "Service",
  },
  {
    name: "DeleteService",
    permission: "service:delete",
    action: "service.delete",
    message: (f) => ({
      type: "DeleteService",
      data: { tenant_id: f.tenantId, service_name: "svc" },
    }),
    reply: "Result",
    effect: async (f, allowed) => {
      const got = admin.getService({ tenantId: f.tenantId, serviceName: "svc" });
      if (allowed) await expectNotFound(got);
      else expect((await got).service?.serviceId).toBe(f.serviceId);
    },
  },
  {
    name: "ReadVariable",
    permission: "variable:read",
    action: "variable.read",
    message: (f) => ({
      type: "ReadVariable",
      data: { service_id: f.serviceId, variable_name: "v" },
    }),
    reply: "VariableData",
  },
  {
    name: "GetServiceFilePath",
    permission: "variable:read",
    action: "variable.read",
    message: (f) => ({
      type: "GetServiceFilePath",
      data: { tenant_id: f.tenantId, service_name: "svc" },
    }),
    reply: "ServiceFilePath",
  },
  {
    name: "WriteVariable (extended)",
    permission: "variable:write",
    action: "variable.write",
    message: (f) => ({
      type: "WriteVariable",
      data: { service_id: f.serviceId, variable_name: "v", data: [2], request_id: "w" },
    }),
    reply: "Result",
    effect: async (f, allowed) => {
      expect([...(await readV(f)).data]).toEqual(allowed ? [2] : [1]);
    },
  },
  {
    name: "WriteVariable creating the variable (extended)",
    permission: "variable:write",
    action: "variable.write",
    message: (f) => ({
      type: "WriteVariable",
      data: { service_id: f.serviceId, variable_name: "fresh", data: [3], request_id: "c" },
    }),
    reply: "Result",
    effect: async (f, allowed) => {
      if (allowed) {
        const value = await readV(f, "fresh");
        expect([...value.data]).toEqual([3]);
        expect(value.version).toBe(1n);
      } else {
        await expectNotFound(readV(f, "fresh"));
      }
    },
  },
  {
    name: "ReportVariableChanges",
    permission: "variable:write",
    action: "variable.write",
    message: (f) => ({
      type: "ReportVariableChanges",
      data: { service_id: f.serviceId, changed_variables: ["v"], new_values: [["v", [4]]] },
    }),
    reply: "VariableChangesAcknowledged",
    effect: async (f, allowed) => {
      expect([...(await readV(f)).data]).toEqual(allowed ? [4] : [1]);
    },
  },
  {
    name: "AllocateVariable",
    permission: "variable:write",
    action: "variable.write",
    message: (f) => ({
      type: "AllocateVariable",
      data: { service_id: f.serviceId, variable_name: "alloc", initial_data: [5] },
    }),
    reply: "VariableData",
  },
  {
    name: "Subscribe (extended)",
    permission: "variable:subscribe",
    action: "variable.subscribe",
    message: (f) => ({
      type: "Subscribe",
      data: { service_id: f.serviceId, variable_name: "v", request_id: "s" },
    }),
    reply: "Result",
  },
];

const others = (permission: PermissionName): PermissionName[] =>
  PERMISSION_NAMES.filter((p) => p !== permission && p !== "tenant:admin");

const requestIdOf = (message: { data: Record<string, unknown> }): string | undefined =>
  typeof message.data.request_id === "string" ? message.data.request_id : undefined;

describe.each(CASES.map((c) => [c.name, c] as const))("%s", (_, c) => {
  it(`is allowed with ${c.permission} alone`, async () => {
    const f = await fixture([c.permission]);
    const message = c.message(f);
    const reply = await f.client.request(message);
    expectShape(reply, c.reply, { requestId: requestIdOf(message) });
    await c.effect?.(f, true);
    await f.client.close();
  });

  it(`is refused with PERMISSION_DENIED, audited, without ${c.permission}`, async () => {
    const f = await fixture(others(c.permission));
    const message = c.message(f);
    await audit.mark();
    expectError(await f.client.request(message), "PERMISSION_DENIED", {
      requestId: requestIdOf(message),
    });
    await c.effect?.(f, false);
    const denials = (await audit.since({ principalId: f.principalId }))
      .map(auditFields)
      .filter((e) => e.outcome === "denied");
    expect(denials).toEqual([
      expect.objectContaining({
        principalId: f.principalId,
        tenantId: f.tenantId,
        action: c.action,
      }),
    ]);
    await f.client.close();
  });
});

describe("in legacy mode, where refusals are not answered", () => {
  it("WriteVariable without variable:write changes nothing, says nothing and is audited", async () => {
    const f = await fixture(others("variable:write"));
    await audit.mark();
    f.client.send({
      type: "WriteVariable",
      data: { service_id: f.serviceId, variable_name: "v", data: [9] },
    });
    f.client.send({
      type: "WriteVariable",
      data: { service_id: f.serviceId, variable_name: "created", data: [9] },
    });
    await f.client.expectNothing("two refused writes");
    expect([...(await readV(f)).data]).toEqual([1]);
    await expectNotFound(readV(f, "created"));
    const denials = (await audit.since({ principalId: f.principalId })).filter(
      (e) => e.outcome === "denied",
    );
    expect(denials.map((e) => e.action)).toEqual(["variable.write", "variable.write"]);
  });

  it("WriteVariable with variable:write alone writes, and creates a missing variable", async () => {
    const f = await fixture(["variable:write"]);
    f.client.send({
      type: "WriteVariable",
      data: { service_id: f.serviceId, variable_name: "v", data: [9] },
    });
    f.client.send({
      type: "WriteVariable",
      data: { service_id: f.serviceId, variable_name: "created", data: [8] },
    });
    await f.client.expectNothing("two writes");
    const v = await readV(f);
    expect([[...v.data], v.version]).toEqual([[9], 2n]);
    const created = await readV(f, "created");
    expect([[...created.data], created.version]).toEqual([[8], 1n]);
  });

  it("Subscribe without variable:subscribe says nothing and is audited", async () => {
    const f = await fixture(others("variable:subscribe"));
    await audit.mark();
    f.client.send({ type: "Subscribe", data: { service_id: f.serviceId, variable_name: "v" } });
    await f.client.expectNothing("a refused Subscribe");
    const denials = (await audit.since({ principalId: f.principalId })).filter(
      (e) => e.outcome === "denied",
    );
    expect(denials.map((e) => e.action)).toEqual(["variable.subscribe"]);
  });
});
