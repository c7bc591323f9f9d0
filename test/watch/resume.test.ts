/**
 * Resume (docs/streaming.md §5): a subscriber whose connection dropped
 * subscribes again with the last version it saw (from_version for one
 * variable, from_versions for a whole service) and gets only what is newer
 * — the current value, `skipped` counting the versions it missed — and
 * nothing twice; with nothing newer, nothing at all. Without it, a
 * SNAPSHOT.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChangeKind } from "../../gen/commy/v1/watch_pb.js";
import {
  type WatchTestServer,
  bytes,
  createService,
  startWatchServer,
  text,
} from "../helpers/watch-fixtures.js";

const T = "t";

let test: WatchTestServer;

beforeAll(async () => {
  test = await startWatchServer();
  await test.admin.createTenant({ tenantId: T });
});

afterAll(async () => {
  await test?.close();
});

/** Writes `count` values to a variable; returns the last version. */
async function writeMany(serviceName: string, variableName: string, count: number, tag: string) {
  let version = 0n;
  for (let i = 0; i < count; i++) {
    ({ version } = await test.admin.writeVariable({
      tenantId: T,
      serviceName,
      variableName,
      data: bytes(`${tag}-${i}`),
    }));
  }
  return version;
}

/** A change as plain data, for toEqual. */
function plain(change: {
  variableName: string;
  version: bigint;
  skipped: bigint;
  kind: ChangeKind;
  data: Uint8Array;
}) {
  return {
    variableName: change.variableName,
    version: change.version,
    skipped: change.skipped,
    kind: ChangeKind[change.kind],
    data: text(change.data),
  };
}

describe("one variable, from_version", () => {
  const serviceName = "one";

  beforeAll(async () => {
    await createService(test.admin, T, serviceName, { x: "x-initial" }, { createTenant: false });
  });

  it("after a dropped connection, gets only the latest value with the versions missed, nothing twice", async () => {
    const first = test.openWatch({ protocol: "grpc" });
    const id = await first.subscribeOk({ tenantId: T, serviceName, variableName: "x" });
    const seenUpTo = await writeMany(serviceName, "x", 3, "before");
    await first.reachVersion(id, "x", seenUpTo);
    const seen = first.changesOf(id, "x").map((c) => c.version);
    expect(seen).toEqual([seenUpTo - 3n, seenUpTo - 2n, seenUpTo - 1n, seenUpTo]);
    // The connection drops; writes go on.
    first.abort();
    expect(await first.finished()).toBeDefined();
    const latest = await writeMany(serviceName, "x", 5, "while-away");

    const second = test.openWatch({ protocol: "grpc" });
    const resumed = await second.subscribeOk({
      tenantId: T,
      serviceName,
      variableName: "x",
      fromVersion: seenUpTo,
    });
    await second.reachVersion(resumed, "x", latest);
    await second.ping();
    expect(second.changesOf(resumed).map(plain)).toEqual([
      { variableName: "x", version: latest, skipped: 4n, kind: "SNAPSHOT", data: "while-away-4" },
    ]);
    // And it goes on from there, one version at a time.
    const next = await writeMany(serviceName, "x", 2, "after");
    await second.reachVersion(resumed, "x", next);
    expect(
      second.changesOf(resumed).map((c) => [c.version, c.skipped, ChangeKind[c.kind]]),
    ).toEqual([
      [latest, 4n, "SNAPSHOT"],
      [latest + 1n, 0n, "UPDATE"],
      [latest + 2n, 0n, "UPDATE"],
    ]);
    second.abort();
  });

  it("from_version equal to the current version sends no snapshot, then the next change", async () => {
    const { version } = await test.admin.readVariable({
      tenantId: T,
      serviceName,
      variableName: "x",
    });
    const stream = test.openWatch();
    const id = await stream.subscribeOk({
      tenantId: T,
      serviceName,
      variableName: "x",
      fromVersion: version,
    });
    await stream.ping();
    expect(stream.changes).toEqual([]);
    const next = await writeMany(serviceName, "x", 1, "next");
    const change = await stream.reachVersion(id, "x", next);
    expect(plain(change)).toEqual({
      variableName: "x",
      version: version + 1n,
      skipped: 0n,
      kind: "UPDATE",
      data: "next-0",
    });
    expect(stream.changes).toHaveLength(1);
    stream.abort();
  });

  it("from_version 0 sends the whole history as skipped, and without from_version a plain snapshot", async () => {
    const { version } = await test.admin.readVariable({
      tenantId: T,
      serviceName,
      variableName: "x",
    });
    const stream = test.openWatch();
    const fromZero = await stream.subscribeOk({
      tenantId: T,
      serviceName,
      variableName: "x",
      fromVersion: 0n,
    });
    const fresh = await stream.subscribeOk({ tenantId: T, serviceName, variableName: "x" });
    await stream.reachVersion(fromZero, "x", version);
    await stream.reachVersion(fresh, "x", version);
    await stream.ping();
    const summary = (id: bigint) =>
      stream.changesOf(id).map((c) => [c.version, c.skipped, ChangeKind[c.kind]]);
    expect(summary(fromZero)).toEqual([[version, version - 1n, "SNAPSHOT"]]);
    expect(summary(fresh)).toEqual([[version, 0n, "SNAPSHOT"]]);
    stream.abort();
  });

  it("a variable created anew (its version below from_version) is sent as a snapshot", async () => {
    const ref = { tenantId: T, serviceName, variableName: "reborn" };
    await test.admin.allocateVariable({ ...ref, initialData: bytes("old-1") });
    const oldVersion = await writeMany(serviceName, "reborn", 4, "old");
    await test.admin.deallocateVariable(ref);
    await test.admin.allocateVariable({ ...ref, initialData: bytes("new-1") });
    const stream = test.openWatch();
    const id = await stream.subscribeOk({ ...ref, fromVersion: oldVersion });
    const change = await stream.reachVersion(id, "reborn", 1n);
    expect(plain(change)).toEqual({
      variableName: "reborn",
      version: 1n,
      skipped: 0n,
      kind: "SNAPSHOT",
      data: "new-1",
    });
    stream.abort();
  });
});

