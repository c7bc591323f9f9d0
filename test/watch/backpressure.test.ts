/**
 * Slow and stalled subscribers (docs/streaming.md §3–4): a subscriber that
 * stops reading — a raw HTTP/2 client whose stream is paused, so that flow
 * control really stops the server's writes — never slows writers or the
 * other subscribers; what it has not taken is coalesced per variable, so
 * the server's memory stays bounded however many writes happen; when it
 * reads again it gets the latest values with exact `skipped` counts; and
 * one that stays stalled past the limit is cut off with RESOURCE_EXHAUSTED
 * and can resume.
 */
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ErrorCode } from "../../gen/commy/v1/errors_pb.js";
import { type Change, ChangeKind } from "../../gen/commy/v1/watch_pb.js";
import {
  RawGrpcWatch,
  type WatchStream,
  type WatchTestServer,
  bytes,
  createService,
  liveBytes,
  serverPerTest,
  startWatchServer,
  versionChainProblems,
  versionsAccountedFor,
  waitUntil,
} from "../helpers/watch-fixtures.js";

const T = "t";
const S = "s";
const NAMES = ["a", "b", "c"];

const perTest = serverPerTest();

/** A value of `size` bytes that names its writer and write. */
function payload(tag: string, size: number): Uint8Array {
  return bytes(tag.padEnd(size, "."));
}

/** Starts a server with a service of variables a, b, c; returns the server and the service id. */
async function setUp(limits: Parameters<typeof startWatchServer>[0]) {
  const server = await perTest.start(limits);
  const serviceId = await createService(server.admin, T, S, { a: "a0", b: "b0", c: "c0" });
  return { server, serviceId };
}

/** Keeping-up subscribers of the whole service, each on its own connection, past their snapshots. */
async function keepingUp(server: WatchTestServer, count: number) {
  const subscribers: { stream: WatchStream; id: bigint }[] = [];
  for (let i = 0; i < count; i++) {
    const stream = server.openWatch({
      protocol: i % 2 === 0 ? "grpc" : "connect",
      binary: true,
      label: `reader-${i}`,
      lean: true,
    });
    const id = await stream.subscribeOk({ tenantId: T, serviceName: S });
    for (const name of NAMES) await stream.reachVersion(id, name, 1n);
    subscribers.push({ stream, id });
  }
  return subscribers;
}

/** A raw subscriber of the whole service that has its snapshots and then stops reading. */
async function stalledSubscriber(
  server: WatchTestServer,
): Promise<{ raw: RawGrpcWatch; id: bigint }> {
  const raw = perTest.raw(server);
  raw.send({
    case: "subscribe",
    value: { requestId: "stall", subscription: { tenantId: T, serviceName: S } },
  });
  const reply = await raw.nextResponse((r) => r.event.case === "reply", "the subscribe reply");
  const id = reply.event.case === "reply" ? reply.event.value.subscriptionId : 0n;
  expect(id).toBeGreaterThan(0n);
  await raw.nextResponse(() => raw.changes.length === NAMES.length, "the snapshots");
  raw.stopReading();
  return { raw, id };
}

/** Current version and value of each variable. */
async function finals(server: WatchTestServer) {
  const result: Record<string, { version: bigint; data: Uint8Array }> = {};
  for (const variableName of NAMES) {
    const read = await server.admin.readVariable({ tenantId: T, serviceName: S, variableName });
    result[variableName] = { version: read.version, data: read.data };
  }
  return result;
}

/** The subscriber's changes of each variable form one chain ending at the final value. */
function expectConverged(
  changes: readonly Change[],
  id: bigint,
  final: Record<string, { version: bigint; data: Uint8Array }>,
  label: string,
  latestData: (name: string) => Uint8Array | undefined = (name) =>
    changes.filter((c) => c.subscriptionId === id && c.variableName === name).at(-1)?.data,
): void {
  for (const name of NAMES) {
    const mine = changes.filter((c) => c.subscriptionId === id && c.variableName === name);
    expect(
      versionChainProblems(mine, { firstKind: ChangeKind.SNAPSHOT }),
      `${label} ${name}`,
    ).toEqual([]);
    const last = mine.at(-1);
    const expected = final[name] as { version: bigint; data: Uint8Array };
    expect(last?.version, `${label} ${name}`).toBe(expected.version);
    expect(
      Buffer.from(latestData(name) ?? []).equals(Buffer.from(expected.data)),
      `${label} ${name} data`,
    ).toBe(true);
    expect(1n + versionsAccountedFor(mine), `${label} ${name}`).toBe(
      expected.version - (mine[0]?.version ?? 0n) + 1n,
    );
  }
}

