/**
 * Sessions through CommyClient: authenticate with a password or an API
 * key, after which the client calls with the session token; refresh swaps
 * it (the old one stops working); logout revokes it.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { isUnauthorized } from "../../src/client/index.js";
import { createActor } from "../helpers/identity-fixtures.js";
import { type TestServer, startTestServer } from "../helpers/test-server.js";
import { bytes, createClientPool } from "./client-fixtures.js";

let test: TestServer;
const pool = createClientPool();
const tenantId = "sessions";
const ref = { tenantId, serviceName: "s", variableName: "v" };

beforeAll(async () => {
  test = await startTestServer();
  const admin = pool.client(test.server.url);
  await admin.createTenant(tenantId);
  await admin.createService(ref);
  await admin.allocateVariable(ref, { initialData: bytes("x") });
  await createActor(test, tenantId, "alice", [{ permission: "variable:read" }], "correct horse");
});

afterAll(async () => {
  pool.closeAll();
  await test.close();
});

it("authenticate → calls as the principal; refresh → new token; logout → revoked", async () => {
  const client = pool.client(test.server.url, { token: undefined });
  const session = await client.authenticate(tenantId, {
    username: "alice",
    password: "correct horse",
  });
  expect(session.principalId).toBe(`${tenantId}/alice`);
  expect(session.grants).toEqual([{ tenantId, permission: "variable:read", servicePrefix: "" }]);
  expect(session.expiresAt?.getTime()).toBeGreaterThan(Date.now());
  expect(client.token).toBe(session.token);
  expect((await client.readVariable(ref)).version).toBe(1);

  const refreshed = await client.refresh();
  expect(refreshed.token).not.toBe(session.token);
  expect(client.token).toBe(refreshed.token);
  expect((await client.readVariable(ref)).version).toBe(1);
  const stale = pool.client(test.server.url, { token: session.token });
  await expect(stale.readVariable(ref)).rejects.toSatisfy(isUnauthorized);

  await client.logout();
  expect(client.token).toBeUndefined();
  await expect(client.readVariable(ref)).rejects.toSatisfy(isUnauthorized);
  const revoked = pool.client(test.server.url, { token: refreshed.token });
  await expect(revoked.readVariable(ref)).rejects.toSatisfy(isUnauthorized);
});

it("authenticates with an API key; a wrong credential is UNAUTHORIZED and keeps the old token", async () => {
  const actor = await createActor(test, tenantId, "bob", [{ permission: "variable:read" }]);
  const client = pool.client(test.server.url, { token: undefined });
  await expect(
    client.authenticate(tenantId, { username: "alice", password: "wrong" }),
  ).rejects.toSatisfy(isUnauthorized);
  expect(client.token).toBeUndefined();
  const session = await client.authenticate(tenantId, { apiKey: actor.apiKey });
  expect(session.principalId).toBe(`${tenantId}/bob`);
  expect((await client.readVariable(ref)).data).toEqual(bytes("x"));
});
