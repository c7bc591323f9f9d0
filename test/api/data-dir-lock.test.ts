/**
 * One server per data directory: a second server on a directory another
 * running server owns is refused with DataDirLockedError, in another
 * process or in this one, and the first server is not disturbed.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DataDirLockedError } from "../../src/data-dir-lock.js";
import {
  type ChildServer,
  type TestDataDir,
  type TestServer,
  createTestDataDir,
  startChildServer,
  startTestServer,
} from "../helpers/test-server.js";

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

async function start(): Promise<TestServer> {
  const server = await startTestServer({ dataDir: dataDir.path });
  servers.push(server);
  return server;
}

/** The first server keeps working after a refused second one. */
async function expectServing(server: {
  connectClient: TestServer["connectClient"];
}): Promise<void> {
  const client = server.connectClient("connect", "1.1");
  await client.createTenant({ tenantId: `still-${Date.now()}` });
  expect((await client.listTenants({})).tenants.length).toBeGreaterThan(0);
}

describe("a second server on a data directory in use", () => {
  it("is refused in another process while this process's server runs", async () => {
    const first = await start();
    const second = await startChildServer(dataDir.path);
    if ("server" in second) children.push(second.server);
    expect(second).toMatchObject({ failed: { name: "DataDirLockedError" } });
    await expectServing(first);
  });

  it("is refused in this process while a server in another process runs", async () => {
    const started = await startChildServer(dataDir.path);
    if ("failed" in started) throw new Error(started.failed.message);
    children.push(started.server);
    await expect(startTestServer({ dataDir: dataDir.path })).rejects.toBeInstanceOf(
      DataDirLockedError,
    );
    await expectServing(started.server);
  });

  it("is refused in the same process", async () => {
    const first = await start();
    const second = startTestServer({ dataDir: dataDir.path });
    // Should it start after all, close it so the test cleans up.
    second.then(
      (server) => servers.push(server),
      () => undefined,
    );
    await expect(second).rejects.toBeInstanceOf(DataDirLockedError);
    await expectServing(first);
  });

  it("starts once the first server has stopped", async () => {
    const first = await start();
    await first.connectClient("connect", "1.1").createTenant({ tenantId: "t" });
    await first.close();
    const second = await start();
    const { tenant } = await second.connectClient("connect", "1.1").getTenant({ tenantId: "t" });
    expect(tenant?.tenantId).toBe("t");
  });
});