describe("a whole service, from_versions", () => {
  it("sends what is newer per variable, snapshots variables not named, and nothing twice", async () => {
    const serviceName = "whole";
    await createService(
      test.admin,
      T,
      serviceName,
      { a: "a1", b: "b1", c: "c1", d: "d1" },
      { createTenant: false },
    );
    const first = test.openWatch();
    const id = await first.subscribeOk({ tenantId: T, serviceName });
    const a = await writeMany(serviceName, "a", 2, "a"); // a: 3
    const b = await writeMany(serviceName, "b", 1, "b"); // b: 2
    await first.reachVersion(id, "a", a);
    await first.reachVersion(id, "b", b);
    const lastSeen: Record<string, bigint> = {};
    for (const change of first.changes) lastSeen[change.variableName] = change.version;
    expect(lastSeen).toEqual({ a: 3n, b: 2n, c: 1n, d: 1n });
    first.abort();

    // Away: a is written 3 times, b not at all, c twice; d is left out of from_versions.
    const aNow = await writeMany(serviceName, "a", 3, "a-away");
    const cNow = await writeMany(serviceName, "c", 2, "c-away");
    const second = test.openWatch();
    const resumed = await second.subscribeOk({
      tenantId: T,
      serviceName,
      fromVersions: { a: lastSeen.a as bigint, b: lastSeen.b as bigint, c: lastSeen.c as bigint },
    });
    await second.reachVersion(resumed, "a", aNow);
    await second.reachVersion(resumed, "c", cNow);
    await second.reachVersion(resumed, "d", 1n);
    await second.ping();
    const byName = Object.fromEntries(
      second.changesOf(resumed).map((c) => [c.variableName, plain(c)]),
    );
    expect(second.changesOf(resumed)).toHaveLength(3);
    expect(byName).toEqual({
      a: { variableName: "a", version: 6n, skipped: 2n, kind: "SNAPSHOT", data: "a-away-2" },
      c: { variableName: "c", version: 3n, skipped: 1n, kind: "SNAPSHOT", data: "c-away-1" },
      d: { variableName: "d", version: 1n, skipped: 0n, kind: "SNAPSHOT", data: "d1" },
    });
    // b, unchanged, comes with its next write only.
    await writeMany(serviceName, "b", 1, "b-next");
    const bNext = await second.reachVersion(resumed, "b", 3n);
    expect([bNext.version, bNext.skipped, ChangeKind[bNext.kind]]).toEqual([3n, 0n, "UPDATE"]);
    second.abort();
  });
});
