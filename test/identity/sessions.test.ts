/**
 * Sessions and the life of credentials (docs/security.md): Authenticate
 * with an API key, a password or a JWT (HS secret, PEM public key, local
 * JWKS file) gives a bearer token; RefreshToken swaps it; Logout, deleting
 * a principal, revoking a key and changing a password take effect on the
 * very next call; grant changes apply at once to tokens already in use; JWT
 * claims become grants of the tenant; deleting a tenant ends its sessions.
 */
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportJWK, generateKeyPair } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Grant } from "../../gen/commy/v1/identity_pb.js";
import {
  type Actor,
  type CredentialInit,
  type CryptoKey,
  type PermissionName,
  WIRE_PERMISSION,
  bytes,
  createActor,
  epochSeconds,
  expectDenied,
  expectUnauthorized,
  millisOf,
  signJwt,
  testAdminToken,
  text,
} from "../helpers/identity-fixtures.js";
import {
  type CommyClient,
  type Credentials,
  type IdentityClient,
  type TestServer,
  startTestServer,
} from "../helpers/test-server.js";

const HOUR_MS = 60 * 60 * 1000;
const HS_SECRET = "the-sessions-hs-secret-0123456789abcdef";
const PASSWORD = "alice-password-1";

let server: TestServer;
let anonymous: IdentityClient;
let identity: IdentityClient;
let admin: CommyClient;
let keyDir: string;
let tenantNumber = 0;
const pemKeys = generateKeyPairSync("ec", { namedCurve: "P-256" });
let jwksPrivateKey: CryptoKey;
let strangerPrivateKey: CryptoKey;

beforeAll(async () => {
  server = await startTestServer();
  anonymous = server.identityClient("none");
  identity = server.identityClient();
  admin = server.connectClient("connect", "1.1");
  keyDir = mkdtempSync(join(tmpdir(), "commy-identity-keys-"));
  const jwks = await generateKeyPair("RS256", { extractable: true });
  jwksPrivateKey = jwks.privateKey;
  strangerPrivateKey = (await generateKeyPair("RS256")).privateKey;
  const jwk = { ...(await exportJWK(jwks.publicKey)), kid: "key-1", alg: "RS256", use: "sig" };
  writeFileSync(join(keyDir, "jwks.json"), JSON.stringify({ keys: [jwk] }));
});

afterAll(async () => {
  await server.close();
  rmSync(keyDir, { recursive: true, force: true });
});

/** A fresh tenant with services "cfg-main" and "other", each holding variable "v" = "value". */
async function freshTenant(): Promise<string> {
  const tenantId = `s${++tenantNumber}`;
  await admin.createTenant({ tenantId });
  for (const serviceName of ["cfg-main", "other"]) {
    await admin.createService({ tenantId, serviceName });
    await admin.allocateVariable({
      tenantId,
      serviceName,
      variableName: "v",
      initialData: bytes("value"),
    });
  }
  return tenantId;
}

const readOf = (tenantId: string, serviceName: string) => ({
  tenantId,
  serviceName,
  variableName: "v",
});
const commyAs = (credentials: Credentials): CommyClient =>
  server.connectClient("connect", "1.1", { credentials });
const identityAs = (credentials: Credentials): IdentityClient => server.identityClient(credentials);
const bearer = (token: string): Credentials => ({ bearer: token });
const grantsOf = (grants: Grant[]) => grants.map((g) => [g.permission, g.servicePrefix]);
const readGrant = [[WIRE_PERMISSION["variable:read"], ""]];

async function login(tenantId: string, credential: CredentialInit): Promise<string> {
  return (await anonymous.authenticate({ tenantId, credential })).token;
}

const passwordOf = (username: string, password = PASSWORD): CredentialInit => ({
  case: "password",
  value: { username, password },
});

