/**
 * Session lifetimes (docs/security.md, token lifetimes): a session token
 * lives one hour, or until the JWT it came from expires if that is sooner;
 * a refreshed token lives an hour from the refresh; API keys and the admin
 * token do not expire; expiry holds across a restart.
 *
 * The server has no option for a shorter session lifetime (ServerExtras
 * passes none to Identity), so instead of waiting an hour this file runs
 * the server on a fake wall clock: only Date is faked (timers and I/O are
 * real), installed before the server starts so that every part of it reads
 * the same clock, and moved by the test.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import {
  type Actor,
  type CredentialInit,
  bytes,
  createActor,
  epochSeconds,
  expectUnauthorized,
  millisOf,
  signJwt,
} from "../helpers/identity-fixtures.js";
import {
  type Credentials,
  type IdentityClient,
  type TestDataDir,
  type TestServer,
  createTestDataDir,
  startTestServer,
} from "../helpers/test-server.js";

const HOUR_MS = 60 * 60 * 1000;
const HS_SECRET = "the-expiry-hs-secret-0123456789abcdefgh";
const START = new Date("2031-03-04T05:06:07.000Z").getTime();

let dataDir: TestDataDir;
let server: TestServer;
let anonymous: IdentityClient;
let reader: Actor;
let tenantNumber = 0;

/** Moves the server's (and the test's) wall clock to `START + offsetMs`. */
const clockAt = (offsetMs: number): void => {
  vi.setSystemTime(START + offsetMs);
};

async function start(): Promise<void> {
  server = await startTestServer({ dataDir: dataDir.path });
  anonymous = server.identityClient("none");
}

beforeAll(async () => {
  vi.useFakeTimers({ toFake: ["Date"], now: START });
  dataDir = createTestDataDir();
  await start();
});

afterAll(async () => {
  await server.close();
  dataDir.remove();
  vi.useRealTimers();
});

beforeEach(async () => {
  clockAt(0);
  const tenantId = `x${++tenantNumber}`;
  await server.connectClient("connect", "1.1").createTenant({ tenantId });
  await server.identityClient().setJwtConfig({
    tenantId,
    config: { key: { case: "hsSecret", value: HS_SECRET } },
  });
  reader = await createActor(server, tenantId, "reader", [{ permission: "variable:read" }]);
});

afterEach(() => {
  clockAt(0);
});

const bearer = (token: string): Credentials => ({ bearer: token });
const apiKeyOf = (actor: Actor): CredentialInit => ({ case: "apiKey", value: actor.apiKey });

async function login(credential: CredentialInit) {
  const session = await anonymous.authenticate({ tenantId: reader.tenantId, credential });
  return {
    token: session.token,
    expiresAt: millisOf(session.expiresAt),
  };
}

async function expectWorks(token: string): Promise<void> {
  const me = await server.identityClient(bearer(token)).whoAmI({});
  expect(me.principal?.tenantId).toBe(reader.tenantId);
}

async function expectExpired(token: string): Promise<void> {
  await expectUnauthorized(server.identityClient(bearer(token)).whoAmI({}));
  await expectUnauthorized(
    server
      .connectClient("grpc", "2", { credentials: bearer(token) })
      .getTenant({ tenantId: reader.tenantId }),
  );
}

describe("session tokens", () => {
  it("live exactly one hour from Authenticate", async () => {
    const session = await login(apiKeyOf(reader));
    expect(session.expiresAt).toBe(START + HOUR_MS);
    clockAt(HOUR_MS - 1);
    await expectWorks(session.token);
    clockAt(HOUR_MS);
    await expectExpired(session.token);
    await expectUnauthorized(anonymous.refreshToken({ token: session.token }));
    await expectUnauthorized(server.identityClient(bearer(session.token)).logout({}));
  });

  it("from a JWT end when the JWT does, if that is sooner", async () => {
    const exp = epochSeconds(120);
    const jwt = await signJwt({ sub: "robot", exp }, bytes(HS_SECRET));
    const session = await login({ case: "jwt", value: jwt });
    expect(session.expiresAt).toBe(exp * 1000);
    clockAt(exp * 1000 - START - 1);
    await expectWorks(session.token);
    clockAt(exp * 1000 - START);
    await expectExpired(session.token);
  });

  it("from a JWT that outlives the hour still end after the hour", async () => {
    const jwt = await signJwt({ sub: "robot", exp: epochSeconds(3 * 3600) }, bytes(HS_SECRET));
    const session = await login({ case: "jwt", value: jwt });
    expect(session.expiresAt).toBe(START + HOUR_MS);
    clockAt(HOUR_MS);
    await expectExpired(session.token);
  });

  it("refreshed live an hour from the refresh, and the old one is gone", async () => {
    const session = await login(apiKeyOf(reader));
    clockAt(HOUR_MS / 2);
    const refreshed = await anonymous.refreshToken({ token: session.token });
    expect(millisOf(refreshed.expiresAt)).toBe(START + HOUR_MS / 2 + HOUR_MS);
    await expectExpired(session.token);
    clockAt(HOUR_MS + HOUR_MS / 2 - 1);
    await expectWorks(refreshed.token);
    clockAt(HOUR_MS + HOUR_MS / 2);
    await expectExpired(refreshed.token);
  });

  it("that expired are refused after a restart too; those still valid go on", async () => {
    const early = await login(apiKeyOf(reader));
    clockAt(HOUR_MS / 2);
    const late = await login(apiKeyOf(reader));
    await server.close();
    clockAt(HOUR_MS + 1);
    await start();
    await expectExpired(early.token);
    await expectWorks(late.token);
    clockAt(HOUR_MS / 2 + HOUR_MS);
    await expectExpired(late.token);
  });
});

describe("credentials that do not expire", () => {
  it("API keys and the admin token work a year on", async () => {
    const session = await login(apiKeyOf(reader));
    clockAt(365 * 24 * HOUR_MS);
    await expectExpired(session.token);
    await expectWorks(reader.apiKey);
    expect((await server.identityClient().whoAmI({})).serverAdmin).toBe(true);
    const fresh = await login(apiKeyOf(reader));
    expect(fresh.expiresAt).toBe(START + 365 * 24 * HOUR_MS + HOUR_MS);
  });
});
