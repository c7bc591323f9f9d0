/**
 * Conformance, one table row per client message type (Authenticate once
 * per credential method): the exact JSON the legacy SDK sends, and a reply
 * that matches the schema of its server message type (exact keys, field
 * types, u64 and bytes as the SDK parses them, error codes from the eight).
 *
 * Legacy mode (no request_id): WriteVariable, Subscribe, Unsubscribe and
 * Disconnect get nothing, whether they succeed or fail; every other message
 * gets exactly one reply, in order. Extended mode (a request_id in data):
 * every message is answered, the four with Result, and every reply echoes
 * the request_id. Each row also sends one field with a wrong type, which
 * is INVALID_REQUEST (or nothing, for the four in legacy mode).
 */
import { randomUUID } from "node:crypto";
import { isAbsolute } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CustomVerifier } from "../../src/core/identity.js";
import { expectNotFound } from "../helpers/identity-fixtures.js";
import {
  type Actor,
  bytes,
  createActor,
  epochSeconds,
  signJwt,
  testAdminToken,
} from "../helpers/identity-fixtures.js";
import {
  type BridgeTestServer,
  type LegacyErrorCode,
  LegacyWs,
  authenticate,
  authenticateMessage,
  expectError,
  expectShape,
  startBridgeServer,
} from "../helpers/legacy-ws.js";
import type { CommyClient } from "../helpers/test-server.js";

const PASSWORD = "alice-password-1";
const JWT_SECRET = "conformance-jwt-secret-0123456789abcdef";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Accepts carol (any tenant) with her secret, as a reader. */
const verifier: CustomVerifier = {
  verify: ({ data }) => {
    const credential = data as { user?: string; secret?: string } | null;
    return credential?.user === "carol" && credential.secret === "open-sesame"
      ? { subject: "carol", permissions: ["variable:read"] }
      : undefined;
  },
};

let test: BridgeTestServer;
let admin: CommyClient;
let testNumber = 0;

beforeAll(async () => {
  test = await startBridgeServer({ extras: { customVerifier: verifier } });
  admin = test.connectClient("connect", "1.1");
});

afterAll(async () => {
  await test?.close();
});

type Mode = "legacy" | "extended";

/** A fresh tenant with service "svc" holding variable "v" = [1,2,3], and a connection. */
interface Context {
  mode: Mode;
  client: LegacyWs;
  tenantId: string;
  serviceId: string;
  actor: Actor;
  /** The request_id of this case's message (extended mode). */
  requestId: string | undefined;
}

type Expected =
  | { reply: string; check?: (data: Record<string, unknown>, ctx: Context) => void }
  | { error: LegacyErrorCode };

interface Case {
  data: Record<string, unknown>;
  /** In extended mode; legacy mode expects the same, or nothing for the four. */
  expect: Expected;
  /** What must hold afterwards (seen through Connect). */
  after?: (ctx: Context) => Promise<void>;
  /** Extended mode: pushes that follow the reply (a subscription's snapshot). */
  pushes?: (ctx: Context) => unknown[];
}

interface Row {
  name: string;
  type: string;
  /** Who the connection is before the message: nobody, the tenant's admin, or the server admin. */
  session: "none" | "tenant-admin" | "server-admin";
  success: (ctx: Context) => Case | Promise<Case>;
  failure?: (ctx: Context) => Case | Promise<Case>;
  /** A field sent with a wrong type (the value given). */
  wrongField?: [string, unknown];
  /** The principal needs a password (hashing one is slow: only where it is used). */
  password?: boolean;
}

const NO_REPLY_IN_LEGACY_MODE = new Set([
  "WriteVariable",
  "Subscribe",
  "Unsubscribe",
  "Disconnect",
]);

const read = (ctx: Context, variableName = "v") =>
  admin.readVariable({ tenantId: ctx.tenantId, serviceName: "svc", variableName });

const expectValue = async (ctx: Context, data: number[], version: bigint): Promise<void> => {
  const value = await read(ctx);
  expect([...value.data]).toEqual(data);
  expect(value.version).toBe(version);
};

const unchanged = (ctx: Context) => expectValue(ctx, [1, 2, 3], 1n);

const authenticated =
  (permissions: string[]) =>
  (data: Record<string, unknown>): void => {
    expect(data.success).toBe(true);
    expect(data.message).not.toBe("");
    expect(data.server_version).not.toBe("");
    expect(data.permissions).toEqual(permissions);
  };

