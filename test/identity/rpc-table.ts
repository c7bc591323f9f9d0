/**
 * Every tenant-scoped or admin-only RPC of CommyService and IdentityService
 * as one table: what it needs (README, permission model), how to call it,
 * what it must be prepared with, and how the audit log records it. The
 * permission matrix, the cross-tenant and the check-order tests are
 * generated from it. RPCs that need only authentication (Authenticate,
 * WhoAmI, RefreshToken, Logout, ListTenants) are tested on their own.
 */
import type { ClientFactory, CommyClient, IdentityClient } from "../helpers/test-server.js";
import {
  type GrantSpec,
  type PermissionName,
  WIRE_PERMISSION,
  bytes,
  createActor,
  epochSeconds,
  signJwt,
  text,
} from "../helpers/identity-fixtures.js";

/** What an RPC needs. */
export type Requirement =
  /** A grant of this permission in the tenant (or tenant:admin, or the server admin). */
  | { kind: "grant"; permission: PermissionName }
  /** Any grant in the tenant (GetTenant). */
  | { kind: "any-grant" }
  /** The server admin only. */
  | { kind: "server-admin" };

/** The names a call acts on; the table's calls read them, tests choose them. */
export interface Names {
  /** A tenant that exists (each test makes its own). */
  tenantId: string;
  serviceName: string;
  variableName: string;
  /** A principal the call manages (not the caller). */
  principalName: string;
  /** An API key of principalName, when prepared. */
  keyId: string;
  /** A tenant id that is not taken. */
  newTenantId: string;
}

/** What the server admin makes before the call. */
export type Need = "service" | "variable" | "principal" | "apiKey" | "grant";

/** The clients of one caller. */
export interface CallerClients {
  commy: CommyClient;
  identity: IdentityClient;
}

/** How an audit event is expected to look (beyond principal, outcome and address). */
export interface ExpectedAudit {
  action: string;
  tenantId: (names: Names) => string;
  resource: (names: Names) => string | RegExp;
}

/** What the check order gives a permitted caller for invalid names (".bad"). */
export type OnInvalidNames = "INVALID_REQUEST" | "NOT_FOUND" | "ok";

export interface RpcCase {
  /** "Service.Method", plus a note when one method has two ways of being called. */
  name: string;
  requires: Requirement;
  /** True when the grant is checked against the service name (service-prefix grants apply). */
  serviceScoped: boolean;
  needs: readonly Need[];
  call: (clients: CallerClients, names: Names) => Promise<unknown>;
  /** The one event an allowed call leaves; undefined for calls that leave none (reads, value writes). */
  audit?: ExpectedAudit;
  /** The one event a refusal leaves (outcome "denied"). */
  denial: ExpectedAudit;
  /**
   * The name that, made to point at nothing, makes a permitted call in an
   * existing tenant fail with NOT_FOUND; undefined when there is none.
   */
  missingTarget?: "serviceName" | "variableName" | "principalName" | "keyId";
  /** Whether the server admin gets NOT_FOUND when the tenant does not exist. */
  notFoundForMissingTenant: boolean;
  /** What the server admin gets when every name is invalid. */
  onInvalidNames: OnInvalidNames;
}

/** A JWT secret SetJwtConfig sets in the table (at least 32 characters). */
export const TABLE_JWT_SECRET = "the-matrix-jwt-secret-0123456789abcdef";

const tenantOf = (n: Names): string => n.tenantId;
const serviceOf = (n: Names): string => `${n.tenantId}/${n.serviceName}`;
const variableOf = (n: Names): string => `${n.tenantId}/${n.serviceName}/${n.variableName}`;
const principalOf = (n: Names): string => `${n.tenantId}/${n.principalName}`;
const serviceRef = (n: Names) => ({ tenantId: n.tenantId, serviceName: n.serviceName });
const variableRef = (n: Names) => ({ ...serviceRef(n), variableName: n.variableName });

/** How CommyCore records a refusal: the permission's action, on the tenant or the service. */
const deniedOnTenant = (action: string): ExpectedAudit => ({
  action,
  tenantId: tenantOf,
  resource: tenantOf,
});
const deniedOnService = (action: string): ExpectedAudit => ({
  action,
  tenantId: tenantOf,
  resource: serviceOf,
});
const grant = (permission: PermissionName): Requirement => ({ kind: "grant", permission });
const SERVER_ADMIN: Requirement = { kind: "server-admin" };
const TENANT_ADMIN = grant("tenant:admin");

