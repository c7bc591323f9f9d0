/**
 * The audit log (docs/security.md, "What the audit log records"): every
 * create and delete with its outcome, every change of principals,
 * credentials and grants, every login, refresh and logout, every denial —
 * each exactly once, with principal, tenant, action, resource, outcome and
 * the client's address. Tenant admins read their tenant's events, the
 * server admin everyone's; the log pages, filters, and outlives both its
 * tenant and the server process.
 */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditEvent } from "../../gen/commy/v1/identity_pb.js";
import {
  type AuditTail,
  LOOPBACK_CLIENT_ADDRESS,
  PERMISSION_NAMES,
  WIRE_PERMISSION,
  auditFields,
  bytes,
  createActor,
  createAuditTail,
  expectDenied,
  expectUnauthorized,
  listAllAuditEvents,
} from "../helpers/identity-fixtures.js";
import {
  type CommyClient,
  type IdentityClient,
  type TestServer,
  createTestDataDir,
  startTestServer,
} from "../helpers/test-server.js";

let server: TestServer;
let admin: CommyClient;
let identity: IdentityClient;
let audit: AuditTail;
let tenantNumber = 0;

beforeAll(async () => {
  server = await startTestServer();
  admin = server.connectClient("connect", "1.1");
  identity = server.identityClient();
  audit = createAuditTail(server);
});

afterAll(async () => {
  await server.close();
});

async function freshTenant(): Promise<string> {
  const tenantId = `a${++tenantNumber}`;
  await admin.createTenant({ tenantId });
  return tenantId;
}

/** The events since the last mark, as compared fields; every one from a loopback client. */
async function eventsSinceMark(filter = {}): Promise<Record<string, string>[]> {
  const events = await audit.since(filter);
  for (const event of events) expect(event.clientAddress).toMatch(LOOPBACK_CLIENT_ADDRESS);
  return events.map(auditFields);
}

const event = (fields: Partial<Record<string, string>>): Record<string, string> => ({
  principalId: "admin",
  tenantId: "",
  action: "",
  resource: "",
  outcome: "ok",
  detail: "",
  ...fields,
});

