/**
 * RESOURCE_EXHAUSTED: a service file that reached the server's
 * maxServiceFileSize (here the smallest allowed, 1 MiB). A failed allocate
 * or write changes nothing, the service keeps working, and space freed by a
 * deallocation is used again.
 */
import { Code } from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ErrorCode } from "../../gen/commy/v1/errors_pb.js";
import {
  expectCommyError,
  expectNoServerInternals,
  rejectionOf,
} from "../helpers/error-details.js";
import { type CommyClient, type TestServer, startTestServer } from "../helpers/test-server.js";

const MIB = 1024 * 1024;
const CHUNK = 64 * 1024;

describe.each([
  { name: "Connect", protocol: "connect", httpVersion: "1.1" },
  { name: "gRPC", protocol: "grpc", httpVersion: "2" },
] as const)("a full service file over $name", ({ protocol, httpVersion }) => {
  let test: TestServer;
  let client: CommyClient;
  const service = { tenantId: "t", serviceName: "s" };

  beforeEach(async () => {
    test = await startTestServer({ config: { maxServiceFileSize: MIB } });
    client = test.connectClient(protocol, httpVersion);
    await client.createTenant({ tenantId: "t" });
    await client.createService(service);
  });

  afterEach(async () => {
    await test.close();
  });

  /** Allocates CHUNK-sized variables until the file is full; returns their names. */
  async function fill(): Promise<string[]> {
    const names: string[] = [];
    for (let i = 0; i < 32; i++) {
      const variableName = `chunk-${i}`;
      try {
        await client.allocateVariable({
          ...service,
          variableName,
          initialData: new Uint8Array(CHUNK).fill(i),
        });
      } catch {
        return names;
      }
      names.push(variableName);
    }
    throw new Error("a 1 MiB service file took 32 values of 64 KiB");
  }

  it("AllocateVariable fails with resource_exhausted / RESOURCE_EXHAUSTED once the file is full", async () => {
    const names = await fill();
    expect(names.length).toBeGreaterThan(0);
    const failed = { ...service, variableName: "one-too-many" };
    await expectCommyError(
      client.allocateVariable({ ...failed, initialData: new Uint8Array(CHUNK) }),
      Code.ResourceExhausted,
      ErrorCode.RESOURCE_EXHAUSTED,
    );
    // Nothing of the failed allocation remains; the others are intact.
    await expectCommyError(client.readVariable(failed), Code.NotFound, ErrorCode.NOT_FOUND);
    const { variables } = await client.listVariables(service);
    expect(variables.map((v) => v.variableName).sort()).toEqual([...names].sort());
    for (const [i, variableName] of names.entries()) {
      const read = await client.readVariable({ ...service, variableName });
      expect(read.version).toBe(1n);
      expect(Buffer.from(read.data).equals(Buffer.alloc(CHUNK, i))).toBe(true);
    }
  });

  it("a write that needs a larger place fails the same way and changes nothing", async () => {
    const ref = { ...service, variableName: "small" };
    await client.allocateVariable({ ...ref, initialData: new Uint8Array([1, 2, 3]) });
    await fill();
    await expectCommyError(
      client.writeVariable({ ...ref, data: new Uint8Array(CHUNK * 4) }),
      Code.ResourceExhausted,
      ErrorCode.RESOURCE_EXHAUSTED,
    );
    const read = await client.readVariable(ref);
    expect({ data: [...read.data], version: read.version }).toEqual({
      data: [1, 2, 3],
      version: 1n,
    });
    // A write that fits in place still works.
    expect((await client.writeVariable({ ...ref, data: new Uint8Array([4]) })).version).toBe(2n);
  });

  it("space freed by DeallocateVariable is allocated again", async () => {
    const names = await fill();
    await client.deallocateVariable({ ...service, variableName: names[0] as string });
    const again = await client.allocateVariable({
      ...service,
      variableName: "reused",
      initialData: new Uint8Array(CHUNK).fill(0xee),
    });
    expect(again.variable?.version).toBe(1n);
    const read = await client.readVariable({ ...service, variableName: "reused" });
    expect(Buffer.from(read.data).equals(Buffer.alloc(CHUNK, 0xee))).toBe(true);
  });

  it("other services are not limited by a full one", async () => {
    await fill();
    await client.createService({ tenantId: "t", serviceName: "other" });
    const ref = { tenantId: "t", serviceName: "other", variableName: "v" };
    await client.allocateVariable({ ...ref, initialData: new Uint8Array(CHUNK) });
    expect((await client.readVariable(ref)).version).toBe(1n);
  });

  it("the error does not reveal the service file's path", async () => {
    await fill();
    const error = await rejectionOf(
      client.allocateVariable({
        ...service,
        variableName: "x",
        initialData: new Uint8Array(CHUNK),
      }),
    );
    expect(error.code).toBe(Code.ResourceExhausted);
    expectNoServerInternals(error.message, test.dataDir);
    for (const detail of error.details) expectNoServerInternals(detail.message, test.dataDir);
  });
});