/** Works as a bearer: WhoAmI names the principal, and it may read but not write. */
async function expectWorkingReader(token: string, principalId: string, tenantId: string) {
  const me = await identityAs(bearer(token)).whoAmI({});
  expect(me.principal?.principalId).toBe(principalId);
  expect(me.principal?.tenantId).toBe(tenantId);
  expect(me.serverAdmin).toBe(false);
  expect(grantsOf(me.grants)).toEqual(readGrant);
  const read = await commyAs(bearer(token)).readVariable(readOf(tenantId, "cfg-main"));
  expect(text(read.data)).toBe("value");
  await expectDenied(
    commyAs(bearer(token)).writeVariable({ ...readOf(tenantId, "cfg-main"), data: bytes("x") }),
  );
}

describe("Authenticate gives a session token that works as a bearer", () => {
  type Method = (tenantId: string) => Promise<{ credential: CredentialInit; principalId: string }>;
  const reader = (tenantId: string, password = ""): Promise<Actor> =>
    createActor(server, tenantId, "reader", [{ permission: "variable:read" }], password);
  const jwtClaims = { sub: "robot", exp: epochSeconds(2 * 3600), permissions: ["variable:read"] };

  const methods: [string, Method][] = [
    [
      "an API key",
      async (tenantId) => ({
        credential: { case: "apiKey", value: (await reader(tenantId)).apiKey },
        principalId: `${tenantId}/reader`,
      }),
    ],
    [
      "a password",
      async (tenantId) => {
        await reader(tenantId, PASSWORD);
        return { credential: passwordOf("reader"), principalId: `${tenantId}/reader` };
      },
    ],
    [
      "a JWT signed with the tenant's HS secret",
      async (tenantId) => {
        await identity.setJwtConfig({
          tenantId,
          config: { key: { case: "hsSecret", value: HS_SECRET } },
        });
        const token = await signJwt(jwtClaims, bytes(HS_SECRET), { alg: "HS512" });
        return { credential: { case: "jwt", value: token }, principalId: `jwt:${tenantId}/robot` };
      },
    ],
    [
      "a JWT checked against the tenant's PEM public key",
      async (tenantId) => {
        const publicKeyPem = pemKeys.publicKey.export({ type: "spki", format: "pem" }).toString();
        await identity.setJwtConfig({
          tenantId,
          config: { key: { case: "publicKeyPem", value: publicKeyPem } },
        });
        const token = await signJwt(jwtClaims, pemKeys.privateKey, { alg: "ES256" });
        return { credential: { case: "jwt", value: token }, principalId: `jwt:${tenantId}/robot` };
      },
    ],
    [
      "a JWT checked against a local JWKS file",
      async (tenantId) => {
        await identity.setJwtConfig({
          tenantId,
          config: { key: { case: "jwksFile", value: join(keyDir, "jwks.json") } },
        });
        const token = await signJwt(jwtClaims, jwksPrivateKey, { alg: "RS256", kid: "key-1" });
        return { credential: { case: "jwt", value: token }, principalId: `jwt:${tenantId}/robot` };
      },
    ],
  ];

  it.each(methods)("with %s", async (_what, method) => {
    const tenantId = await freshTenant();
    const { credential, principalId } = await method(tenantId);
    const before = Date.now();
    const session = await anonymous.authenticate({ tenantId, credential });
    expect(session.token).toMatch(/^cs_[A-Za-z0-9_-]{43}$/);
    expect(session.principal?.principalId).toBe(principalId);
    expect(grantsOf(session.grants)).toEqual(readGrant);
    // One hour, the JWTs here living longer.
    const expiresAt = millisOf(session.expiresAt);
    expect(expiresAt).toBeGreaterThanOrEqual(before + HOUR_MS - 1000);
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + HOUR_MS + 1000);
    await expectWorkingReader(session.token, principalId, tenantId);
  });

  it("with a JWKS file, only for keys in the file", async () => {
    const tenantId = await freshTenant();
    await identity.setJwtConfig({
      tenantId,
      config: { key: { case: "jwksFile", value: join(keyDir, "jwks.json") } },
    });
    const stranger = await signJwt(jwtClaims, strangerPrivateKey, { alg: "RS256", kid: "key-1" });
    await expectUnauthorized(login(tenantId, { case: "jwt", value: stranger }));
  });

  it("ends no earlier and no later than the JWT it came from, when that is sooner", async () => {
    const tenantId = await freshTenant();
    await identity.setJwtConfig({
      tenantId,
      config: { key: { case: "hsSecret", value: HS_SECRET } },
    });
    const exp = epochSeconds(120);
    const token = await signJwt({ sub: "robot", exp }, bytes(HS_SECRET));
    const session = await anonymous.authenticate({
      tenantId,
      credential: { case: "jwt", value: token },
    });
    expect(millisOf(session.expiresAt)).toBe(exp * 1000);
  });
});

