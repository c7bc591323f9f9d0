/**
 * The house check order (DESIGN §3, docs/security.md): authenticated (else
 * UNAUTHORIZED) → permitted (else PERMISSION_DENIED) → valid (else
 * INVALID_REQUEST) → exists (else NOT_FOUND). An unauthenticated caller
 * learns nothing, not even that a name is malformed; a caller without the
 * permission learns nothing about what exists. Generated from the RPC table.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Permission } from "../../gen/commy/v1/identity_pb.js";
import {
  type PermissionName,
  expectDenied,
  expectInvalid,
  expectNotFound,
  expectUnauthorized,
} from "../helpers/identity-fixtures.js";
import { type Credentials, type TestServer, startTestServer } from "../helpers/test-server.js";
import {
  type CallerClients,
  type Names,
  RPC_TABLE,
  type RpcCase,
  callerWith,
  clientsOf,
  invalidNames,
  prepare,
} from "./rpc-table.js";

/** Things of tenant "t" that exist. */
const EXISTING: Names = {
  tenantId: "t",
  serviceName: "svc",
  variableName: "var",
  principalName: "someone",
  keyId: "",
  newTenantId: "t-new",
};

/** Names in tenant "t" that point at nothing. */
const MISSING: Names = {
  tenantId: "t",
  serviceName: "no-such-service",
  variableName: "no-such-variable",
  principalName: "no-such-principal",
  keyId: "0123456789abcdef",
  newTenantId: "t-new",
};

/** A tenant that does not exist. */
const MISSING_TENANT: Names = { ...MISSING, tenantId: "no-such-tenant" };

const AUTHENTICATION_REQUIRED = "authentication required: send valid credentials";

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
  await server.connectClient("connect", "1.1").createTenant({ tenantId: "t" });
  await prepare(server, EXISTING, ["service", "variable", "principal", "apiKey", "grant"]);
});

afterAll(async () => {
  await server.close();
});

const rows = RPC_TABLE.map((row) => [row.name, row] as const);
const variants: [string, () => Names][] = [
  ["things that exist", () => EXISTING],
  ["things that do not exist", () => MISSING],
  ["a tenant that does not exist", () => MISSING_TENANT],
  ["invalid names", invalidNames],
];

describe.each<[string, Credentials]>([
  ["no Authorization header", "none"],
  ["an unknown session token", { bearer: "cs_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }],
  ["an unknown API key", { bearer: `ck_0123456789abcdef_${"A".repeat(43)}` }],
  ["a token that is no credential at all", { bearer: "hello" }],
])("unauthenticated (%s)", (_what, credentials) => {
  it.each(rows)("%s is UNAUTHORIZED before any other check", async (_name, row) => {
    const clients = clientsOf(server, credentials);
    for (const [variant, names] of variants) {
      const refusal = await expectUnauthorized(row.call(clients, names())).catch(
        (failure: unknown) => {
          throw new Error(`${variant}: ${String(failure)}`);
        },
      );
      expect(refusal.message).toBe(AUTHENTICATION_REQUIRED);
    }
  });

  it("WhoAmI, ListTenants and Logout are UNAUTHORIZED", async () => {
    const clients = clientsOf(server, credentials);
    await expectUnauthorized(clients.identity.whoAmI({}));
    await expectUnauthorized(clients.commy.listTenants({ pageToken: ".not-a-token" }));
    await expectUnauthorized(clients.identity.logout({}));
  });
});

describe("authenticated but not permitted", () => {
  let nobody: CallerClients;

  beforeAll(async () => {
    nobody = (await callerWith(server, "t", "nobody", [])).clients;
  });

  it.each(rows)(
    "%s is PERMISSION_DENIED whether or not the thing exists and whatever its name",
    async (_name, row) => {
      for (const [variant, names] of variants) {
        await expectDenied(row.call(nobody, names())).catch((failure: unknown) => {
          throw new Error(`${variant}: ${String(failure)}`);
        });
      }
    },
  );

  it.each(MALFORMED_REQUESTS)(
    "%s is PERMISSION_DENIED, not INVALID_REQUEST",
    async (_name, call) => {
      await expectDenied(call(nobody));
    },
  );
});

describe("unauthenticated, with a malformed field the handler parses itself", () => {
  it.each(MALFORMED_REQUESTS)("%s is UNAUTHORIZED, not INVALID_REQUEST", async (_name, call) => {
    await expectUnauthorized(call(clientsOf(server, "none")));
  });
});

describe("permitted", () => {
  const admin = (): CallerClients => clientsOf(server, "admin");

  it.each(rows)("%s with invalid names: as the check order says", async (_name, row) => {
    const outcome = row.call(admin(), invalidNames());
    await expectedFor(row.onInvalidNames)(outcome);
  });

  it.each(rows.filter(([, row]) => row.notFoundForMissingTenant))(
    "%s on a tenant that does not exist is NOT_FOUND",
    async (_name, row) => {
      await expectNotFound(row.call(admin(), MISSING_TENANT));
    },
  );

  it.each(rows.filter(([, row]) => row.missingTarget !== undefined))(
    "%s by a principal holding the permission, on a thing that does not exist, is NOT_FOUND",
    async (name, row) => {
      const permission = requiredPermission(row);
      const caller = await callerWith(server, "t", `holder-${rowSlug(name)}`, [{ permission }]);
      await expectNotFound(row.call(caller.clients, MISSING));
    },
  );
});

/**
 * Requests with a malformed field that is not a name (a page token, an
 * enum, a number), made by a caller who may not make them at all.
 */
const MALFORMED_REQUESTS: [string, (clients: CallerClients) => Promise<unknown>][] = [
  [
    "ListAuditEvents with a malformed page_token",
    (c) => c.identity.listAuditEvents({ tenantId: "t", pageToken: "not-a-page-token" }),
  ],
  [
    "GrantPermission with PERMISSION_UNSPECIFIED",
    (c) =>
      c.identity.grantPermission({
        tenantId: "t",
        principalName: "someone",
        permission: Permission.UNSPECIFIED,
      }),
  ],
  [
    "RevokePermission with PERMISSION_UNSPECIFIED",
    (c) =>
      c.identity.revokePermission({
        tenantId: "t",
        principalName: "someone",
        permission: Permission.UNSPECIFIED,
      }),
  ],
  [
    "WriteVariable with an expected_version beyond 2^53",
    (c) =>
      c.commy.writeVariable({
        tenantId: "t",
        serviceName: "svc",
        variableName: "var",
        data: new Uint8Array(),
        expectedVersion: 2n ** 63n,
      }),
  ],
  [
    "ListServices with a malformed page_token",
    (c) => c.commy.listServices({ tenantId: "t", pageToken: ".not-a-token" }),
  ],
  [
    "CreateApiKey with a description over 256 characters",
    (c) =>
      c.identity.createApiKey({
        tenantId: "t",
        principalName: "someone",
        description: "x".repeat(300),
      }),
  ],
];

function expectedFor(
  outcome: RpcCase["onInvalidNames"],
): (call: Promise<unknown>) => Promise<unknown> {
  switch (outcome) {
    case "INVALID_REQUEST":
      return expectInvalid;
    case "NOT_FOUND":
      return expectNotFound;
    case "ok":
      return (call) => call;
  }
}

function requiredPermission(row: RpcCase): PermissionName {
  if (row.requires.kind !== "grant") throw new Error(`${row.name} needs no single permission`);
  return row.requires.permission;
}

function rowSlug(name: string): string {
  return name.replaceAll(/[^A-Za-z0-9]+/g, "-").toLowerCase();
}
