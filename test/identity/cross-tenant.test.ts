/**
 * Tenant isolation (docs/security.md, threat model): a principal of tenant
 * alpha — even alpha's tenant admin, or one holding every permission, with
 * an API key or a JWT session — gets PERMISSION_DENIED for every call on
 * tenant beta: never NOT_FOUND, never data, whether or not the service,
 * variable, principal or key it names exists. Generated from the RPC table.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type AuditTail,
  PERMISSION_NAMES,
  WIRE_PERMISSION,
  auditFields,
  bytes,
  createActor,
  createAuditTail,
  epochSeconds,
  expectDenied,
  expectNotFound,
  expectUnauthorized,
  signJwt,
} from "../helpers/identity-fixtures.js";
import { type TestServer, startTestServer } from "../helpers/test-server.js";
import {
  type Caller,
  type Names,
  RPC_TABLE,
  callerWith,
  clientsOf,
  prepare,
  stateOf,
} from "./rpc-table.js";

const ALPHA_JWT_SECRET = "alpha's-jwt-secret-0123456789abcdef";

/** Beta's things, all of which exist. */
const EXISTING: Names = {
  tenantId: "beta",
  serviceName: "ledger",
  variableName: "balance",
  principalName: "bob",
  keyId: "",
  newTenantId: "beta",
};

/** Names in beta that point at nothing (and a tenant id not taken yet). */
const MISSING: Names = {
  tenantId: "beta",
  serviceName: "no-such-service",
  variableName: "no-such-variable",
  principalName: "no-such-principal",
  keyId: "0123456789abcdef",
  newTenantId: "beta-2",
};

let server: TestServer;
let audit: AuditTail;
let betaState: unknown;
let bobKey: string;
const actors: Record<string, Caller> = {};

beforeAll(async () => {
  server = await startTestServer();
  const admin = server.connectClient("connect", "1.1");
  await admin.createTenant({ tenantId: "alpha" });
  await admin.createTenant({ tenantId: "beta" });
  await prepare(server, EXISTING, ["service", "variable", "principal", "apiKey", "grant"]);
  const bob = await createActor(server, "beta", "bob-2", [{ permission: "variable:read" }]);
  bobKey = bob.apiKey;
  // alpha has its own service of the same name as beta's.
  await admin.createService({ tenantId: "alpha", serviceName: "ledger" });

  actors["alpha's tenant admin (API key)"] = await callerWith(server, "alpha", "root", [
    { permission: "tenant:admin" },
  ]);
  actors["an alpha principal with every permission (API key)"] = await callerWith(
    server,
    "alpha",
    "all",
    PERMISSION_NAMES.map((permission) => ({ permission })),
  );
  await server.identityClient().setJwtConfig({
    tenantId: "alpha",
    config: { key: { case: "hsSecret", value: ALPHA_JWT_SECRET } },
  });
  const jwt = await signJwt(
    { sub: "ops", exp: epochSeconds(600), permissions: ["tenant:admin"] },
    bytes(ALPHA_JWT_SECRET),
  );
  const session = await server
    .identityClient("none")
    .authenticate({ tenantId: "alpha", credential: { case: "jwt", value: jwt } });
  actors["alpha's tenant admin (JWT session)"] = {
    principalId: "jwt:alpha/ops",
    clients: clientsOf(server, { bearer: session.token }),
  };
  betaState = await stateOf(server, "beta");
  audit = createAuditTail(server);
});

afterAll(async () => {
  await server.close();
});

/** What a refusal must not say: whether the thing exists. */
const EXISTENCE_HINT = /does not exist|already exists|not found|unknown/i;

describe.each(actorNames())("%s", (actorName) => {
  it.each(RPC_TABLE.map((row) => [row.name, row] as const))(
    "%s on tenant beta is PERMISSION_DENIED, for things that exist and things that do not",
    async (_name, row) => {
      const actor = actors[actorName] as Caller;
      await audit.mark();
      const messages: string[] = [];
      for (const names of [EXISTING, MISSING]) {
        const refusal = await expectDenied(row.call(actor.clients, names));
        expect(refusal.message).not.toMatch(EXISTENCE_HINT);
        messages.push(refusal.message.replaceAll(/\S+/g, (word) => normalise(word)));
      }
      // The refusal reads the same whether or not the thing exists.
      expect(messages[0]).toBe(messages[1]);
      const events = await audit.since({ principalId: actor.principalId });
      expect(events.map((e) => [e.outcome, e.detail, e.tenantId])).toEqual(
        [EXISTING, MISSING].map((n) => ["denied", "PERMISSION_DENIED", row.denial.tenantId(n)]),
      );
    },
  );
});

