/**
 * Permission errors on a Watch stream (docs/streaming.md; DESIGN §3–4):
 * subscribing needs variable:subscribe, a write on the stream needs
 * variable:write, a stream without valid credentials is UNAUTHORIZED, and
 * what does not exist is NOT_FOUND — each answered in the command's Reply,
 * with the stream going on. The house order holds: authenticated →
 * permitted → exists, so a caller never learns what exists where it may not
 * look; a refused write writes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../../gen/commy/v1/errors_pb.js";
import {
  type Credentials,
  Permission,
  type WatchTestServer,
  bytes,
  createService,
  principalWith,
  startWatchServer,
  text,
} from "../helpers/watch-fixtures.js";

const T = "t";
const S = "s";
const ref = { tenantId: T, serviceName: S, variableName: "x" };

let test: WatchTestServer;
let readOnly: Credentials;
let subscribeOnly: Credentials;
let writeOnly: Credentials;

beforeAll(async () => {
  test = await startWatchServer();
  await createService(test.admin, T, S, { x: "x1" });
  await test.admin.createTenant({ tenantId: "other" });
  await test.admin.createService({ tenantId: "other", serviceName: S });
  readOnly = await principalWith(test.identity, T, "reader", [Permission.VARIABLE_READ]);
  subscribeOnly = await principalWith(test.identity, T, "subscriber", [
    Permission.VARIABLE_SUBSCRIBE,
  ]);
  writeOnly = await principalWith(test.identity, T, "writer", [Permission.VARIABLE_WRITE]);
});

afterAll(async () => {
  await test?.close();
});

async function expectUnchanged(): Promise<void> {
  const read = await test.admin.readVariable(ref);
  expect({ version: read.version, data: text(read.data) }).toEqual({ version: 1n, data: "x1" });
}

describe("subscribe", () => {
  it("without variable:subscribe (only variable:read) is PERMISSION_DENIED", async () => {
    const stream = test.openWatch({ credentials: readOnly });
    for (const subscription of [ref, { tenantId: T, serviceName: S }]) {
      const reply = await stream.subscribe(subscription);
      expect({ code: reply.error?.code, id: reply.subscriptionId }).toEqual({
        code: ErrorCode.PERMISSION_DENIED,
        id: 0n,
      });
    }
    await stream.ping();
    expect(stream.changes).toEqual([]);
    expect(stream.ended).toBe(false);
    stream.abort();
  });

  it("in a tenant the principal has no grant in is PERMISSION_DENIED, even where nothing exists", async () => {
    const stream = test.openWatch({ credentials: subscribeOnly });
    for (const subscription of [
      { tenantId: "other", serviceName: S },
      { tenantId: "other", serviceName: "missing" },
      { tenantId: "missing-tenant", serviceName: S },
    ]) {
      const reply = await stream.subscribe(subscription);
      expect(reply.error?.code, JSON.stringify(subscription)).toBe(ErrorCode.PERMISSION_DENIED);
    }
    stream.abort();
  });

  it("to a missing variable, service or tenant is NOT_FOUND", async () => {
    for (const credentials of ["admin", subscribeOnly] as const) {
      const stream = test.openWatch({ credentials });
      const cases = [
        { ...ref, variableName: "missing" },
        { tenantId: T, serviceName: "missing" },
        { tenantId: T, serviceName: "missing", variableName: "x" },
      ];
      if (credentials === "admin") cases.push({ tenantId: "missing-tenant", serviceName: S });
      for (const subscription of cases) {
        const reply = await stream.subscribe(subscription);
        expect(reply.error?.code, JSON.stringify(subscription)).toBe(ErrorCode.NOT_FOUND);
      }
      // The stream goes on, and a valid subscription still works.
      const id = await stream.subscribeOk(ref);
      await stream.reachVersion(id, "x", 1n);
      stream.abort();
    }
  });

  it("with an invalid name is INVALID_REQUEST", async () => {
    const stream = test.openWatch();
    const reply = await stream.subscribe({ tenantId: T, serviceName: "../etc" });
    expect(reply.error?.code).toBe(ErrorCode.INVALID_REQUEST);
    stream.abort();
  });
});

describe("write on the stream", () => {
  it("without variable:write is PERMISSION_DENIED and writes nothing", async () => {
    const stream = test.openWatch({ credentials: subscribeOnly });
    const id = await stream.subscribeOk(ref);
    for (const write of [
      { ...ref, data: bytes("nope") },
      { ...ref, data: bytes("nope"), expectedVersion: 1n },
      { ...ref, variableName: "new", data: bytes("nope"), createIfMissing: true },
    ]) {
      const reply = await stream.write(write);
      expect({ code: reply.error?.code, version: reply.version }).toEqual({
        code: ErrorCode.PERMISSION_DENIED,
        version: 0n,
      });
    }
    await stream.ping();
    expect(stream.changesOf(id).map((c) => c.version)).toEqual([1n]);
    await expectUnchanged();
    stream.abort();
  });

  it("with variable:write but not variable:subscribe: writes work, subscribing does not", async () => {
    const stream = test.openWatch({ credentials: writeOnly });
    const reply = await stream.write({
      ...ref,
      variableName: "w",
      data: bytes("w1"),
      createIfMissing: true,
    });
    expect({ error: reply.error, version: reply.version }).toEqual({
      error: undefined,
      version: 1n,
    });
    const refused = await stream.subscribe(ref);
    expect(refused.error?.code).toBe(ErrorCode.PERMISSION_DENIED);
    stream.abort();
  });
});

describe("without valid credentials", () => {
  it.each([
    ["no Authorization header", "none" as const],
    ["an unknown bearer token", { bearer: "cs_not-a-session-token-at-all-0000" }],
  ])(
    "with %s, subscribe and write are UNAUTHORIZED; nothing is written",
    async (_what, credentials) => {
      const stream = test.openWatch({ credentials, protocol: "grpc" });
      const subscribe = await stream.subscribe(ref);
      expect(subscribe.error?.code).toBe(ErrorCode.UNAUTHORIZED);
      // Even where nothing exists: nothing is told before authentication.
      const missing = await stream.subscribe({ tenantId: "missing", serviceName: "missing" });
      expect(missing.error?.code).toBe(ErrorCode.UNAUTHORIZED);
      const write = await stream.write({ ...ref, data: bytes("anonymous") });
      expect(write.error?.code).toBe(ErrorCode.UNAUTHORIZED);
      await stream.ping();
      expect(stream.changes).toEqual([]);
      await expectUnchanged();
      stream.abort();
    },
  );
});
