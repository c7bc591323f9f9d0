/**
 * Every legacy error code the bridge can produce, provoked on purpose, and
 * authentication as legacy-ws-protocol.md §4.4 wants it: UNAUTHORIZED before
 * Authenticate, PERMISSION_DENIED for a principal without the grant,
 * NOT_FOUND for what is permitted but absent (and for a service of a tenant
 * the connection holds no session for), ALREADY_EXISTS, INVALID_REQUEST for
 * every kind of malformed frame (answered in order, as a reply), and a core
 * code the SDK does not know sent as the nearest one. A failed Authenticate
 * is an AuthenticationResult with success false; the server admin's token
 * works for any tenant; one connection holds sessions in several tenants,
 * each request checked against its own.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type Actor,
  createActor,
  expectNotFound,
  testAdminToken,
} from "../helpers/identity-fixtures.js";
import {
  type BridgeTestServer,
  LegacyWs,
  authenticate,
  authenticateMessage,
  expectError,
  expectShape,
  startBridgeServer,
} from "../helpers/legacy-ws.js";
import type { CommyClient } from "../helpers/test-server.js";

let test: BridgeTestServer;
let admin: CommyClient;
let alice: Actor;
let reader: Actor;
let betaAdmin: Actor;
let betaReader: Actor;
let acmeService: string;
let betaService: string;
const open: LegacyWs[] = [];

const ALICE_PASSWORD = "alice-password-1";

beforeAll(async () => {
  test = await startBridgeServer();
  admin = test.connectClient("connect", "1.1");
  for (const tenantId of ["acme", "beta"]) await admin.createTenant({ tenantId });
  alice = await createActor(
    test,
    "acme",
    "alice",
    [{ permission: "tenant:admin" }],
    ALICE_PASSWORD,
  );
  reader = await createActor(test, "acme", "reader", [
    { permission: "variable:read" },
    { permission: "service:create", servicePrefix: "rd-" },
  ]);
  betaAdmin = await createActor(test, "beta", "boss", [{ permission: "tenant:admin" }]);
  betaReader = await createActor(test, "beta", "reader", [{ permission: "variable:read" }]);
  acmeService = (await admin.createService({ tenantId: "acme", serviceName: "cfg" })).service
    ?.serviceId as string;
  betaService = (await admin.createService({ tenantId: "beta", serviceName: "bsvc" })).service
    ?.serviceId as string;
  for (const [tenantId, serviceName] of [
    ["acme", "cfg"],
    ["beta", "bsvc"],
  ] as const) {
    await admin.allocateVariable({
      tenantId,
      serviceName,
      variableName: "v",
      initialData: new Uint8Array([1]),
    });
  }
});

afterAll(async () => {
  for (const client of open) await client.close();
  await test?.close();
});

async function connect(label: string): Promise<LegacyWs> {
  const client = await LegacyWs.open(test.wsUrl(), {}, label);
  open.push(client);
  return client;
}

async function connectAs(actor: Actor, label = actor.principalId): Promise<LegacyWs> {
  const client = await connect(label);
  await authenticate(client, actor.tenantId, actor.apiKey);
  return client;
}

/** Sends a message and expects an Error with `code` as the very next message. */
async function expectCode(
  client: LegacyWs,
  message: { type: string; data: Record<string, unknown> },
  code: Parameters<typeof expectError>[1],
): Promise<string> {
  const requestId = message.data.request_id;
  return expectError(await client.request(message), code, {
    requestId: typeof requestId === "string" ? requestId : undefined,
  });
}

const variable = (serviceId: string, name = "v") => ({
  service_id: serviceId,
  variable_name: name,
});

