/**
 * Bad credentials of every kind are UNAUTHORIZED — from Authenticate with
 * the same "invalid credentials" whatever was wrong (a wrong secret reads
 * like an unknown key, a wrong password like an unknown user), and as a
 * bearer token with the same "authentication required". None of them
 * disturbs the server. Custom credentials are refused without a verifier
 * and decided by the verifier when the server has one.
 */
import { generateKeyPairSync } from "node:crypto";
import { UnsecuredJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CustomVerifier } from "../../src/core/identity.js";
import {
  type Actor,
  type CredentialInit,
  WIRE_PERMISSION,
  bytes,
  createActor,
  epochSeconds,
  expectDenied,
  expectInvalid,
  expectUnauthorized,
  signJwt,
  startServerWithExtras,
  testAdminToken,
} from "../helpers/identity-fixtures.js";
import {
  type Credentials,
  type IdentityClient,
  type TestServer,
  startTestServer,
} from "../helpers/test-server.js";

const INVALID_CREDENTIALS = "invalid credentials";
const AUTHENTICATION_REQUIRED = "authentication required: send valid credentials";
const JWT_SECRET = "acme's-jwt-secret-0123456789abcdefgh";
const JWT_CLAIMS = { iss: "https://issuer.example", aud: "commy" };
const ALICE_PASSWORD = "alice-password-1";

let server: TestServer;
let anonymous: IdentityClient;
let alice: Actor;
let revoked: Actor;
let olga: Actor;
let aliceSession: string;
const pem = generateKeyPairSync("ec", { namedCurve: "P-256" });
const publicKeyPem = pem.publicKey.export({ type: "spki", format: "pem" }).toString();

const apiKey = (value: string): CredentialInit => ({ case: "apiKey", value });
const password = (username: string, pass: string): CredentialInit => ({
  case: "password",
  value: { username, password: pass },
});
const jwt = (value: string): CredentialInit => ({ case: "jwt", value });

/** A JWT for acme as its settings want it, with `claims` on top. */
const acmeJwt = (claims: Record<string, unknown> = {}, secret = JWT_SECRET): Promise<string> =>
  signJwt({ sub: "svc-bot", exp: epochSeconds(300), ...JWT_CLAIMS, ...claims }, bytes(secret));

beforeAll(async () => {
  server = await startTestServer();
  anonymous = server.identityClient("none");
  const admin = server.connectClient("connect", "1.1");
  const identity = server.identityClient();
  for (const tenantId of ["acme", "other", "nojwt", "pem"]) await admin.createTenant({ tenantId });
  alice = await createActor(
    server,
    "acme",
    "alice",
    [{ permission: "tenant:admin" }],
    ALICE_PASSWORD,
  );
  revoked = await createActor(server, "acme", "revoked", [{ permission: "tenant:admin" }]);
  await identity.revokeApiKey({ tenantId: "acme", keyId: revoked.keyId });
  olga = await createActor(
    server,
    "other",
    "olga",
    [{ permission: "tenant:admin" }],
    "olga-password-1",
  );
  await identity.createPrincipal({ tenantId: "acme", name: "nopass" });
  await identity.setJwtConfig({
    tenantId: "acme",
    config: {
      key: { case: "hsSecret", value: JWT_SECRET },
      issuer: JWT_CLAIMS.iss,
      audience: JWT_CLAIMS.aud,
    },
  });
  await identity.setJwtConfig({
    tenantId: "pem",
    config: { key: { case: "publicKeyPem", value: publicKeyPem } },
  });
  aliceSession = (
    await anonymous.authenticate({ tenantId: "acme", credential: apiKey(alice.apiKey) })
  ).token;
});

afterAll(async () => {
  await server.close();
});