describe("a subscriber that stops reading", () => {
  it("does not hold up writers or other subscribers, costs bounded memory, and converges when it reads again", async () => {
    const { server } = await setUp({
      maxReadyEvents: 8,
      stallLimitMs: 60_000,
      progressIntervalMs: 0,
    });
    const readers = await keepingUp(server, 2);
    const stalled = await stalledSubscriber(server);

    const VALUE_SIZE = 64 * 1024;
    const WRITES = 100;
    const writers = [
      { stream: server.openWatch({ protocol: "grpc", label: "writer-1" }), names: ["a", "b"] },
      {
        stream: server.openWatch({ protocol: "connect", binary: true, label: "writer-2" }),
        names: ["b", "c"],
      },
    ];
    let before = 0;
    let peak = 0;
    // Writes in rounds of pipelined writes; memory is sampled between rounds.
    const ROUNDS = 4;
    for (let round = 0; round < ROUNDS; round++) {
      const pending = writers.flatMap(({ stream, names }, w) =>
        Array.from({ length: WRITES / ROUNDS }, (_, i) => {
          const variableName = names[i % 2] as string;
          const id = stream.sendWrite({
            tenantId: T,
            serviceName: S,
            variableName,
            data: payload(`w${w}-${round}-${i}`, VALUE_SIZE),
          });
          return stream.reply(id, 15_000);
        }),
      );
      for (const reply of await Promise.all(pending)) expect(reply.error).toBeUndefined();
      // The readers keep up: they have this round's last versions before the next round.
      const reached = await finals(server);
      for (const { stream, id } of readers) {
        for (const name of NAMES) {
          await stream.reachVersion(
            id,
            name,
            (reached[name] as { version: bigint }).version,
            3_000,
          );
        }
      }
      // The first round warms up buffers and compiled code; growth is measured after it.
      if (round === 0) before = await liveBytes();
      else peak = Math.max(peak, (await liveBytes()) - before);
    }
    const final = await finals(server);
    expect(final.b?.version).toBe(BigInt(WRITES + 1));

    // The others got every final value promptly.
    for (const { stream, id } of readers) {
      for (const name of NAMES)
        await stream.reachVersion(id, name, (final[name] as { version: bigint }).version, 3_000);
      await stream.ping();
      expectConverged(stream.changes, id, final, "reader", (name) => stream.latest(id, name));
      expect(stream.ended).toBe(false);
    }

    // After the first round, 2 × 75 writes of 64 KiB went by (9.4 MiB, and as
    // much again to each reader). Holding them for the stalled subscriber
    // would grow memory by all of that; coalescing holds at most
    // maxReadyEvents values plus one pending entry per variable, and HTTP/2
    // a window's worth. (Values in flight to the readers make ~2 MiB of noise.)
    const measuredWrites = (2 * WRITES * (ROUNDS - 1)) / ROUNDS;
    const measuredBytes = measuredWrites * VALUE_SIZE;
    expect(
      peak,
      `live bytes grew by ${peak} while ${measuredWrites} values, ${measuredBytes} bytes, were written`,
    ).toBeLessThan(measuredBytes / 2);

    // Reading again: the latest values, each with the versions it missed counted.
    stalled.raw.resumeReading();
    await stalled.raw.nextResponse(
      () =>
        NAMES.every((name) =>
          stalled.raw.changes.some(
            (c) =>
              c.variableName === name && c.version === (final[name] as { version: bigint }).version,
          ),
        ),
      "the final values on the stalled subscriber",
    );
    expectConverged(stalled.raw.changes, stalled.id, final, "stalled");
    const skipped = stalled.raw.changes.reduce((sum, c) => sum + c.skipped, 0n);
    expect(skipped).toBeGreaterThan(BigInt(WRITES));
    // The server counted them: what this subscriber skipped is in its metrics.
    const metrics = await (await fetch(`${server.baseUrl}/metrics`)).text();
    const counted = /^commy_watch_coalesced_versions_total (\d+)$/m.exec(metrics)?.[1];
    expect(BigInt(counted ?? "0")).toBeGreaterThanOrEqual(skipped);
    // Its snapshots, what flow-control windows and buffers held, the 8 events
    // it may be ahead by, then one coalesced value per variable: not one per write.
    expect(stalled.raw.changes.length).toBeLessThan(40);
    for (const { stream } of [...readers, ...writers]) stream.abort();
  });

  it("is cut off with RESOURCE_EXHAUSTED after the stall limit while the others keep up; it can resume", async () => {
    const { server, serviceId } = await setUp({ maxReadyEvents: 16, stallLimitMs: 300 });
    const readers = await keepingUp(server, 2);
    const stalled = await stalledSubscriber(server);
    const listeners = () => server.server.core.feed.listenerCount(serviceId);
    expect(listeners()).toBe(3);

    // Writers go on, each awaiting its writes, until the stalled one is cut off.
    const VALUE_SIZE = 4 * 1024;
    const MAX_WRITES = 20_000;
    const started = Date.now();
    const writerCounts = await Promise.all(
      [
        { stream: server.openWatch({ protocol: "grpc", label: "writer-1" }), names: ["a", "b"] },
        {
          stream: server.openWatch({ protocol: "connect", binary: true, label: "writer-2" }),
          names: ["b", "c"],
        },
      ].map(async ({ stream, names }, w) => {
        let i = 0;
        for (; i < MAX_WRITES && listeners() === 3 && Date.now() - started < 10_000; i++) {
          const variableName = names[i % 2] as string;
          const reply = await stream.write({
            tenantId: T,
            serviceName: S,
            variableName,
            data: payload(`w${w}-${i}`, VALUE_SIZE),
          });
          expect(reply.error).toBeUndefined();
        }
        return i;
      }),
    );
    expect(listeners(), `still subscribed after ${writerCounts.join(" + ")} writes`).toBe(2);
    const final = await finals(server);

    // The others were not cut off and got every final value promptly.
    for (const { stream, id } of readers) {
      for (const name of NAMES)
        await stream.reachVersion(id, name, (final[name] as { version: bigint }).version, 3_000);
      await stream.ping();
      expect(stream.ended).toBe(false);
      expectConverged(stream.changes, id, final, "reader", (name) => stream.latest(id, name));
    }

    // The stalled one, reading again, finds its stream ended with RESOURCE_EXHAUSTED
    // after what it had not read yet: an in-order prefix, short of the final values.
    stalled.raw.resumeReading();
    const status = await stalled.raw.status();
    expect({ status: status.grpcStatus, codes: status.details.map((d) => d.code) }).toEqual({
      status: Code.ResourceExhausted,
      codes: [ErrorCode.RESOURCE_EXHAUSTED],
    });
    const seen: Record<string, bigint> = {};
    for (const name of NAMES) {
      const mine = stalled.raw.changes.filter((c) => c.variableName === name);
      expect(versionChainProblems(mine, { firstKind: ChangeKind.SNAPSHOT }), name).toEqual([]);
      seen[name] = mine.at(-1)?.version ?? 0n;
    }
    expect(
      NAMES.some((name) => (seen[name] as bigint) < (final[name] as { version: bigint }).version),
    ).toBe(true);

    // It resumes from what it saw, on a new stream: only newer versions, up to the final ones.
    const resumed = server.openWatch({ protocol: "grpc" });
    const id = await resumed.subscribeOk({ tenantId: T, serviceName: S, fromVersions: seen });
    for (const name of NAMES) {
      const version = (final[name] as { version: bigint }).version;
      if (version > (seen[name] as bigint)) await resumed.reachVersion(id, name, version);
    }
    await resumed.ping();
    for (const change of resumed.changes) {
      const name = change.variableName;
      expect(change.version).toBe((final[name] as { version: bigint }).version);
      expect(change.skipped).toBe(change.version - (seen[name] as bigint) - 1n);
    }
    for (const { stream } of readers) stream.abort();
    resumed.abort();
  });

  it("is cut off once the stall limit passes even when no more changes come", async () => {
    const { server, serviceId } = await setUp({
      maxReadyEvents: 16,
      stallLimitMs: 1_000,
      progressIntervalMs: 100,
    });
    const stalled = await stalledSubscriber(server);
    const listeners = () => server.server.core.feed.listenerCount(serviceId);
    // A quick burst far beyond flow-control windows and the 16 events it may
    // hold (well within the stall limit), then nothing more.
    const writer = server.openWatch({ protocol: "grpc" });
    const ids = Array.from({ length: 100 }, (_, i) =>
      writer.sendWrite({
        tenantId: T,
        serviceName: S,
        variableName: NAMES[i % NAMES.length] as string,
        data: payload(`burst-${i}`, 8 * 1024),
      }),
    );
    for (const id of ids) expect((await writer.reply(id)).error).toBeUndefined();
    expect(listeners(), "cut off during the burst already").toBe(1);
    await waitUntil(() => listeners() === 0, "the stalled subscriber to be cut off", 4_000);
    stalled.raw.resumeReading();
    const status = await stalled.raw.status();
    expect({ status: status.grpcStatus, codes: status.details.map((d) => d.code) }).toEqual({
      status: Code.ResourceExhausted,
      codes: [ErrorCode.RESOURCE_EXHAUSTED],
    });
    writer.abort();
  });
});