// Last in the file: after every call above was refused, beta is as it was.
describe("after all of alpha's attempts", () => {
  it("beta is unchanged", async () => {
    expect(await stateOf(server, "beta")).toEqual(betaState);
  });
});

/** The actors' names, known before beforeAll fills `actors` (describe.each runs at collection). */
function actorNames(): string[] {
  return [
    "alpha's tenant admin (API key)",
    "an alpha principal with every permission (API key)",
    "alpha's tenant admin (JWT session)",
  ];
}

/** Replaces the names a test chose (existing or missing) by a placeholder. */
function normalise(word: string): string {
  const chosen = new Set(
    [EXISTING, MISSING].flatMap((n) => [
      n.serviceName,
      n.variableName,
      n.principalName,
      n.keyId,
      n.newTenantId,
    ]),
  );
  return chosen.has(word) ? "<name>" : word;
}

describe("alpha's tenant admin and beta", () => {
  const root = (): Caller => actors["alpha's tenant admin (API key)"] as Caller;

  it("sees only alpha in ListTenants", async () => {
    const { tenants } = await root().clients.commy.listTenants({});
    expect(tenants.map((t) => t.tenantId)).toEqual(["alpha"]);
  });

  it("cannot revoke beta's API key through its own tenant, and the key keeps working", async () => {
    const { keys } = await server.identityClient().listApiKeys({ tenantId: "beta" });
    const bobsKey = keys.find((k) => k.principalName === "bob-2");
    await expectNotFound(
      root().clients.identity.revokeApiKey({ tenantId: "alpha", keyId: bobsKey?.keyId ?? "" }),
    );
    const bob = server.identityClient({ bearer: bobKey });
    expect((await bob.whoAmI({})).principal?.principalId).toBe("beta/bob-2");
    const { keys: after } = await server.identityClient().listApiKeys({ tenantId: "beta" });
    expect(after.find((k) => k.keyId === bobsKey?.keyId)?.revokedAt).toBeUndefined();
  });

  it("manages its own principal of the same name as beta's without touching beta's", async () => {
    const identity = root().clients.identity;
    await identity.createPrincipal({ tenantId: "alpha", name: "bob-2" });
    await identity.grantPermission({
      tenantId: "alpha",
      principalName: "bob-2",
      permission: WIRE_PERMISSION["tenant:admin"],
      servicePrefix: "",
    });
    await identity.deletePrincipal({ tenantId: "alpha", name: "bob-2" });
    const bob = await server.identityClient({ bearer: bobKey }).whoAmI({});
    expect(bob.grants.map((g) => [g.tenantId, g.permission])).toEqual([
      ["beta", WIRE_PERMISSION["variable:read"]],
    ]);
  });

  it("sees only alpha's events in alpha's audit log", async () => {
    const { events } = await root().clients.identity.listAuditEvents({
      tenantId: "alpha",
      pageSize: 1000,
    });
    expect(events.length).toBeGreaterThan(0);
    expect(new Set(events.map((e) => e.tenantId))).toEqual(new Set(["alpha"]));
  });

  it("reads and writes alpha's service, never beta's of the same name", async () => {
    const commy = root().clients.commy;
    await commy.allocateVariable({
      tenantId: "alpha",
      serviceName: "ledger",
      variableName: "balance",
      initialData: bytes("alpha's"),
    });
    const read = await server
      .connectClient("connect", "1.1")
      .readVariable({ tenantId: "beta", serviceName: "ledger", variableName: "balance" });
    expect(new TextDecoder().decode(read.data)).toBe("first");
  });

  it("cannot authenticate to beta with an alpha API key", async () => {
    const alphaKey = await createActor(server, "alpha", "visitor", []);
    const refusal = await expectUnauthorized(
      server
        .identityClient("none")
        .authenticate({ tenantId: "beta", credential: { case: "apiKey", value: alphaKey.apiKey } }),
    );
    expect(refusal.message).toBe("invalid credentials");
  });

  it("leaves only denied events in beta's audit log for alpha's principals", async () => {
    const { events } = await server.identityClient().listAuditEvents({
      tenantId: "beta",
      pageSize: 1000,
    });
    const byAlpha = events.filter((e) => /^(alpha\/|jwt:alpha\/)/.test(e.principalId));
    expect(byAlpha.length).toBeGreaterThan(0);
    expect(new Set(byAlpha.map((e) => auditFields(e).outcome))).toEqual(new Set(["denied"]));
  });
});