/** Every wrong credential: [what, tenant, credential]. */
async function badCredentials(): Promise<[string, string, CredentialInit][]> {
  const secretOf = (key: string): string => key.split("_").slice(2).join("_");
  const otherSecret = "another-secret-of-32-characters-or-more";
  return [
    ["an API key with a wrong secret", "acme", apiKey(`ck_${alice.keyId}_${"B".repeat(43)}`)],
    [
      "an API key with an unknown id",
      "acme",
      apiKey(`ck_${"f".repeat(16)}_${secretOf(alice.apiKey)}`),
    ],
    ["a malformed API key", "acme", apiKey("not-a-key")],
    ["an API key prefix alone", "acme", apiKey("ck_")],
    ["an API key without its secret", "acme", apiKey(`ck_${alice.keyId}`)],
    ["an empty API key", "acme", apiKey("")],
    ["a 20,000-character API key", "acme", apiKey(`ck_${"A".repeat(20_000)}`)],
    ["a revoked API key", "acme", apiKey(revoked.apiKey)],
    ["an API key of another tenant", "acme", apiKey(olga.apiKey)],
    ["a session token as API key", "acme", apiKey(aliceSession)],
    ["a valid API key for a tenant that does not exist", "no-such-tenant", apiKey(alice.apiKey)],
    ["a valid API key for an invalid tenant name", ".acme", apiKey(alice.apiKey)],
    ["a wrong password", "acme", password("alice", "wrong-password-1")],
    ["an unknown user", "acme", password("mallory", ALICE_PASSWORD)],
    ["a principal without a password", "acme", password("nopass", "any-password-at-all")],
    ["an empty password", "acme", password("alice", "")],
    ["an invalid username", "acme", password("../alice", ALICE_PASSWORD)],
    ["a 5,000-character password", "acme", password("alice", "p".repeat(5000))],
    ["another tenant's user and password", "acme", password("olga", "olga-password-1")],
    ["the username in another case", "acme", password("Alice", ALICE_PASSWORD)],
    [
      "a password for a tenant that does not exist",
      "no-such-tenant",
      password("alice", ALICE_PASSWORD),
    ],
    ["a malformed JWT", "acme", jwt("not.a.jwt")],
    ["a JWT that is not even dotted", "acme", jwt("garbage")],
    ["an empty JWT", "acme", jwt("")],
    ["an expired JWT", "acme", jwt(await acmeJwt({ exp: epochSeconds(-60) }))],
    ["a JWT not valid yet", "acme", jwt(await acmeJwt({ nbf: epochSeconds(3600) }))],
    ["a JWT with a wrong signature", "acme", jwt(await acmeJwt({}, otherSecret))],
    ["a JWT for another audience", "acme", jwt(await acmeJwt({ aud: "someone-else" }))],
    ["a JWT of another issuer", "acme", jwt(await acmeJwt({ iss: "https://evil.example" }))],
    ["a JWT without sub", "acme", jwt(await acmeJwt({ sub: undefined }))],
    ["a JWT with an empty sub", "acme", jwt(await acmeJwt({ sub: "" }))],
    ["a JWT without exp", "acme", jwt(await acmeJwt({ exp: undefined }))],
    [
      "an unsigned JWT (alg none)",
      "acme",
      jwt(new UnsecuredJWT({ sub: "svc-bot", exp: epochSeconds(300), ...JWT_CLAIMS }).encode()),
    ],
    ["a 20,000-character JWT", "acme", jwt(await acmeJwt({ pad: "x".repeat(20_000) }))],
    ["a JWT to a tenant without JWT settings", "nojwt", jwt(await acmeJwt())],
    ["a JWT to a tenant that does not exist", "no-such-tenant", jwt(await acmeJwt())],
    [
      "an ES256 JWT of an unknown key to a tenant with an HS secret",
      "acme",
      jwt(
        await signJwt(
          { sub: "svc-bot", exp: epochSeconds(300), ...JWT_CLAIMS },
          generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey,
          { alg: "ES256" },
        ),
      ),
    ],
    [
      "an HS256 JWT keyed with the tenant's public key (algorithm confusion)",
      "pem",
      jwt(await signJwt({ sub: "svc-bot", exp: epochSeconds(300) }, bytes(publicKeyPem))),
    ],
    [
      "custom credentials on a server without a verifier",
      "acme",
      { case: "customJson", value: "{}" },
    ],
  ];
}

