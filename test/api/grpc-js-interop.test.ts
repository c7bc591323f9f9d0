/**
 * Interoperability with a gRPC client that shares no code with the server:
 * @grpc/grpc-js with @grpc/proto-loader reading proto/commy/v1/*.proto.
 * Every RPC, and the ErrorDetail read from the grpc-status-details-bin
 * trailer as any gRPC client in any language would: google.rpc.Status →
 * Any → commy.v1.ErrorDetail.
 */
import { type ServiceError, status as GrpcStatus } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../../gen/commy/v1/errors_pb.js";
import {
  ERROR_DETAIL_TYPE_URL,
  decodeRpcStatus,
  errorDetailsOf,
} from "../helpers/error-details.js";
import {
  type CommyClient,
  type GrpcJsCommyClient,
  type TestServer,
  startTestServer,
} from "../helpers/test-server.js";

/** Shapes proto-loader gives us (keepCase, longs as strings, defaults on). */
interface WireTimestamp {
  seconds: string;
  nanos: number;
}
interface WireTenant {
  tenant_id: string;
  tenant_name: string;
  created_by: string;
  created_at: WireTimestamp | null;
}
interface WireService {
  tenant_id: string;
  service_name: string;
  service_id: string;
  created_by: string;
  created_at: WireTimestamp | null;
}
interface WireVariable {
  variable_name: string;
  version: string;
  size: number;
  capacity: number;
}

let test: TestServer;
let grpcJs: GrpcJsCommyClient;
let connect: CommyClient;

beforeAll(async () => {
  test = await startTestServer();
  grpcJs = test.grpcJsClient();
  connect = test.connectClient("connect", "1.1");
});

afterAll(async () => {
  await test.close();
});

/** Calls `method`, which must fail; returns the grpc-js ServiceError. */
async function failure(method: string, request: object): Promise<ServiceError> {
  try {
    await grpcJs.call(method, request);
  } catch (error) {
    return error as ServiceError;
  }
  throw new Error(`${method} succeeded`);
}

/** Asserts the gRPC status and the ErrorDetail decoded from the trailer. */
function expectStatus(error: ServiceError, code: GrpcStatus, errorCode: ErrorCode): void {
  expect(error.code).toBe(code);
  const raw = error.metadata.get("grpc-status-details-bin");
  expect(raw).toHaveLength(1);
  const status = decodeRpcStatus(raw[0] as Buffer);
  expect(status.code).toBe(code);
  // grpc-js decodes grpc-message with decodeURI, which leaves reserved
  // characters such as ',' percent-encoded: the ErrorDetail has the clean text.
  expect(decodeURIComponent(error.details)).toBe(status.message);
  expect(status.details.map((any) => any.typeUrl)).toEqual([ERROR_DETAIL_TYPE_URL]);
  const [detail] = errorDetailsOf(status);
  expect(detail?.code).toBe(errorCode);
  expect(detail?.message).toBe(status.message);
}

