/**
 * Who may do what, with the exact errors: the server admin sets up a
 * tenant with two services and two principals, each with an API key —
 * a read-only "reader" limited to services named config…, and a "creator"
 * that may create services and write variables but not read them back.
 * Then each of them tries things, allowed and not.
 *
 *   COMMY_URL=http://127.0.0.1:8080 COMMY_TOKEN=$(cat commy-data/admin-token) \
 *     node --import tsx examples/permissions.ts
 */
import { Agent } from "node:http";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { IdentityService, Permission } from "../gen/commy/v1/identity_pb.js";
import { createCommyClient } from "../src/client/index.js";
import { decode, encode, freshTenantId, serverFromEnvironment } from "./environment.js";
import { check, expectAllowed, expectRefused } from "./expectations.js";

const { baseUrl, token } = serverFromEnvironment();
const admin = createCommyClient({ baseUrl, token });
const tenantId = freshTenantId("permissions");

// Principals, grants and API keys are managed through IdentityService
// (the TypeScript client has no methods for them yet: use the generated client).
const agent = new Agent({ keepAlive: true });
const identity = createClient(
  IdentityService,
  createConnectTransport({
    baseUrl,
    httpVersion: "1.1",
    nodeOptions: { agent },
    interceptors: [
      (next) => (request) => {
        request.header.set("authorization", `Bearer ${token}`);
        return next(request);
      },
    ],
  }),
);

console.log(`admin: set up tenant ${tenantId}`);
await admin.createTenant(tenantId, "Permissions example");
const maxConnections = { tenantId, serviceName: "config", variableName: "max_connections" };
const dbPassword = { tenantId, serviceName: "secrets", variableName: "db_password" };
await admin.createService(maxConnections);
await admin.createService(dbPassword);
await admin.allocateVariable(maxConnections, { initialData: encode("100") });
await admin.allocateVariable(dbPassword, { initialData: encode("hunter2") });

// A read-only principal: it may read services whose names start with "config".
await identity.createPrincipal({ tenantId, name: "reader" });
for (const permission of [Permission.SERVICE_READ, Permission.VARIABLE_READ]) {
  await identity.grantPermission({
    tenantId,
    principalName: "reader",
    permission,
    servicePrefix: "config",
  });
}
const readerKey = (await identity.createApiKey({ tenantId, principalName: "reader" })).apiKey;

// A creator: it may create services and write variables, in every service of the tenant.
await identity.createPrincipal({ tenantId, name: "creator" });
for (const permission of [Permission.SERVICE_CREATE, Permission.VARIABLE_WRITE]) {
  await identity.grantPermission({ tenantId, principalName: "creator", permission });
}
const creatorKey = (await identity.createApiKey({ tenantId, principalName: "creator" })).apiKey;

console.log("reader (service:read and variable:read on config…):");
const reader = createCommyClient({ baseUrl, token: readerKey });
const value = await expectAllowed(
  "read config/max_connections",
  reader.readVariable(maxConnections),
);
check(decode(value.data) === "100", "the reader reads the value");
const visible = await expectAllowed("list services", reader.listServices(tenantId));
check(
  visible.items.map((s) => s.serviceName).join() === "config",
  "a listing shows only the services the reader may read",
);
await expectRefused(
  "PERMISSION_DENIED",
  "read secrets/db_password (outside its prefix)",
  reader.readVariable(dbPassword),
);
await expectRefused(
  "PERMISSION_DENIED",
  "write config/max_connections",
  reader.writeVariable(maxConnections, encode("1000")),
);
await expectRefused(
  "PERMISSION_DENIED",
  "create a service",
  reader.createService({ tenantId, serviceName: "config-2" }),
);
await expectRefused(
  "NOT_FOUND",
  "read config/missing (permitted, but absent)",
  reader.readVariable({ tenantId, serviceName: "config", variableName: "missing" }),
);
await expectRefused(
  "PERMISSION_DENIED",
  "read in a tenant it has no grant in (whether it exists or not)",
  reader.readVariable({ ...maxConnections, tenantId: "no-such-tenant" }),
);

console.log("creator (service:create and variable:write):");
const creator = createCommyClient({ baseUrl, token: creatorKey });
const scratch = { tenantId, serviceName: "scratch", variableName: "note" };
await expectAllowed("create service scratch", creator.createService(scratch));
await expectAllowed("allocate scratch/note", creator.allocateVariable(scratch));
await expectAllowed("write scratch/note", creator.writeVariable(scratch, encode("draft")));
await expectRefused(
  "PERMISSION_DENIED",
  "read scratch/note (writing does not imply reading)",
  creator.readVariable(scratch),
);
await expectRefused("PERMISSION_DENIED", "delete service scratch", creator.deleteService(scratch));
await expectRefused(
  "ALREADY_EXISTS",
  "create service config (permitted, but it exists)",
  creator.createService({ tenantId, serviceName: "config" }),
);

console.log("callers without valid credentials:");
const anonymous = createCommyClient({ baseUrl });
await expectRefused("UNAUTHORIZED", "read with no token", anonymous.readVariable(maxConnections));
const forger = createCommyClient({ baseUrl, token: "ck_made_up" });
await expectRefused("UNAUTHORIZED", "read with a made-up key", forger.readVariable(maxConnections));

// An API key can also be exchanged for a short-lived session token.
const session = await reader.authenticate(tenantId, { apiKey: readerKey });
const grants = session.grants.map((g) => `${g.permission}:${g.servicePrefix}`).sort();
console.log(`reader session ${session.principalId}: ${grants.join(", ")}`);
check(grants.join() === "service:read:config,variable:read:config", "the session's grants");

// The server admin may do everything, including deleting what others made.
console.log("admin:");
await expectAllowed("read secrets/db_password", admin.readVariable(dbPassword));
await expectAllowed("delete service scratch", admin.deleteService(scratch));
const audit = await identity.listAuditEvents({ tenantId, pageSize: 1000 });
const denied = audit.events.filter((event) => event.outcome === "denied");
console.log(`  the audit log holds ${denied.length} denials in ${tenantId}`);
check(denied.length >= 5, "every denial is audited");
await expectAllowed("delete the tenant", admin.deleteTenant(tenantId));

for (const client of [admin, reader, creator, anonymous, forger]) client.close();
agent.destroy();
console.log("permissions example: ok");