describe("UNAUTHORIZED before Authenticate", () => {
  const answered = (): { type: string; data: Record<string, unknown> }[] => [
    { type: "CreateTenant", data: { tenant_id: "newco", tenant_name: "New" } },
    { type: "DeleteTenant", data: { tenant_id: "acme" } },
    { type: "CreateService", data: { tenant_id: "acme", service_name: "unauth" } },
    { type: "GetService", data: { tenant_id: "acme", service_name: "cfg" } },
    { type: "DeleteService", data: { tenant_id: "acme", service_name: "cfg" } },
    { type: "GetServiceFilePath", data: { tenant_id: "acme", service_name: "cfg" } },
    { type: "AllocateVariable", data: { ...variable(acmeService, "w"), initial_data: [1] } },
    { type: "ReadVariable", data: variable(acmeService) },
    { type: "DeallocateVariable", data: variable(acmeService) },
    {
      type: "ReportVariableChanges",
      data: { service_id: acmeService, changed_variables: ["v"], new_values: [["v", [9]]] },
    },
  ];
  const unanswered = (): { type: string; data: Record<string, unknown> }[] => [
    { type: "WriteVariable", data: { ...variable(acmeService), data: [9] } },
    { type: "Subscribe", data: variable(acmeService) },
    { type: "Unsubscribe", data: variable(acmeService) },
  ];

  it("answers every tenant-scoped request with UNAUTHORIZED and changes nothing", async () => {
    const client = await connect("anonymous");
    for (const message of answered()) await expectCode(client, message, "UNAUTHORIZED");
    for (const message of unanswered()) client.send(message);
    await client.expectNothing("WriteVariable, Subscribe and Unsubscribe");
    const value = await admin.readVariable({
      tenantId: "acme",
      serviceName: "cfg",
      variableName: "v",
    });
    expect([...value.data]).toEqual([1]);
    expect(value.version).toBe(1n);
    await expectNotFound(admin.getService({ tenantId: "acme", serviceName: "unauth" }));
    await expectNotFound(admin.getTenant({ tenantId: "newco" }));
  });

  it("answers the four unanswered ones too in extended mode", async () => {
    const client = await connect("anonymous extended");
    for (const [i, message] of [...answered(), ...unanswered()].entries()) {
      await expectCode(
        client,
        { ...message, data: { ...message.data, request_id: `u${i}` } },
        "UNAUTHORIZED",
      );
    }
  });

  it("is what an unknown service id gets too before Authenticate (nothing is revealed)", async () => {
    const client = await connect("anonymous unknown id");
    await expectCode(
      client,
      { type: "ReadVariable", data: variable(randomUUID()) },
      "UNAUTHORIZED",
    );
  });
});

describe("PERMISSION_DENIED for an authenticated principal without the grant", () => {
  it("refuses what the grants do not cover", async () => {
    const client = await connectAs(reader);
    await expectCode(
      client,
      { type: "CreateService", data: { tenant_id: "acme", service_name: "other" } },
      "PERMISSION_DENIED",
    );
    await expectCode(
      client,
      { type: "DeleteService", data: { tenant_id: "acme", service_name: "cfg" } },
      "PERMISSION_DENIED",
    );
    await expectCode(
      client,
      { type: "AllocateVariable", data: { ...variable(acmeService, "w"), initial_data: [] } },
      "PERMISSION_DENIED",
    );
    // Within the prefix it may create; the refusals did not spoil the connection.
    const created = await client.request({
      type: "CreateService",
      data: { tenant_id: "acme", service_name: "rd-1" },
    });
    expect(expectShape(created, "Service").service_name).toBe("rd-1");
  });

  it("refuses tenant create and delete to a tenant admin (they need the server admin)", async () => {
    const client = await connectAs(alice);
    await expectCode(
      client,
      { type: "DeleteTenant", data: { tenant_id: "acme" } },
      "PERMISSION_DENIED",
    );
    await expectCode(
      client,
      { type: "CreateTenant", data: { tenant_id: "acme", tenant_name: "x" } },
      "PERMISSION_DENIED",
    );
  });

  it("refuses CreateTenant of a new tenant to an authenticated tenant admin with PERMISSION_DENIED", async () => {
    // The connection is authenticated; it lacks the right, it does not lack credentials.
    const client = await connectAs(alice);
    await expectCode(
      client,
      { type: "CreateTenant", data: { tenant_id: "alices-own", tenant_name: "x" } },
      "PERMISSION_DENIED",
    );
    await expectNotFound(admin.getTenant({ tenantId: "alices-own" }));
  });
});