const refused = (data: Record<string, unknown>): void => {
  expect(data.success).toBe(false);
  expect(data.message).not.toBe("");
  expect(data.server_version).not.toBe("");
};

const succeeded = (data: Record<string, unknown>): void => {
  expect(data.success).toBe(true);
  expect(data.message).toEqual(expect.any(String));
};

const variable = (ctx: Context, name = "v") => ({ service_id: ctx.serviceId, variable_name: name });
const service = (ctx: Context, name = "svc") => ({ tenant_id: ctx.tenantId, service_name: name });

/** Subscribes in the case's mode first (what Unsubscribe needs to succeed). */
async function subscribeFirst(ctx: Context): Promise<void> {
  if (ctx.mode === "legacy") {
    ctx.client.send({ type: "Subscribe", data: variable(ctx) });
    return;
  }
  const reply = await ctx.client.request({
    type: "Subscribe",
    data: { ...variable(ctx), request_id: "subscribe-first" },
  });
  expect(expectShape(reply, "Result", { requestId: "subscribe-first" }).success).toBe(true);
  const snapshot = expectShape(await ctx.client.next("the snapshot push"), "VariableChanged");
  expect(snapshot).toEqual({ ...variable(ctx), data: [1, 2, 3], version: 1 });
}

const ROWS: Row[] = [
  {
    name: "Authenticate (api_key)",
    type: "Authenticate",
    session: "none",
    success: (ctx) => ({
      data: authenticateMessage(ctx.tenantId, { method: "api_key", key: ctx.actor.apiKey }).data,
      expect: { reply: "AuthenticationResult", check: authenticated(["admin"]) },
    }),
    failure: (ctx) => ({
      data: authenticateMessage(ctx.tenantId, {
        method: "api_key",
        key: `ck_${ctx.actor.keyId}_${"B".repeat(43)}`,
      }).data,
      expect: { reply: "AuthenticationResult", check: refused },
    }),
    wrongField: ["key", 42],
  },
  {
    name: "Authenticate (basic)",
    type: "Authenticate",
    session: "none",
    password: true,
    success: (ctx) => ({
      data: authenticateMessage(ctx.tenantId, {
        method: "basic",
        username: ctx.actor.name,
        password: PASSWORD,
      }).data,
      expect: { reply: "AuthenticationResult", check: authenticated(["admin"]) },
    }),
    failure: (ctx) => ({
      data: authenticateMessage(ctx.tenantId, {
        method: "basic",
        username: ctx.actor.name,
        password: "wrong-password-1",
      }).data,
      expect: { reply: "AuthenticationResult", check: refused },
    }),
    wrongField: ["password", ["p"]],
  },
  {
    name: "Authenticate (jwt)",
    type: "Authenticate",
    session: "none",
    success: async (ctx) => {
      await test.identityClient().setJwtConfig({
        tenantId: ctx.tenantId,
        config: { key: { case: "hsSecret", value: JWT_SECRET } },
      });
      const token = await signJwt(
        { sub: "bot", exp: epochSeconds(300), permissions: ["service:create", "variable:read"] },
        bytes(JWT_SECRET),
      );
      return {
        data: authenticateMessage(ctx.tenantId, { method: "jwt", token }).data,
        expect: {
          reply: "AuthenticationResult",
          check: authenticated(["service:create", "variable:read"]),
        },
      };
    },
    failure: async (ctx) => {
      await test.identityClient().setJwtConfig({
        tenantId: ctx.tenantId,
        config: { key: { case: "hsSecret", value: JWT_SECRET } },
      });
      const token = await signJwt(
        { sub: "bot", exp: epochSeconds(300) },
        bytes("another-secret-of-32-characters-or-more"),
      );
      return {
        data: authenticateMessage(ctx.tenantId, { method: "jwt", token }).data,
        expect: { reply: "AuthenticationResult", check: refused },
      };
    },
    wrongField: ["token", { jwt: "x" }],
  },
  {
    name: "Authenticate (custom)",
    type: "Authenticate",
    session: "none",
    success: (ctx) => ({
      data: authenticateMessage(ctx.tenantId, {
        method: "custom",
        data: { user: "carol", secret: "open-sesame" },
      }).data,
      expect: { reply: "AuthenticationResult", check: authenticated(["variable:read"]) },
    }),
    failure: (ctx) => ({
      data: authenticateMessage(ctx.tenantId, {
        method: "custom",
        data: { user: "carol", secret: "wrong" },
      }).data,
      expect: { reply: "AuthenticationResult", check: refused },
    }),
    wrongField: ["tenant_id", 7],
  },
  {
    name: "CreateTenant",
    type: "CreateTenant",
    session: "server-admin",
    success: (ctx) => ({
      data: { tenant_id: `${ctx.tenantId}-new`, tenant_name: "New Co" },
      expect: {
        reply: "TenantResult",
        check: (data) => {
          succeeded(data);
          expect(data.tenant_id).toBe(`${ctx.tenantId}-new`);
        },
      },
      after: async () => {
        const { tenant } = await admin.getTenant({ tenantId: `${ctx.tenantId}-new` });
        expect(tenant?.tenantName).toBe("New Co");
      },
    }),
    failure: (ctx) => ({
      data: { tenant_id: ctx.tenantId, tenant_name: "Again" },
      expect: { error: "ALREADY_EXISTS" },
    }),
    wrongField: ["tenant_name", 3],
  },
  {
    name: "DeleteTenant",
    type: "DeleteTenant",
    session: "server-admin",
    success: async (ctx) => {
      await admin.createTenant({ tenantId: `${ctx.tenantId}-del` });
      return {
        data: { tenant_id: `${ctx.tenantId}-del` },
        expect: { reply: "Result", check: succeeded },
        after: async () => {
          await expectNotFound(admin.getTenant({ tenantId: `${ctx.tenantId}-del` }));
        },
      };
    },
    failure: (ctx) => ({
      data: { tenant_id: `${ctx.tenantId}-never` },
      expect: { error: "NOT_FOUND" },
    }),
    wrongField: ["tenant_id", null],
  },
  {
    name: "CreateService",
    type: "CreateService",
    session: "tenant-admin",
    success: (ctx) => ({
      data: service(ctx, "svc2"),
      expect: {
        reply: "Service",
        check: (data) => {
          expect(data).toMatchObject({ service_name: "svc2", tenant_id: ctx.tenantId });
          expect(data.service_id).toMatch(UUID);
        },
      },
      after: async () => {
        const got = await admin.getService({ tenantId: ctx.tenantId, serviceName: "svc2" });
        expect(got.service?.serviceName).toBe("svc2");
      },
    }),
    failure: (ctx) => ({ data: service(ctx), expect: { error: "ALREADY_EXISTS" } }),
    wrongField: ["service_name", 12],
  },
  {
    name: "GetService",
    type: "GetService",
    session: "tenant-admin",
    success: (ctx) => ({
      data: service(ctx),
      expect: {
        reply: "Service",
        check: (data) =>
          expect(data).toMatchObject({
            service_id: ctx.serviceId,
            service_name: "svc",
            tenant_id: ctx.tenantId,
          }),
      },
    }),
    failure: (ctx) => ({
      data: service(ctx, "nope"),
      expect: { error: "NOT_FOUND" },
      // GetService never creates.
      after: async () => {
        await expectNotFound(admin.getService({ tenantId: ctx.tenantId, serviceName: "nope" }));
      },
    }),
    wrongField: ["tenant_id", true],
  },
  {
    name: "DeleteService",
    type: "DeleteService",
    session: "tenant-admin",
    success: (ctx) => ({
      data: service(ctx),
      expect: { reply: "Result", check: succeeded },
      after: async () => {
        await expectNotFound(admin.getService({ tenantId: ctx.tenantId, serviceName: "svc" }));
      },
    }),
    failure: (ctx) => ({ data: service(ctx, "nope"), expect: { error: "NOT_FOUND" } }),
    wrongField: ["service_name", {}],
  },
  {
    name: "AllocateVariable",
    type: "AllocateVariable",
    session: "tenant-admin",
    success: (ctx) => ({
      data: { ...variable(ctx, "w"), initial_data: [9, 8, 7] },
      expect: {
        reply: "VariableData",
        check: (data) =>
          expect(data).toEqual({ ...variable(ctx, "w"), data: [9, 8, 7], version: 1 }),
      },
      after: async () => {
        const value = await read(ctx, "w");
        expect([...value.data]).toEqual([9, 8, 7]);
      },
    }),
    failure: (ctx) => ({
      data: { ...variable(ctx), initial_data: [0] },
      expect: { error: "ALREADY_EXISTS" },
      after: unchanged,
    }),
    wrongField: ["initial_data", "CQgH"],
  },
  {
    name: "ReadVariable",
    type: "ReadVariable",
    session: "tenant-admin",
    success: (ctx) => ({
      data: variable(ctx),
      expect: {
        reply: "VariableData",
        check: (data) => expect(data).toEqual({ ...variable(ctx), data: [1, 2, 3], version: 1 }),
      },
    }),
    failure: (ctx) => ({ data: variable(ctx, "nope"), expect: { error: "NOT_FOUND" } }),
    wrongField: ["variable_name", 1],
  },
  {
    name: "WriteVariable",
    type: "WriteVariable",
    session: "tenant-admin",
    success: (ctx) => ({
      data: { ...variable(ctx), data: [4, 5] },
      expect: { reply: "Result", check: succeeded },
      after: (c) => expectValue(c, [4, 5], 2n),
    }),
    failure: () => ({
      data: { service_id: randomUUID(), variable_name: "v", data: [4, 5] },
      expect: { error: "NOT_FOUND" },
      after: unchanged,
    }),
    wrongField: ["data", "BAU="],
  },
  {
    name: "DeallocateVariable",
    type: "DeallocateVariable",
    session: "tenant-admin",
    success: (ctx) => ({
      data: variable(ctx),
      expect: { reply: "Result", check: succeeded },
      after: async (c) => {
        await expectNotFound(read(c));
      },
    }),
    failure: (ctx) => ({ data: variable(ctx, "nope"), expect: { error: "NOT_FOUND" } }),
    wrongField: ["service_id", 5],
  },
  {
    name: "Subscribe",
    type: "Subscribe",
    session: "tenant-admin",
    success: (ctx) => ({
      data: variable(ctx),
      expect: { reply: "Result", check: succeeded },
      // The subscription starts with the current value (as a Watch stream's snapshot does).
      pushes: () => [{ ...variable(ctx), data: [1, 2, 3], version: 1 }],
    }),
    failure: (ctx) => ({ data: variable(ctx, "nope"), expect: { error: "NOT_FOUND" } }),
    wrongField: ["service_id", [1]],
  },
  {
    name: "Unsubscribe",
    type: "Unsubscribe",
    session: "tenant-admin",
    success: async (ctx) => {
      await subscribeFirst(ctx);
      return { data: variable(ctx), expect: { reply: "Result", check: succeeded } };
    },
    failure: (ctx) => ({ data: variable(ctx), expect: { error: "NOT_FOUND" } }),
    wrongField: ["variable_name", false],
  },
  {
    name: "Heartbeat",
    type: "Heartbeat",
    session: "tenant-admin",
    success: () => ({
      data: { client_id: randomUUID() },
      expect: {
        reply: "Heartbeat",
        check: (data) =>
          expect(Math.abs(Date.parse(data.timestamp as string) - Date.now())).toBeLessThan(60_000),
      },
    }),
  },
  {
    name: "Disconnect",
    type: "Disconnect",
    session: "tenant-admin",
    success: () => ({
      data: { client_id: randomUUID() },
      expect: { reply: "Result", check: succeeded },
    }),
  },
  {
    name: "GetServiceFilePath",
    type: "GetServiceFilePath",
    session: "tenant-admin",
    success: (ctx) => ({
      data: service(ctx),
      expect: {
        reply: "ServiceFilePath",
        check: (data) => {
          expect(data.service_id).toBe(ctx.serviceId);
          expect(isAbsolute(data.file_path as string)).toBe(true);
          expect(data.file_size).toBeGreaterThan(0);
        },
      },
    }),
    failure: (ctx) => ({ data: service(ctx, "nope"), expect: { error: "NOT_FOUND" } }),
    wrongField: ["service_name", 0],
  },
  {
    name: "ReportVariableChanges",
    type: "ReportVariableChanges",
    session: "tenant-admin",
    success: (ctx) => ({
      data: { service_id: ctx.serviceId, changed_variables: ["v"], new_values: [["v", [7, 7]]] },
      expect: {
        reply: "VariableChangesAcknowledged",
        check: (data) =>
          expect(data).toEqual({ service_id: ctx.serviceId, changed_variables: ["v"] }),
      },
      after: (c) => expectValue(c, [7, 7], 2n),
    }),
    failure: () => ({
      data: { service_id: randomUUID(), changed_variables: ["v"], new_values: [["v", [7, 7]]] },
      expect: { error: "NOT_FOUND" },
    }),
    wrongField: ["changed_variables", "v"],
  },
];

