/**
 * What survives a server's end: a graceful restart, a SIGKILL of a server
 * running in a child process, and the leftovers a crash in the middle of a
 * create or delete would leave in the data directory (made by hand between
 * two runs). The store is the truth; service files follow it.
 */
import {
  copyFileSync,
  existsSync,
  openSync,
  readdirSync,
  closeSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ErrorCode } from "../../gen/commy/v1/errors_pb.js";
import { expectCommyError } from "../helpers/error-details.js";
import {
  type ChildServer,
  type CommyClient,
  type TestDataDir,
  type TestServer,
  createTestDataDir,
  startChildServer,
  startTestServer,
} from "../helpers/test-server.js";

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

let dataDir: TestDataDir;
const servers: TestServer[] = [];
const children: ChildServer[] = [];

beforeEach(() => {
  dataDir = createTestDataDir();
});

afterEach(async () => {
  for (const child of children.splice(0)) await child.kill();
  for (const server of servers.splice(0)) await server.close();
  dataDir.remove();
});

/** A server on this test's data directory, closed after the test. */
async function start(): Promise<TestServer> {
  const server = await startTestServer({ dataDir: dataDir.path });
  servers.push(server);
  return server;
}

/** A server in a child process on this test's data directory, killed after the test. */
async function startChild(): Promise<ChildServer> {
  const started = await startChildServer(dataDir.path);
  if ("failed" in started) throw new Error(`the child server failed: ${started.failed.message}`);
  children.push(started.server);
  return started.server;
}

const servicesDir = (): string => join(dataDir.path, "services");
const serviceFile = (serviceId: string): string => join(servicesDir(), `${serviceId}.commy`);

/** Everything a client can see: tenants, services, variables with values and versions. */
async function snapshot(client: CommyClient) {
  const { tenants } = await client.listTenants({ pageSize: 1000 });
  return Promise.all(
    tenants.map(async (tenant) => {
      const { services } = await client.listServices({
        tenantId: tenant.tenantId,
        pageSize: 1000,
      });
      return {
        tenant,
        services: await Promise.all(
          services.map(async (service) => {
            const ref = { tenantId: tenant.tenantId, serviceName: service.serviceName };
            const { variables } = await client.listVariables(ref);
            return {
              service,
              variables: await Promise.all(
                variables.map(async (variable) => {
                  const read = await client.readVariable({
                    ...ref,
                    variableName: variable.variableName,
                  });
                  return {
                    variable,
                    data: Buffer.from(read.data).toString("hex"),
                    at: read.version,
                  };
                }),
              ),
            };
          }),
        ),
      };
    }),
  );
}

/** Tenants, services and variables with a history: writes, a relocation, a CAS, deletions. */
async function populate(client: CommyClient): Promise<void> {
  for (const tenantId of ["alpha", "beta", "gamma"]) {
    await client.createTenant({ tenantId, tenantName: `Tenant ${tenantId}` });
  }
  await client.createService({ tenantId: "alpha", serviceName: "orders" });
  await client.createService({ tenantId: "alpha", serviceName: "billing" });
  await client.createService({ tenantId: "beta", serviceName: "orders" });
  await client.createService({ tenantId: "gamma", serviceName: "doomed" });

  const orders = { tenantId: "alpha", serviceName: "orders" };
  await client.allocateVariable({ ...orders, variableName: "count", initialData: bytes("0") });
  for (let n = 1; n <= 25; n++) {
    await client.writeVariable({ ...orders, variableName: "count", data: bytes(String(n)) });
  }
  await client.allocateVariable({
    ...orders,
    variableName: "blob",
    initialData: bytes("small"),
    capacity: 16,
  });
  await client.writeVariable({
    ...orders,
    variableName: "blob",
    data: Buffer.alloc(5000, 0x5a),
    expectedVersion: 1n,
  });
  await client.allocateVariable({ ...orders, variableName: "empty" });
  await client.allocateVariable({ ...orders, variableName: "gone", initialData: bytes("x") });
  await client.deallocateVariable({ ...orders, variableName: "gone" });
  await client.writeVariable({
    tenantId: "beta",
    serviceName: "orders",
    variableName: "upserted",
    data: bytes("made on write"),
    createIfMissing: true,
  });
  await client.deleteService({ tenantId: "gamma", serviceName: "doomed" });
  await client.createTenant({ tenantId: "delta" });
  await client.deleteTenant({ tenantId: "delta" });
}

