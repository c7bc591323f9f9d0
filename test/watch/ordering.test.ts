/**
 * Order and no loss (docs/streaming.md §1–3, §6): per variable, changes
 * arrive in version order; every subscriber converges to the final value;
 * versions it did not see are counted in `skipped`, exactly; a subscriber
 * that keeps up sees every version; each change carries the value written
 * at its version. Writers are remote (WriteVariable, Watch write commands)
 * and local processes writing into the mapped service file.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChangeKind } from "../../gen/commy/v1/watch_pb.js";
import { Children, isUniform } from "../shm/helpers.js";
import {
  type WatchStream,
  type WatchTestServer,
  bytes,
  createService,
  startWatchServer,
  text,
  versionChainProblems,
  versionsAccountedFor,
} from "../helpers/watch-fixtures.js";

const T = "t";

let test: WatchTestServer;
const children = new Children();

beforeAll(async () => {
  test = await startWatchServer({ maxReadyEvents: 32 });
  await test.admin.createTenant({ tenantId: T });
});

afterAll(async () => {
  await children.killAll();
  await test?.close();
});

/** What was written at each version of each variable. */
class WrittenValues {
  readonly #values = new Map<string, Map<bigint, string>>();

  set(name: string, version: bigint, value: string): void {
    let byVersion = this.#values.get(name);
    if (byVersion === undefined) this.#values.set(name, (byVersion = new Map()));
    if (byVersion.has(version)) throw new Error(`two writes produced ${name} v${version}`);
    byVersion.set(version, value);
  }

  at(name: string): (version: bigint) => Uint8Array | undefined {
    return (version) => {
      const value = this.#values.get(name)?.get(version);
      return value === undefined ? undefined : bytes(value);
    };
  }