/** Every client message type of legacy-ws-protocol.md §2 has a row. */
const ALL_TYPES = [
  "Authenticate",
  "CreateTenant",
  "DeleteTenant",
  "CreateService",
  "GetService",
  "DeleteService",
  "AllocateVariable",
  "ReadVariable",
  "WriteVariable",
  "DeallocateVariable",
  "Subscribe",
  "Unsubscribe",
  "Heartbeat",
  "Disconnect",
  "GetServiceFilePath",
  "ReportVariableChanges",
];

async function setUp(row: Row, mode: Mode): Promise<Context> {
  const n = ++testNumber;
  const tenantId = `c${n}`;
  await admin.createTenant({ tenantId });
  const actor = await createActor(
    test,
    tenantId,
    "alice",
    [{ permission: "tenant:admin" }],
    row.password === true ? PASSWORD : "",
  );
  const { service: svc } = await admin.createService({ tenantId, serviceName: "svc" });
  await admin.allocateVariable({
    tenantId,
    serviceName: "svc",
    variableName: "v",
    initialData: new Uint8Array([1, 2, 3]),
  });
  const client = await LegacyWs.open(test.wsUrl(), {}, `${row.name} ${mode}`);
  if (row.session === "tenant-admin") await authenticate(client, tenantId, actor.apiKey);
  if (row.session === "server-admin") await authenticate(client, tenantId, testAdminToken());
  return {
    mode,
    client,
    tenantId,
    serviceId: svc?.serviceId ?? "",
    actor,
    requestId: mode === "extended" ? `req-${n}` : undefined,
  };
}