describe("WhoAmI", () => {
  it("shows a principal's grants, with their prefixes, and the server admin as such", async () => {
    const tenantId = await freshTenant();
    const actor = await createActor(server, tenantId, "mixed", [
      { permission: "service:read" },
      { permission: "variable:write", servicePrefix: "cfg" },
    ]);
    const me = await identityAs(actor.credentials).whoAmI({});
    expect(me.grants.map((g) => [g.tenantId, g.permission, g.servicePrefix])).toEqual([
      [tenantId, WIRE_PERMISSION["service:read"], ""],
      [tenantId, WIRE_PERMISSION["variable:write"], "cfg"],
    ]);
    const root = await identity.whoAmI({});
    expect(root.serverAdmin).toBe(true);
    expect(root.principal?.principalId).toBe("admin");
  });
});

describe("RefreshToken", () => {
  it("gives a new token with the same principal and grants; the old one stops working", async () => {
    const tenantId = await freshTenant();
    const actor = await createActor(server, tenantId, "reader", [{ permission: "variable:read" }]);
    const old = await login(tenantId, { case: "apiKey", value: actor.apiKey });
    await expectWorkingReader(old, actor.principalId, tenantId);
    const before = Date.now();
    const refreshed = await anonymous.refreshToken({ token: old });
    expect(refreshed.token).not.toBe(old);
    const expiresAt = millisOf(refreshed.expiresAt);
    expect(expiresAt).toBeGreaterThanOrEqual(before + HOUR_MS - 1000);
    await expectWorkingReader(refreshed.token, actor.principalId, tenantId);
    await expectUnauthorized(identityAs(bearer(old)).whoAmI({}));
    await expectUnauthorized(commyAs(bearer(old)).readVariable(readOf(tenantId, "cfg-main")));
    await expectUnauthorized(anonymous.refreshToken({ token: old }));
  });

  it("refuses what is not a session token: an API key, the admin token, nonsense", async () => {
    const tenantId = await freshTenant();
    const actor = await createActor(server, tenantId, "reader", []);
    for (const token of [actor.apiKey, testAdminToken(), "cs_nonsense", "", "x".repeat(5000)])
      await expectUnauthorized(anonymous.refreshToken({ token }));
    // The API key is untouched.
    await identityAs(actor.credentials).whoAmI({});
  });

  it("does not stretch a session past the JWT it came from", async () => {
    const tenantId = await freshTenant();
    await identity.setJwtConfig({
      tenantId,
      config: { key: { case: "hsSecret", value: HS_SECRET } },
    });
    const exp = epochSeconds(120);
    const jwt = await signJwt(
      { sub: "robot", exp, permissions: ["variable:read"] },
      bytes(HS_SECRET),
    );
    const session = await login(tenantId, { case: "jwt", value: jwt });
    const refreshed = await anonymous.refreshToken({ token: session });
    expect(millisOf(refreshed.expiresAt)).toBeLessThanOrEqual(exp * 1000);
  });
});

