/**
 * Endings say why (docs/streaming.md §7): a deleted variable sends DELETED
 * and then ends a one-variable subscription with NOT_FOUND (a service-wide
 * one goes on); a deleted service ends its subscriptions with NOT_FOUND; a
 * revoked grant ends the subscription with PERMISSION_DENIED at the next
 * change; a revoked credential (logout) ends the whole stream with
 * UNAUTHORIZED; a server shutdown ends streams with CONNECTION_LOST
 * (unavailable) instead of leaving them hanging.
 */
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../../gen/commy/v1/errors_pb.js";
import {
  ChangeKind,
  type SubscriptionEnded,
  type WatchResponse,
} from "../../gen/commy/v1/watch_pb.js";
import {
  Permission,
  SubscribeCall,
  type WatchStream,
  type WatchTestServer,
  bytes,
  createService,
  endingOf,
  principalWith,
  startWatchServer,
} from "../helpers/watch-fixtures.js";

const T = "t";

/** The SubscriptionEnded of a subscription, waiting for it. */
async function endedOf(
  stream: WatchStream,
  subscriptionId: bigint,
): Promise<{ ended: SubscriptionEnded; index: number }> {
  const { response, index } = await stream.nextResponse(
    (r) => r.event.case === "ended" && r.event.value.subscriptionId === subscriptionId,
    `SubscriptionEnded of ${subscriptionId}`,
  );
  return { ended: (response.event as { value: SubscriptionEnded }).value, index };
}

/** Index of the response carrying a change of `subscriptionId` satisfying `match`. */
function indexOfChange(
  responses: WatchResponse[],
  subscriptionId: bigint,
  match: (kind: ChangeKind) => boolean,
): number {
  return responses.findIndex(
    (r) =>
      r.event.case === "changes" &&
      r.event.value.changes.some((c) => c.subscriptionId === subscriptionId && match(c.kind)),
  );
}