describe("NOT_FOUND for what is permitted but absent", () => {
  it("names a missing service, variable or tenant", async () => {
    const client = await connectAs(alice);
    for (const type of ["GetService", "DeleteService", "GetServiceFilePath"]) {
      await expectCode(
        client,
        { type, data: { tenant_id: "acme", service_name: "nope" } },
        "NOT_FOUND",
      );
    }
    await expectCode(
      client,
      { type: "ReadVariable", data: variable(acmeService, "nope") },
      "NOT_FOUND",
    );
    await expectCode(
      client,
      { type: "DeallocateVariable", data: variable(acmeService, "nope") },
      "NOT_FOUND",
    );
    const root = await connect("server admin");
    await authenticate(root, "acme", testAdminToken());
    await expectCode(root, { type: "DeleteTenant", data: { tenant_id: "gone" } }, "NOT_FOUND");
  });

  it("says NOT_FOUND for an unknown service id and for one of a tenant without a session, alike", async () => {
    const client = await connectAs(alice);
    for (const serviceId of [randomUUID(), betaService, "not-even-a-uuid"]) {
      await expectCode(client, { type: "ReadVariable", data: variable(serviceId) }, "NOT_FOUND");
      await expectCode(
        client,
        { type: "AllocateVariable", data: { ...variable(serviceId, "w"), initial_data: [1] } },
        "NOT_FOUND",
      );
      await expectCode(
        client,
        { type: "WriteVariable", data: { ...variable(serviceId), data: [2], request_id: "w" } },
        "NOT_FOUND",
      );
      await expectCode(
        client,
        { type: "Subscribe", data: { ...variable(serviceId), request_id: "s" } },
        "NOT_FOUND",
      );
    }
    const value = await admin.readVariable({
      tenantId: "beta",
      serviceName: "bsvc",
      variableName: "v",
    });
    expect([...value.data]).toEqual([1]);
  });

  it("answers a service of a tenant without a session like one of a tenant it may not read", async () => {
    // Existing or not, a service of another tenant is refused the same way: nothing is revealed.
    const client = await connectAs(alice);
    const existing = await client.request({
      type: "GetService",
      data: { tenant_id: "beta", service_name: "bsvc" },
    });
    const missing = await client.request({
      type: "GetService",
      data: { tenant_id: "beta", service_name: "nope" },
    });
    expect(existing.type).toBe("Error");
    expect(["UNAUTHORIZED", "PERMISSION_DENIED"]).toContain(existing.data.code);
    expect(missing.data.code).toBe(existing.data.code);
  });
});

describe("ALREADY_EXISTS", () => {
  it("refuses to create what exists", async () => {
    const client = await connectAs(alice);
    await expectCode(
      client,
      { type: "CreateService", data: { tenant_id: "acme", service_name: "cfg" } },
      "ALREADY_EXISTS",
    );
    await expectCode(
      client,
      { type: "AllocateVariable", data: { ...variable(acmeService), initial_data: [5] } },
      "ALREADY_EXISTS",
    );
    const root = await connect("root");
    await authenticate(root, "beta", testAdminToken());
    await expectCode(
      root,
      { type: "CreateTenant", data: { tenant_id: "acme", tenant_name: "Acme" } },
      "ALREADY_EXISTS",
    );
  });
});