describe("Authenticate", () => {
  it("refuses every bad credential with UNAUTHORIZED and the same message, and goes on", async () => {
    const cases = await badCredentials();
    for (const [what, tenantId, credential] of cases) {
      const refusal = await expectUnauthorized(
        anonymous.authenticate({ tenantId, credential }),
      ).catch((failure: unknown) => {
        throw new Error(`${what}: ${String(failure)}`);
      });
      expect(refusal.message, what).toBe(INVALID_CREDENTIALS);
    }
    // None of that disturbed the server: good credentials still work.
    const byPassword = await anonymous.authenticate({
      tenantId: "acme",
      credential: password("alice", ALICE_PASSWORD),
    });
    expect(byPassword.principal?.principalId).toBe("acme/alice");
    const byJwt = await anonymous.authenticate({
      tenantId: "acme",
      credential: jwt(await acmeJwt()),
    });
    expect(byJwt.principal?.principalId).toBe("jwt:acme/svc-bot");
    expect((await server.identityClient().whoAmI({})).serverAdmin).toBe(true);
  });

  it("refuses them even when the call carries the server admin's Authorization header", async () => {
    const asAdmin = server.identityClient("admin");
    for (const [what, tenantId, credential] of (await badCredentials()).slice(0, 3)) {
      const refusal = await expectUnauthorized(asAdmin.authenticate({ tenantId, credential }));
      expect(refusal.message, what).toBe(INVALID_CREDENTIALS);
    }
  });

  it("asks for credentials when none are given (INVALID_REQUEST, not a failed login)", async () => {
    await expectInvalid(anonymous.authenticate({ tenantId: "acme" }));
  });
});

describe("as a bearer token", () => {
  /** Every bad bearer token: [what, token]. */
  async function badBearers(): Promise<[string, string][]> {
    const identity = server.identityClient();
    const loggedOut = (
      await anonymous.authenticate({ tenantId: "acme", credential: apiKey(alice.apiKey) })
    ).token;
    await server.identityClient({ bearer: loggedOut }).logout({});
    const refreshedAway = (
      await anonymous.authenticate({ tenantId: "acme", credential: apiKey(alice.apiKey) })
    ).token;
    await anonymous.refreshToken({ token: refreshedAway });
    const goneKey = await createActor(server, "acme", "gone", [{ permission: "tenant:admin" }]);
    await identity.deletePrincipal({ tenantId: "acme", name: "gone" });
    const admin = testAdminToken();
    return [
      ["an API key with a wrong secret", `ck_${alice.keyId}_${"B".repeat(43)}`],
      ["an API key with an unknown id", `ck_${"f".repeat(16)}_${"C".repeat(43)}`],
      ["a malformed API key", "ck_nonsense"],
      ["a revoked API key", revoked.apiKey],
      ["the API key of a deleted principal", goneKey.apiKey],
      ["a made-up session token", `cs_${"D".repeat(43)}`],
      ["a logged-out session token", loggedOut],
      ["a session token that was refreshed", refreshedAway],
      ["a JWT (it goes to Authenticate, not into the header)", await acmeJwt()],
      [
        "the admin token with one character changed",
        `${admin.slice(0, -1)}${admin.endsWith("0") ? "1" : "0"}`,
      ],
      ["a username:password pair", `alice:${ALICE_PASSWORD}`],
      ["an 8,000-character token", "x".repeat(8000)],
    ];
  }

  it("is UNAUTHORIZED, with the same message, for every bad token", async () => {
    for (const [what, token] of await badBearers()) {
      const credentials: Credentials = { bearer: token };
      for (const call of [
        () => server.identityClient(credentials).whoAmI({}),
        () =>
          server.connectClient("connect", "1.1", { credentials }).getTenant({ tenantId: "acme" }),
        () => server.connectClient("grpc", "2", { credentials }).listTenants({}),
      ]) {
        const refusal = await expectUnauthorized(call()).catch((failure: unknown) => {
          throw new Error(`${what}: ${String(failure)}`);
        });
        expect(refusal.message, what).toBe(AUTHENTICATION_REQUIRED);
      }
    }
    // The good ones still work.
    const me = await server.identityClient(alice.credentials).whoAmI({});
    expect(me.principal?.principalId).toBe("acme/alice");
  });
});

