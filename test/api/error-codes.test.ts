/**
 * Every reachable ErrorCode, provoked through the API over every transport:
 * the Connect/gRPC status code of DESIGN §3 and the commy.v1.ErrorDetail
 * that carries the ErrorCode, and that a failed call changed nothing.
 *
 * Not reachable yet (no identity, no streams): UNAUTHORIZED,
 * PERMISSION_DENIED, TIMEOUT, CONNECTION_LOST.
 */
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

const MIB = 1024 * 1024;
const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

/** Names that break the naming rule, and why. */
const BAD_NAMES: readonly [string, string][] = [
  ["empty", ""],
  ["leading dot", ".x"],
  ["129 characters", "a".repeat(129)],
  ["slash", "a/b"],
  ["dot-dot path", "../etc"],
  ["space", "a b"],
  ["non-ASCII", "caf\u00e9"],
  ["NUL", "a\u0000b"],
];

describe.each(TRANSPORTS)("error codes over $name", (transport) => {
  let test: TestServer;
  let client: CommyClient;
  const service = { tenantId: "t", serviceName: "s" };
  const variable = { ...service, variableName: "v" };

  beforeAll(async () => {
    test = await startTestServer();
    client = test.connectClient(transport.protocol, transport.httpVersion, {
      binary: transport.binary,
    });
    await client.createTenant({ tenantId: "t", tenantName: "original" });
    await client.createService(service);
    await client.allocateVariable({ ...variable, initialData: bytes("v1") });
    await client.writeVariable({ ...variable, data: bytes("v2") });
  });

  afterAll(async () => {
    await test.close();
  });

  /** The variable `v` still holds what beforeAll wrote. */
  async function expectVariableUnchanged(): Promise<void> {
    const read = await client.readVariable(variable);
    expect({ data: Buffer.from(read.data).toString(), version: read.version }).toEqual({
      data: "v2",
      version: 2n,
    });
  }

  const notFound = (call: Promise<unknown>) =>
    expectCommyError(call, Code.NotFound, ErrorCode.NOT_FOUND);
  const invalid = (call: Promise<unknown>) =>
    expectCommyError(call, Code.InvalidArgument, ErrorCode.INVALID_REQUEST);
  const conflict = (call: Promise<unknown>) =>
    expectCommyError(call, Code.FailedPrecondition, ErrorCode.VERSION_CONFLICT);

  describe("NOT_FOUND", () => {
    it("for a missing tenant, on every call that names one", async () => {
      const missing = { tenantId: "nope", serviceName: "s", variableName: "v" };
      await notFound(client.getTenant({ tenantId: "nope" }));
      await notFound(client.deleteTenant({ tenantId: "nope" }));
      await notFound(client.createService(missing));
      await notFound(client.getService(missing));
      await notFound(client.listServices({ tenantId: "nope" }));
      await notFound(client.deleteService(missing));
      await notFound(client.allocateVariable(missing));
      await notFound(client.readVariable(missing));
      await notFound(client.writeVariable({ ...missing, data: bytes("x"), createIfMissing: true }));
      await notFound(client.deallocateVariable(missing));
      await notFound(client.listVariables(missing));
      // None of that created the tenant.
      await notFound(client.getTenant({ tenantId: "nope" }));
    });

    it("for a missing service, on every call that names one", async () => {
      const missing = { tenantId: "t", serviceName: "nope", variableName: "v" };
      await notFound(client.getService(missing));
      await notFound(client.deleteService(missing));
      await notFound(client.allocateVariable(missing));
      await notFound(client.readVariable(missing));
      await notFound(client.writeVariable({ ...missing, data: bytes("x"), createIfMissing: true }));
      await notFound(client.deallocateVariable(missing));
      await notFound(client.listVariables(missing));
      const listed = await client.listServices({ tenantId: "t" });
      expect(listed.services.map((s) => s.serviceName)).toEqual(["s"]);
    });

    it("for a missing variable on read, write and deallocate", async () => {
      const missing = { ...service, variableName: "nope" };
      await notFound(client.readVariable(missing));
      await notFound(client.writeVariable({ ...missing, data: bytes("x") }));
      await notFound(client.writeVariable({ ...missing, data: bytes("x"), expectedVersion: 1n }));
      await notFound(client.deallocateVariable(missing));
      const listed = await client.listVariables(service);
      expect(listed.variables.map((v) => v.variableName)).toEqual(["v"]);
    });

    it("for a variable deallocated a moment ago", async () => {
      const gone = { ...service, variableName: "short-lived" };
      await client.allocateVariable({ ...gone, initialData: bytes("x") });
      await client.deallocateVariable(gone);
      await notFound(client.readVariable(gone));
      await notFound(client.deallocateVariable(gone));
    });
  });

  describe("ALREADY_EXISTS", () => {
    it("for a duplicate tenant, which stays unchanged", async () => {
      await expectCommyError(
        client.createTenant({ tenantId: "t", tenantName: "impostor" }),
        Code.AlreadyExists,
        ErrorCode.ALREADY_EXISTS,
      );
      expect((await client.getTenant({ tenantId: "t" })).tenant?.tenantName).toBe("original");
    });

    it("for a duplicate service, which keeps its service_id and variables", async () => {
      const before = (await client.getService(service)).service;
      await expectCommyError(
        client.createService(service),
        Code.AlreadyExists,
        ErrorCode.ALREADY_EXISTS,
      );
      expect((await client.getService(service)).service).toEqual(before);
      await expectVariableUnchanged();
    });

    it("for a duplicate variable, which keeps its value and version", async () => {
      await expectCommyError(
        client.allocateVariable({ ...variable, initialData: bytes("overwrite?") }),
        Code.AlreadyExists,
        ErrorCode.ALREADY_EXISTS,
      );
      await expectVariableUnchanged();
    });
  });

  describe("INVALID_REQUEST", () => {
    it.each(BAD_NAMES)("for a tenant id that is %s", async (_why, name) => {
      await invalid(client.createTenant({ tenantId: name }));
      await invalid(client.getTenant({ tenantId: name }));
      await invalid(client.deleteTenant({ tenantId: name }));
      await invalid(client.createService({ tenantId: name, serviceName: "s" }));
      await invalid(client.listServices({ tenantId: name }));
      await invalid(client.readVariable({ tenantId: name, serviceName: "s", variableName: "v" }));
    });

    it.each(BAD_NAMES)("for a service name that is %s", async (_why, name) => {
      const ref = { tenantId: "t", serviceName: name };
      await invalid(client.createService(ref));
      await invalid(client.getService(ref));
      await invalid(client.deleteService(ref));
      await invalid(client.listVariables(ref));
      await invalid(client.allocateVariable({ ...ref, variableName: "v" }));
    });

    it.each(BAD_NAMES)("for a variable name that is %s", async (_why, name) => {
      const ref = { ...service, variableName: name };
      await invalid(client.allocateVariable({ ...ref, initialData: bytes("x") }));
      await invalid(client.readVariable(ref));
      await invalid(client.writeVariable({ ...ref, data: bytes("x"), createIfMissing: true }));
      await invalid(client.deallocateVariable(ref));
    });

    it("names of 128 characters of the whole alphabet are accepted", async () => {
      const name = "Az09._-".repeat(19).slice(0, 128);
      expect(name).toHaveLength(128);
      await client.createTenant({ tenantId: name });
      await client.createService({ tenantId: name, serviceName: name });
      const ref = { tenantId: name, serviceName: name, variableName: name };
      await client.allocateVariable({ ...ref, initialData: bytes("ok") });
      expect(Buffer.from((await client.readVariable(ref)).data).toString()).toBe("ok");
      await client.deleteTenant({ tenantId: name });
    });

    it("for a tenant_name longer than 256 characters", async () => {
      await invalid(client.createTenant({ tenantId: "long-name", tenantName: "n".repeat(257) }));
      await notFound(client.getTenant({ tenantId: "long-name" }));
    });

    it("for a value over 1 MiB, on allocate and on write; nothing is written", async () => {
      const tooBig = new Uint8Array(MIB + 1);
      await invalid(
        client.allocateVariable({ ...service, variableName: "huge", initialData: tooBig }),
      );
      await invalid(
        client.writeVariable({
          ...service,
          variableName: "huge",
          data: tooBig,
          createIfMissing: true,
        }),
      );
      await invalid(client.writeVariable({ ...variable, data: tooBig }));
      await notFound(client.readVariable({ ...service, variableName: "huge" }));
      await expectVariableUnchanged();
    });

    it("for a capacity smaller than initial_data, or over 1 MiB", async () => {
      const ref = { ...service, variableName: "cramped" };
      await invalid(client.allocateVariable({ ...ref, initialData: bytes("12345"), capacity: 4 }));
      await invalid(
        client.allocateVariable({ ...ref, initialData: bytes("x"), capacity: MIB + 1 }),
      );
      await notFound(client.readVariable(ref));
    });

    it("for an expected_version beyond 2^53", async () => {
      await invalid(
        client.writeVariable({ ...variable, data: bytes("x"), expectedVersion: 2n ** 60n }),
      );
      await expectVariableUnchanged();
    });
  });

  describe("VERSION_CONFLICT", () => {
    it("for an expected_version behind or ahead of the current one; nothing is written", async () => {
      await conflict(
        client.writeVariable({ ...variable, data: bytes("stale"), expectedVersion: 1n }),
      );
      await conflict(
        client.writeVariable({ ...variable, data: bytes("future"), expectedVersion: 3n }),
      );
      await conflict(
        client.writeVariable({ ...variable, data: bytes("zero"), expectedVersion: 0n }),
      );
      await expectVariableUnchanged();
    });

    it("the detail names the conflict, and a retry with the current version succeeds", async () => {
      const ref = { ...service, variableName: "cas" };
      await client.allocateVariable({ ...ref, initialData: bytes("a") });
      await client.writeVariable({ ...ref, data: bytes("b") });
      const error = await conflict(
        client.writeVariable({ ...ref, data: bytes("c"), expectedVersion: 1n }),
      );
      expect(error.details[0]?.message).toMatch(/version/);
      const current = await client.readVariable(ref);
      expect(current.version).toBe(2n);
      expect(
        (await client.writeVariable({ ...ref, data: bytes("c"), expectedVersion: current.version }))
          .version,
      ).toBe(3n);
    });

    it("for create_if_missing with an expected_version other than 0; nothing is created", async () => {
      const ref = { ...service, variableName: "not-yet" };
      await conflict(
        client.writeVariable({
          ...ref,
          data: bytes("x"),
          createIfMissing: true,
          expectedVersion: 3n,
        }),
      );
      await notFound(client.readVariable(ref));
    });
  });
});

