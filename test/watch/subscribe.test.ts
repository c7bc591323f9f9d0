/**
 * The server-streaming Subscribe, for clients that cannot stream requests
 * (browsers with Connect-Web over HTTP/1.1): the subscriptions are given
 * when the call starts, numbered 1, 2, … in order, and deliver the same
 * changes a Watch stream does; a subscription that cannot start fails the
 * call with its error.
 */
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../../gen/commy/v1/errors_pb.js";
import { type Change, ChangeKind } from "../../gen/commy/v1/watch_pb.js";
import {
  Permission,
  SubscribeCall,
  type WatchClientOptions,
  type WatchTestServer,
  bytes,
  createService,
  endingOf,
  principalWith,
  startWatchServer,
  text,
  versionChainProblems,
  waitUntil,
} from "../helpers/watch-fixtures.js";

const T = "t";
const S = "s";

let test: WatchTestServer;
let serviceId: string;

beforeAll(async () => {
  test = await startWatchServer({ progressIntervalMs: 100 });
  serviceId = await createService(test.admin, T, S, { x: "x1", y: "y1" });
});

afterAll(async () => {
  await test?.close();
});

const HTTP1_TRANSPORTS: (WatchClientOptions & { name: string })[] = [
  {
    name: "Connect JSON over HTTP/1.1 (as a browser would)",
    protocol: "connect",
    httpVersion: "1.1",
  },
  { name: "Connect binary over HTTP/1.1", protocol: "connect", httpVersion: "1.1", binary: true },
  { name: "gRPC-Web over HTTP/1.1", protocol: "grpc-web", httpVersion: "1.1" },
  { name: "gRPC over HTTP/2", protocol: "grpc", httpVersion: "2" },
];

/** Version, skipped, kind and data of changes, for toEqual. */
const summary = (changes: readonly Change[]) =>
  changes.map((c) => [
    c.subscriptionId,
    c.variableName,
    c.version,
    c.skipped,
    ChangeKind[c.kind],
    text(c.data),
  ]);

describe.each(HTTP1_TRANSPORTS)("Subscribe over $name", (transport) => {
  it("gets the same changes as a Watch stream, with subscription ids 1, 2, … in order", async () => {
    const watch = test.openWatch({ protocol: "grpc" });
    const watchX = await watch.subscribeOk({ tenantId: T, serviceName: S, variableName: "x" });
    const call = new SubscribeCall(test.watchClient(transport), {
      subscriptions: [
        { tenantId: T, serviceName: S, variableName: "x" },
        { tenantId: T, serviceName: S },
      ],
    });
    const start = await test.admin.readVariable({ tenantId: T, serviceName: S, variableName: "x" });
    await call.reachVersion(1n, "x", start.version);
    await call.reachVersion(2n, "y", 1n);
    await watch.reachVersion(watchX, "x", start.version);

    const versions: bigint[] = [];
    for (let i = 0; i < 20; i++) {
      const { version } = await test.admin.writeVariable({
        tenantId: T,
        serviceName: S,
        variableName: "x",
        data: bytes(`${transport.name}-${i}`),
      });
      versions.push(version);
    }
    const last = versions.at(-1) as bigint;
    await call.reachVersion(1n, "x", last);
    await call.reachVersion(2n, "x", last);
    await watch.reachVersion(watchX, "x", last);

    const onCall = call.changes.filter((c) => c.subscriptionId === 1n);
    const onWatch = watch.changesOf(watchX);
    // Same versions, skips, kinds and values as the Watch stream's.
    const withoutId = (changes: readonly Change[]) => summary(changes).map((row) => row.slice(1));
    expect(withoutId(onCall)).toEqual(withoutId(onWatch));
    expect(onCall.map((c) => c.version)).toEqual([start.version, ...versions]);
    expect(
      versionChainProblems(onCall, { firstKind: ChangeKind.SNAPSHOT, expectNoSkips: true }),
    ).toEqual([]);
    const wide = call.changes.filter((c) => c.subscriptionId === 2n && c.variableName === "x");
    expect(
      versionChainProblems(wide, { firstKind: ChangeKind.SNAPSHOT, expectNoSkips: true }),
    ).toEqual([]);
    expect(new Set(call.changes.map((c) => c.subscriptionId))).toEqual(new Set([1n, 2n]));
    call.abort();
    watch.abort();
  });

  it("a subscription that cannot start fails the call with its error", async () => {
    const missing = new SubscribeCall(test.watchClient(transport), {
      subscriptions: [
        { tenantId: T, serviceName: S, variableName: "x" },
        { tenantId: T, serviceName: S, variableName: "missing" },
      ],
    });
    const error = await missing.finished();
    expect(endingOf(error)).toEqual({ code: Code.NotFound, errorCodes: [ErrorCode.NOT_FOUND] });

    const anonymous = new SubscribeCall(test.watchClient({ ...transport, credentials: "none" }), {
      subscriptions: [{ tenantId: T, serviceName: S }],
    });
    expect(endingOf(await anonymous.finished())).toEqual({
      code: Code.Unauthenticated,
      errorCodes: [ErrorCode.UNAUTHORIZED],
    });
  });
});

