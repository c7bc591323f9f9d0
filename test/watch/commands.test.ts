/**
 * The commands of a Watch stream (docs/streaming.md): subscribe (with its
 * SNAPSHOT), unsubscribe, write (compare-and-set, create_if_missing) and
 * ping, each answered with the client's request_id; Progress on idle
 * subscriptions; the per-stream subscription limit; a client closing its
 * side. Each runs over the bidi transports (Connect JSON and binary, gRPC,
 * gRPC-Web, all over HTTP/2) where the transport matters.
 */
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../../gen/commy/v1/errors_pb.js";
import { ChangeKind } from "../../gen/commy/v1/watch_pb.js";
import { expectCommyError } from "../helpers/error-details.js";
import { Children } from "../shm/helpers.js";
import {
  type WatchTestServer,
  type WatchClientOptions,
  bytes,
  RawGrpcWatch,
  createService,
  endingOf,
  errorSummary,
  replyCode,
  startWatchServer,
  text,
  waitUntil,
  watchRequestFrame,
} from "../helpers/watch-fixtures.js";

const T = "t";
const S = "s";

let test: WatchTestServer;
let serviceId: string;
const children = new Children();

beforeAll(async () => {
  test = await startWatchServer({ progressIntervalMs: 100, maxSubscriptions: 3 });
  serviceId = await createService(test.admin, T, S, { x: "x1", y: "y1" });
});

afterAll(async () => {
  await children.killAll();
  await test?.close();
});

const BIDI_TRANSPORTS: (WatchClientOptions & { name: string })[] = [
  { name: "Connect JSON over HTTP/2", protocol: "connect" },
  { name: "Connect binary over HTTP/2", protocol: "connect", binary: true },
  { name: "gRPC over HTTP/2", protocol: "grpc" },
  { name: "gRPC-Web over HTTP/2", protocol: "grpc-web" },
];

describe.each(BIDI_TRANSPORTS)("Watch over $name", (transport) => {
  it("subscribe answers with a subscription id, then a SNAPSHOT of the current value", async () => {
    const stream = test.openWatch(transport);
    const { version } = await test.admin.writeVariable({
      tenantId: T,
      serviceName: S,
      variableName: "x",
      data: bytes(`snap-${transport.name}`),
    });
    const requestId = stream.sendSubscribe({ tenantId: T, serviceName: S, variableName: "x" });
    const reply = await stream.reply(requestId);
    expect(reply.requestId).toBe(requestId);
    expect(reply.error).toBeUndefined();
    expect(reply.subscriptionId).toBeGreaterThan(0n);
    await stream.reachVersion(reply.subscriptionId, "x", version);
    // Reply first, then the snapshot: exactly one change, of the current value.
    const replyIndex = stream.responses.findIndex((r) => r.event.case === "reply");
    const changesIndex = stream.responses.findIndex((r) => r.event.case === "changes");
    expect(replyIndex).toBeLessThan(changesIndex);
    expect(stream.changes).toHaveLength(1);
    const [snapshot] = stream.changes;
    expect({ ...snapshot, data: text(snapshot?.data ?? new Uint8Array()) }).toMatchObject({
      subscriptionId: reply.subscriptionId,
      variableName: "x",
      data: `snap-${transport.name}`,
      version,
      skipped: 0n,
      kind: ChangeKind.SNAPSHOT,
    });
    stream.abort();
  });

  it("ping is answered by a Pong with the same request_id", async () => {
    const stream = test.openWatch(transport);
    await stream.ping("ping-\u00e9-42");
    await stream.ping("");
    const pongs = stream.responses.map((r) =>
      r.event.case === "pong" ? r.event.value.requestId : "-",
    );
    expect(pongs).toEqual(["ping-\u00e9-42", ""]);
    stream.abort();
  });
});

describe("answers", () => {
  it("commands that arrive together are all answered, however many batches their answers take", async () => {
    // One write of many ping frames: the server reads them in one turn, and
    // their pongs are more than the session hands out at once (256) though
    // fewer than its outbox holds (1,024), so nothing waits for the client.
    const COUNT = 900;
    const raw = new RawGrpcWatch(test.baseUrl);
    const frames = Array.from({ length: COUNT }, (_, i) =>
      watchRequestFrame({ case: "ping", value: { requestId: `p${i}` } }),
    );
    raw.sendRaw(Buffer.concat(frames));
    await raw.nextResponse(
      (r) => r.event.case === "pong" && r.event.value.requestId === `p${COUNT - 1}`,
      "the last pong",
    );
    const pongs = raw.responses.flatMap((r) =>
      r.event.case === "pong" ? [r.event.value.requestId] : [],
    );
    expect(pongs).toEqual(Array.from({ length: COUNT }, (_, i) => `p${i}`));
    raw.close();
  });
});