describe("custom credentials with a verifier", () => {
  let custom: TestServer;
  let customAnonymous: IdentityClient;
  const seen: { tenantId: string; data: unknown }[] = [];

  /** Accepts carol of acme with her secret; misbehaves on request. */
  const verifier: CustomVerifier = {
    verify: async (input) => {
      seen.push(input);
      const data = input.data as { user?: string; secret?: string; mode?: string } | null;
      if (data?.mode === "throw") throw new Error("the verifier fell over");
      if (data?.mode === "empty-subject") return { subject: "", permissions: ["tenant:admin"] };
      if (data?.mode === "bad-subject")
        return { subject: 42 as unknown as string, permissions: ["tenant:admin"] };
      if (input.tenantId === "acme" && data?.user === "carol" && data.secret === "open-sesame")
        return { subject: "carol", permissions: ["variable:read:cfg", "no-such-permission"] };
      return undefined;
    },
  };

  beforeAll(async () => {
    custom = await startServerWithExtras({ customVerifier: verifier });
    customAnonymous = custom.identityClient("none");
    const admin = custom.connectClient("connect", "1.1");
    for (const tenantId of ["acme", "other"]) await admin.createTenant({ tenantId });
    for (const serviceName of ["cfg-main", "secret"]) {
      await admin.createService({ tenantId: "acme", serviceName });
      await admin.allocateVariable({
        tenantId: "acme",
        serviceName,
        variableName: "v",
        initialData: bytes("value"),
      });
    }
  });

  afterAll(async () => {
    await custom.close();
  });

  const customJson = (value: unknown): CredentialInit => ({
    case: "customJson",
    value: JSON.stringify(value),
  });

  it("authenticates what the verifier accepts, with the permissions it names", async () => {
    const session = await customAnonymous.authenticate({
      tenantId: "acme",
      credential: customJson({ user: "carol", secret: "open-sesame" }),
    });
    expect(seen.at(-1)).toEqual({
      tenantId: "acme",
      data: { user: "carol", secret: "open-sesame" },
    });
    const me = await custom.identityClient({ bearer: session.token }).whoAmI({});
    expect(me.principal?.principalId).toBe("custom:acme/carol");
    expect(me.grants.map((g) => [g.tenantId, g.permission, g.servicePrefix])).toEqual([
      ["acme", WIRE_PERMISSION["variable:read"], "cfg"],
    ]);
    const commy = custom.connectClient("connect", "1.1", {
      credentials: { bearer: session.token },
    });
    const read = await commy.readVariable({
      tenantId: "acme",
      serviceName: "cfg-main",
      variableName: "v",
    });
    expect(new TextDecoder().decode(read.data)).toBe("value");
    await expectDenied(
      commy.readVariable({ tenantId: "acme", serviceName: "secret", variableName: "v" }),
    );
  });

  it.each<[string, string, CredentialInit]>([
    ["a wrong secret", "acme", customJson({ user: "carol", secret: "wrong" })],
    ["an unknown user", "acme", customJson({ user: "dave", secret: "open-sesame" })],
    [
      "good credentials for another tenant",
      "other",
      customJson({ user: "carol", secret: "open-sesame" }),
    ],
    ["a verifier that throws", "acme", customJson({ mode: "throw" })],
    ["a verifier that returns an empty subject", "acme", customJson({ mode: "empty-subject" })],
    [
      "a verifier that returns a subject that is no string",
      "acme",
      customJson({ mode: "bad-subject" }),
    ],
    ["JSON null", "acme", { case: "customJson", value: "null" }],
    ["a JSON number", "acme", { case: "customJson", value: "42" }],
    [
      "a tenant that does not exist",
      "no-such-tenant",
      customJson({ user: "carol", secret: "open-sesame" }),
    ],
  ])("refuses %s with UNAUTHORIZED", async (_what, tenantId, credential) => {
    const refusal = await expectUnauthorized(
      customAnonymous.authenticate({ tenantId, credential }),
    );
    expect(refusal.message).toBe(INVALID_CREDENTIALS);
    expect((await custom.identityClient().whoAmI({})).serverAdmin).toBe(true);
  });

  it("rejects custom_json that is not JSON as a malformed request", async () => {
    await expectInvalid(
      customAnonymous.authenticate({
        tenantId: "acme",
        credential: { case: "customJson", value: "{" },
      }),
    );
  });
});