const COMMY_SERVICE: readonly RpcCase[] = [
  {
    name: "CommyService.CreateTenant",
    requires: SERVER_ADMIN,
    serviceScoped: false,
    needs: [],
    call: (c, n) => c.commy.createTenant({ tenantId: n.newTenantId }),
    audit: {
      action: "tenant.create",
      tenantId: (n) => n.newTenantId,
      resource: (n) => n.newTenantId,
    },
    denial: {
      action: "tenant.create",
      tenantId: (n) => n.newTenantId,
      resource: (n) => n.newTenantId,
    },
    notFoundForMissingTenant: false,
    onInvalidNames: "INVALID_REQUEST",
  },
  {
    name: "CommyService.GetTenant",
    requires: { kind: "any-grant" },
    serviceScoped: false,
    needs: [],
    call: (c, n) => c.commy.getTenant({ tenantId: n.tenantId }),
    denial: deniedOnTenant("tenant.read"),
    notFoundForMissingTenant: true,
    onInvalidNames: "INVALID_REQUEST",
  },
  {
    name: "CommyService.DeleteTenant",
    requires: SERVER_ADMIN,
    serviceScoped: false,
    needs: ["service", "variable"],
    call: (c, n) => c.commy.deleteTenant({ tenantId: n.tenantId }),
    audit: { action: "tenant.delete", tenantId: tenantOf, resource: tenantOf },
    denial: deniedOnTenant("tenant.delete"),
    notFoundForMissingTenant: true,
    onInvalidNames: "INVALID_REQUEST",
  },
  {
    name: "CommyService.CreateService",
    requires: grant("service:create"),
    serviceScoped: true,
    needs: [],
    call: (c, n) => c.commy.createService(serviceRef(n)),
    audit: { action: "service.create", tenantId: tenantOf, resource: serviceOf },
    denial: deniedOnService("service.create"),
    notFoundForMissingTenant: true,
    onInvalidNames: "INVALID_REQUEST",
  },
  {
    name: "CommyService.GetService",
    requires: grant("service:read"),
    serviceScoped: true,
    needs: ["service"],
    call: (c, n) => c.commy.getService(serviceRef(n)),
    denial: deniedOnService("service.read"),
    missingTarget: "serviceName",
    notFoundForMissingTenant: true,
    onInvalidNames: "INVALID_REQUEST",
  },
  {
    name: "CommyService.ListServices",
    requires: grant("service:read"),
    serviceScoped: false,
    needs: ["service"],
    call: (c, n) => c.commy.listServices({ tenantId: n.tenantId }),
    denial: deniedOnTenant("service.read"),
    notFoundForMissingTenant: true,
    onInvalidNames: "INVALID_REQUEST",
  },
  {
    name: "CommyService.DeleteService",
    requires: grant("service:delete"),
    serviceScoped: true,
    needs: ["service", "variable"],
    call: (c, n) => c.commy.deleteService(serviceRef(n)),
    audit: { action: "service.delete", tenantId: tenantOf, resource: serviceOf },
    denial: deniedOnService("service.delete"),
    missingTarget: "serviceName",
    notFoundForMissingTenant: true,
    onInvalidNames: "INVALID_REQUEST",
  },
  {
    name: "CommyService.AllocateVariable",
    requires: grant("variable:write"),
    serviceScoped: true,
    needs: ["service"],
    call: (c, n) => c.commy.allocateVariable({ ...variableRef(n), initialData: bytes("first") }),
    audit: { action: "variable.create", tenantId: tenantOf, resource: variableOf },
    denial: deniedOnService("variable.write"),
    missingTarget: "serviceName",
    notFoundForMissingTenant: true,
    onInvalidNames: "INVALID_REQUEST",
  },
  {
    name: "CommyService.ReadVariable",
    requires: grant("variable:read"),
    serviceScoped: true,
    needs: ["service", "variable"],
    call: (c, n) => c.commy.readVariable(variableRef(n)),
    denial: deniedOnService("variable.read"),
    missingTarget: "variableName",
    notFoundForMissingTenant: true,
    onInvalidNames: "INVALID_REQUEST",
  },
  {
    name: "CommyService.WriteVariable",
    requires: grant("variable:write"),
    serviceScoped: true,
    needs: ["service", "variable"],
    call: (c, n) => c.commy.writeVariable({ ...variableRef(n), data: bytes("second") }),
    denial: deniedOnService("variable.write"),
    missingTarget: "variableName",
    notFoundForMissingTenant: true,
    onInvalidNames: "INVALID_REQUEST",
  },
  {
    name: "CommyService.WriteVariable (create_if_missing)",
    requires: grant("variable:write"),
    serviceScoped: true,
    needs: ["service"],
    call: (c, n) =>
      c.commy.writeVariable({ ...variableRef(n), data: bytes("created"), createIfMissing: true }),
    audit: { action: "variable.create", tenantId: tenantOf, resource: variableOf },
    denial: deniedOnService("variable.write"),
    missingTarget: "serviceName",
    notFoundForMissingTenant: true,
    onInvalidNames: "INVALID_REQUEST",
  },
  {
    name: "CommyService.DeallocateVariable",
    requires: grant("variable:write"),
    serviceScoped: true,
    needs: ["service", "variable"],
    call: (c, n) => c.commy.deallocateVariable(variableRef(n)),
    audit: { action: "variable.delete", tenantId: tenantOf, resource: variableOf },
    denial: deniedOnService("variable.write"),
    missingTarget: "variableName",
    notFoundForMissingTenant: true,
    onInvalidNames: "INVALID_REQUEST",
  },
  {
    name: "CommyService.ListVariables",
    requires: grant("variable:read"),
    serviceScoped: true,
    needs: ["service", "variable"],
    call: (c, n) => c.commy.listVariables(serviceRef(n)),
    denial: deniedOnService("variable.read"),
    missingTarget: "serviceName",
    notFoundForMissingTenant: true,
    onInvalidNames: "INVALID_REQUEST",
  },
];