describe("Logout", () => {
  it("revokes the session at once; other sessions and the API key go on", async () => {
    const tenantId = await freshTenant();
    const actor = await createActor(server, tenantId, "reader", [{ permission: "variable:read" }]);
    const first = await login(tenantId, { case: "apiKey", value: actor.apiKey });
    const second = await login(tenantId, { case: "apiKey", value: actor.apiKey });
    await expectWorkingReader(first, actor.principalId, tenantId);
    await identityAs(bearer(first)).logout({});
    await expectUnauthorized(identityAs(bearer(first)).whoAmI({}));
    await expectUnauthorized(commyAs(bearer(first)).readVariable(readOf(tenantId, "cfg-main")));
    await expectUnauthorized(identityAs(bearer(first)).logout({}));
    await expectUnauthorized(anonymous.refreshToken({ token: first }));
    await expectWorkingReader(second, actor.principalId, tenantId);
    await expectWorkingReader(actor.apiKey, actor.principalId, tenantId);
  });

  it("needs a session token: with an API key it is UNAUTHORIZED and the key goes on", async () => {
    const tenantId = await freshTenant();
    const actor = await createActor(server, tenantId, "reader", [{ permission: "variable:read" }]);
    await expectUnauthorized(identityAs(actor.credentials).logout({}));
    await expectWorkingReader(actor.apiKey, actor.principalId, tenantId);
  });
});

describe("revocations take effect on the very next call", () => {
  /** A reader with a password, an API key and a session, each used once already. */
  async function readerInUse(tenantId: string) {
    const actor = await createActor(
      server,
      tenantId,
      "reader",
      [{ permission: "variable:read" }],
      PASSWORD,
    );
    const session = await login(tenantId, passwordOf("reader"));
    await expectWorkingReader(actor.apiKey, actor.principalId, tenantId);
    await expectWorkingReader(session, actor.principalId, tenantId);
    return { actor, session };
  }

  it("DeletePrincipal: its API key, its sessions and its password stop at once", async () => {
    const tenantId = await freshTenant();
    const { actor, session } = await readerInUse(tenantId);
    await identity.deletePrincipal({ tenantId, name: "reader" });
    for (const token of [actor.apiKey, session]) {
      await expectUnauthorized(commyAs(bearer(token)).readVariable(readOf(tenantId, "cfg-main")));
      await expectUnauthorized(identityAs(bearer(token)).whoAmI({}));
    }
    await expectUnauthorized(login(tenantId, passwordOf("reader")));
    await expectUnauthorized(login(tenantId, { case: "apiKey", value: actor.apiKey }));
    // A new principal of the same name inherits nothing.
    await identity.createPrincipal({ tenantId, name: "reader", password: PASSWORD });
    for (const token of [actor.apiKey, session])
      await expectUnauthorized(identityAs(bearer(token)).whoAmI({}));
    const fresh = await login(tenantId, passwordOf("reader"));
    expect((await identityAs(bearer(fresh)).whoAmI({})).grants).toEqual([]);
  });

  it("RevokeApiKey: that key stops at once, for calls and for Authenticate; other keys go on", async () => {
    const tenantId = await freshTenant();
    const { actor } = await readerInUse(tenantId);
    const { apiKey: otherKey } = await identity.createApiKey({ tenantId, principalName: "reader" });
    await identity.revokeApiKey({ tenantId, keyId: actor.keyId });
    await expectUnauthorized(commyAs(actor.credentials).readVariable(readOf(tenantId, "cfg-main")));
    await expectUnauthorized(identityAs(actor.credentials).whoAmI({}));
    await expectUnauthorized(login(tenantId, { case: "apiKey", value: actor.apiKey }));
    await expectWorkingReader(otherKey, actor.principalId, tenantId);
    const { keys } = await identity.listApiKeys({ tenantId });
    expect(keys.find((k) => k.keyId === actor.keyId)?.revokedAt).toBeDefined();
  });

  it("SetPassword: sessions end at once, the old password stops, the new one works", async () => {
    const tenantId = await freshTenant();
    const { actor, session } = await readerInUse(tenantId);
    await identity.setPassword({ tenantId, name: "reader", password: "a-new-password-2" });
    await expectUnauthorized(commyAs(bearer(session)).readVariable(readOf(tenantId, "cfg-main")));
    await expectUnauthorized(login(tenantId, passwordOf("reader")));
    const fresh = await login(tenantId, passwordOf("reader", "a-new-password-2"));
    await expectWorkingReader(fresh, actor.principalId, tenantId);
    // An API key is no session: it goes on.
    await expectWorkingReader(actor.apiKey, actor.principalId, tenantId);
  });
});