describe("subscriptions", () => {
  it("a service-wide subscription snapshots every variable and sees variables created later", async () => {
    const serviceName = "wide";
    await createService(test.admin, T, serviceName, { a: "a1", b: "b1" }, { createTenant: false });
    const stream = test.openWatch();
    const id = await stream.subscribeOk({ tenantId: T, serviceName });
    await stream.reachVersion(id, "a", 1n);
    await stream.reachVersion(id, "b", 1n);
    expect(stream.changes.map((c) => [c.variableName, c.version, c.kind]).sort()).toEqual([
      ["a", 1n, ChangeKind.SNAPSHOT],
      ["b", 1n, ChangeKind.SNAPSHOT],
    ]);
    // Created later: by AllocateVariable, and by a write with create_if_missing.
    await test.admin.allocateVariable({
      tenantId: T,
      serviceName,
      variableName: "later",
      initialData: bytes("l1"),
    });
    const created = await stream.reachVersion(id, "later", 1n);
    expect({ kind: created.kind, data: text(created.data), skipped: created.skipped }).toEqual({
      kind: ChangeKind.UPDATE,
      data: "l1",
      skipped: 0n,
    });
    const write = await stream.write({
      tenantId: T,
      serviceName,
      variableName: "on-write",
      data: bytes("w1"),
      createIfMissing: true,
    });
    expect(write.version).toBe(1n);
    const onWrite = await stream.reachVersion(id, "on-write", 1n);
    expect({ kind: onWrite.kind, data: text(onWrite.data) }).toEqual({
      kind: ChangeKind.UPDATE,
      data: "w1",
    });
    stream.abort();
  });

  it("unsubscribe is answered ok and stops the changes of that subscription only", async () => {
    const stream = test.openWatch();
    const one = await stream.subscribeOk({ tenantId: T, serviceName: S, variableName: "y" });
    const other = await stream.subscribeOk({ tenantId: T, serviceName: S, variableName: "y" });
    expect(other).not.toBe(one);
    const unsubscribe = await stream.unsubscribe(one);
    expect(unsubscribe.error).toBeUndefined();
    const before = stream.changesOf(one).length;
    // The write's change would be queued on this stream before its reply.
    const write = await stream.write({
      tenantId: T,
      serviceName: S,
      variableName: "y",
      data: bytes("after"),
    });
    await stream.reachVersion(other, "y", write.version);
    await stream.ping();
    expect(stream.changesOf(one)).toHaveLength(before);
    expect(stream.changesOf(other).at(-1)?.version).toBe(write.version);
    // Unsubscribing twice: the id is unknown now.
    const again = await stream.unsubscribe(one);
    expect(replyCode(again)).toBe(ErrorCode.NOT_FOUND);
    stream.abort();
  });

  it("unsubscribing an unknown id is answered with NOT_FOUND and the stream goes on", async () => {
    const stream = test.openWatch();
    const reply = await stream.unsubscribe(987654n);
    expect(reply.error?.code).toBe(ErrorCode.NOT_FOUND);
    expect(reply.error?.message).toMatch(/987654/);
    await stream.ping();
    expect(stream.ended).toBe(false);
    stream.abort();
  });

  it("more than maxSubscriptions is answered with RESOURCE_EXHAUSTED; unsubscribing makes room", async () => {
    const stream = test.openWatch();
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(await stream.subscribeOk({ tenantId: T, serviceName: S }));
    const refused = await stream.subscribe({ tenantId: T, serviceName: S, variableName: "x" });
    expect(replyCode(refused)).toBe(ErrorCode.RESOURCE_EXHAUSTED);
    expect(refused.subscriptionId).toBe(0n);
    expect((await stream.unsubscribe(ids[0] as bigint)).error).toBeUndefined();
    await stream.subscribeOk({ tenantId: T, serviceName: S, variableName: "x" });
    stream.abort();
  });

  it("an idle subscription gets Progress messages listing it", async () => {
    const stream = test.openWatch();
    const first = await stream.subscribeOk({ tenantId: T, serviceName: S, variableName: "x" });
    const second = await stream.subscribeOk({ tenantId: T, serviceName: S });
    const { response } = await stream.nextResponse(
      (r) => r.event.case === "progress",
      "a Progress message",
    );
    expect(
      response.event.case === "progress" && [...response.event.value.subscriptionIds].sort(),
    ).toEqual([first, second].sort());
    // It keeps coming while nothing happens.
    const index = stream.responses.indexOf(response);
    await stream.nextResponse(
      (r) => r.event.case === "progress",
      "a second Progress message",
      index + 1,
    );
    stream.abort();
  });

  it("a stream with no subscription gets no Progress", async () => {
    const stream = test.openWatch();
    await stream.ping();
    // Several progress intervals (100 ms) pass while a subscribed stream waits for its own.
    const watched = test.openWatch();
    await watched.subscribeOk({ tenantId: T, serviceName: S, variableName: "x" });
    for (let i = 0; i < 3; i++) {
      const from = watched.responses.length;
      await watched.nextResponse((r) => r.event.case === "progress", "a Progress message", from);
    }
    await stream.ping();
    expect(stream.responses.filter((r) => r.event.case === "progress")).toEqual([]);
    stream.abort();
    watched.abort();
  });
});