/** Sends the case's message and checks the reply (or its absence) in the context's mode. */
async function run(row: Row, ctx: Context, c: Case): Promise<void> {
  const data = ctx.requestId === undefined ? c.data : { ...c.data, request_id: ctx.requestId };
  ctx.client.send({ type: row.type, data });
  const silent = ctx.mode === "legacy" && NO_REPLY_IN_LEGACY_MODE.has(row.type);
  if (silent && row.type === "Disconnect") {
    expect((await ctx.client.closed()).code).toBe(1000);
    expect(ctx.client.pending.map((f) => f.raw)).toEqual([]);
  } else if (silent) {
    await ctx.client.expectNothing(row.type);
  } else {
    const frame = await ctx.client.next(`the reply to ${row.type}`);
    const expectation = { requestId: ctx.requestId };
    if ("error" in c.expect) {
      expectError(frame, c.expect.error, expectation);
    } else {
      // The echoed request_id is checked by expectShape; the rest is the reply's own data.
      const reply = Object.fromEntries(
        Object.entries(expectShape(frame, c.expect.reply, expectation)).filter(
          ([key]) => key !== "request_id",
        ),
      );
      c.expect.check?.(reply, ctx);
    }
    for (const push of ctx.mode === "extended" ? (c.pushes?.(ctx) ?? []) : []) {
      expect(expectShape(await ctx.client.next("a push"), "VariableChanged")).toEqual(push);
    }
    if (row.type === "Disconnect") {
      expect((await ctx.client.closed()).code).toBe(1000);
    } else {
      // Exactly one reply: nothing else follows it.
      await ctx.client.expectNothing(`the reply to ${row.type}`);
    }
  }
  await c.after?.(ctx);
  await ctx.client.close();
}