/** IdentityService records every refusal of principal management as identity.manage on the tenant. */
const MANAGE_DENIED = deniedOnTenant("identity.manage");

const IDENTITY_SERVICE: readonly RpcCase[] = [
  {
    name: "IdentityService.CreatePrincipal",
    requires: TENANT_ADMIN,
    serviceScoped: false,
    needs: [],
    call: (c, n) =>
      c.identity.createPrincipal({ tenantId: n.tenantId, name: n.principalName, password: "" }),
    audit: { action: "principal.create", tenantId: tenantOf, resource: principalOf },
    denial: MANAGE_DENIED,
    notFoundForMissingTenant: true,
    onInvalidNames: "INVALID_REQUEST",
  },
  {
    name: "IdentityService.ListPrincipals",
    requires: TENANT_ADMIN,
    serviceScoped: false,
    needs: ["principal"],
    call: (c, n) => c.identity.listPrincipals({ tenantId: n.tenantId }),
    denial: MANAGE_DENIED,
    notFoundForMissingTenant: true,
    onInvalidNames: "INVALID_REQUEST",
  },
  {
    name: "IdentityService.DeletePrincipal",
    requires: TENANT_ADMIN,
    serviceScoped: false,
    needs: ["principal", "apiKey", "grant"],
    call: (c, n) => c.identity.deletePrincipal({ tenantId: n.tenantId, name: n.principalName }),
    audit: { action: "principal.delete", tenantId: tenantOf, resource: principalOf },
    denial: MANAGE_DENIED,
    missingTarget: "principalName",
    notFoundForMissingTenant: true,
    onInvalidNames: "INVALID_REQUEST",
  },
  {
    name: "IdentityService.SetPassword",
    requires: TENANT_ADMIN,
    serviceScoped: false,
    needs: ["principal"],
    call: (c, n) =>
      c.identity.setPassword({
        tenantId: n.tenantId,
        name: n.principalName,
        password: "a-brand-new-password",
      }),
    audit: { action: "principal.password", tenantId: tenantOf, resource: principalOf },
    denial: MANAGE_DENIED,
    missingTarget: "principalName",
    notFoundForMissingTenant: true,
    onInvalidNames: "INVALID_REQUEST",
  },
  {
    name: "IdentityService.CreateApiKey",
    requires: TENANT_ADMIN,
    serviceScoped: false,
    needs: ["principal"],
    call: (c, n) =>
      c.identity.createApiKey({ tenantId: n.tenantId, principalName: n.principalName }),
    audit: {
      action: "apikey.create",
      tenantId: tenantOf,
      resource: (n) => new RegExp(`^${n.tenantId}/${n.principalName}#[0-9a-f]{16}$`),
    },
    denial: MANAGE_DENIED,
    missingTarget: "principalName",
    notFoundForMissingTenant: true,
    onInvalidNames: "INVALID_REQUEST",
  },
  {
    name: "IdentityService.ListApiKeys",
    requires: TENANT_ADMIN,
    serviceScoped: false,
    needs: ["principal", "apiKey"],
    call: (c, n) => c.identity.listApiKeys({ tenantId: n.tenantId }),
    denial: MANAGE_DENIED,
    notFoundForMissingTenant: true,
    onInvalidNames: "INVALID_REQUEST",
  },
  {
    name: "IdentityService.RevokeApiKey",
    requires: TENANT_ADMIN,
    serviceScoped: false,
    needs: ["principal", "apiKey"],
    call: (c, n) => c.identity.revokeApiKey({ tenantId: n.tenantId, keyId: n.keyId }),
    audit: { action: "apikey.revoke", tenantId: tenantOf, resource: (n) => n.keyId },
    denial: MANAGE_DENIED,
    missingTarget: "keyId",
    notFoundForMissingTenant: true,
    // A key id is not a name: an unknown one, however spelt, is not found.
    onInvalidNames: "NOT_FOUND",
  },
  {
    name: "IdentityService.GrantPermission",
    requires: TENANT_ADMIN,
    serviceScoped: false,
    needs: ["principal"],
    call: (c, n) =>
      c.identity.grantPermission({
        tenantId: n.tenantId,
        principalName: n.principalName,
        permission: WIRE_PERMISSION["variable:read"],
        servicePrefix: "x",
      }),
    audit: {
      action: "grant.add",
      tenantId: tenantOf,
      resource: (n) => `${principalOf(n)} variable:read:x`,
    },
    denial: MANAGE_DENIED,
    missingTarget: "principalName",
    notFoundForMissingTenant: true,
    onInvalidNames: "INVALID_REQUEST",
  },
  {
    name: "IdentityService.RevokePermission",
    requires: TENANT_ADMIN,
    serviceScoped: false,
    needs: ["principal", "grant"],
    call: (c, n) =>
      c.identity.revokePermission({
        tenantId: n.tenantId,
        principalName: n.principalName,
        permission: WIRE_PERMISSION["variable:read"],
        servicePrefix: "x",
      }),
    audit: {
      action: "grant.remove",
      tenantId: tenantOf,
      resource: (n) => `${principalOf(n)} variable:read:x`,
    },
    denial: MANAGE_DENIED,
    missingTarget: "principalName",
    notFoundForMissingTenant: true,
    onInvalidNames: "INVALID_REQUEST",
  },
  {
    name: "IdentityService.ListGrants",
    requires: TENANT_ADMIN,
    serviceScoped: false,
    needs: ["principal", "grant"],
    call: (c, n) => c.identity.listGrants({ tenantId: n.tenantId }),
    denial: MANAGE_DENIED,
    notFoundForMissingTenant: true,
    onInvalidNames: "INVALID_REQUEST",
  },
  {
    name: "IdentityService.SetJwtConfig",
    requires: SERVER_ADMIN,
    serviceScoped: false,
    needs: [],
    call: (c, n) =>
      c.identity.setJwtConfig({
        tenantId: n.tenantId,
        config: { key: { case: "hsSecret", value: TABLE_JWT_SECRET } },
      }),
    audit: { action: "jwt.configure", tenantId: tenantOf, resource: tenantOf },
    denial: deniedOnTenant("jwt.configure"),
    notFoundForMissingTenant: true,
    onInvalidNames: "INVALID_REQUEST",
  },
  {
    name: "IdentityService.ListAuditEvents (one tenant)",
    requires: TENANT_ADMIN,
    serviceScoped: false,
    needs: [],
    call: (c, n) => c.identity.listAuditEvents({ tenantId: n.tenantId }),
    denial: deniedOnTenant("audit.read"),
    // Events outlive their tenant: asking for a tenant that is gone is no error.
    notFoundForMissingTenant: false,
    onInvalidNames: "ok",
  },
  {
    name: "IdentityService.ListAuditEvents (every tenant)",
    requires: SERVER_ADMIN,
    serviceScoped: false,
    needs: [],
    call: (c) => c.identity.listAuditEvents({}),
    denial: { action: "audit.read", tenantId: () => "", resource: () => "" },
    notFoundForMissingTenant: false,
    onInvalidNames: "ok",
  },
];