describe("Subscribe", () => {
  it("without variable:subscribe fails with permission_denied / PERMISSION_DENIED", async () => {
    const credentials = await principalWith(test.identity, T, "reader", [Permission.VARIABLE_READ]);
    const call = new SubscribeCall(test.watchClient({ httpVersion: "1.1", credentials }), {
      subscriptions: [{ tenantId: T, serviceName: S }],
    });
    expect(endingOf(await call.finished())).toEqual({
      code: Code.PermissionDenied,
      errorCodes: [ErrorCode.PERMISSION_DENIED],
    });
    expect(call.changes).toEqual([]);
  });

  it("sends Progress on idle subscriptions and SubscriptionEnded when a variable is deleted", async () => {
    await test.admin.allocateVariable({
      tenantId: T,
      serviceName: S,
      variableName: "doomed",
      initialData: bytes("d"),
    });
    const call = new SubscribeCall(test.watchClient({ httpVersion: "1.1" }), {
      subscriptions: [{ tenantId: T, serviceName: S, variableName: "doomed" }],
    });
    await call.reachVersion(1n, "doomed", 1n);
    const progress = await call.until(
      () => call.responses.find((r) => r.event.case === "progress"),
      "a Progress message",
    );
    expect(progress.event.case === "progress" && progress.event.value.subscriptionIds).toEqual([
      1n,
    ]);
    await test.admin.deallocateVariable({ tenantId: T, serviceName: S, variableName: "doomed" });
    const ended = await call.until(
      () => call.responses.find((r) => r.event.case === "ended"),
      "SubscriptionEnded",
    );
    expect(ended.event.case === "ended" && ended.event.value.reason?.code).toBe(
      ErrorCode.NOT_FOUND,
    );
    expect(call.changes.at(-1)?.kind).toBe(ChangeKind.DELETED);
    call.abort();
  });

  it("a call that fails or ends leaves no subscription behind", async () => {
    const listeners = () => test.server.core.feed.listenerCount(serviceId);
    await waitUntil(() => listeners() === 0, "no listener of the service before the test");
    const failed = new SubscribeCall(test.watchClient({ httpVersion: "1.1" }), {
      subscriptions: [
        { tenantId: T, serviceName: S },
        { tenantId: T, serviceName: S, variableName: "missing" },
      ],
    });
    expect(endingOf(await failed.finished())).toEqual({
      code: Code.NotFound,
      errorCodes: [ErrorCode.NOT_FOUND],
    });
    const invalid = new SubscribeCall(test.watchClient({ httpVersion: "1.1", binary: true }), {
      subscriptions: [
        { tenantId: T, serviceName: S },
        { tenantId: T, serviceName: S, variableName: "x", fromVersion: 2n ** 60n },
      ],
    });
    expect(endingOf(await invalid.finished())).toEqual({
      code: Code.InvalidArgument,
      errorCodes: [ErrorCode.INVALID_REQUEST],
    });
    const aborted = new SubscribeCall(test.watchClient({ httpVersion: "1.1" }), {
      subscriptions: [{ tenantId: T, serviceName: S }],
    });
    await aborted.reachVersion(1n, "y", 1n);
    aborted.abort();
    await waitUntil(() => listeners() === 0, "every subscription of the ended calls to be dropped");
  });
});
