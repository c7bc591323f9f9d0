/**
 * UNAUTHORIZED and PERMISSION_DENIED on the typed API, and the house check
 * order (DESIGN §3): authenticated? → permitted? → exists? — so a caller
 * never learns whether something exists where it may not look, and a
 * refused call changes nothing. Principals, API keys and grants are set up
 * through IdentityService as an operator would.
 */
import { Code } from "@connectrpc/connect";
import { status as GrpcStatus, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../../gen/commy/v1/errors_pb.js";
import { Permission } from "../../gen/commy/v1/identity_pb.js";
import { decodeRpcStatus, errorDetailsOf, expectCommyError } from "../helpers/error-details.js";
import {
  type CommyClient,
  type Credentials,
  type TestServer,
  startTestServer,
} from "../helpers/test-server.js";

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

let test: TestServer;
let admin: CommyClient;

beforeAll(async () => {
  test = await startTestServer();
  admin = test.connectClient("connect", "1.1");
  for (const tenantId of ["a", "b"]) {
    await admin.createTenant({ tenantId });
    for (const serviceName of ["pub-feed", "priv-ledger"]) {
      await admin.createService({ tenantId, serviceName });
      await admin.allocateVariable({
        tenantId,
        serviceName,
        variableName: "v",
        initialData: bytes("original"),
      });
    }
  }
});

afterAll(async () => {
  await test.close();
});

/** A principal of tenant `a` with these grants; returns its API key as credentials. */
async function principal(name: string, grants: [Permission, string][]): Promise<Credentials> {
  const identity = test.identityClient();
  await identity.createPrincipal({ tenantId: "a", name });
  for (const [permission, servicePrefix] of grants) {
    await identity.grantPermission({
      tenantId: "a",
      principalName: name,
      permission,
      servicePrefix,
    });
  }
  const { apiKey } = await identity.createApiKey({ tenantId: "a", principalName: name });
  return { bearer: apiKey };
}

/** Every CommyService call, some naming resources that exist and some that do not. */
function everyCall(client: CommyClient): [string, () => Promise<unknown>][] {
  const existing = { tenantId: "a", serviceName: "pub-feed", variableName: "v" };
  const missing = { tenantId: "nope", serviceName: "nope", variableName: "nope" };
  return [
    ["CreateTenant", () => client.createTenant({ tenantId: "new-tenant" })],
    ["GetTenant", () => client.getTenant({ tenantId: "a" })],
    ["GetTenant (missing)", () => client.getTenant({ tenantId: "nope" })],
    ["GetTenant (invalid name)", () => client.getTenant({ tenantId: ".bad" })],
    ["ListTenants", () => client.listTenants({})],
    ["DeleteTenant", () => client.deleteTenant({ tenantId: "b" })],
    ["CreateService", () => client.createService({ tenantId: "a", serviceName: "new-service" })],
    ["GetService", () => client.getService(existing)],
    ["GetService (missing)", () => client.getService(missing)],
    ["ListServices", () => client.listServices({ tenantId: "a" })],
    ["DeleteService", () => client.deleteService(existing)],
    ["AllocateVariable", () => client.allocateVariable({ ...existing, variableName: "new" })],
    ["ReadVariable", () => client.readVariable(existing)],
    ["ReadVariable (missing)", () => client.readVariable(missing)],
    ["WriteVariable", () => client.writeVariable({ ...existing, data: bytes("overwritten") })],
    [
      "WriteVariable (create_if_missing)",
      () =>
        client.writeVariable({
          ...existing,
          variableName: "new",
          data: bytes("x"),
          createIfMissing: true,
        }),
    ],
    ["DeallocateVariable", () => client.deallocateVariable(existing)],
    ["ListVariables", () => client.listVariables(existing)],
  ];
}

/** Nothing of what everyCall() tries has happened. */
async function expectNothingChanged(): Promise<void> {
  const tenants = (await admin.listTenants({})).tenants.map((t) => t.tenantId);
  expect(tenants).toEqual(["a", "b"]);
  for (const tenantId of tenants) {
    const services = (await admin.listServices({ tenantId })).services.map((s) => s.serviceName);
    expect(services).toEqual(["priv-ledger", "pub-feed"]);
    for (const serviceName of services) {
      const { variables } = await admin.listVariables({ tenantId, serviceName });
      expect(variables.map((v) => [v.variableName, v.version])).toEqual([["v", 1n]]);
      const read = await admin.readVariable({ tenantId, serviceName, variableName: "v" });
      expect(Buffer.from(read.data).toString()).toBe("original");
    }
  }
}

describe("UNAUTHORIZED", () => {
  const noValidCredentials: [string, Credentials][] = [
    ["no Authorization header", "none"],
    ["an unknown bearer token", { bearer: "cs_not-a-session-token-at-all-0000" }],
    ["an unknown API key", { bearer: "ck_0000.0000000000000000000000000000" }],
    ["an empty bearer token", { bearer: "" }],
  ];

  describe.each(noValidCredentials)("with %s", (_what, credentials) => {
    it.each([
      ["Connect", "connect", "1.1"],
      ["gRPC", "grpc", "2"],
      ["gRPC-Web", "grpc-web", "2"],
    ] as const)(
      "every call over %s is unauthenticated / UNAUTHORIZED, before any other check",
      async (_name, protocol, httpVersion) => {
        const client = test.connectClient(protocol, httpVersion, { credentials });
        for (const [call, run] of everyCall(client)) {
          const error = await expectCommyError(
            run(),
            Code.Unauthenticated,
            ErrorCode.UNAUTHORIZED,
          ).catch((failure: unknown) => {
            throw new Error(`${call}: ${String(failure)}`);
          });
          // Nothing about the resource leaks into the refusal.
          expect(error.message).not.toMatch(/nope|does not exist|invalid|pub-feed/);
        }
        await expectNothingChanged();
      },
    );
  });

  it("over grpc-js, with the ErrorDetail in the status trailer", async () => {
    const client = test.grpcJsClient("none");
    let error: ServiceError | undefined;
    try {
      await client.call("GetTenant", { tenant_id: "a" });
    } catch (caught) {
      error = caught as ServiceError;
    }
    expect(error?.code).toBe(GrpcStatus.UNAUTHENTICATED);
    const [raw] = error?.metadata.get("grpc-status-details-bin") ?? [];
    const status = decodeRpcStatus(raw as Buffer);
    expect(errorDetailsOf(status).map((d) => d.code)).toEqual([ErrorCode.UNAUTHORIZED]);
  });
});

describe("PERMISSION_DENIED", () => {
  let reader: CommyClient;

  beforeAll(async () => {
    reader = test.connectClient("connect", "2", {
      credentials: await principal("reader", [
        [Permission.VARIABLE_READ, "pub-"],
        [Permission.SERVICE_READ, "pub-"],
      ]),
    });
  });

  it("a principal reads what it was granted, and lists only its own tenant", async () => {
    const read = await reader.readVariable({
      tenantId: "a",
      serviceName: "pub-feed",
      variableName: "v",
    });
    expect(Buffer.from(read.data).toString()).toBe("original");
    expect((await reader.listTenants({})).tenants.map((t) => t.tenantId)).toEqual(["a"]);
    const services = await reader.listServices({ tenantId: "a" });
    expect(services.services.map((s) => s.serviceName)).toEqual(["pub-feed"]);
  });

  it("every call beyond its grants is permission_denied / PERMISSION_DENIED, and changes nothing", async () => {
    const denied = (call: Promise<unknown>) =>
      expectCommyError(call, Code.PermissionDenied, ErrorCode.PERMISSION_DENIED);
    await denied(reader.createTenant({ tenantId: "mine" }));
    await denied(reader.deleteTenant({ tenantId: "a" }));
    await denied(reader.createService({ tenantId: "a", serviceName: "pub-new" }));
    await denied(reader.deleteService({ tenantId: "a", serviceName: "pub-feed" }));
    const pub = { tenantId: "a", serviceName: "pub-feed", variableName: "v" };
    await denied(reader.writeVariable({ ...pub, data: bytes("overwritten") }));
    await denied(
      reader.writeVariable({
        ...pub,
        variableName: "new",
        data: bytes("x"),
        createIfMissing: true,
      }),
    );
    await denied(reader.allocateVariable({ ...pub, variableName: "new" }));
    await denied(reader.deallocateVariable(pub));
    // Outside its service prefix, and in another tenant.
    await denied(reader.readVariable({ ...pub, serviceName: "priv-ledger" }));
    await denied(reader.getService({ tenantId: "a", serviceName: "priv-ledger" }));
    await denied(reader.readVariable({ ...pub, tenantId: "b" }));
    await denied(reader.getTenant({ tenantId: "b" }));
    await denied(reader.listServices({ tenantId: "b" }));
    await expectNothingChanged();
  });

  it("refuses alike whether the resource exists or not: existence never leaks", async () => {
    const refusal = async (call: Promise<unknown>, name: string) => {
      const error = await expectCommyError(
        call,
        Code.PermissionDenied,
        ErrorCode.PERMISSION_DENIED,
      );
      return error.message.replace(new RegExp(`\\b${name}\\b`, "g"), "<name>");
    };
    // Another tenant: existing vs missing.
    expect(await refusal(reader.getTenant({ tenantId: "b" }), "b")).toBe(
      await refusal(reader.getTenant({ tenantId: "zz" }), "zz"),
    );
    expect(
      await refusal(
        reader.readVariable({ tenantId: "b", serviceName: "pub-feed", variableName: "v" }),
        "b",
      ),
    ).toBe(
      await refusal(
        reader.readVariable({ tenantId: "zz", serviceName: "pub-feed", variableName: "v" }),
        "zz",
      ),
    );
    // Its own tenant, outside its prefix: existing vs missing service.
    expect(
      await refusal(
        reader.getService({ tenantId: "a", serviceName: "priv-ledger" }),
        "priv-ledger",
      ),
    ).toBe(
      await refusal(
        reader.getService({ tenantId: "a", serviceName: "priv-nothing" }),
        "priv-nothing",
      ),
    );
  });

  it("within its grants a missing resource is NOT_FOUND (checks run in order)", async () => {
    await expectCommyError(
      reader.readVariable({ tenantId: "a", serviceName: "pub-feed", variableName: "missing" }),
      Code.NotFound,
      ErrorCode.NOT_FOUND,
    );
    await expectCommyError(
      reader.getService({ tenantId: "a", serviceName: "pub-missing" }),
      Code.NotFound,
      ErrorCode.NOT_FOUND,
    );
  });

  it("what a tenant principal creates carries its principal id in created_by", async () => {
    const writer = test.connectClient("grpc", "2", {
      credentials: await principal("writer", [
        [Permission.SERVICE_CREATE, "w-"],
        [Permission.SERVICE_DELETE, "w-"],
      ]),
    });
    const { service } = await writer.createService({ tenantId: "a", serviceName: "w-made" });
    expect(service?.createdBy).toBe("a/writer");
    expect((await admin.getService({ tenantId: "a", serviceName: "w-made" })).service).toEqual(
      service,
    );
    await writer.deleteService({ tenantId: "a", serviceName: "w-made" });
  });
});