describe("what is recorded", () => {
  it("every create and delete of the data plane, once each, with its outcome", async () => {
    const tenantId = `a${++tenantNumber}`;
    await audit.mark();
    await admin.createTenant({ tenantId });
    await admin.createService({ tenantId, serviceName: "svc" });
    const ref = { tenantId, serviceName: "svc", variableName: "v" };
    await admin.allocateVariable({ ...ref, initialData: bytes("1") });
    await admin.writeVariable({ ...ref, data: bytes("2") }); // a value write: not audited
    await admin.writeVariable({
      ...ref,
      variableName: "w",
      data: bytes("3"),
      createIfMissing: true,
    });
    await admin.deallocateVariable(ref);
    await admin.createService({ tenantId, serviceName: "svc" }).catch(() => undefined);
    await admin.deleteService({ tenantId, serviceName: "nope" }).catch(() => undefined);
    await admin.deleteService({ tenantId, serviceName: "svc" });
    await admin.deleteTenant({ tenantId });
    await admin.deleteTenant({ tenantId }).catch(() => undefined);
    expect(await eventsSinceMark()).toEqual([
      event({ tenantId, action: "tenant.create", resource: tenantId }),
      event({ tenantId, action: "service.create", resource: `${tenantId}/svc` }),
      event({ tenantId, action: "variable.create", resource: `${tenantId}/svc/v` }),
      event({ tenantId, action: "variable.create", resource: `${tenantId}/svc/w` }),
      event({ tenantId, action: "variable.delete", resource: `${tenantId}/svc/v` }),
      event({
        tenantId,
        action: "service.create",
        resource: `${tenantId}/svc`,
        outcome: "failed",
        detail: "ALREADY_EXISTS",
      }),
      event({
        tenantId,
        action: "service.delete",
        resource: `${tenantId}/nope`,
        outcome: "failed",
        detail: "NOT_FOUND",
      }),
      event({ tenantId, action: "service.delete", resource: `${tenantId}/svc` }),
      event({ tenantId, action: "tenant.delete", resource: tenantId }),
      event({
        tenantId,
        action: "tenant.delete",
        resource: tenantId,
        outcome: "failed",
        detail: "NOT_FOUND",
      }),
    ]);
  });

  it("every change of principals, credentials, grants and JWT settings", async () => {
    const tenantId = await freshTenant();
    await audit.mark();
    await identity.createPrincipal({ tenantId, name: "p", password: "" });
    await identity.createPrincipal({ tenantId, name: "p" }).catch(() => undefined);
    await identity.setPassword({ tenantId, name: "p", password: "password-one" });
    const { key } = await identity.createApiKey({ tenantId, principalName: "p" });
    const grant = { tenantId, principalName: "p", permission: WIRE_PERMISSION["service:read"] };
    await identity.grantPermission({ ...grant, servicePrefix: "cfg" });
    await identity.revokePermission({ ...grant, servicePrefix: "cfg" });
    await identity.revokePermission({ ...grant, servicePrefix: "cfg" }).catch(() => undefined);
    await identity.revokeApiKey({ tenantId, keyId: key?.keyId ?? "" });
    await identity.setJwtConfig({
      tenantId,
      config: { key: { case: "hsSecret", value: "a-jwt-secret-of-at-least-32-chars" } },
    });
    await identity.deletePrincipal({ tenantId, name: "p" });
    const principalId = `${tenantId}/p`;
    expect(await eventsSinceMark()).toEqual([
      event({ tenantId, action: "principal.create", resource: principalId }),
      event({
        tenantId,
        action: "principal.create",
        resource: principalId,
        outcome: "failed",
        detail: "ALREADY_EXISTS",
      }),
      event({ tenantId, action: "principal.password", resource: principalId }),
      event({ tenantId, action: "apikey.create", resource: `${principalId}#${key?.keyId}` }),
      event({ tenantId, action: "grant.add", resource: `${principalId} service:read:cfg` }),
      event({ tenantId, action: "grant.remove", resource: `${principalId} service:read:cfg` }),
      event({
        tenantId,
        action: "grant.remove",
        resource: `${principalId} service:read:cfg`,
        outcome: "failed",
        detail: "NOT_FOUND",
      }),
      event({ tenantId, action: "apikey.revoke", resource: key?.keyId }),
      event({ tenantId, action: "jwt.configure", resource: tenantId }),
      event({ tenantId, action: "principal.delete", resource: principalId }),
    ]);
  });

  it("a failed attempt to create a principal in a tenant that does not exist", async () => {
    await audit.mark();
    await identity
      .createPrincipal({ tenantId: "no-such-tenant", name: "p" })
      .catch(() => undefined);
    expect(await eventsSinceMark()).toEqual([
      event({
        tenantId: "no-such-tenant",
        action: "principal.create",
        resource: "no-such-tenant/p",
        outcome: "failed",
        detail: "NOT_FOUND",
      }),
    ]);
  });

  it("every login, refresh and logout, and every failed one", async () => {
    const tenantId = await freshTenant();
    const actor = await createActor(server, tenantId, "p", [], "password-one");
    const anonymous = server.identityClient("none");
    await audit.mark();
    const session = await anonymous.authenticate({
      tenantId,
      credential: { case: "password", value: { username: "p", password: "password-one" } },
    });
    await anonymous
      .authenticate({
        tenantId,
        credential: { case: "password", value: { username: "p", password: "wrong-one" } },
      })
      .catch(() => undefined);
    await anonymous
      .authenticate({ tenantId, credential: { case: "apiKey", value: "ck_nonsense" } })
      .catch(() => undefined);
    await anonymous
      .authenticate({ tenantId, credential: { case: "jwt", value: "not-a-jwt" } })
      .catch(() => undefined);
    const refreshed = await anonymous.refreshToken({ token: session.token });
    await expectUnauthorized(anonymous.refreshToken({ token: session.token }));
    await server.identityClient({ bearer: refreshed.token }).logout({});
    await expectUnauthorized(server.identityClient(actor.credentials).logout({}));
    const login = (outcome: string, detail: string, principalId = "") =>
      event({ principalId, tenantId, action: "auth.login", resource: tenantId, outcome, detail });
    expect(await eventsSinceMark()).toEqual([
      login("ok", "password", actor.principalId),
      login("denied", "password"),
      login("denied", "api_key"),
      login("denied", "jwt"),
      event({
        principalId: actor.principalId,
        tenantId,
        action: "auth.refresh",
        resource: actor.principalId,
      }),
      event({
        principalId: "",
        action: "auth.refresh",
        outcome: "denied",
        detail: "UNAUTHORIZED",
      }),
      event({
        principalId: actor.principalId,
        tenantId,
        action: "auth.logout",
        resource: actor.principalId,
      }),
      event({
        principalId: actor.principalId,
        action: "auth.logout",
        resource: actor.principalId,
        outcome: "denied",
        detail: "UNAUTHORIZED",
      }),
    ]);
  });

  it("every unauthenticated call, reads included, as denied with no principal", async () => {
    const tenantId = await freshTenant();
    const nobody = server.connectClient("connect", "1.1", { credentials: "none" });
    await audit.mark();
    await expectUnauthorized(nobody.getTenant({ tenantId }));
    await expectUnauthorized(
      nobody.readVariable({ tenantId, serviceName: "svc", variableName: "v" }),
    );
    await expectUnauthorized(server.identityClient("none").listPrincipals({ tenantId }));
    const denied = (action: string, resource: string) =>
      event({
        principalId: "",
        tenantId,
        action,
        resource,
        outcome: "denied",
        detail: "UNAUTHORIZED",
      });
    expect(await eventsSinceMark()).toEqual([
      denied("tenant.read", tenantId),
      denied("variable.read", `${tenantId}/svc`),
      denied("identity.manage", tenantId),
    ]);
  });

  it("who created what, in created_by", async () => {
    const tenantId = await freshTenant();
    const actor = await createActor(server, tenantId, "maker", [{ permission: "tenant:admin" }]);
    const commy = server.connectClient("connect", "1.1", { credentials: actor.credentials });
    const service = await commy.createService({ tenantId, serviceName: "made" });
    const principal = await server
      .identityClient(actor.credentials)
      .createPrincipal({ tenantId, name: "made" });
    const key = await server
      .identityClient(actor.credentials)
      .createApiKey({ tenantId, principalName: "made" });
    expect((await admin.getTenant({ tenantId })).tenant?.createdBy).toBe("admin");
    expect(service.service?.createdBy).toBe(actor.principalId);
    expect(principal.principal?.createdBy).toBe(actor.principalId);
    expect(key.key?.createdBy).toBe(actor.principalId);
  });
});