describe("writes on the stream", () => {
  const ref = { tenantId: T, serviceName: S, variableName: "cas" };

  beforeAll(async () => {
    await test.admin.allocateVariable({ ...ref, initialData: bytes("c1") });
  });

  it("a write is answered with the version it produced", async () => {
    const stream = test.openWatch();
    const before = await test.admin.readVariable(ref);
    const reply = await stream.write({ ...ref, data: bytes("plain") });
    expect({ error: reply.error, version: reply.version }).toEqual({
      error: undefined,
      version: before.version + 1n,
    });
    const after = await test.admin.readVariable(ref);
    expect({ data: text(after.data), version: after.version }).toEqual({
      data: "plain",
      version: reply.version,
    });
    stream.abort();
  });

  it("compare-and-set: the expected version writes, any other is VERSION_CONFLICT and writes nothing", async () => {
    const stream = test.openWatch();
    const { version } = await test.admin.readVariable(ref);
    const ok = await stream.write({ ...ref, data: bytes("cas-ok"), expectedVersion: version });
    expect({ error: ok.error, version: ok.version }).toEqual({
      error: undefined,
      version: version + 1n,
    });
    for (const stale of [version, version + 5n, 0n]) {
      const conflict = await stream.write({
        ...ref,
        data: bytes("cas-lost"),
        expectedVersion: stale,
      });
      expect(replyCode(conflict)).toBe(ErrorCode.VERSION_CONFLICT);
      expect(conflict.version).toBe(0n);
    }
    const after = await test.admin.readVariable(ref);
    expect({ data: text(after.data), version: after.version }).toEqual({
      data: "cas-ok",
      version: version + 1n,
    });
    stream.abort();
  });

  it("create_if_missing creates at version 1; without it a missing variable is NOT_FOUND", async () => {
    const stream = test.openWatch();
    const missing = { tenantId: T, serviceName: S, variableName: "made-by-write" };
    const refused = await stream.write({ ...missing, data: bytes("no") });
    expect(replyCode(refused)).toBe(ErrorCode.NOT_FOUND);
    const conflict = await stream.write({
      ...missing,
      data: bytes("no"),
      createIfMissing: true,
      expectedVersion: 3n,
    });
    expect(replyCode(conflict)).toBe(ErrorCode.VERSION_CONFLICT);
    await expectCommyError(test.admin.readVariable(missing), Code.NotFound, ErrorCode.NOT_FOUND);

    const created = await stream.write({
      ...missing,
      data: bytes("yes"),
      createIfMissing: true,
      expectedVersion: 0n,
    });
    expect({ error: errorSummary(created.error), version: created.version }).toEqual({
      error: undefined,
      version: 1n,
    });
    // Existing now: create_if_missing is a plain write.
    const second = await stream.write({ ...missing, data: bytes("yes2"), createIfMissing: true });
    expect(second.version).toBe(2n);
    const read = await test.admin.readVariable(missing);
    expect({ data: text(read.data), version: read.version }).toEqual({ data: "yes2", version: 2n });
    stream.abort();
  });

  it("writes of one stream apply in the order sent, each answered with its own request_id", async () => {
    const stream = test.openWatch();
    const { version } = await test.admin.readVariable(ref);
    const ids = Array.from({ length: 50 }, (_, i) =>
      stream.sendWrite({ ...ref, data: bytes(`seq-${i}`) }),
    );
    const replies = await Promise.all(ids.map((id) => stream.reply(id)));
    expect(replies.map((r) => r.version)).toEqual(ids.map((_, i) => version + 1n + BigInt(i)));
    expect(replies.map((r) => r.requestId)).toEqual(ids);
    expect(text((await test.admin.readVariable(ref)).data)).toBe("seq-49");
    stream.abort();
  });

  it("when the client closes its side, what was asked before is answered, then the call ends cleanly", async () => {
    const stream = test.openWatch();
    const id = await stream.subscribeOk({ tenantId: T, serviceName: S, variableName: "cas" });
    const writes = Array.from({ length: 20 }, (_, i) =>
      stream.sendWrite({ ...ref, data: bytes(`last-${i}`) }),
    );
    const ping = stream.requestId("ping");
    stream.send({ case: "ping", value: { requestId: ping } });
    stream.closeRequests();
    expect(await stream.finished()).toBeUndefined();
    const answered = writes.filter((w) => stream.replyIfAny(w) !== undefined);
    expect(answered).toEqual(writes);
    expect(
      stream.responses.some((r) => r.event.case === "pong" && r.event.value.requestId === ping),
    ).toBe(true);
    const last = stream.replyIfAny(writes.at(-1) as string)?.version;
    expect(stream.changesOf(id).at(-1)?.version).toBe(last);
  });

  it("a write still waiting when the client closes its side is answered before the call ends", async () => {
    const locked = { tenantId: T, serviceName: S, variableName: "locked" };
    await test.admin.allocateVariable({ ...locked, initialData: bytes("l1") });
    // A local process holds the variable's lock and never lets go: the
    // server's write waits for it (asynchronously), then gives up with TIMEOUT.
    const holder = children.start("lockAndHang", {
      path: test.serviceFilePath(serviceId),
      name: "locked",
    });
    await holder.next("locked");
    const stream = test.openWatch();
    const write = stream.sendWrite({ ...locked, data: bytes("never") });
    await stream.ping();
    expect(stream.replyIfAny(write)).toBeUndefined();
    stream.closeRequests();
    const reply = await stream.reply(write);
    expect(reply.error?.code).toBe(ErrorCode.TIMEOUT);
    expect(await stream.finished()).toBeUndefined();
    const read = await test.admin.readVariable(locked);
    expect({ version: read.version, data: text(read.data) }).toEqual({ version: 1n, data: "l1" });
    await holder.kill();
  });
});