describe("every client message type has a row", () => {
  it("covers legacy-ws-protocol.md §2", () => {
    expect([...new Set(ROWS.map((r) => r.type))].sort()).toEqual([...ALL_TYPES].sort());
    expect(ROWS.filter((r) => r.type === "Authenticate").map((r) => r.name)).toHaveLength(4);
  });
});

for (const mode of ["legacy", "extended"] as const) {
  describe(`${mode} mode`, () => {
    it.each(ROWS.map((row) => [row.name, row] as const))("%s succeeds", async (_, row) => {
      const ctx = await setUp(row, mode);
      await run(row, ctx, await row.success(ctx));
    });

    const failing = ROWS.filter((row) => row.failure !== undefined);
    it.each(failing.map((row) => [row.name, row] as const))("%s fails", async (_, row) => {
      const ctx = await setUp(row, mode);
      await run(row, ctx, await (row.failure as NonNullable<Row["failure"]>)(ctx));
    });

    const typed = ROWS.filter((row) => row.wrongField !== undefined);
    it.each(typed.map((row) => [row.name, row] as const))(
      "%s with a field of a wrong type is INVALID_REQUEST",
      async (_, row) => {
        const ctx = await setUp(row, mode);
        const valid = await row.success(ctx);
        const [field, value] = row.wrongField as [string, unknown];
        await run(row, ctx, {
          data: { ...valid.data, [field]: value },
          expect: { error: "INVALID_REQUEST" },
        });
      },
    );
  });
}