export const RPC_TABLE: readonly RpcCase[] = [...COMMY_SERVICE, ...IDENTITY_SERVICE];

/** Makes, as the server admin, what `needs` lists; fills in names.keyId. */
export async function prepare(
  server: ClientFactory,
  names: Names,
  needs: readonly Need[],
): Promise<void> {
  const commy = server.connectClient("connect", "1.1");
  const identity = server.identityClient();
  if (needs.includes("service")) await commy.createService(serviceRef(names));
  if (needs.includes("variable"))
    await commy.allocateVariable({ ...variableRef(names), initialData: bytes("first") });
  if (needs.includes("principal")) {
    await identity.createPrincipal({ tenantId: names.tenantId, name: names.principalName });
  }
  if (needs.includes("apiKey")) {
    const created = await identity.createApiKey({
      tenantId: names.tenantId,
      principalName: names.principalName,
    });
    names.keyId = created.key?.keyId ?? "";
  }
  if (needs.includes("grant")) {
    await identity.grantPermission({
      tenantId: names.tenantId,
      principalName: names.principalName,
      permission: WIRE_PERMISSION["variable:read"],
      servicePrefix: "x",
    });
  }
}

/** Names that are all invalid (each starts with '.'). */
export function invalidNames(): Names {
  return {
    tenantId: ".bad-tenant",
    serviceName: ".bad-service",
    variableName: ".bad-variable",
    principalName: ".bad-principal",
    keyId: ".bad-key",
    newTenantId: ".bad-new-tenant",
  };
}