describe("INVALID_REQUEST, answered in order", () => {
  /** [what, frame text, a word the message must contain]. */
  const INVALID: [string, string, string][] = [
    ["text that is not JSON", "hello", "JSON"],
    ["an empty frame", "", "JSON"],
    ["truncated JSON", '{"type":"Heartbeat","data":{', "JSON"],
    ["a JSON array", "[1,2]", "object"],
    ["a JSON string", '"Heartbeat"', "object"],
    ["JSON null", "null", "object"],
    ["a message without type", '{"data":{"client_id":"x"}}', "type"],
    ["a type that is not a string", '{"type":7,"data":{}}', "type"],
    ["an unknown type", '{"type":"Frobnicate","data":{}}', "Frobnicate"],
    [
      "a type in the wrong case",
      '{"type":"getService","data":{"tenant_id":"acme","service_name":"cfg"}}',
      "getService",
    ],
    ["data that is not an object", '{"type":"GetService","data":"cfg"}', "data"],
    ["a missing field", '{"type":"GetService","data":{"tenant_id":"acme"}}', "service_name"],
    [
      "a field of a wrong type",
      '{"type":"GetService","data":{"tenant_id":"acme","service_name":5}}',
      "service_name",
    ],
    [
      "a byte above 255",
      `{"type":"AllocateVariable","data":{"service_id":"S","variable_name":"b1","initial_data":[1,256]}}`,
      "initial_data",
    ],
    [
      "a negative byte",
      `{"type":"AllocateVariable","data":{"service_id":"S","variable_name":"b2","initial_data":[-1]}}`,
      "initial_data",
    ],
    [
      "a fractional byte",
      `{"type":"AllocateVariable","data":{"service_id":"S","variable_name":"b3","initial_data":[1.5]}}`,
      "initial_data",
    ],
    [
      "a byte as a string",
      `{"type":"AllocateVariable","data":{"service_id":"S","variable_name":"b4","initial_data":["1"]}}`,
      "initial_data",
    ],
    [
      "a null byte",
      `{"type":"AllocateVariable","data":{"service_id":"S","variable_name":"b5","initial_data":[null]}}`,
      "initial_data",
    ],
    [
      "a boolean byte",
      `{"type":"AllocateVariable","data":{"service_id":"S","variable_name":"b6","initial_data":[true]}}`,
      "initial_data",
    ],
    [
      "bytes as base64",
      `{"type":"AllocateVariable","data":{"service_id":"S","variable_name":"b7","initial_data":"AQI="}}`,
      "initial_data",
    ],
    [
      "a nested byte array",
      `{"type":"AllocateVariable","data":{"service_id":"S","variable_name":"b8","initial_data":[[1]]}}`,
      "initial_data",
    ],
    [
      "a reported value with a byte out of range",
      `{"type":"ReportVariableChanges","data":{"service_id":"S","changed_variables":["v"],"new_values":[["v",[300]]]}}`,
      "new_values",
    ],
    [
      "a reported value that is not a pair",
      `{"type":"ReportVariableChanges","data":{"service_id":"S","changed_variables":["v"],"new_values":[["v"]]}}`,
      "new_values",
    ],
    [
      "a reported value with a numeric name",
      `{"type":"ReportVariableChanges","data":{"service_id":"S","changed_variables":["v"],"new_values":[[1,[1]]]}}`,
      "new_values",
    ],
    [
      "an unknown credential method",
      '{"type":"Authenticate","data":{"tenant_id":"acme","client_version":"0.1.0","method":"oauth","token":"t"}}',
      "method",
    ],
    [
      "a credential without method",
      '{"type":"Authenticate","data":{"tenant_id":"acme","client_version":"0.1.0","key":"k"}}',
      "method",
    ],
    [
      "a request_id that is a number",
      '{"type":"Heartbeat","data":{"client_id":"x","request_id":5}}',
      "request_id",
    ],
    [
      "a request_id that is an object",
      '{"type":"GetService","data":{"tenant_id":"acme","service_name":"cfg","request_id":{"id":"1"}}}',
      "request_id",
    ],
    [
      "a request_id on a message the SDK does not wait for",
      `{"type":"WriteVariable","data":{"service_id":"S","variable_name":"v","data":[1],"request_id":true}}`,
      "request_id",
    ],
    [
      "a service name with a path in it",
      '{"type":"CreateService","data":{"tenant_id":"acme","service_name":"../etc"}}',
      "service",
    ],
    [
      "an empty service name",
      '{"type":"CreateService","data":{"tenant_id":"acme","service_name":""}}',
      "service",
    ],
    [
      "a variable name of 129 characters",
      `{"type":"AllocateVariable","data":{"service_id":"S","variable_name":"${"x".repeat(129)}","initial_data":[1]}}`,
      "variable",
    ],
  ];

  it.each(INVALID)("%s → Error INVALID_REQUEST with a clear message", async (_, frame, word) => {
    const client = await connectAs(alice, "invalid");
    client.sendText(frame.replaceAll('"S"', JSON.stringify(acmeService)));
    const message = expectError(await client.next("the Error"), "INVALID_REQUEST");
    expect(message.toLowerCase()).toContain(word.toLowerCase());
    // The next request is answered as usual: in order, and nothing else came first.
    await client.expectNothing("the Error");
    const value = await admin.readVariable({
      tenantId: "acme",
      serviceName: "cfg",
      variableName: "v",
    });
    expect(value.version).toBe(1n);
    await client.close();
  });

  it("answers each of a burst of bad frames in order, between good requests", async () => {
    const client = await connectAs(alice, "burst");
    client.sendText("nope");
    client.send({ type: "GetService", data: { tenant_id: "acme", service_name: "cfg" } });
    client.sendText('{"type":"Nope","data":{}}');
    client.send({ type: "ReadVariable", data: variable(acmeService) });
    client.sendText("[]");
    expectError(await client.next(), "INVALID_REQUEST");
    expect(expectShape(await client.next(), "Service").service_id).toBe(acmeService);
    expectError(await client.next(), "INVALID_REQUEST");
    expect(expectShape(await client.next(), "VariableData").data).toEqual([1]);
    expectError(await client.next(), "INVALID_REQUEST");
    await client.expectNothing("the burst");
  });

  it("echoes the request_id of an invalid message in extended mode", async () => {
    const client = await connectAs(alice, "invalid extended");
    const cases = [
      { type: "Frobnicate", data: { request_id: "x1" } },
      { type: "GetService", data: { tenant_id: "acme", service_name: 5, request_id: "x2" } },
      { type: "WriteVariable", data: { ...variable(acmeService), data: [256], request_id: "x3" } },
      { type: "Subscribe", data: { service_id: 5, variable_name: "v", request_id: "x4" } },
      { type: "Unsubscribe", data: { service_id: acmeService, request_id: "x5" } },
      { data: { request_id: "x6" } },
    ];
    for (const message of cases) {
      const reply = await client.request(message);
      expectError(reply, "INVALID_REQUEST", { requestId: message.data.request_id });
    }
  });

  it("sends nothing for an invalid WriteVariable, Subscribe or Unsubscribe in legacy mode", async () => {
    const client = await connectAs(alice, "invalid silent");
    client.send({ type: "WriteVariable", data: { ...variable(acmeService), data: [1, 256] } });
    client.send({ type: "WriteVariable", data: { ...variable(acmeService), data: "AQI=" } });
    client.send({ type: "WriteVariable", data: { ...variable(acmeService), request_id: null } });
    client.send({ type: "Subscribe", data: { service_id: acmeService } });
    client.send({ type: "Unsubscribe", data: { variable_name: 1 } });
    await client.expectNothing("five invalid unanswered messages");
    const value = await admin.readVariable({
      tenantId: "acme",
      serviceName: "cfg",
      variableName: "v",
    });
    expect(value.version).toBe(1n);
  });

  it("says INVALID_REQUEST for a Heartbeat whose client_id is not a string", async () => {
    // §4.7: wrong field types are INVALID_REQUEST (the SDK takes any reply to a Heartbeat).
    const client = await connectAs(alice, "heartbeat");
    await expectCode(client, { type: "Heartbeat", data: { client_id: 42 } }, "INVALID_REQUEST");
  });
});

