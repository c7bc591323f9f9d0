/**
 * The local fast path: GetServiceFile hands the service file's path only
 * to a caller on the server's machine that may read the service, and
 * CommyClient.openLocal maps it — reads agree with ReadVariable, and a
 * write into the file reaches a remote subscriber like any other write.
 */
import { Agent } from "node:http";
import { networkInterfaces } from "node:os";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CommyService } from "../../gen/commy/v1/commy_service_pb.js";
import {
  type LocalService,
  isNotFound,
  isPermissionDenied,
  isResourceExhausted,
  isUnauthorized,
  isVersionConflict,
} from "../../src/client/index.js";
import { toCommyError } from "../../src/client/client-errors.js";
import { createActor } from "../helpers/identity-fixtures.js";
import { type TestServer, credentialHeaders, startTestServer } from "../helpers/test-server.js";
import {
  bytes,
  createClientPool,
  expectNoLostVersions,
  takeUntil,
  text,
} from "./client-fixtures.js";

let test: TestServer;
const pool = createClientPool();
const locals: LocalService[] = [];
const tenantId = "local";
const ref = { tenantId, serviceName: "s", variableName: "v" };

beforeAll(async () => {
  test = await startTestServer();
  const admin = pool.client(test.server.url);
  await admin.createTenant(tenantId);
  await admin.createService(ref);
  await admin.allocateVariable(ref, { initialData: bytes("remote"), capacity: 32 });
});

afterAll(async () => {
  for (const local of locals.splice(0)) local.close();
  pool.closeAll();
  await test.close();
});

async function openLocal(token?: string): Promise<LocalService> {
  const client = pool.client(test.server.url, token === undefined ? {} : { token });
  const local = await client.openLocal(tenantId, "s");
  locals.push(local);
  return local;
}

describe("openLocal", () => {
  it("reads the same value and version as ReadVariable, with no round trip", async () => {
    const client = pool.client(test.server.url);
    await client.writeVariable(ref, bytes("same"));
    const local = await openLocal();
    const remote = await client.readVariable(ref);
    const mapped = local.read("v");
    expect({ data: new Uint8Array(mapped.data), version: mapped.version }).toEqual(remote);
    expect(local.version("v")).toBe(remote.version);
    expect(local.serviceId).toBe((await client.getService(ref)).serviceId);
    expect(local.list()).toEqual(await client.listVariables(ref));
  });

  it("a local write reaches a remote subscriber and ReadVariable", async () => {
    const client = pool.client(test.server.url);
    const local = await openLocal();
    const subscription = client.subscribe(ref);
    const changes = subscription[Symbol.asyncIterator]();
    const [snapshot] = await takeUntil(changes, () => true);
    const start = snapshot?.version ?? 0;

    const written = local.write("v", bytes("from-local"));
    expect(written).toBe(start + 1);
    const seen = await takeUntil(changes, (c) => c.version === written);
    expectNoLostVersions(seen, start);
    expect(text(seen.at(-1)?.data ?? new Uint8Array())).toBe("from-local");
    const remote = await client.readVariable(ref);
    expect([text(remote.data), remote.version]).toEqual(["from-local", written]);
    subscription.close();
  });

  it("compare-and-set and capacity are enforced locally, as CommyErrors", async () => {
    const local = await openLocal();
    const version = local.version("v");
    expect(() => local.write("v", bytes("x"), { expectedVersion: version + 3 })).toThrow(
      expect.toSatisfy(isVersionConflict),
    );
    expect(() => local.write("v", new Uint8Array(4096))).toThrow(
      expect.toSatisfy(isResourceExhausted),
    );
    expect(() => local.read("missing")).toThrow(expect.toSatisfy(isNotFound));
    expect(local.version("v")).toBe(version);
  });

  it("notices that the service was deleted", async () => {
    const client = pool.client(test.server.url);
    const doomed = { tenantId, serviceName: "doomed", variableName: "x" };
    await client.createService(doomed);
    await client.allocateVariable(doomed, { initialData: bytes("1") });
    const local = await client.openLocal(tenantId, "doomed");
    locals.push(local);
    expect(local.deleted).toBe(false);
    await client.deleteService(doomed);
    expect(local.deleted).toBe(true);
    expect(() => local.read("x")).toThrow(expect.toSatisfy(isNotFound));
  });
});

describe("GetServiceFile", () => {
  it("is granted with variable:read and refused without it", async () => {
    const reader = await createActor(test, tenantId, "reader", [{ permission: "variable:read" }]);
    const local = await openLocal(reader.apiKey);
    expect(text(local.read("v").data)).toBe(
      text((await pool.client(test.server.url).readVariable(ref)).data),
    );

    const lister = await createActor(test, tenantId, "lister", [{ permission: "service:read" }]);
    await expect(openLocal(lister.apiKey)).rejects.toSatisfy(isPermissionDenied);
    await expect(
      pool.client(test.server.url, { token: undefined }).openLocal(tenantId, "s"),
    ).rejects.toSatisfy(isUnauthorized);
    await expect(
      pool.client(test.server.url).openLocal(tenantId, "no-such-service"),
    ).rejects.toSatisfy(isNotFound);
  });

  const nonLoopback = Object.values(networkInterfaces())
    .flat()
    .find((address) => address !== undefined && !address.internal && address.family === "IPv4");

  it.skipIf(nonLoopback === undefined)(
    "refuses a caller whose address is not a loopback one, even on this machine",
    async () => {
      // The packets still go over the loopback interface: only the source
      // address the server sees is the machine's other one.
      const agent = new Agent({ keepAlive: false });
      const transport = createConnectTransport({
        baseUrl: test.server.url,
        httpVersion: "1.1",
        useBinaryFormat: true,
        nodeOptions: { agent, localAddress: nonLoopback?.address },
        interceptors: [
          (next) => (request) => {
            for (const [name, value] of Object.entries(credentialHeaders("admin")))
              request.header.set(name, value);
            return next(request);
          },
        ],
      });
      const raw = createClient(CommyService, transport);
      try {
        // Everything else works from there; only the file's path is refused.
        expect((await raw.readVariable(ref)).version).toBeGreaterThan(0n);
        const error = await raw
          .getServiceFile({ tenantId, serviceName: "s" })
          .then(() => undefined, toCommyError);
        expect(isPermissionDenied(error)).toBe(true);
        expect(error?.message).toMatch(/server's machine/);
      } finally {
        agent.destroy();
      }
    },
  );
});