describe("who may read it", () => {
  it("a tenant admin reads its own tenant's events, and only those", async () => {
    const tenantId = await freshTenant();
    const other = await freshTenant();
    await admin.createService({ tenantId: other, serviceName: "elsewhere" });
    const tenantAdmin = await createActor(server, tenantId, "root", [
      { permission: "tenant:admin" },
    ]);
    const reader = server.identityClient(tenantAdmin.credentials);
    await server
      .connectClient("connect", "1.1", { credentials: tenantAdmin.credentials })
      .createService({ tenantId, serviceName: "mine" });
    const events = await listAllAuditEvents(reader, { tenantId });
    expect(events.map((e) => [e.action, e.resource])).toEqual([
      ["tenant.create", tenantId],
      ["principal.create", `${tenantId}/root`],
      ["grant.add", `${tenantId}/root tenant:admin`],
      ["apikey.create", `${tenantId}/root#${tenantAdmin.keyId}`],
      ["service.create", `${tenantId}/mine`],
    ]);
    await expectDenied(reader.listAuditEvents({ tenantId: other }));
    await expectDenied(reader.listAuditEvents({}));
  });

  it("a principal holding every permission but tenant:admin reads none", async () => {
    const tenantId = await freshTenant();
    const actor = await createActor(
      server,
      tenantId,
      "busy",
      PERMISSION_NAMES.filter((p) => p !== "tenant:admin").map((permission) => ({ permission })),
    );
    await expectDenied(server.identityClient(actor.credentials).listAuditEvents({ tenantId }));
  });

  it("the server admin reads every tenant's, and filters by action, principal and time", async () => {
    const first = await freshTenant();
    const second = await freshTenant();
    const actor = await createActor(server, second, "p", [{ permission: "service:create" }]);
    const asActor = server.connectClient("connect", "1.1", { credentials: actor.credentials });
    await asActor.createService({ tenantId: second, serviceName: "s" });
    await expectDenied(asActor.createService({ tenantId: first, serviceName: "s" }));
    const all = await listAllAuditEvents(identity);
    expect(new Set(all.map((e) => e.tenantId))).toContain(first);
    expect(new Set(all.map((e) => e.tenantId))).toContain(second);
    const byActor = await listAllAuditEvents(identity, { principalId: actor.principalId });
    expect(byActor.map((e) => [e.tenantId, e.action, e.outcome])).toEqual([
      [second, "service.create", "ok"],
      [first, "service.create", "denied"],
    ]);
    const creations = await listAllAuditEvents(identity, { action: "tenant.create" });
    expect(creations.map((e) => e.resource)).toEqual(expect.arrayContaining([first, second]));
    expect(new Set(creations.map((e) => e.action))).toEqual(new Set(["tenant.create"]));
    // [since, until): the first of the actor's events alone.
    const [firstEvent, secondEvent] = byActor.map((e) => e.time);
    const window = await identity.listAuditEvents({
      principalId: actor.principalId,
      since: firstEvent,
      until: secondEvent,
    });
    if (firstEvent?.seconds === secondEvent?.seconds && firstEvent?.nanos === secondEvent?.nanos)
      expect(window.events).toEqual([]);
    else expect(window.events.map((e) => e.outcome)).toEqual(["ok"]);
    const later = await identity.listAuditEvents({
      principalId: actor.principalId,
      since: timestampFromMs(Date.now() + 60_000),
    });
    expect(later.events).toEqual([]);
  });
});

