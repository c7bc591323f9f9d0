/**
 * The permission matrix, generated from test/identity/rpc-table.ts: every
 * tenant-scoped or admin-only RPC of CommyService and IdentityService is
 * allowed with the permission the README's table names (with tenant:admin,
 * and for the server admin) and refused with PERMISSION_DENIED without it —
 * even to a principal holding every other permission, since nothing is
 * implied that the table does not say. Each test gets its own tenant; a
 * refused change changes nothing an operator can see; a refusal leaves
 * exactly one "denied" audit event, an allowed change exactly one "ok"
 * event, an allowed read none.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type Actor,
  type AuditTail,
  type GrantSpec,
  LOOPBACK_CLIENT_ADDRESS,
  PERMISSION_NAMES,
  type PermissionName,
  auditFields,
  createActor,
  createAuditTail,
  expectDenied,
} from "../helpers/identity-fixtures.js";
import { type CommyClient, type TestServer, startTestServer } from "../helpers/test-server.js";
import {
  type Caller,
  type Names,
  RPC_TABLE,
  type RpcCase,
  callerWith,
  prepare,
  serverAdminCaller,
  stateOf,
} from "./rpc-table.js";

let server: TestServer;
let admin: CommyClient;
let audit: AuditTail;
let testNumber = 0;

beforeAll(async () => {
  server = await startTestServer();
  admin = server.connectClient("connect", "1.1");
  audit = createAuditTail(server);
});

afterAll(async () => {
  await server.close();
});

/** Who calls in a test: the server admin, or a principal of the test's tenant with these grants. */
type CallerSpec = "server-admin" | readonly GrantSpec[];

/**
 * A fresh tenant with the caller and what the row needs; services are
 * named `<servicePrefix>-s<n>` so that prefix grants can match or not.
 */
async function setUp(
  row: RpcCase,
  callerSpec: CallerSpec,
  servicePrefix = "cfg",
): Promise<{ names: Names; caller: Caller }> {
  const n = ++testNumber;
  const names: Names = {
    tenantId: `t${n}`,
    serviceName: `${servicePrefix}-s${n}`,
    variableName: `v${n}`,
    principalName: `target${n}`,
    keyId: "",
    newTenantId: `t${n}-new`,
  };
  await admin.createTenant({ tenantId: names.tenantId });
  const caller =
    callerSpec === "server-admin"
      ? serverAdminCaller(server)
      : await callerWith(server, names.tenantId, `caller${n}`, callerSpec);
  await prepare(server, names, row.needs);
  return { names, caller };
}

/** The call succeeds and leaves the audit trail the row describes. */
async function expectAllowed(row: RpcCase, callerSpec: CallerSpec, prefix?: string) {
  const { names, caller } = await setUp(row, callerSpec, prefix);
  await audit.mark();
  await row.call(caller.clients, names);
  const events = await audit.since({ principalId: caller.principalId });
  const expected =
    row.audit === undefined
      ? []
      : [
          {
            principalId: caller.principalId,
            tenantId: row.audit.tenantId(names),
            action: row.audit.action,
            resource: expectedResource(row.audit.resource(names)),
            outcome: "ok",
            detail: "",
          },
        ];
  expect(events.map(auditFields)).toEqual(expected);
  for (const event of events) expect(event.clientAddress).toMatch(LOOPBACK_CLIENT_ADDRESS);
}

/** The call is refused with PERMISSION_DENIED, changes nothing, and leaves one "denied" event. */
async function expectRefused(row: RpcCase, callerSpec: CallerSpec, prefix?: string) {
  const { names, caller } = await setUp(row, callerSpec, prefix);
  // Reads have no side effects to look for; a refused change must leave no trace.
  const changes = row.audit !== undefined;
  const before = changes ? await stateOf(server, names.tenantId) : undefined;
  await audit.mark();
  await expectDenied(row.call(caller.clients, names));
  const events = await audit.since({ principalId: caller.principalId });
  expect(events.map(auditFields)).toEqual([
    {
      principalId: caller.principalId,
      tenantId: row.denial.tenantId(names),
      action: row.denial.action,
      resource: row.denial.resource(names),
      outcome: "denied",
      detail: "PERMISSION_DENIED",
    },
  ]);
  expect(events[0]?.clientAddress).toMatch(LOOPBACK_CLIENT_ADDRESS);
  if (changes) expect(await stateOf(server, names.tenantId)).toEqual(before);
}

function expectedResource(resource: string | RegExp): unknown {
  return typeof resource === "string" ? resource : expect.stringMatching(resource);
}

const only = (...permissions: PermissionName[]): GrantSpec[] =>
  permissions.map((permission) => ({ permission }));
const allBut = (...excluded: PermissionName[]): PermissionName[] =>
  PERMISSION_NAMES.filter((p) => !excluded.includes(p));