describe("grant changes apply at once to the same token", () => {
  it.each([
    ["an API key", "apiKey"],
    ["a session token", "session"],
  ])("held as %s", async (_what, kind) => {
    const tenantId = await freshTenant();
    const actor = await createActor(server, tenantId, "reader", [{ permission: "variable:read" }]);
    const token =
      kind === "apiKey"
        ? actor.apiKey
        : await login(tenantId, { case: "apiKey", value: actor.apiKey });
    const commy = commyAs(bearer(token));
    const change = { tenantId, principalName: "reader", servicePrefix: "" };
    await commy.readVariable(readOf(tenantId, "other"));

    await identity.revokePermission({ ...change, permission: WIRE_PERMISSION["variable:read"] });
    await expectDenied(commy.readVariable(readOf(tenantId, "other")));
    expect((await identityAs(bearer(token)).whoAmI({})).grants).toEqual([]);

    await identity.grantPermission({
      ...change,
      permission: WIRE_PERMISSION["variable:read"],
      servicePrefix: "cfg",
    });
    await commy.readVariable(readOf(tenantId, "cfg-main"));
    await expectDenied(commy.readVariable(readOf(tenantId, "other")));

    await identity.grantPermission({ ...change, permission: WIRE_PERMISSION["variable:write"] });
    await commy.writeVariable({ ...readOf(tenantId, "other"), data: bytes("written") });
    expect(grantsOf((await identityAs(bearer(token)).whoAmI({})).grants)).toEqual([
      [WIRE_PERMISSION["variable:read"], "cfg"],
      [WIRE_PERMISSION["variable:write"], ""],
    ]);
  });
});

describe("JWT claims map to permissions of the tenant", () => {
  async function jwtSession(
    claims: Record<string, unknown>,
    permissionsClaim = "",
  ): Promise<{ tenantId: string; token: string }> {
    const tenantId = await freshTenant();
    await identity.setJwtConfig({
      tenantId,
      config: { key: { case: "hsSecret", value: HS_SECRET }, permissionsClaim },
    });
    const jwt = await signJwt(
      { sub: "robot", exp: epochSeconds(600), ...claims },
      bytes(HS_SECRET),
    );
    return { tenantId, token: await login(tenantId, { case: "jwt", value: jwt }) };
  }

  const wire = (permission: PermissionName, prefix = ""): [number, string] => [
    WIRE_PERMISSION[permission],
    prefix,
  ];

  it('"variable:read" reads every service and nothing more', async () => {
    const { tenantId, token } = await jwtSession({ permissions: ["variable:read"] });
    const commy = commyAs(bearer(token));
    await commy.readVariable(readOf(tenantId, "cfg-main"));
    await commy.readVariable(readOf(tenantId, "other"));
    await expectDenied(commy.writeVariable({ ...readOf(tenantId, "other"), data: bytes("x") }));
    await expectDenied(commy.listServices({ tenantId }));
    await expectDenied(identityAs(bearer(token)).listPrincipals({ tenantId }));
  });

  it('"variable:read:cfg" reads the services of the prefix only', async () => {
    const { tenantId, token } = await jwtSession({ permissions: ["variable:read:cfg"] });
    const commy = commyAs(bearer(token));
    await commy.readVariable(readOf(tenantId, "cfg-main"));
    await expectDenied(commy.readVariable(readOf(tenantId, "other")));
    expect(grantsOf((await identityAs(bearer(token)).whoAmI({})).grants)).toEqual([
      wire("variable:read", "cfg"),
    ]);
  });

  it("ignores strings that are no permission, and a claim that is no list", async () => {
    const mixed = await jwtSession({
      permissions: ["root", "admin", "tenant:administrator", 42, "service:read"],
    });
    expect(grantsOf((await identityAs(bearer(mixed.token)).whoAmI({})).grants)).toEqual([
      wire("service:read"),
    ]);
    const notAList = await jwtSession({ permissions: "tenant:admin" });
    expect((await identityAs(bearer(notAList.token)).whoAmI({})).grants).toEqual([]);
  });

  it("reads the claim the tenant's settings name", async () => {
    const { token } = await jwtSession(
      { roles: ["variable:write:cfg"], permissions: ["tenant:admin"] },
      "roles",
    );
    expect(grantsOf((await identityAs(bearer(token)).whoAmI({})).grants)).toEqual([
      wire("variable:write", "cfg"),
    ]);
  });

  it('"tenant:admin" manages its own tenant and no other', async () => {
    const { tenantId, token } = await jwtSession({ permissions: ["tenant:admin"] });
    const other = await freshTenant();
    const asJwt = identityAs(bearer(token));
    await asJwt.createPrincipal({ tenantId, name: "made-by-a-jwt" });
    const { principals } = await identity.listPrincipals({ tenantId });
    expect(principals.map((p) => [p.name, p.createdBy])).toEqual([
      ["made-by-a-jwt", `jwt:${tenantId}/robot`],
    ]);
    await expectDenied(asJwt.createPrincipal({ tenantId: other, name: "intruder" }));
    await expectDenied(commyAs(bearer(token)).deleteTenant({ tenantId }));
  });
});