describe("lenient where the protocol says so", () => {
  it("ignores unknown keys, at the top and in data", async () => {
    const client = await connectAs(alice, "unknown keys");
    const reply = await client.request({
      type: "GetService",
      data: { tenant_id: "acme", service_name: "cfg", colour: "blue", nested: { a: [1] } },
      meta: { sent_by: "test" },
    });
    expect(expectShape(reply, "Service").service_id).toBe(acmeService);
  });

  it("takes a null optional field as absent: AllocateVariable allocates 8 zero bytes", async () => {
    const client = await connectAs(alice, "defaults");
    for (const [name, initial] of [
      ["zero-empty", []],
      ["zero-null", null],
      ["zero-missing", undefined],
    ] as const) {
      const reply = await client.request({
        type: "AllocateVariable",
        data: { ...variable(acmeService, name), initial_data: initial },
      });
      expect(expectShape(reply, "VariableData")).toEqual({
        ...variable(acmeService, name),
        data: [0, 0, 0, 0, 0, 0, 0, 0],
        version: 1,
      });
      const read = await client.request({
        type: "ReadVariable",
        data: variable(acmeService, name),
      });
      expect(expectShape(read, "VariableData").data).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    }
  });

  it("treats a request_id of null as legacy mode", async () => {
    const client = await connectAs(alice, "null request id");
    const reply = await client.request({
      type: "Heartbeat",
      data: { client_id: "c", request_id: null },
    });
    expect("request_id" in expectShape(reply, "Heartbeat")).toBe(false);
  });
});