describe.each(RPC_TABLE.map((row) => [row.name, row] as const))("%s", (_name, row) => {
  const { requires } = row;

  it("is allowed for the server admin", () => expectAllowed(row, "server-admin"));

  it("is refused to a principal of the tenant with no grants", () => expectRefused(row, []));

  if (requires.kind === "grant") {
    const { permission } = requires;
    const others = allBut(permission, "tenant:admin");

    it(`is allowed with ${permission} alone`, () => expectAllowed(row, only(permission)));

    if (permission !== "tenant:admin") {
      it("is allowed with tenant:admin alone", () => expectAllowed(row, only("tenant:admin")));
    }

    it(`is refused with every permission but ${permission} (${others.join(", ")})`, () =>
      expectRefused(row, only(...others)));

    if (row.serviceScoped) {
      const prefixed = [{ permission, servicePrefix: "cfg" }];
      it(`with ${permission} for prefix "cfg": is allowed on a service "cfg-…"`, () =>
        expectAllowed(row, prefixed, "cfg"));
      it(`with ${permission} for prefix "cfg": is refused on a service "other-…"`, () =>
        expectRefused(row, prefixed, "other"));
    }
  }

  if (requires.kind === "any-grant") {
    it.each(PERMISSION_NAMES)("is allowed with %s alone", (permission) =>
      expectAllowed(row, only(permission)),
    );
    it("is allowed with a grant limited to a service prefix", () =>
      expectAllowed(row, [{ permission: "variable:read", servicePrefix: "cfg" }]));
  }

  if (requires.kind === "server-admin") {
    it("is refused to a tenant admin holding every permission of the tenant", () =>
      expectRefused(row, only(...PERMISSION_NAMES)));
  }
});

describe("tenant:admin limited to a service prefix", () => {
  const byName = (name: string): RpcCase => {
    const row = RPC_TABLE.find((r) => r.name === name);
    if (row === undefined) throw new Error(`no row ${name}`);
    return row;
  };
  const prefixedAdmin = [{ permission: "tenant:admin" as const, servicePrefix: "cfg" }];

  it.each([
    "CommyService.CreateService",
    "CommyService.ReadVariable",
    "CommyService.DeleteService",
  ])("allows %s on services of the prefix", (name) =>
    expectAllowed(byName(name), prefixedAdmin, "cfg"),
  );

  it.each([
    "CommyService.CreateService",
    "CommyService.ReadVariable",
    "CommyService.DeleteService",
  ])("refuses %s on other services", (name) => expectRefused(byName(name), prefixedAdmin, "other"));

  // Managing principals and grants is not about services: a prefix-limited
  // admin who could grant would lift its own limit (and the audit log is
  // the whole tenant's).
  it.each([
    "IdentityService.CreatePrincipal",
    "IdentityService.GrantPermission",
    "IdentityService.CreateApiKey",
    "IdentityService.ListAuditEvents (one tenant)",
  ])("refuses %s, which would reach beyond the prefix", (name) =>
    expectRefused(byName(name), prefixedAdmin),
  );
});

describe("ListServices with a prefix grant", () => {
  it("lists only the services of the prefix", async () => {
    const row = RPC_TABLE.find((r) => r.name === "CommyService.ListServices") as RpcCase;
    const { names, caller } = await setUp(row, [
      { permission: "service:read", servicePrefix: "cfg" },
    ]);
    for (const serviceName of ["cfg-b", "other", "cf", "cfg"])
      await admin.createService({ tenantId: names.tenantId, serviceName });
    const { services } = await caller.clients.commy.listServices({ tenantId: names.tenantId });
    expect(services.map((s) => s.serviceName)).toEqual(["cfg", "cfg-b", names.serviceName]);
  });
});

describe("RPCs that need only authentication", () => {
  /** A principal with no grants at all, in a fresh tenant. */
  async function bareActor(): Promise<Actor> {
    const n = ++testNumber;
    await admin.createTenant({ tenantId: `t${n}` });
    return createActor(server, `t${n}`, `caller${n}`, []);
  }

  it("WhoAmI answers a principal with no grants, with no grants", async () => {
    const actor = await bareActor();
    const me = await server.identityClient(actor.credentials).whoAmI({});
    expect(me.principal?.principalId).toBe(actor.principalId);
    expect(me.principal?.tenantId).toBe(actor.tenantId);
    expect(me.serverAdmin).toBe(false);
    expect(me.grants).toEqual([]);
  });

  it("ListTenants answers a principal with no grants with no tenants", async () => {
    const actor = await bareActor();
    const commy = server.connectClient("connect", "1.1", { credentials: actor.credentials });
    expect((await commy.listTenants({})).tenants).toEqual([]);
  });

  it("ListTenants shows a principal the tenants it holds grants in, and no other", async () => {
    const n = ++testNumber;
    await admin.createTenant({ tenantId: `t${n}` });
    const caller = await callerWith(server, `t${n}`, "reader", only("variable:read"));
    const { tenants } = await caller.clients.commy.listTenants({});
    expect(tenants.map((t) => t.tenantId)).toEqual([`t${n}`]);
  });

  it("Authenticate needs no Authorization header; RefreshToken and Logout need only the session", async () => {
    const actor = await bareActor();
    const anonymous = server.identityClient("none");
    const session = await anonymous.authenticate({
      tenantId: actor.tenantId,
      credential: { case: "apiKey", value: actor.apiKey },
    });
    const refreshed = await anonymous.refreshToken({ token: session.token });
    await server.identityClient({ bearer: refreshed.token }).logout({});
  });
});
