/**
 * Every RPC of commy.v1.CommyService succeeding, over every protocol and
 * HTTP version the server speaks: Connect (JSON and binary, HTTP/1.1 and
 * HTTP/2), gRPC (HTTP/2) and gRPC-Web (HTTP/1.1 and HTTP/2). Each transport
 * gets its own server and data directory, so listings are exact.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { type Timestamp, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../../gen/commy/v1/errors_pb.js";
import { expectCommyError } from "../helpers/error-details.js";
import {
  type CommyClient,
  TRANSPORTS,
  type TestServer,
  startTestServer,
} from "../helpers/test-server.js";

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const MIB = 1024 * 1024;
const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const millis = (timestamp: Timestamp | undefined): number =>
  timestamp === undefined ? Number.NaN : timestampMs(timestamp);

describe.each(TRANSPORTS)("every RPC over $name", (transport) => {
  let test: TestServer;
  let client: CommyClient;

  beforeAll(async () => {
    test = await startTestServer();
    client = test.connectClient(transport.protocol, transport.httpVersion, {
      binary: transport.binary,
    });
  });

  afterAll(async () => {
    await test.close();
  });

  const serviceFile = (serviceId: string): string =>
    join(test.dataDir, "services", `${serviceId}.commy`);

  /** A tenant with one service, named after the test. */
  async function tenantWithService(tenantId: string, serviceName = "svc") {
    await client.createTenant({ tenantId });
    const { service } = await client.createService({ tenantId, serviceName });
    if (service === undefined) throw new Error("CreateService returned no service");
    return service;
  }

  it("CreateTenant returns the tenant with its creator and creation time; GetTenant returns it", async () => {
    const before = Date.now();
    const { tenant } = await client.createTenant({ tenantId: "acme", tenantName: "Acme Corp." });
    const after = Date.now();
    expect(tenant).toMatchObject({
      tenantId: "acme",
      tenantName: "Acme Corp.",
      createdBy: "admin",
    });
    const createdAt = millis(tenant?.createdAt);
    expect(createdAt).toBeGreaterThanOrEqual(before - 1000);
    expect(createdAt).toBeLessThanOrEqual(after + 1000);

    const got = await client.getTenant({ tenantId: "acme" });
    expect(got.tenant).toEqual(tenant);
  });

  it("CreateTenant without a display name uses the tenant id", async () => {
    const { tenant } = await client.createTenant({ tenantId: "unnamed" });
    expect(tenant?.tenantName).toBe("unnamed");
  });

  it("ListTenants pages through every tenant in id order", async () => {
    const ids = ["page-a", "page-b", "page-c", "page-d", "page-e"];
    for (const tenantId of [...ids].reverse()) await client.createTenant({ tenantId });
    const all = (await client.listTenants({})).tenants.map((t) => t.tenantId);
    expect(all).toEqual([...all].sort());
    expect(all).toEqual(expect.arrayContaining(ids));

    const pages: string[][] = [];
    let pageToken = "";
    do {
      const page = await client.listTenants({ pageSize: 2, pageToken });
      expect(page.tenants.length).toBeLessThanOrEqual(2);
      pages.push(page.tenants.map((t) => t.tenantId));
      pageToken = page.nextPageToken;
    } while (pageToken !== "" && pages.length < 50);
    expect(pages.flat()).toEqual(all);
    expect(pages.slice(0, -1).every((page) => page.length === 2)).toBe(true);
  });

  it("ListTenants with an exact page fills it and ends with an empty next_page_token", async () => {
    const all = (await client.listTenants({})).tenants;
    const page = await client.listTenants({ pageSize: all.length });
    expect(page.tenants).toEqual(all);
    expect(page.nextPageToken).toBe("");
  });

  it("DeleteTenant removes the tenant, its services and their files", async () => {
    const first = await tenantWithService("doomed", "one");
    const { service: second } = await client.createService({
      tenantId: "doomed",
      serviceName: "two",
    });
    await client.allocateVariable({
      tenantId: "doomed",
      serviceName: "one",
      variableName: "v",
      initialData: bytes("x"),
    });
    const files = [serviceFile(first.serviceId), serviceFile(second?.serviceId ?? "?")];
    expect(files.map((file) => existsSync(file))).toEqual([true, true]);

    await client.deleteTenant({ tenantId: "doomed" });

    // Unlinked on the server's threadpool, a moment after the reply.
    await expect.poll(() => files.map((file) => existsSync(file))).toEqual([false, false]);
    await expectCommyError(
      client.getTenant({ tenantId: "doomed" }),
      Code.NotFound,
      ErrorCode.NOT_FOUND,
    );
    await expectCommyError(
      client.getService({ tenantId: "doomed", serviceName: "one" }),
      Code.NotFound,
      ErrorCode.NOT_FOUND,
    );
    // A new tenant of the same id starts empty.
    await client.createTenant({ tenantId: "doomed" });
    expect((await client.listServices({ tenantId: "doomed" })).services).toEqual([]);
  });

  it("CreateService assigns a UUID v4 service_id, its creator and creation time, and a file", async () => {
    await client.createTenant({ tenantId: "svc-create" });
    const before = Date.now();
    const { service } = await client.createService({
      tenantId: "svc-create",
      serviceName: "orders",
    });
    expect(service).toMatchObject({
      tenantId: "svc-create",
      serviceName: "orders",
      createdBy: "admin",
    });
    expect(service?.serviceId).toMatch(UUID_V4);
    expect(millis(service?.createdAt)).toBeGreaterThanOrEqual(before - 1000);
    expect(existsSync(serviceFile(service?.serviceId ?? "?"))).toBe(true);

    const other = await client.createService({ tenantId: "svc-create", serviceName: "billing" });
    expect(other.service?.serviceId).toMatch(UUID_V4);
    expect(other.service?.serviceId).not.toBe(service?.serviceId);
  });

  it("GetService returns the service; getting a missing one creates nothing", async () => {
    const created = await tenantWithService("svc-get", "present");
    expect(
      (await client.getService({ tenantId: "svc-get", serviceName: "present" })).service,
    ).toEqual(created);

    for (let attempt = 0; attempt < 2; attempt++) {
      await expectCommyError(
        client.getService({ tenantId: "svc-get", serviceName: "absent" }),
        Code.NotFound,
        ErrorCode.NOT_FOUND,
      );
    }
    const listed = await client.listServices({ tenantId: "svc-get" });
    expect(listed.services.map((s) => s.serviceName)).toEqual(["present"]);
  });

  it("ListServices pages through a tenant's services in name order", async () => {
    await client.createTenant({ tenantId: "svc-list" });
    const names = ["delta", "alpha", "echo", "charlie", "bravo"];
    for (const serviceName of names)
      await client.createService({ tenantId: "svc-list", serviceName });
    // Another tenant's services never show up.
    await tenantWithService("svc-list-other", "zulu");

    const pages: string[][] = [];
    let pageToken = "";
    do {
      const page = await client.listServices({ tenantId: "svc-list", pageSize: 2, pageToken });
      pages.push(page.services.map((s) => s.serviceName));
      expect(page.services.every((s) => s.tenantId === "svc-list")).toBe(true);
      pageToken = page.nextPageToken;
    } while (pageToken !== "" && pages.length < 50);
    expect(pages).toEqual([["alpha", "bravo"], ["charlie", "delta"], ["echo"]]);

    const all = await client.listServices({ tenantId: "svc-list" });
    expect(all.services.map((s) => s.serviceName)).toEqual([...names].sort());
    expect(all.nextPageToken).toBe("");
  });

  it("DeleteService removes the service and unlinks its file", async () => {
    const service = await tenantWithService("svc-delete", "gone");
    await client.createService({ tenantId: "svc-delete", serviceName: "kept" });
    expect(existsSync(serviceFile(service.serviceId))).toBe(true);

    await client.deleteService({ tenantId: "svc-delete", serviceName: "gone" });

    // Unlinked on the server's threadpool, a moment after the reply.
    await expect.poll(() => existsSync(serviceFile(service.serviceId))).toBe(false);
    await expectCommyError(
      client.getService({ tenantId: "svc-delete", serviceName: "gone" }),
      Code.NotFound,
      ErrorCode.NOT_FOUND,
    );
    const listed = await client.listServices({ tenantId: "svc-delete" });
    expect(listed.services.map((s) => s.serviceName)).toEqual(["kept"]);
  });

  it("AllocateVariable creates a variable at version 1 with its size and capacity", async () => {
    await tenantWithService("var-alloc");
    const ref = { tenantId: "var-alloc", serviceName: "svc" };

    const sized = await client.allocateVariable({
      ...ref,
      variableName: "sized",
      initialData: bytes("hello"),
      capacity: 100,
    });
    expect(sized.variable).toMatchObject({ variableName: "sized", version: 1n, size: 5 });
    expect(sized.variable?.capacity).toBeGreaterThanOrEqual(100);

    const unsized = await client.allocateVariable({
      ...ref,
      variableName: "unsized",
      initialData: bytes("x".repeat(40)),
    });
    expect(unsized.variable).toMatchObject({ variableName: "unsized", version: 1n, size: 40 });
    expect(unsized.variable?.capacity).toBeGreaterThanOrEqual(40);

    const empty = await client.allocateVariable({ ...ref, variableName: "empty" });
    expect(empty.variable).toMatchObject({ variableName: "empty", version: 1n, size: 0 });

    const read = await client.readVariable({ ...ref, variableName: "sized" });
    expect({ data: Buffer.from(read.data).toString(), version: read.version }).toEqual({
      data: "hello",
      version: 1n,
    });
    expect((await client.readVariable({ ...ref, variableName: "empty" })).data).toHaveLength(0);
  });

  it("ReadVariable returns the current value and its version, and changes nothing", async () => {
    await tenantWithService("var-read");
    const ref = { tenantId: "var-read", serviceName: "svc", variableName: "v" };
    await client.allocateVariable({ ...ref, initialData: bytes("one") });
    await client.writeVariable({ ...ref, data: bytes("two") });

    for (let attempt = 0; attempt < 3; attempt++) {
      const read = await client.readVariable(ref);
      expect({ data: Buffer.from(read.data).toString(), version: read.version }).toEqual({
        data: "two",
        version: 2n,
      });
    }
    // Reading a missing variable does not create it.
    await expectCommyError(
      client.readVariable({ ...ref, variableName: "missing" }),
      Code.NotFound,
      ErrorCode.NOT_FOUND,
    );
    const listed = await client.listVariables({ tenantId: "var-read", serviceName: "svc" });
    expect(listed.variables.map((v) => v.variableName)).toEqual(["v"]);
  });

  it("WriteVariable increments the version by one per write", async () => {
    await tenantWithService("var-write");
    const ref = { tenantId: "var-write", serviceName: "svc", variableName: "counter" };
    await client.allocateVariable({ ...ref, initialData: bytes("0") });
    for (let n = 1; n <= 5; n++) {
      const { version } = await client.writeVariable({ ...ref, data: bytes(String(n)) });
      expect(version).toBe(BigInt(n + 1));
    }
    const read = await client.readVariable(ref);
    expect({ data: Buffer.from(read.data).toString(), version: read.version }).toEqual({
      data: "5",
      version: 6n,
    });
  });

  it("WriteVariable with expected_version writes when it matches the current version", async () => {
    await tenantWithService("var-cas");
    const ref = { tenantId: "var-cas", serviceName: "svc", variableName: "v" };
    await client.allocateVariable({ ...ref, initialData: bytes("a") });
    expect(
      (await client.writeVariable({ ...ref, data: bytes("b"), expectedVersion: 1n })).version,
    ).toBe(2n);
    expect(
      (await client.writeVariable({ ...ref, data: bytes("c"), expectedVersion: 2n })).version,
    ).toBe(3n);
    expect(Buffer.from((await client.readVariable(ref)).data).toString()).toBe("c");
  });

  it("WriteVariable with create_if_missing creates the variable at version 1", async () => {
    await tenantWithService("var-upsert");
    const ref = { tenantId: "var-upsert", serviceName: "svc", variableName: "fresh" };
    expect(
      (await client.writeVariable({ ...ref, data: bytes("new"), createIfMissing: true })).version,
    ).toBe(1n);
    // With create_if_missing on an existing variable it is an ordinary write.
    expect(
      (await client.writeVariable({ ...ref, data: bytes("newer"), createIfMissing: true })).version,
    ).toBe(2n);
    // expected_version 0 means "must not exist yet".
    const created = await client.writeVariable({
      ...ref,
      variableName: "cas-created",
      data: bytes("x"),
      createIfMissing: true,
      expectedVersion: 0n,
    });
    expect(created.version).toBe(1n);
    const read = await client.readVariable(ref);
    expect({ data: Buffer.from(read.data).toString(), version: read.version }).toEqual({
      data: "newer",
      version: 2n,
    });
  });

  it("a value larger than the capacity is relocated and reads back whole", async () => {
    await tenantWithService("var-grow");
    const ref = { tenantId: "var-grow", serviceName: "svc", variableName: "grows" };
    const small = await client.allocateVariable({ ...ref, initialData: bytes("s"), capacity: 16 });
    const capacity = small.variable?.capacity ?? 0;
    // Keep a neighbour, to check that the move does not disturb it.
    await client.allocateVariable({ ...ref, variableName: "neighbour", initialData: bytes("n") });

    const big = Buffer.alloc(capacity * 8 + 3);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
    expect((await client.writeVariable({ ...ref, data: big })).version).toBe(2n);

    const read = await client.readVariable(ref);
    expect(Buffer.from(read.data).equals(big)).toBe(true);
    expect(read.version).toBe(2n);
    const listed = await client.listVariables({ tenantId: "var-grow", serviceName: "svc" });
    const grown = listed.variables.find((v) => v.variableName === "grows");
    expect(grown?.size).toBe(big.length);
    expect(grown?.capacity).toBeGreaterThanOrEqual(big.length);
    expect(
      Buffer.from(
        (await client.readVariable({ ...ref, variableName: "neighbour" })).data,
      ).toString(),
    ).toBe("n");

    // And back down: a small value after a big one.
    expect((await client.writeVariable({ ...ref, data: bytes("tiny") })).version).toBe(3n);
    expect(Buffer.from((await client.readVariable(ref)).data).toString()).toBe("tiny");
  });

  it("a value of exactly 1 MiB is accepted, written and read back", async () => {
    await tenantWithService("var-mib");
    const ref = { tenantId: "var-mib", serviceName: "svc", variableName: "big" };
    const value = Buffer.alloc(MIB, 0xab);
    await client.allocateVariable({ ...ref, initialData: bytes("small") });
    expect((await client.writeVariable({ ...ref, data: value })).version).toBe(2n);
    expect(Buffer.from((await client.readVariable(ref)).data).equals(value)).toBe(true);
  });

  it("DeallocateVariable removes the variable; its name may be allocated again", async () => {
    await tenantWithService("var-dealloc");
    const ref = { tenantId: "var-dealloc", serviceName: "svc", variableName: "v" };
    await client.allocateVariable({ ...ref, initialData: bytes("old") });
    await client.writeVariable({ ...ref, data: bytes("older") });

    await client.deallocateVariable(ref);

    await expectCommyError(client.readVariable(ref), Code.NotFound, ErrorCode.NOT_FOUND);
    expect(
      (await client.listVariables({ tenantId: "var-dealloc", serviceName: "svc" })).variables,
    ).toEqual([]);
    const again = await client.allocateVariable({ ...ref, initialData: bytes("new") });
    expect(again.variable?.version).toBe(1n);
    expect(Buffer.from((await client.readVariable(ref)).data).toString()).toBe("new");
  });

  it("ListVariables lists every variable with version, size and capacity, in name order", async () => {
    await tenantWithService("var-list");
    const ref = { tenantId: "var-list", serviceName: "svc" };
    expect((await client.listVariables(ref)).variables).toEqual([]);
    await client.allocateVariable({ ...ref, variableName: "zeta", initialData: bytes("zz") });
    await client.allocateVariable({
      ...ref,
      variableName: "alpha",
      initialData: bytes("a"),
      capacity: 64,
    });
    await client.allocateVariable({ ...ref, variableName: "mu", initialData: bytes("") });
    await client.writeVariable({ ...ref, variableName: "zeta", data: bytes("zzzz") });

    const { variables } = await client.listVariables(ref);
    expect(variables.map((v) => [v.variableName, v.version, v.size])).toEqual([
      ["alpha", 1n, 1],
      ["mu", 1n, 0],
      ["zeta", 2n, 4],
    ]);
    expect(variables[0]?.capacity).toBeGreaterThanOrEqual(64);
    expect(variables.every((v) => v.capacity >= v.size)).toBe(true);
  });
});
