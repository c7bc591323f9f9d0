/**
 * CommyClient against a real server: every resource method, with plain
 * types out (numbers for versions, Dates for times), over HTTP/2 and
 * HTTP/1.1.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type TestServer, startTestServer } from "../helpers/test-server.js";
import { bytes, createClientPool, text } from "./client-fixtures.js";

let test: TestServer;
const pool = createClientPool();

beforeAll(async () => {
  test = await startTestServer();
});

afterAll(async () => {
  pool.closeAll();
  await test.close();
});

describe.each(["2", "1.1"] as const)("over HTTP/%s", (httpVersion) => {
  const tenantId = `res-h${httpVersion.replace(".", "")}`;
  const client = () => pool.client(test.server.url, { httpVersion });

  it("creates, gets, lists and deletes tenants", async () => {
    const created = await client().createTenant(tenantId, "Resources");
    expect(created).toMatchObject({ tenantId, tenantName: "Resources", createdBy: "admin" });
    expect(created.createdAt).toBeInstanceOf(Date);
    expect(await client().getTenant(tenantId)).toEqual(created);
    await client().createTenant(`${tenantId}-x`);

    const first = await client().listTenants({ pageSize: 1 });
    expect(first.items).toHaveLength(1);
    expect(first.nextPageToken).toBeTypeOf("string");
    const all = await client().listTenants();
    expect(all.items.map((t) => t.tenantId)).toEqual(
      expect.arrayContaining([tenantId, `${tenantId}-x`]),
    );
    expect(all.nextPageToken).toBeUndefined();

    await client().deleteTenant(`${tenantId}-x`);
    const after = await client().listTenants();
    expect(after.items.map((t) => t.tenantId)).not.toContain(`${tenantId}-x`);
  });

  it("creates, gets, lists and deletes services", async () => {
    const ref = { tenantId, serviceName: "svc" };
    const created = await client().createService(ref);
    expect(created).toMatchObject({ ...ref, createdBy: "admin" });
    expect(created.serviceId).toMatch(/^[0-9a-f-]{36}$/);
    expect(await client().getService(ref)).toEqual(created);
    await client().createService({ tenantId, serviceName: "svc-2" });

    const page = await client().listServices(tenantId, { pageSize: 1 });
    expect(page.items.map((s) => s.serviceName)).toEqual(["svc"]);
    const next = await client().listServices(tenantId, { pageToken: page.nextPageToken });
    expect(next.items.map((s) => s.serviceName)).toEqual(["svc-2"]);
    expect(next.nextPageToken).toBeUndefined();

    await client().deleteService({ tenantId, serviceName: "svc-2" });
    expect((await client().listServices(tenantId)).items.map((s) => s.serviceName)).toEqual([
      "svc",
    ]);
  });

  it("allocates, reads, writes (with and without an expected version), lists and deallocates variables", async () => {
    const ref = { tenantId, serviceName: "svc", variableName: "v" };
    const allocated = await client().allocateVariable(ref, {
      initialData: bytes("one"),
      capacity: 64,
    });
    expect(allocated).toEqual({ name: "v", version: 1, size: 3, capacity: 64 });

    expect(await client().readVariable(ref)).toEqual({ data: bytes("one"), version: 1 });
    expect(await client().writeVariable(ref, bytes("two"))).toBe(2);
    expect(await client().writeVariable(ref, bytes("three"), { expectedVersion: 2 })).toBe(3);
    const read = await client().readVariable(ref);
    expect([text(read.data), read.version]).toEqual(["three", 3]);

    const created = { ...ref, variableName: "w" };
    expect(await client().writeVariable(created, bytes("x"), { createIfMissing: true })).toBe(1);
    expect(await client().listVariables(ref)).toEqual([
      { name: "v", version: 3, size: 5, capacity: 64 },
      { name: "w", version: 1, size: 1, capacity: expect.any(Number) as number },
    ]);

    await client().deallocateVariable(created);
    expect((await client().listVariables(ref)).map((v) => v.name)).toEqual(["v"]);
  });
});