describe("a core code the SDK does not know", () => {
  it("is sent as the nearest legacy code: a full service file is INVALID_REQUEST", async () => {
    const small = await startBridgeServer({ config: { maxServiceFileSize: 1024 * 1024 } });
    try {
      const connect = small.connectClient("connect", "1.1");
      await connect.createTenant({ tenantId: "t" });
      const { service } = await connect.createService({ tenantId: "t", serviceName: "s" });
      const chunk = new Uint8Array(64 * 1024);
      let filled = 0;
      for (let i = 0; i < 32; i++) {
        const full = await connect
          .allocateVariable({
            tenantId: "t",
            serviceName: "s",
            variableName: `c${i}`,
            initialData: chunk,
          })
          .then(
            () => false,
            () => true,
          );
        if (full) break;
        filled++;
      }
      expect(filled).toBeGreaterThan(0);
      expect(filled).toBeLessThan(32);
      const client = await LegacyWs.open(small.wsUrl(), {}, "full");
      await authenticate(client, "t", testAdminToken());
      const message = expectError(
        await client.request({
          type: "AllocateVariable",
          data: { service_id: service?.serviceId, variable_name: "big", initial_data: [...chunk] },
        }),
        "INVALID_REQUEST",
      );
      expect(message).not.toMatch(/\/tmp|\.commy|at .*\.ts/);
      await client.close();
    } finally {
      await small.close();
    }
  });
});