describe("every RPC from grpc-js", () => {
  it("manages tenants: create, get, list with paging, delete", async () => {
    const created = await grpcJs.call<{ tenant: WireTenant }>("CreateTenant", {
      tenant_id: "g-acme",
      tenant_name: "Acme",
    });
    expect(created.tenant).toMatchObject({
      tenant_id: "g-acme",
      tenant_name: "Acme",
      created_by: "admin",
    });
    expect(Number(created.tenant.created_at?.seconds)).toBeGreaterThan(1_600_000_000);
    await grpcJs.call("CreateTenant", { tenant_id: "g-beta" });
    await grpcJs.call("CreateTenant", { tenant_id: "g-gamma" });

    const got = await grpcJs.call<{ tenant: WireTenant }>("GetTenant", { tenant_id: "g-acme" });
    expect(got.tenant).toEqual(created.tenant);

    const ids: string[] = [];
    let page_token = "";
    do {
      const page = await grpcJs.call<{ tenants: WireTenant[]; next_page_token: string }>(
        "ListTenants",
        { page_size: 2, page_token },
      );
      expect(page.tenants.length).toBeLessThanOrEqual(2);
      ids.push(...page.tenants.map((t) => t.tenant_id));
      page_token = page.next_page_token;
    } while (page_token !== "" && ids.length < 100);
    expect(ids.filter((id) => id.startsWith("g-"))).toEqual(["g-acme", "g-beta", "g-gamma"]);

    await grpcJs.call("DeleteTenant", { tenant_id: "g-gamma" });
    expectStatus(
      await failure("GetTenant", { tenant_id: "g-gamma" }),
      GrpcStatus.NOT_FOUND,
      ErrorCode.NOT_FOUND,
    );
  });

  it("manages services: create, get, list with paging, delete", async () => {
    await grpcJs.call("CreateTenant", { tenant_id: "g-svc" });
    const created = await grpcJs.call<{ service: WireService }>("CreateService", {
      tenant_id: "g-svc",
      service_name: "orders",
    });
    expect(created.service).toMatchObject({
      tenant_id: "g-svc",
      service_name: "orders",
      created_by: "admin",
    });
    expect(created.service.service_id).toMatch(/^[0-9a-f-]{36}$/);
    for (const service_name of ["billing", "shipping"])
      await grpcJs.call("CreateService", { tenant_id: "g-svc", service_name });

    const got = await grpcJs.call<{ service: WireService }>("GetService", {
      tenant_id: "g-svc",
      service_name: "orders",
    });
    expect(got.service).toEqual(created.service);

    const first = await grpcJs.call<{ services: WireService[]; next_page_token: string }>(
      "ListServices",
      { tenant_id: "g-svc", page_size: 2 },
    );
    const second = await grpcJs.call<{ services: WireService[]; next_page_token: string }>(
      "ListServices",
      { tenant_id: "g-svc", page_size: 2, page_token: first.next_page_token },
    );
    expect([...first.services, ...second.services].map((s) => s.service_name)).toEqual([
      "billing",
      "orders",
      "shipping",
    ]);
    expect(second.next_page_token).toBe("");

    await grpcJs.call("DeleteService", { tenant_id: "g-svc", service_name: "billing" });
    const after = await grpcJs.call<{ services: WireService[] }>("ListServices", {
      tenant_id: "g-svc",
    });
    expect(after.services.map((s) => s.service_name)).toEqual(["orders", "shipping"]);
  });

  it("manages variables: allocate, read, write (plain, CAS, create_if_missing), list, deallocate", async () => {
    await grpcJs.call("CreateTenant", { tenant_id: "g-var" });
    await grpcJs.call("CreateService", { tenant_id: "g-var", service_name: "s" });
    const ref = { tenant_id: "g-var", service_name: "s", variable_name: "v" };

    const allocated = await grpcJs.call<{ variable: WireVariable }>("AllocateVariable", {
      ...ref,
      initial_data: Buffer.from("one"),
      capacity: 64,
    });
    expect(allocated.variable).toMatchObject({ variable_name: "v", version: "1", size: 3 });
    expect(allocated.variable.capacity).toBeGreaterThanOrEqual(64);

    // No expected_version: an unconditional write (proto3 optional presence).
    const plain = await grpcJs.call<{ version: string }>("WriteVariable", {
      ...ref,
      data: Buffer.from("two"),
    });
    expect(plain.version).toBe("2");
    const cas = await grpcJs.call<{ version: string }>("WriteVariable", {
      ...ref,
      data: Buffer.from("three"),
      expected_version: "2",
    });
    expect(cas.version).toBe("3");
    const upsert = await grpcJs.call<{ version: string }>("WriteVariable", {
      ...ref,
      variable_name: "w",
      data: Buffer.from("made"),
      create_if_missing: true,
    });
    expect(upsert.version).toBe("1");

    const read = await grpcJs.call<{ data: Buffer; version: string }>("ReadVariable", ref);
    expect({ data: read.data.toString(), version: read.version }).toEqual({
      data: "three",
      version: "3",
    });

    const listed = await grpcJs.call<{ variables: WireVariable[] }>("ListVariables", {
      tenant_id: "g-var",
      service_name: "s",
    });
    expect(listed.variables.map((v) => [v.variable_name, v.version, v.size])).toEqual([
      ["v", "3", 5],
      ["w", "1", 4],
    ]);

    await grpcJs.call("DeallocateVariable", ref);
    expectStatus(await failure("ReadVariable", ref), GrpcStatus.NOT_FOUND, ErrorCode.NOT_FOUND);
  });

  it("sees what connect-es wrote, and connect-es sees what it wrote", async () => {
    await connect.createTenant({ tenantId: "mixed" });
    const { service } = await connect.createService({ tenantId: "mixed", serviceName: "s" });
    const fromGrpcJs = await grpcJs.call<{ service: WireService }>("GetService", {
      tenant_id: "mixed",
      service_name: "s",
    });
    expect(fromGrpcJs.service.service_id).toBe(service?.serviceId);

    const ref = { tenantId: "mixed", serviceName: "s", variableName: "v" };
    await connect.allocateVariable({ ...ref, initialData: new Uint8Array([0, 1, 2, 255]) });
    const wire = { tenant_id: "mixed", service_name: "s", variable_name: "v" };
    const read = await grpcJs.call<{ data: Buffer; version: string }>("ReadVariable", wire);
    expect([...read.data]).toEqual([0, 1, 2, 255]);

    await grpcJs.call("WriteVariable", {
      ...wire,
      data: Buffer.from([9, 8, 7]),
      expected_version: "1",
    });
    const back = await connect.readVariable(ref);
    expect({ data: [...back.data], version: back.version }).toEqual({
      data: [9, 8, 7],
      version: 2n,
    });
  });
});