describe("paging", () => {
  it("page_size and next_page_token walk every event once, in order", async () => {
    const tenantId = await freshTenant();
    for (let i = 0; i < 7; i++) await admin.createService({ tenantId, serviceName: `s${i}` });
    const everything = await listAllAuditEvents(identity, { tenantId });
    expect(everything).toHaveLength(8);
    const pages: AuditEvent[][] = [];
    let pageToken = "";
    do {
      const page = await identity.listAuditEvents({ tenantId, pageSize: 3, pageToken });
      pages.push(page.events);
      pageToken = page.nextPageToken;
    } while (pageToken !== "" && pages.length < 10);
    expect(pages.map((p) => p.length)).toEqual([3, 3, 2]);
    expect(pages.flat().map((e) => e.eventId)).toEqual(everything.map((e) => e.eventId));
    const ids = everything.map((e) => e.eventId);
    expect([...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))).toEqual(ids);
    // An exact fit has no further page.
    const exact = await identity.listAuditEvents({ tenantId, pageSize: 8 });
    expect(exact.events).toHaveLength(8);
    expect(exact.nextPageToken).toBe("");
  });
});

describe("durability", () => {
  it("events survive a restart and outlive their tenant", async () => {
    const dataDir = createTestDataDir();
    try {
      const first = await startTestServer({ dataDir: dataDir.path });
      const firstAdmin = first.connectClient("connect", "1.1");
      await firstAdmin.createTenant({ tenantId: "ephemeral" });
      const actor = await createActor(first, "ephemeral", "p", []);
      await expectDenied(
        first
          .connectClient("connect", "1.1", { credentials: actor.credentials })
          .getTenant({ tenantId: "ephemeral" }),
      );
      await firstAdmin.deleteTenant({ tenantId: "ephemeral" });
      const before = await listAllAuditEvents(first.identityClient(), { tenantId: "ephemeral" });
      await first.close();

      const second = await startTestServer({ dataDir: dataDir.path });
      const after = await listAllAuditEvents(second.identityClient(), { tenantId: "ephemeral" });
      await second.close();
      expect(after).toEqual(before);
      expect(after.map((e) => [e.action, e.outcome])).toEqual([
        ["tenant.create", "ok"],
        ["principal.create", "ok"],
        ["apikey.create", "ok"],
        ["tenant.read", "denied"],
        ["tenant.delete", "ok"],
      ]);
    } finally {
      dataDir.remove();
    }
  });
});