describe("deletions", () => {
  let test: WatchTestServer;

  beforeAll(async () => {
    test = await startWatchServer();
    await test.admin.createTenant({ tenantId: T });
  });

  afterAll(async () => {
    await test?.close();
  });

  it("deleting a variable: DELETED, then NOT_FOUND for its subscription; a service-wide one goes on", async () => {
    const serviceName = "del-var";
    await createService(test.admin, T, serviceName, { x: "x1", y: "y1" }, { createTenant: false });
    const ref = { tenantId: T, serviceName, variableName: "x" };
    const { version } = await test.admin.writeVariable({ ...ref, data: bytes("x2") });
    const one = test.openWatch({ label: "one-variable" });
    const oneId = await one.subscribeOk(ref);
    const wide = test.openWatch({ protocol: "grpc", label: "service-wide" });
    const wideId = await wide.subscribeOk({ tenantId: T, serviceName });
    await one.reachVersion(oneId, "x", version);
    await wide.reachVersion(wideId, "x", version);

    await test.admin.deallocateVariable(ref);

    const { ended, index } = await endedOf(one, oneId);
    expect({ code: ended.reason?.code, message: ended.reason?.message }).toEqual({
      code: ErrorCode.NOT_FOUND,
      message: expect.stringContaining("x") as unknown as string,
    });
    const deletedAt = indexOfChange(one.responses, oneId, (kind) => kind === ChangeKind.DELETED);
    expect(deletedAt).toBeGreaterThanOrEqual(0);
    expect(deletedAt).toBeLessThan(index);
    const deleted = one.changesOf(oneId).at(-1);
    expect({ kind: deleted?.kind, version: deleted?.version, size: deleted?.data.length }).toEqual({
      kind: ChangeKind.DELETED,
      version,
      size: 0,
    });
    // The stream itself goes on.
    await one.ping();
    expect(one.ended).toBe(false);

    // The service-wide subscription sees the deletion, then goes on: other
    // variables, and x created anew.
    await wide.until(
      () => wide.changesOf(wideId, "x").find((c) => c.kind === ChangeKind.DELETED),
      "DELETED of x on the service-wide subscription",
    );
    const { version: yVersion } = await test.admin.writeVariable({
      tenantId: T,
      serviceName,
      variableName: "y",
      data: bytes("y2"),
    });
    await wide.reachVersion(wideId, "y", yVersion);
    await test.admin.allocateVariable({ ...ref, initialData: bytes("x-again") });
    await wide.until(
      () =>
        wide.changesOf(wideId, "x").find((c) => c.kind === ChangeKind.UPDATE && c.version === 1n),
      "x created anew on the service-wide subscription",
    );
    await wide.ping();
    expect(wide.responses.some((r) => r.event.case === "ended")).toBe(false);
    // The ended one-variable subscription does not see x's new life.
    await one.ping();
    expect(one.changesOf(oneId).at(-1)?.kind).toBe(ChangeKind.DELETED);
    one.abort();
    wide.abort();
  });

  it("a one-variable subscription ending does not stop other subscriptions of the same stream", async () => {
    const serviceName = "del-var-same-stream";
    await createService(test.admin, T, serviceName, { x: "x1", y: "y1" }, { createTenant: false });
    const stream = test.openWatch();
    const wideId = await stream.subscribeOk({ tenantId: T, serviceName });
    const xId = await stream.subscribeOk({ tenantId: T, serviceName, variableName: "x" });
    const yId = await stream.subscribeOk({ tenantId: T, serviceName, variableName: "y" });
    await stream.reachVersion(xId, "x", 1n);
    await test.admin.deallocateVariable({ tenantId: T, serviceName, variableName: "x" });
    await endedOf(stream, xId);
    const write = await stream.write({
      tenantId: T,
      serviceName,
      variableName: "y",
      data: bytes("y2"),
    });
    await stream.reachVersion(yId, "y", write.version);
    await stream.reachVersion(wideId, "y", write.version);
    stream.abort();
  });

  it("deleting the service ends one-variable and service-wide subscriptions with NOT_FOUND", async () => {
    const serviceName = "del-service";
    await createService(test.admin, T, serviceName, { x: "x1" }, { createTenant: false });
    const stream = test.openWatch();
    const oneId = await stream.subscribeOk({ tenantId: T, serviceName, variableName: "x" });
    const wideId = await stream.subscribeOk({ tenantId: T, serviceName });
    const other = await stream.subscribeOk({ tenantId: T, serviceName: "del-var" });
    await stream.reachVersion(wideId, "x", 1n);

    await test.admin.deleteService({ tenantId: T, serviceName });

    for (const id of [oneId, wideId]) {
      const { ended } = await endedOf(stream, id);
      expect(ended.reason?.code).toBe(ErrorCode.NOT_FOUND);
    }
    // The stream, and its subscription of another service, go on.
    const write = await stream.write({
      tenantId: T,
      serviceName: "del-var",
      variableName: "y",
      data: bytes("y-after-other-service-deleted"),
    });
    await stream.reachVersion(other, "y", write.version);
    // Subscribing to it now: NOT_FOUND.
    const again = await stream.subscribe({ tenantId: T, serviceName });
    expect(again.error?.code).toBe(ErrorCode.NOT_FOUND);
    stream.abort();
  });
});

