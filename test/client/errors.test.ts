/**
 * Every failure reaches a CommyClient caller as the one CommyError, with
 * its ErrorCode, and each guard narrows to exactly its code. Each code is
 * provoked once, the way it happens: by the server (with an ErrorDetail)
 * or by the connection (a status without one, mapped from its Connect code).
 */
import { closeSync, openSync, readFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CommyError,
  type ErrorCode,
  isAlreadyExists,
  isCommyError,
  isConnectionLost,
  isInternal,
  isInvalidRequest,
  isNotFound,
  isPermissionDenied,
  isResourceExhausted,
  isTimeout,
  isUnauthorized,
  isVersionConflict,
} from "../../src/client/index.js";
import { Header, Index, Record } from "../../src/shm/layout.js";
import { createActor } from "../helpers/identity-fixtures.js";
import { type TestServer, startTestServer } from "../helpers/test-server.js";
import { bytes, createClientPool } from "./client-fixtures.js";
import { type TcpRelay, startTcpRelay } from "./tcp-relay.js";

const GUARDS: Record<Exclude<ErrorCode, "RESOURCE_EXHAUSTED">, (e: unknown) => boolean> = {
  NOT_FOUND: isNotFound,
  PERMISSION_DENIED: isPermissionDenied,
  UNAUTHORIZED: isUnauthorized,
  ALREADY_EXISTS: isAlreadyExists,
  INVALID_REQUEST: isInvalidRequest,
  INTERNAL_ERROR: isInternal,
  CONNECTION_LOST: isConnectionLost,
  TIMEOUT: isTimeout,
  VERSION_CONFLICT: isVersionConflict,
};

/** The CommyError `call` rejects with; fails unless exactly the guard of `code` accepts it. */
async function expectFailure(call: Promise<unknown>, code: ErrorCode): Promise<CommyError> {
  const error: unknown = await call.then(
    () => expect.fail(`expected ${code}, but the call succeeded`),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(CommyError);
  expect(isCommyError(error, code)).toBe(true);
  for (const [guarded, guard] of Object.entries(GUARDS)) {
    expect(guard(error), `is ${guarded}`).toBe(guarded === code);
  }
  expect(isResourceExhausted(error)).toBe(code === "RESOURCE_EXHAUSTED");
  return error as CommyError;
}

let test: TestServer;
const pool = createClientPool();
const tenantId = "errors";
const ref = { tenantId, serviceName: "s", variableName: "v" };

beforeAll(async () => {
  test = await startTestServer();
  const admin = pool.client(test.server.url);
  await admin.createTenant(tenantId);
  await admin.createService(ref);
  await admin.allocateVariable(ref, { initialData: bytes("v1") });
});

afterAll(async () => {
  pool.closeAll();
  await test.close();
});

describe("errors the server reports (with an ErrorDetail)", () => {
  it("NOT_FOUND: a tenant that does not exist", async () => {
    const error = await expectFailure(
      pool.client(test.server.url).getTenant("missing"),
      "NOT_FOUND",
    );
    expect(error.message).toContain("missing");
  });

  it("PERMISSION_DENIED: a principal without the grant", async () => {
    const actor = await createActor(test, tenantId, "no-grants", []);
    const client = pool.client(test.server.url, { token: actor.apiKey });
    await expectFailure(client.readVariable(ref), "PERMISSION_DENIED");
  });

  it("UNAUTHORIZED: a token the server does not know, and no token at all", async () => {
    const bogus = pool.client(test.server.url, { token: "ck_not_a_real_key" });
    await expectFailure(bogus.readVariable(ref), "UNAUTHORIZED");
    const anonymous = pool.client(test.server.url, { token: undefined });
    await expectFailure(anonymous.listTenants(), "UNAUTHORIZED");
  });

  it("ALREADY_EXISTS: creating a tenant twice", async () => {
    await expectFailure(pool.client(test.server.url).createTenant(tenantId), "ALREADY_EXISTS");
  });

  it("INVALID_REQUEST: a name that breaks the rules", async () => {
    await expectFailure(pool.client(test.server.url).createTenant(".hidden"), "INVALID_REQUEST");
  });

  it("VERSION_CONFLICT: a compare-and-set with a stale version changes nothing", async () => {
    const client = pool.client(test.server.url);
    const before = await client.readVariable(ref);
    await expectFailure(
      client.writeVariable(ref, bytes("late"), { expectedVersion: before.version + 5 }),
      "VERSION_CONFLICT",
    );
    expect(await client.readVariable(ref)).toEqual(before);
  });

  it("INTERNAL_ERROR: a damaged service file, without a path in the message", async () => {
    const client = pool.client(test.server.url);
    const damaged = { ...ref, variableName: "damaged" };
    await client.allocateVariable(damaged, { initialData: bytes("intact") });
    const { serviceId } = await client.getService(ref);
    const path = join(test.dataDir, "services", `${serviceId}.commy`);
    corruptSpareSlot(path, "damaged");
    const error = await expectFailure(client.writeVariable(damaged, bytes("x")), "INTERNAL_ERROR");
    expect(error.message).not.toContain(test.dataDir);
  });
});

describe("errors of the connection (a status without an ErrorDetail)", () => {
  let relay: TcpRelay;

  beforeAll(async () => {
    relay = await startTcpRelay(undefined);
  });

  afterAll(async () => {
    await relay.close();
  });

  it("CONNECTION_LOST: every connection refused (reads retried first)", async () => {
    relay.mode = "forward";
    relay.target = undefined;
    const client = pool.client(relay.url, { retry: { initialBackoffMs: 1, maxAttempts: 2 } });
    await expectFailure(client.readVariable(ref), "CONNECTION_LOST");
  });

  it("TIMEOUT: a server that never answers", async () => {
    relay.mode = "stall";
    const client = pool.client(relay.url);
    const started = performance.now();
    const error = await expectFailure(client.readVariable(ref, { timeoutMs: 200 }), "TIMEOUT");
    expect(performance.now() - started).toBeGreaterThanOrEqual(190);
    expect(error.message).not.toBe("");
  });
});

/** Points the slot the next write of `name` goes to far past the end of the file. */
function corruptSpareSlot(path: string, name: string): void {
  const file = readFileSync(path);
  const record = findRecord(file, name);
  const current = file.readUInt32LE(record + Record.CTL) & 1;
  pokeU32(path, record + (current === 1 ? Record.SLOT0 : Record.SLOT1), 0xfffff000);
}

/** The offset of the record of `name`, found through the file's name index. */
function findRecord(file: Buffer, name: string): number {
  const index = file.readUInt32LE(Header.INDEX_OFFSET);
  const capacity = file.readUInt32LE(index + Index.CAPACITY);
  for (let i = 0; i < capacity; i++) {
    const record = file.readUInt32LE(index + Index.SLOTS + 4 * i);
    if (record === Index.EMPTY || record === Index.TOMBSTONE) continue;
    const length = file.readUInt32LE(record + Record.NAME_LENGTH);
    const start = record + Record.NAME;
    if (file.toString("latin1", start, start + length) === name) return record;
  }
  throw new Error(`no record of ${name} in the service file`);
}

/** Writes one little-endian u32 into the file, as another process would. */
function pokeU32(path: string, offset: number, value: number): void {
  const fd = openSync(path, "r+");
  try {
    const word = Buffer.alloc(4);
    word.writeUInt32LE(value);
    writeSync(fd, word, 0, 4, offset);
  } finally {
    closeSync(fd);
  }
}