describe("a graceful restart", () => {
  it("keeps every tenant, service (same service_id) and variable (same value and version)", async () => {
    const first = await start();
    const client = first.connectClient("connect", "2", { binary: true });
    await populate(client);
    const before = await snapshot(client);
    expect(before.map((t) => t.tenant.tenantId)).toEqual(["alpha", "beta", "gamma"]);
    await first.close();

    const second = await start();
    const after = await snapshot(second.connectClient("grpc", "2"));
    expect(after).toEqual(before);
  });

  it("continues versions where they were, and keeps deletions deleted", async () => {
    const first = await start();
    await populate(first.connectClient("connect", "1.1"));
    const doomed = { tenantId: "alpha", serviceName: "billing" };
    const { service } = await first.connectClient("connect", "1.1").getService(doomed);
    await first.connectClient("connect", "1.1").deleteService(doomed);
    await first.close();

    const second = await start();
    const client = second.connectClient("connect", "1.1");
    const count = { tenantId: "alpha", serviceName: "orders", variableName: "count" };
    expect((await client.readVariable(count)).version).toBe(26n);
    expect((await client.writeVariable({ ...count, data: bytes("26") })).version).toBe(27n);
    expect(
      (await client.writeVariable({ ...count, data: bytes("27"), expectedVersion: 27n })).version,
    ).toBe(28n);

    await expectCommyError(client.getService(doomed), Code.NotFound, ErrorCode.NOT_FOUND);
    expect(existsSync(serviceFile(service?.serviceId ?? "?"))).toBe(false);
    await expectCommyError(
      client.getTenant({ tenantId: "delta" }),
      Code.NotFound,
      ErrorCode.NOT_FOUND,
    );
    await expectCommyError(
      client.readVariable({ ...count, variableName: "gone" }),
      Code.NotFound,
      ErrorCode.NOT_FOUND,
    );
  });
});

describe("a server killed with SIGKILL", () => {
  it("loses no acknowledged write", async () => {
    const child = await startChild();
    const client = child.connectClient("connect", "2", { binary: true });
    await populate(client);
    // A burst of acknowledged writes right before the kill.
    const hot = { tenantId: "beta", serviceName: "orders", variableName: "hot" };
    await client.allocateVariable({ ...hot, initialData: bytes("0") });
    for (let n = 1; n <= 200; n++) {
      const { version } = await client.writeVariable({ ...hot, data: bytes(`value ${n}`) });
      expect(version).toBe(BigInt(n + 1));
    }
    const before = await snapshot(client);

    const exit = await child.kill("SIGKILL");
    expect(exit.signal).toBe("SIGKILL");

    // The dead server's lock is taken over; everything acknowledged is there.
    const restarted = await start();
    const after = await snapshot(restarted.connectClient("connect", "1.1"));
    expect(after).toEqual(before);
    const read = await restarted.connectClient("grpc", "2").readVariable(hot);
    expect({ data: Buffer.from(read.data).toString(), version: read.version }).toEqual({
      data: "value 200",
      version: 201n,
    });
  });

  it("keeps every acknowledged create and delete of services sent together (one shared commit)", async () => {
    const child = await startChild();
    const client = child.connectClient("connect", "2", { binary: true });
    await client.createTenant({ tenantId: "burst" });
    const names = Array.from({ length: 24 }, (_, i) => `s${i}`);
    const created = await Promise.all(
      names.map((serviceName) => client.createService({ tenantId: "burst", serviceName })),
    );
    const doomed = names.filter((_, i) => i % 3 === 0);
    await Promise.all(
      doomed.map((serviceName) => client.deleteService({ tenantId: "burst", serviceName })),
    );

    await child.kill("SIGKILL");

    const restarted = await start();
    const listed = await restarted
      .connectClient("connect", "1.1")
      .listServices({ tenantId: "burst", pageSize: 100 });
    const kept = created.filter((c) => !doomed.includes(c.service?.serviceName ?? "?"));
    expect(listed.services.map((s) => [s.serviceName, s.serviceId]).sort()).toEqual(
      kept.map((c) => [c.service?.serviceName, c.service?.serviceId]).sort(),
    );
    for (const c of kept) expect(existsSync(serviceFile(c.service?.serviceId ?? "?"))).toBe(true);
  });

  it("can be killed again right after a restart with writes in between, and keeps them", async () => {
    const first = await startChild();
    const ref = { tenantId: "t", serviceName: "s", variableName: "v" };
    const client = first.connectClient("grpc", "2");
    await client.createTenant({ tenantId: "t" });
    await client.createService(ref);
    await client.allocateVariable({ ...ref, initialData: bytes("1") });
    await first.kill("SIGKILL");

    const second = await startChild();
    const again = second.connectClient("grpc-web", "1.1");
    expect((await again.writeVariable({ ...ref, data: bytes("2") })).version).toBe(2n);
    await second.kill("SIGKILL");

    const third = await start();
    const read = await third.connectClient("connect", "1.1").readVariable(ref);
    expect({ data: Buffer.from(read.data).toString(), version: read.version }).toEqual({
      data: "2",
      version: 2n,
    });
  });
});