describe("revoked permissions and credentials", () => {
  let test: WatchTestServer;
  const serviceName = "guarded";
  const ref = { tenantId: T, serviceName, variableName: "x" };

  beforeAll(async () => {
    test = await startWatchServer();
    await createService(test.admin, T, serviceName, { x: "x1" });
  });

  afterAll(async () => {
    await test?.close();
  });

  it("revoking the subscribe grant ends the subscription with PERMISSION_DENIED at the next change", async () => {
    const credentials = await principalWith(test.identity, T, "revokee", [
      Permission.VARIABLE_SUBSCRIBE,
    ]);
    const stream = test.openWatch({ credentials });
    const id = await stream.subscribeOk(ref);
    await stream.reachVersion(id, "x", 1n);
    await test.identity.revokePermission({
      tenantId: T,
      principalName: "revokee",
      permission: Permission.VARIABLE_SUBSCRIBE,
      servicePrefix: "",
    });
    const { version } = await test.admin.writeVariable({ ...ref, data: bytes("secret") });
    const { ended } = await endedOf(stream, id);
    expect(ended.reason?.code).toBe(ErrorCode.PERMISSION_DENIED);
    // The value written after the revocation never reached it.
    expect(stream.changes.some((c) => c.version >= version)).toBe(false);
    // Subscribing again is refused; the stream itself goes on.
    const again = await stream.subscribe(ref);
    expect(again.error?.code).toBe(ErrorCode.PERMISSION_DENIED);
    stream.abort();
  });

  it("logging out ends a stream opened with the session token with UNAUTHORIZED", async () => {
    await principalWith(
      test.identity,
      T,
      "leaver",
      [Permission.VARIABLE_SUBSCRIBE],
      "leaver-password-1",
    );
    const session = await test.identity.authenticate({
      tenantId: T,
      credential: {
        case: "password",
        value: { username: "leaver", password: "leaver-password-1" },
      },
    });
    const credentials = { bearer: session.token };
    const stream = test.openWatch({ credentials, protocol: "grpc" });
    const id = await stream.subscribeOk(ref);
    await stream.reachVersion(id, "x", (await test.admin.readVariable(ref)).version);
    const subscribeCall = new SubscribeCall(test.watchClient({ credentials, httpVersion: "1.1" }), {
      subscriptions: [ref],
    });
    await subscribeCall.until(
      () => (subscribeCall.changes.length > 0 ? true : undefined),
      "the snapshot",
    );

    await test.identityClient(credentials).logout({});

    for (const call of [stream, subscribeCall]) {
      const error = await call.finished();
      expect(endingOf(error)).toEqual({
        code: Code.Unauthenticated,
        errorCodes: [ErrorCode.UNAUTHORIZED],
      });
    }
    // The token is no good any more.
    const refused = test.openWatch({ credentials });
    const reply = await refused.subscribe(ref);
    expect(reply.error?.code).toBe(ErrorCode.UNAUTHORIZED);
    refused.abort();
  });

  it("revoking the API key of a stream ends it with UNAUTHORIZED", async () => {
    const credentials = await principalWith(test.identity, T, "keyholder", [
      Permission.VARIABLE_SUBSCRIBE,
    ]);
    const stream = test.openWatch({ credentials });
    await stream.subscribeOk(ref);
    const { keys } = await test.identity.listApiKeys({ tenantId: T });
    const key = keys.find((k) => k.principalName === "keyholder");
    await test.identity.revokeApiKey({ tenantId: T, keyId: key?.keyId ?? "" });
    expect(endingOf(await stream.finished())).toEqual({
      code: Code.Unauthenticated,
      errorCodes: [ErrorCode.UNAUTHORIZED],
    });
  });
});

describe("server shutdown", () => {
  it("ends open Watch and Subscribe calls with CONNECTION_LOST (unavailable), promptly", async () => {
    const test = await startWatchServer();
    try {
      await createService(test.admin, T, "s", { x: "x1" });
      const ref = { tenantId: T, serviceName: "s", variableName: "x" };
      const streams = [
        test.openWatch({ protocol: "connect", label: "connect" }),
        test.openWatch({ protocol: "grpc", label: "grpc" }),
        test.openWatch({ protocol: "grpc-web", label: "grpc-web" }),
      ];
      for (const stream of streams)
        await stream.reachVersion(await stream.subscribeOk(ref), "x", 1n);
      const idle = test.openWatch({ label: "no subscriptions" });
      await idle.ping();
      const subscribeCall = new SubscribeCall(test.watchClient({ httpVersion: "1.1" }), {
        subscriptions: [ref],
      });
      await subscribeCall.until(
        () => (subscribeCall.changes.length > 0 ? true : undefined),
        "the snapshot",
      );

      const started = Date.now();
      const closed = test.server.close();
      for (const call of [...streams, idle, subscribeCall]) {
        expect(endingOf(await call.finished())).toEqual({
          code: Code.Unavailable,
          errorCodes: [ErrorCode.CONNECTION_LOST],
        });
      }
      await closed;
      // Well before the 5 s after which shutdown cuts connections.
      expect(Date.now() - started).toBeLessThan(4_000);
    } finally {
      await test.close();
    }
  });
});