describe("Authenticate", () => {
  it("fails with AuthenticationResult success:false and leaves the connection unauthenticated", async () => {
    const client = await connect("bad credentials");
    const attempts = [
      authenticateMessage("acme", {
        method: "api_key",
        key: `ck_${alice.keyId}_${"B".repeat(43)}`,
      }),
      authenticateMessage("no-such-tenant", { method: "api_key", key: alice.apiKey }),
      authenticateMessage("beta", { method: "api_key", key: alice.apiKey }),
      authenticateMessage("acme", { method: "basic", username: "alice", password: "wrong-pass-1" }),
      authenticateMessage("acme", {
        method: "basic",
        username: "mallory",
        password: ALICE_PASSWORD,
      }),
      authenticateMessage("acme", { method: "jwt", token: "not.a.jwt" }),
      authenticateMessage("acme", { method: "custom", data: { any: "thing" } }),
    ];
    for (const attempt of attempts) {
      const result = expectShape(await client.request(attempt), "AuthenticationResult");
      expect(result.success).toBe(false);
      expect(result.message).not.toBe("");
      expect(result.permissions ?? []).toEqual([]);
    }
    await expectCode(
      client,
      { type: "GetService", data: { tenant_id: "acme", service_name: "cfg" } },
      "UNAUTHORIZED",
    );
    // No tenant was created on the way.
    await expectNotFound(admin.getTenant({ tenantId: "no-such-tenant" }));
  });

  it("accepts the tenant's real credentials: API key and password", async () => {
    const client = await connect("good credentials");
    const byPassword = expectShape(
      await client.request(
        authenticateMessage("acme", {
          method: "basic",
          username: "alice",
          password: ALICE_PASSWORD,
        }),
      ),
      "AuthenticationResult",
    );
    expect(byPassword).toMatchObject({ success: true, permissions: ["admin"] });
  });

  it("lists the permissions granted: admin for a tenant admin, the grants otherwise", async () => {
    const client = await connect("permissions");
    expect(await authenticate(client, "acme", alice.apiKey)).toEqual(["admin"]);
    expect((await authenticate(client, "acme", reader.apiKey)).sort()).toEqual([
      "service:create:rd-",
      "variable:read",
    ]);
    expect(await authenticate(client, "beta", betaReader.apiKey)).toEqual(["variable:read"]);
    expect(await authenticate(client, "beta", testAdminToken())).toEqual(["admin"]);
  });

  it("takes the server admin's token as an api_key for any tenant, and CreateTenant works with it", async () => {
    const client = await connect("server admin");
    // The tenant does not exist yet.
    expect(await authenticate(client, "brand-new", testAdminToken())).toEqual(["admin"]);
    const created = expectShape(
      await client.request({
        type: "CreateTenant",
        data: { tenant_id: "brand-new", tenant_name: "Brand New" },
      }),
      "TenantResult",
    );
    expect(created).toMatchObject({ success: true, tenant_id: "brand-new" });
    const service = expectShape(
      await client.request({
        type: "CreateService",
        data: { tenant_id: "brand-new", service_name: "first" },
      }),
      "Service",
    );
    expect(service).toMatchObject({ tenant_id: "brand-new", service_name: "first" });
    // Its session answers for other tenants too.
    const other = expectShape(
      await client.request({
        type: "GetService",
        data: { tenant_id: "beta", service_name: "bsvc" },
      }),
      "Service",
    );
    expect(other.service_id).toBe(betaService);
    const read = await client.request({ type: "ReadVariable", data: variable(betaService) });
    expect(expectShape(read, "VariableData").data).toEqual([1]);
    const { tenant } = await admin.getTenant({ tenantId: "brand-new" });
    expect(tenant?.tenantName).toBe("Brand New");
  });

  it("holds sessions in several tenants, each request checked against its own tenant", async () => {
    const client = await connect("two tenants");
    await authenticate(client, "acme", alice.apiKey);
    await authenticate(client, "beta", betaReader.apiKey);
    // acme: alice administers it.
    expect(
      expectShape(
        await client.request({
          type: "CreateService",
          data: { tenant_id: "acme", service_name: "multi" },
        }),
        "Service",
      ).tenant_id,
    ).toBe("acme");
    // beta: a reader only.
    await expectCode(
      client,
      { type: "CreateService", data: { tenant_id: "beta", service_name: "multi" } },
      "PERMISSION_DENIED",
    );
    const betaRead = await client.request({ type: "ReadVariable", data: variable(betaService) });
    expect(expectShape(betaRead, "VariableData").data).toEqual([1]);
    await expectCode(
      client,
      { type: "WriteVariable", data: { ...variable(betaService), data: [7], request_id: "bw" } },
      "PERMISSION_DENIED",
    );
    const acmeWrite = await client.request({
      type: "WriteVariable",
      data: { ...variable(acmeService, "multi-v"), data: [7], request_id: "aw" },
    });
    expect(expectShape(acmeWrite, "Result", { requestId: "aw" }).success).toBe(true);
    // Authenticating to beta again, as its admin, replaces the reader's session there.
    await authenticate(client, "beta", betaAdmin.apiKey);
    const betaWrite = await client.request({
      type: "WriteVariable",
      data: { ...variable(betaService, "by-boss"), data: [8], request_id: "bw2" },
    });
    expect(expectShape(betaWrite, "Result", { requestId: "bw2" }).success).toBe(true);
    const value = await admin.readVariable({
      tenantId: "beta",
      serviceName: "bsvc",
      variableName: "by-boss",
    });
    expect([...value.data]).toEqual([8]);
  });
});