describe("bad commands", () => {
  it("out-of-range versions and oversized values are answered with INVALID_REQUEST", async () => {
    const stream = test.openWatch({ protocol: "connect", binary: true });
    const huge = 2n ** 60n;
    const replies = [
      await stream.subscribe({ tenantId: T, serviceName: S, variableName: "x", fromVersion: huge }),
      await stream.subscribe({ tenantId: T, serviceName: S, fromVersions: { x: huge } }),
      await stream.write({
        tenantId: T,
        serviceName: S,
        variableName: "x",
        data: bytes("v"),
        expectedVersion: huge,
      }),
      await stream.write({
        tenantId: T,
        serviceName: S,
        variableName: "x",
        data: new Uint8Array(1024 * 1024 + 1),
      }),
    ];
    expect(replies.map(replyCode)).toEqual(Array(4).fill(ErrorCode.INVALID_REQUEST));
    await stream.ping();
    expect(stream.changes).toEqual([]);
    expect(stream.ended).toBe(false);
    stream.abort();
  });

  it("a WatchRequest without a command ends the stream with invalid_argument / INVALID_REQUEST", async () => {
    const stream = test.openWatch();
    await stream.ping();
    stream.send(undefined);
    expect(endingOf(await stream.finished())).toEqual({
      code: Code.InvalidArgument,
      errorCodes: [ErrorCode.INVALID_REQUEST],
    });
  });
});

describe("subscriptions leave nothing behind", () => {
  it("when unsubscribed, when their stream is dropped or closed, when the connection is lost", async () => {
    const serviceName = "leaks";
    const id = await createService(
      test.admin,
      T,
      serviceName,
      { v: "v1" },
      { createTenant: false },
    );
    const listeners = () => test.server.core.feed.listenerCount(id);
    const one = test.openWatch();
    const a = await one.subscribeOk({ tenantId: T, serviceName });
    const b = await one.subscribeOk({ tenantId: T, serviceName, variableName: "v" });
    const two = test.openWatch({ protocol: "grpc" });
    await two.subscribeOk({ tenantId: T, serviceName });
    const three = test.openWatch({ protocol: "grpc-web" });
    await three.subscribeOk({ tenantId: T, serviceName, variableName: "v" });
    // One listener per stream, however many of its subscriptions follow the service.
    expect(listeners()).toBe(3);
    await one.unsubscribe(a);
    expect(listeners()).toBe(3);
    await one.unsubscribe(b);
    expect(listeners()).toBe(2);
    two.abort();
    await waitUntil(() => listeners() === 1, "the dropped stream's subscription to go");
    three.closeRequests();
    expect(await three.finished()).toBeUndefined();
    await waitUntil(() => listeners() === 0, "the closed stream's subscription to go");
    one.abort();
    // A connection that is simply gone (its socket destroyed).
    const raw = new RawGrpcWatch(test.server.url);
    raw.send({
      case: "subscribe",
      value: { requestId: "raw", subscription: { tenantId: T, serviceName } },
    });
    await raw.nextResponse((r) => r.event.case === "changes", "the snapshot");
    expect(listeners()).toBe(1);
    raw.close();
    await waitUntil(() => listeners() === 0, "the lost connection's subscription to go");
  });
});