/** A caller: its principal id, as audit events show it, and its clients. */
export interface Caller {
  principalId: string;
  clients: CallerClients;
}

/** A principal of `tenantId` with these grants, calling with its API key. */
export async function callerWith(
  server: ClientFactory,
  tenantId: string,
  name: string,
  grants: readonly GrantSpec[],
): Promise<Caller> {
  const actor = await createActor(server, tenantId, name, grants);
  return { principalId: actor.principalId, clients: clientsOf(server, actor.credentials) };
}

/** The server admin as a caller. */
export function serverAdminCaller(server: ClientFactory): Caller {
  return { principalId: "admin", clients: clientsOf(server, "admin") };
}

/** What an operator can see of a tenant (and which tenants there are), to compare around a refusal. */
export async function stateOf(server: ClientFactory, tenantId: string): Promise<unknown> {
  const commy = server.connectClient("connect", "1.1");
  const identity = server.identityClient();
  const tenants = (await commy.listTenants({ pageSize: 1000 })).tenants.map((t) => t.tenantId);
  if (!tenants.includes(tenantId)) return { tenants };
  const services: Record<string, string[]> = {};
  for (const { serviceName } of (await commy.listServices({ tenantId, pageSize: 1000 })).services) {
    const { variables } = await commy.listVariables({ tenantId, serviceName });
    services[serviceName] = [];
    for (const { variableName } of variables) {
      const read = await commy.readVariable({ tenantId, serviceName, variableName });
      services[serviceName].push(`${variableName}@${read.version}=${text(read.data)}`);
    }
  }
  const principals = (await identity.listPrincipals({ tenantId })).principals.map(
    (p) => `${p.name}${p.hasPassword ? " with password" : ""}`,
  );
  const apiKeys = (await identity.listApiKeys({ tenantId })).keys.map(
    (k) => `${k.keyId} of ${k.principalName}${k.revokedAt === undefined ? "" : " revoked"}`,
  );
  const grants = (await identity.listGrants({ tenantId })).grants.map(
    (g) => `${g.principalName} ${g.grant?.permission}:${g.grant?.servicePrefix}`,
  );
  return {
    tenants,
    services,
    principals,
    apiKeys,
    grants,
    jwt: await jwtAccepted(server, tenantId),
  };
}

/** Whether the tenant accepts a JWT signed with the secret SetJwtConfig sets in the table. */
async function jwtAccepted(server: ClientFactory, tenantId: string): Promise<boolean> {
  const token = await signJwt({ sub: "probe", exp: epochSeconds(60) }, bytes(TABLE_JWT_SECRET));
  return server
    .identityClient("none")
    .authenticate({ tenantId, credential: { case: "jwt", value: token } })
    .then(
      () => true,
      () => false,
    );
}

/** The clients of one caller. */
export function clientsOf(
  server: ClientFactory,
  credentials: Parameters<ClientFactory["identityClient"]>[0],
): CallerClients {
  return {
    commy: server.connectClient("connect", "1.1", { credentials }),
    identity: server.identityClient(credentials),
  };
}