describe("deleting a tenant ends its sessions", () => {
  async function doomedTenant() {
    const tenantId = await freshTenant();
    await identity.setJwtConfig({
      tenantId,
      config: { key: { case: "hsSecret", value: HS_SECRET } },
    });
    const actor = await createActor(
      server,
      tenantId,
      "reader",
      [{ permission: "tenant:admin" }],
      PASSWORD,
    );
    const passwordSession = await login(tenantId, passwordOf("reader"));
    const jwt = await signJwt(
      { sub: "robot", exp: epochSeconds(600), permissions: ["tenant:admin"] },
      bytes(HS_SECRET),
    );
    const jwtSession = await login(tenantId, { case: "jwt", value: jwt });
    const tokens: [string, string][] = [
      ["the API key", actor.apiKey],
      ["the password session", passwordSession],
      ["the JWT session", jwtSession],
    ];
    for (const [, token] of tokens) await identityAs(bearer(token)).whoAmI({});
    return { tenantId, tokens };
  }

  async function expectAllUnauthorized(tokens: [string, string][]): Promise<void> {
    const survivors: string[] = [];
    for (const [what, token] of tokens) {
      await expectUnauthorized(identityAs(bearer(token)).whoAmI({})).catch(() =>
        survivors.push(what),
      );
    }
    expect(survivors, "credentials that still work").toEqual([]);
  }

  it("API keys, password sessions and JWT sessions stop at once", async () => {
    const { tenantId, tokens } = await doomedTenant();
    await admin.deleteTenant({ tenantId });
    await expectAllUnauthorized(tokens);
  });

  it("and a new tenant of the same name, with a principal of the same name, revives none", async () => {
    const { tenantId, tokens } = await doomedTenant();
    await admin.deleteTenant({ tenantId });
    await admin.createTenant({ tenantId });
    await identity.createPrincipal({ tenantId, name: "reader" });
    await expectAllUnauthorized(tokens);
  });

  it("and the new principal of the same name inherits none of the old one's grants", async () => {
    const tenantId = await freshTenant();
    const other = await freshTenant();
    const old = await createActor(server, tenantId, "reader", [{ permission: "tenant:admin" }]);
    // A failed login elsewhere: the key is checked, and its principal looked up.
    await expectUnauthorized(login(other, { case: "apiKey", value: old.apiKey }));
    await admin.deleteTenant({ tenantId });
    await admin.createTenant({ tenantId });
    const heir = await createActor(server, tenantId, "reader", []);
    expect((await identityAs(heir.credentials).whoAmI({})).grants).toEqual([]);
    await expectDenied(identityAs(heir.credentials).createPrincipal({ tenantId, name: "x" }));
  });
});
