/**
 * Per-tenant quotas, each reached once: the exact error (RESOURCE_EXHAUSTED,
 * with its ErrorDetail), nothing created, other tenants unaffected, and
 * room again once something is deleted.
 */
import { Code } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { ErrorCode } from "../../gen/commy/v1/errors_pb.js";
import { expectCommyError } from "../helpers/error-details.js";
import { type TestServer, startTestServer } from "../helpers/test-server.js";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const exhausted = (call: Promise<unknown>) =>
  expectCommyError(call, Code.ResourceExhausted, ErrorCode.RESOURCE_EXHAUSTED);

describe("tenant quotas", () => {
  it("--tenant-max-services: one service too many is refused; deleting one makes room", async () => {
    server = await startTestServer({ config: { tenantMaxServices: 2 } });
    const client = server.connectClient("connect", "2", { binary: true });
    for (const tenantId of ["full", "other"]) await client.createTenant({ tenantId });
    await client.createService({ tenantId: "full", serviceName: "a" });
    await client.createService({ tenantId: "full", serviceName: "b" });
    const error = await exhausted(client.createService({ tenantId: "full", serviceName: "c" }));
    expect(error.message).toContain("quota of 2 services");
    // An existing name is still ALREADY_EXISTS, not a quota matter.
    await expectCommyError(
      client.createService({ tenantId: "full", serviceName: "a" }),
      Code.AlreadyExists,
      ErrorCode.ALREADY_EXISTS,
    );
    // Nothing was created, other tenants are not limited by this one.
    const listed = await client.listServices({ tenantId: "full" });
    expect(listed.services.map((s) => s.serviceName)).toEqual(["a", "b"]);
    await client.createService({ tenantId: "other", serviceName: "c" });
    await client.deleteService({ tenantId: "full", serviceName: "a" });
    await client.createService({ tenantId: "full", serviceName: "c" });
  });

  it("--tenant-max-variables counts over all services, for Allocate and create-on-write", async () => {
    server = await startTestServer({ config: { tenantMaxVariables: 3 } });
    const client = server.connectClient("grpc", "2");
    await client.createTenant({ tenantId: "t" });
    for (const serviceName of ["s1", "s2"]) {
      await client.createService({ tenantId: "t", serviceName });
    }
    const data = new Uint8Array([1]);
    await client.allocateVariable({
      tenantId: "t",
      serviceName: "s1",
      variableName: "a",
      initialData: data,
    });
    await client.allocateVariable({
      tenantId: "t",
      serviceName: "s1",
      variableName: "b",
      initialData: data,
    });
    await client.writeVariable({
      tenantId: "t",
      serviceName: "s2",
      variableName: "c",
      data,
      createIfMissing: true,
    });
    await exhausted(
      client.allocateVariable({
        tenantId: "t",
        serviceName: "s2",
        variableName: "d",
        initialData: data,
      }),
    );
    await exhausted(
      client.writeVariable({
        tenantId: "t",
        serviceName: "s1",
        variableName: "d",
        data,
        createIfMissing: true,
      }),
    );
    // Writes to existing variables go on.
    const written = await client.writeVariable({
      tenantId: "t",
      serviceName: "s1",
      variableName: "a",
      data,
    });
    expect(written.version).toBe(2n);
    await client.deallocateVariable({ tenantId: "t", serviceName: "s1", variableName: "b" });
    await client.allocateVariable({
      tenantId: "t",
      serviceName: "s2",
      variableName: "d",
      initialData: data,
    });
  });

  it("--tenant-max-bytes: no new variable once the tenant's files take that much", async () => {
    // One new service file is 256 KiB: a quota of 300 KiB is reached by one growth.
    server = await startTestServer({ config: { tenantMaxBytes: 300 * 1024 } });
    const client = server.connectClient("connect", "1.1");
    await client.createTenant({ tenantId: "t" });
    await client.createService({ tenantId: "t", serviceName: "s" });
    const ref = { tenantId: "t", serviceName: "s" };
    await client.allocateVariable({
      ...ref,
      variableName: "big",
      initialData: new Uint8Array(200 * 1024),
    });
    const error = await exhausted(
      client.allocateVariable({ ...ref, variableName: "more", initialData: new Uint8Array(8) }),
    );
    expect(error.message).toContain("bytes of service files");
    // The variable that is there can still be written.
    const written = await client.writeVariable({
      ...ref,
      variableName: "big",
      data: new Uint8Array(10),
    });
    expect(written.version).toBe(2n);
  });
});