describe("leftovers of a crash in the middle, found at start-up", () => {
  /** One service with a variable; the server is closed again. Returns the service id. */
  async function oneService(): Promise<string> {
    const server = await start();
    const client = server.connectClient("connect", "1.1");
    await client.createTenant({ tenantId: "t" });
    const { service } = await client.createService({ tenantId: "t", serviceName: "s" });
    await client.allocateVariable({
      tenantId: "t",
      serviceName: "s",
      variableName: "v",
      initialData: bytes("kept"),
    });
    await server.close();
    return service?.serviceId ?? "?";
  }

  it("an orphan service file (no stored service owns it) is removed; other files are left alone", async () => {
    const serviceId = await oneService();
    const orphan = serviceFile(randomUUID());
    copyFileSync(serviceFile(serviceId), orphan);
    const unrelated = join(servicesDir(), "README.txt");
    writeFileSync(unrelated, "not a service file");

    const server = await start();

    expect(existsSync(orphan)).toBe(false);
    expect(existsSync(unrelated)).toBe(true);
    expect(existsSync(serviceFile(serviceId))).toBe(true);
    const client = server.connectClient("connect", "1.1");
    const read = await client.readVariable({ tenantId: "t", serviceName: "s", variableName: "v" });
    expect(Buffer.from(read.data).toString()).toBe("kept");
    expect((await client.listServices({ tenantId: "t" })).services).toHaveLength(1);
  });

  it("a stored service whose file is missing gets a new, empty file and is served", async () => {
    const serviceId = await oneService();
    unlinkSync(serviceFile(serviceId));

    const server = await start();

    expect(existsSync(serviceFile(serviceId))).toBe(true);
    const client = server.connectClient("connect", "2");
    const { service } = await client.getService({ tenantId: "t", serviceName: "s" });
    expect(service?.serviceId).toBe(serviceId);
    expect((await client.listVariables({ tenantId: "t", serviceName: "s" })).variables).toEqual([]);
    const ref = { tenantId: "t", serviceName: "s", variableName: "v" };
    expect(
      (await client.allocateVariable({ ...ref, initialData: bytes("again") })).variable?.version,
    ).toBe(1n);
    expect(Buffer.from((await client.readVariable(ref)).data).toString()).toBe("again");
  });

  it("a stored service whose file is corrupt gets a new, empty file; the broken one is kept aside", async () => {
    const serviceId = await oneService();
    const fd = openSync(serviceFile(serviceId), "r+");
    writeSync(fd, Buffer.from("GARBAGE!"), 0, 8, 0);
    closeSync(fd);

    const server = await start();

    const client = server.connectClient("connect", "1.1");
    expect((await client.getService({ tenantId: "t", serviceName: "s" })).service?.serviceId).toBe(
      serviceId,
    );
    expect((await client.listVariables({ tenantId: "t", serviceName: "s" })).variables).toEqual([]);
    const kept = readdirSync(servicesDir()).filter((name) =>
      name.startsWith(`${serviceId}.commy.broken-`),
    );
    expect(kept).toHaveLength(1);
    await client.allocateVariable({ tenantId: "t", serviceName: "s", variableName: "v" });
  });
});