describe("paging arguments", () => {
  let test: TestServer;
  let client: CommyClient;

  beforeAll(async () => {
    test = await startTestServer();
    client = test.connectClient("connect", "1.1");
    await client.createTenant({ tenantId: "t" });
  });

  afterAll(async () => {
    await test.close();
  });

  it("a page_token the server cannot have issued is INVALID_REQUEST", async () => {
    for (const pageToken of ["not a token!", "../../etc/passwd", ".hidden", "x".repeat(300)]) {
      await expectCommyError(
        client.listTenants({ pageToken }),
        Code.InvalidArgument,
        ErrorCode.INVALID_REQUEST,
      );
      await expectCommyError(
        client.listServices({ tenantId: "t", pageToken }),
        Code.InvalidArgument,
        ErrorCode.INVALID_REQUEST,
      );
    }
  });

  it("a page_size over the limit is capped, not refused", async () => {
    const page = await client.listTenants({ pageSize: 0xffffffff });
    expect(page.tenants.map((t) => t.tenantId)).toEqual(["t"]);
    expect(page.nextPageToken).toBe("");

    // With more tenants than the cap, a huge page is a full page, not all of them.
    const fast = test.connectClient("connect", "2", { binary: true });
    const ids = Array.from({ length: 1100 }, (_, i) => `many-${String(i).padStart(4, "0")}`);
    for (let start = 0; start < ids.length; start += 100) {
      await Promise.all(
        ids.slice(start, start + 100).map((tenantId) => fast.createTenant({ tenantId })),
      );
    }
    const first = await fast.listTenants({ pageSize: 0xffffffff });
    expect(first.tenants.length).toBeLessThan(ids.length + 1);
    expect(first.nextPageToken).not.toBe("");
    const rest = await fast.listTenants({ pageSize: 0xffffffff, pageToken: first.nextPageToken });
    expect([...first.tenants, ...rest.tenants].map((t) => t.tenantId)).toEqual([...ids, "t"]);
    expect(rest.nextPageToken).toBe("");
  });
});