describe("errors as grpc-js sees them: status code and ErrorDetail from the trailer", () => {
  beforeAll(async () => {
    await grpcJs.call("CreateTenant", { tenant_id: "e" });
    await grpcJs.call("CreateService", { tenant_id: "e", service_name: "s" });
    await grpcJs.call("AllocateVariable", {
      tenant_id: "e",
      service_name: "s",
      variable_name: "v",
      initial_data: Buffer.from("x"),
    });
  });
  const variable = { tenant_id: "e", service_name: "s", variable_name: "v" };

  it("NOT_FOUND", async () => {
    expectStatus(
      await failure("GetTenant", { tenant_id: "absent" }),
      GrpcStatus.NOT_FOUND,
      ErrorCode.NOT_FOUND,
    );
    expectStatus(
      await failure("ReadVariable", { ...variable, variable_name: "absent" }),
      GrpcStatus.NOT_FOUND,
      ErrorCode.NOT_FOUND,
    );
  });

  it("ALREADY_EXISTS", async () => {
    expectStatus(
      await failure("CreateTenant", { tenant_id: "e" }),
      GrpcStatus.ALREADY_EXISTS,
      ErrorCode.ALREADY_EXISTS,
    );
    expectStatus(
      await failure("AllocateVariable", { ...variable, initial_data: Buffer.from("y") }),
      GrpcStatus.ALREADY_EXISTS,
      ErrorCode.ALREADY_EXISTS,
    );
  });

  it("INVALID_REQUEST", async () => {
    expectStatus(
      await failure("CreateTenant", { tenant_id: ".hidden" }),
      GrpcStatus.INVALID_ARGUMENT,
      ErrorCode.INVALID_REQUEST,
    );
    expectStatus(
      await failure("WriteVariable", { ...variable, data: Buffer.alloc(1024 * 1024 + 1) }),
      GrpcStatus.INVALID_ARGUMENT,
      ErrorCode.INVALID_REQUEST,
    );
  });

  it("VERSION_CONFLICT, and nothing was written", async () => {
    expectStatus(
      await failure("WriteVariable", {
        ...variable,
        data: Buffer.from("z"),
        expected_version: "7",
      }),
      GrpcStatus.FAILED_PRECONDITION,
      ErrorCode.VERSION_CONFLICT,
    );
    const read = await grpcJs.call<{ data: Buffer; version: string }>("ReadVariable", variable);
    expect({ data: read.data.toString(), version: read.version }).toEqual({
      data: "x",
      version: "1",
    });
  });
});