  versions(name: string): bigint[] {
    return [...(this.#values.get(name)?.keys() ?? [])].sort((a, b) => (a < b ? -1 : 1));
  }
}

/** A snapshot, then every version in order with its own value, none skipped. */
function expectEveryVersion(
  changes: Parameters<typeof versionChainProblems>[0],
  valueAt: (version: bigint) => Uint8Array | undefined,
): void {
  expect(
    versionChainProblems(changes, {
      firstKind: ChangeKind.SNAPSHOT,
      expectNoSkips: true,
      valueAt,
    }),
  ).toEqual([]);
}

/** Checks one subscriber's view of one variable against its final version and value. */
function expectConverged(
  changes: Parameters<typeof versionChainProblems>[0],
  final: { version: bigint; data: Uint8Array },
  valueAt: (version: bigint) => Uint8Array | undefined,
  label: string,
): void {
  expect(versionChainProblems(changes, { firstKind: ChangeKind.SNAPSHOT, valueAt }), label).toEqual(
    [],
  );
  const first = changes[0];
  const last = changes.at(-1);
  expect(last?.version, label).toBe(final.version);
  expect(Buffer.from(last?.data ?? []).equals(Buffer.from(final.data)), label).toBe(true);
  // sum over changes of (1 + skipped) == final version − first version seen + 1
  expect(1n + versionsAccountedFor(changes), label).toBe(
    final.version - (first?.version ?? 0n) + 1n,
  );
}

describe("several writers at full speed, several subscribers on their own connections", () => {
  it("every subscriber ends with the final values; versions only go up; skips add up exactly", async () => {
    const serviceName = "load";
    const names = ["a", "b", "c"];
    await createService(
      test.admin,
      T,
      serviceName,
      { a: "a0", b: "b0", c: "c0" },
      { createTenant: false },
    );
    const written = new WrittenValues();
    for (const name of names) written.set(name, 1n, `${name}0`);

    // Four subscribers, each on a connection of its own, over different protocols.
    const subscribers: { stream: WatchStream; ids: Record<string, bigint> }[] = [];
    const wide = async (stream: WatchStream) => {
      const id = await stream.subscribeOk({ tenantId: T, serviceName });
      return { stream, ids: { a: id, b: id, c: id } };
    };
    subscribers.push(
      await wide(
        test.openWatch({ protocol: "connect", binary: true, label: "sub-connect-binary" }),
      ),
    );
    subscribers.push(
      await wide(test.openWatch({ protocol: "connect", label: "sub-connect-json" })),
    );
    subscribers.push(await wide(test.openWatch({ protocol: "grpc-web", label: "sub-grpc-web" })));
    const perVariable = test.openWatch({ protocol: "grpc", label: "sub-grpc-per-variable" });
    const ids: Record<string, bigint> = {};
    for (const name of names)
      ids[name] = await perVariable.subscribeOk({ tenantId: T, serviceName, variableName: name });
    subscribers.push({ stream: perVariable, ids });
    for (const { stream, ids: byName } of subscribers) {
      for (const name of names) await stream.reachVersion(byName[name] as bigint, name, 1n);
    }

    // Two writers, each writing 1000 times without waiting for replies; they share "b".
    const WRITES = 1000;
    const writers = [
      {
        stream: test.openWatch({ protocol: "connect", binary: true, label: "writer-1" }),
        names: ["a", "b"],
      },
      { stream: test.openWatch({ protocol: "grpc", label: "writer-2" }), names: ["b", "c"] },
    ];
    const sent = writers.map(({ stream, names: targets }, w) =>
      Array.from({ length: WRITES }, (_, i) => {
        const variableName = targets[i % 2] as string;
        const value = `w${w + 1}-${i}-${variableName}`;
        return {
          variableName,
          value,
          id: stream.sendWrite({ tenantId: T, serviceName, variableName, data: bytes(value) }),
        };
      }),
    );
    for (const [w, writes] of sent.entries()) {
      const stream = (writers[w] as (typeof writers)[number]).stream;
      for (const { variableName, value, id } of writes) {
        const reply = await stream.reply(id, 15_000);
        expect(reply.error).toBeUndefined();
        written.set(variableName, reply.version, value);
      }
    }
    // Every version from 1 to the final one was written exactly once.
    const finals: Record<string, { version: bigint; data: Uint8Array }> = {};
    for (const name of names) {
      const read = await test.admin.readVariable({ tenantId: T, serviceName, variableName: name });
      finals[name] = { version: read.version, data: read.data };
      const expectedCount = name === "b" ? WRITES : WRITES / 2;
      expect(read.version).toBe(BigInt(expectedCount + 1));
      expect(written.versions(name)).toEqual(
        Array.from({ length: expectedCount + 1 }, (_, i) => BigInt(i + 1)),
      );
    }

    for (const { stream, ids: byName } of subscribers) {
      for (const name of names) {
        const id = byName[name] as bigint;
        await stream.reachVersion(id, name, (finals[name] as { version: bigint }).version, 10_000);
      }
      // Everything queued for it has arrived: its last change is the final value.
      await stream.ping();
      for (const name of names) {
        expectConverged(
          stream.changesOf(byName[name] as bigint, name),
          finals[name] as { version: bigint; data: Uint8Array },
          written.at(name),
          `${name} on ${stream.label}`,
        );
      }
      expect(stream.ended).toBe(false);
    }
    for (const { stream } of [...subscribers, ...writers]) stream.abort();
  });
});

describe("a subscriber that keeps up", () => {
  it("sees every version, in order, with skipped 0 and the value written at each", async () => {
    const serviceName = "steady";
    await createService(test.admin, T, serviceName, { x: "x0" }, { createTenant: false });
    const stream = test.openWatch({ protocol: "grpc" });
    const id = await stream.subscribeOk({ tenantId: T, serviceName, variableName: "x" });
    const written = new WrittenValues();
    written.set("x", 1n, "x0");
    const WRITES = 300;
    for (let i = 1; i <= WRITES; i++) {
      const { version } = await test.admin.writeVariable({
        tenantId: T,
        serviceName,
        variableName: "x",
        data: bytes(`steady-${i}`),
      });
      written.set("x", version, `steady-${i}`);
    }
    await stream.reachVersion(id, "x", BigInt(WRITES + 1));
    await stream.ping();
    const changes = stream.changesOf(id, "x");
    expect(changes.map((c) => c.version)).toEqual(
      Array.from({ length: WRITES + 1 }, (_, i) => BigInt(i + 1)),
    );
    expectEveryVersion(changes, written.at("x"));
    expect(changes.slice(1).every((c) => c.kind === ChangeKind.UPDATE)).toBe(true);
    stream.abort();
  });
});

describe("a subscriber that keeps up with a pipelining writer", () => {
  it("sees every version of writes sent together on one stream, each with skipped 0", async () => {
    const serviceName = "pipelined";
    await createService(test.admin, T, serviceName, { x: "x0" }, { createTenant: false });
    const stream = test.openWatch({ protocol: "grpc" });
    const id = await stream.subscribeOk({ tenantId: T, serviceName, variableName: "x" });
    const writer = test.openWatch({ protocol: "grpc", label: "pipelining writer" });
    // Fewer than the subscriber may hold (maxReadyEvents 32): it keeps up.
    const WRITES = 20;
    const sent = Array.from({ length: WRITES }, (_, i) =>
      writer.sendWrite({ tenantId: T, serviceName, variableName: "x", data: bytes(`p-${i}`) }),
    );
    const written = new WrittenValues();
    written.set("x", 1n, "x0");
    for (const [i, requestId] of sent.entries()) {
      const reply = await writer.reply(requestId);
      expect(reply.error).toBeUndefined();
      written.set("x", reply.version, `p-${i}`);
    }
    await stream.reachVersion(id, "x", BigInt(WRITES + 1));
    const changes = stream.changesOf(id, "x");
    expectEveryVersion(changes, written.at("x"));
    expect(changes).toHaveLength(WRITES + 1);
    stream.abort();
    writer.abort();
  });
});

describe("a local process writing into the mapped service file", () => {
  it("a remote subscriber receives its write, with the version it produced", async () => {
    const serviceName = "local";
    const serviceId = await createService(
      test.admin,
      T,
      serviceName,
      { x: "x0", y: "y0" },
      { createTenant: false },
    );
    const stream = test.openWatch();
    const id = await stream.subscribeOk({ tenantId: T, serviceName });
    await stream.reachVersion(id, "y", 1n);

    const child = children.start("write", {
      path: test.serviceFilePath(serviceId),
      names: ["x"],
      length: 8,
    });
    const { versions } = (await child.next("wrote")) as unknown as { versions: { x: number } };
    expect(versions.x).toBe(2);
    const change = await stream.reachVersion(id, "x", 2n);
    expect({ kind: change.kind, version: change.version, skipped: change.skipped }).toEqual({
      kind: ChangeKind.UPDATE,
      version: 2n,
      skipped: 0n,
    });
    expect(isUniform(change.data, 2) && change.data.length === 8).toBe(true);
    await child.done();
    // The server sees the same value.
    const read = await test.admin.readVariable({ tenantId: T, serviceName, variableName: "x" });
    expect(Buffer.from(read.data).equals(Buffer.from(change.data))).toBe(true);
    stream.abort();
  });

  it("local and remote writers at once: the subscriber converges, every skip accounted for", async () => {
    const serviceName = "mixed";
    const serviceId = await createService(test.admin, T, serviceName, {}, { createTenant: false });
    // Room in place for the local writer's values (up to 64 bytes): it cannot relocate.
    await test.admin.allocateVariable({
      tenantId: T,
      serviceName,
      variableName: "x",
      initialData: bytes("x0"),
      capacity: 64,
    });
    const stream = test.openWatch({ protocol: "grpc" });
    const id = await stream.subscribeOk({ tenantId: T, serviceName, variableName: "x" });
    await stream.reachVersion(id, "x", 1n);

    const LOCAL = 500;
    const REMOTE = 500;
    const child = children.start("increment", {
      path: test.serviceFilePath(serviceId),
      name: "x",
      count: LOCAL,
    });
    await child.next("ready");
    const writer = test.openWatch({ protocol: "connect", binary: true });
    child.send({ type: "go" });
    const written = new WrittenValues();
    written.set("x", 1n, "x0");
    const ids = Array.from({ length: REMOTE }, (_, i) =>
      writer.sendWrite({ tenantId: T, serviceName, variableName: "x", data: bytes(`remote-${i}`) }),
    );
    for (const [i, requestId] of ids.entries()) {
      const reply = await writer.reply(requestId, 15_000);
      expect(reply.error).toBeUndefined();
      written.set("x", reply.version, `remote-${i}`);
    }
    await child.next("done", 15_000);
    await child.done();

    const final = await test.admin.readVariable({ tenantId: T, serviceName, variableName: "x" });
    expect(final.version).toBe(BigInt(1 + LOCAL + REMOTE));
    await stream.reachVersion(id, "x", final.version);
    await stream.ping();
    const changes = stream.changesOf(id, "x");
    // A local write's value is uniform (shm-child's increment); a remote one is what was sent.
    const localValue = (version: bigint) => {
      const v = Number(version);
      return Buffer.alloc(1 + (v % 64), v & 0xff);
    };
    expectConverged(
      changes,
      final,
      (version) => written.at("x")(version) ?? localValue(version),
      "x",
    );
    const remoteVersions = new Set(written.versions("x"));
    expect(remoteVersions.size).toBe(REMOTE + 1);
    expect(text(final.data).length).toBeGreaterThan(0);
    writer.abort();
    stream.abort();
  });
});
