/**
 * A subscriber process of the stream suite. It holds named groups of
 * connections, each group following one thing on N connections of its
 * own: a Commy variable (one Watch stream per HTTP/2 connection, one or
 * more subscriptions on it) or a Redis channel (one SUBSCRIBE connection
 * each). For every value received it notes the one-way latency from the
 * writer's stamp (bench/suites/stream-value.ts), per connection.
 *
 *   → open {group, kind: "commy", url, token, connections, tenant, service, variables}
 *   → open {group, kind: "redis", port, connections, channel}      ← opened
 *   → subscribe {group, variables}  more subscriptions on every stream  ← subscribed
 *   → arm {group, count}                                           ← armed
 *       count > 0: a latency run of writes 1..count;
 *       count = 0: a throughput run, ended by a write of END_SEQ
 *   → collect {group, timeoutMs}  ← collected (once every connection saw the
 *       run's last write, or at the timeout)
 *   → close {group}                                                ← closed
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  ChangeKind,
  type WatchResponse,
  WatchRequestSchema,
  WatchResponseSchema,
} from "../../gen/commy/v1/watch_pb.js";
import { onParentMessage, reportFailuresToParent, sendToParent } from "../lib/child.js";
import { GrpcFrameStream } from "../lib/grpc-frame-stream.js";
import { RespConnection } from "../lib/resp-client.js";
import { nowNs } from "../lib/timing.js";
import { END_SEQ, readStamp } from "./stream-value.js";

reportFailuresToParent();

/** What one connection saw during one run. */
class Tally {
  latencies: Float64Array = new Float64Array(0);
  count = 0;
  /** Distinct writes of the run seen (latency runs). */
  seen = 0;
  /** Update events received (a coalesced one counts once). */
  events = 0;
  /** Versions the events stand for: each event plus the versions it says it skipped. */
  covered = 0;
  skipped = 0;
  done = false;
  lastNs = 0n;
  armed = false;
  /** Why the connection's stream broke, if it did. */
  broken: string | undefined;

  arm(count: number): void {
    this.count = count;
    this.latencies = new Float64Array(count).fill(Number.NaN);
    this.seen = 0;
    this.events = 0;
    this.covered = 0;
    this.skipped = 0;
    this.done = false;
    this.lastNs = 0n;
    this.armed = true;
  }

  record(value: Uint8Array, skipped: number, now: bigint): void {
    if (!this.armed) return;
    const { seq, stamp } = readStamp(value);
    if (seq === 0) return;
    this.events++;
    this.covered += 1 + skipped;
    this.skipped += skipped;
    this.lastNs = now;
    if (seq === END_SEQ || (this.count > 0 && seq === this.count)) this.done = true;
    if (seq <= this.count && Number.isNaN(this.latencies[seq - 1])) {
      this.latencies[seq - 1] = Number(now - stamp);
      this.seen++;
    }
  }
}

interface Group {
  tallies: Tally[];
  close(): void;
  /** This process's CPU use and the time when the run was armed. */
  armedAt?: { cpu: NodeJS.CpuUsage; ns: bigint };
}

const groups = new Map<string, Group>();
/** After a run's last write: no event for this long means the run is over. */
const QUIET_MS = 50;
const QUIET_LIMIT_MS = 5_000;

type WatchRequestInit = MessageInitShape<typeof WatchRequestSchema>;

/**
 * One Watch stream on its own HTTP/2 connection, read by the lean gRPC
 * client (bench/lib/grpc-frame-stream.ts). Subscriptions are added with
 * `subscribe()`, which resolves once the server has answered all of them:
 * a ping follows them, and the server answers commands in order and queues
 * each snapshot right after its reply.
 */
class CommyStream {
  readonly #stream: GrpcFrameStream<typeof WatchRequestSchema, typeof WatchResponseSchema>;
  readonly #where: { tenantId: string; serviceName: string };
  readonly #tally: Tally;
  #nextRequest = 1;
  #failures: string[] = [];
  #pong: (() => void) | undefined;
  #broken: ((error: Error) => void) | undefined;
  #closed = false;

  constructor(
    where: { tenantId: string; serviceName: string; url: string; token: string },
    tally: Tally,
  ) {
    this.#where = { tenantId: where.tenantId, serviceName: where.serviceName };
    this.#tally = tally;
    this.#stream = new GrpcFrameStream({
      baseUrl: where.url,
      path: "/commy.v1.WatchService/Watch",
      bearer: where.token,
      request: WatchRequestSchema,
      response: WatchResponseSchema,
      onMessage: (response) => this.#receive(response),
      onEnd: (error) => this.#fail(error ?? new Error("the Watch stream ended")),
    });
  }

  /** Subscribes to each of `variables` and waits (bounded) for the answers. */
  subscribe(variables: readonly string[], timeoutMs = 60_000): Promise<void> {
    for (const variableName of variables) {
      this.#push({
        case: "subscribe",
        value: {
          requestId: String(this.#nextRequest++),
          subscription: { ...this.#where, variableName },
        },
      });
    }
    this.#push({ case: "ping", value: { requestId: String(this.#nextRequest++) } });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(new Error(`no answer to ${variables.length} subscriptions in ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.#broken = (error) => {
        clearTimeout(timer);
        reject(error);
      };
      this.#pong = () => {
        clearTimeout(timer);
        if (this.#failures.length === 0) resolve();
        else
          reject(new Error(`${this.#failures.length} subscriptions failed: ${this.#failures[0]}`));
      };
    });
  }

  close(): void {
    this.#closed = true;
    this.#stream.close();
  }

  #push(command: WatchRequestInit["command"]): void {
    this.#stream.send({ command });
  }

  #receive(response: WatchResponse): void {
    const event = response.event;
    if (event.case === "changes") {
      const now = nowNs();
      for (const change of event.value.changes) {
        if (change.kind === ChangeKind.UPDATE) {
          this.#tally.record(change.data, Number(change.skipped), now);
        }
      }
    } else if (event.case === "reply") {
      if (event.value.error !== undefined) this.#failures.push(event.value.error.message);
    } else if (event.case === "pong") {
      this.#pong?.();
    } else if (event.case === "ended") {
      this.#fail(new Error(`a subscription ended: ${event.value.reason?.message ?? "?"}`));
    }
  }

  #fail(error: Error): void {
    if (this.#closed) return;
    // While subscribing this fails the open; afterwards collect() reports it.
    this.#tally.broken ??= error.message;
    this.#broken?.(error);
  }
}

interface CommyGroup extends Group {
  streams: CommyStream[];
}

async function openCommy(message: Record<string, unknown>): Promise<CommyGroup> {
  const streams: CommyStream[] = [];
  const tallies: Tally[] = [];
  const group: CommyGroup = {
    tallies,
    streams,
    close: () => {
      for (const stream of streams) stream.close();
    },
  };
  const where = {
    tenantId: String(message.tenant),
    serviceName: String(message.service),
    url: String(message.url),
    token: String(message.token),
  };
  try {
    for (let i = 0; i < Number(message.connections); i++) {
      const tally = new Tally();
      tallies.push(tally);
      streams.push(new CommyStream(where, tally));
    }
    const variables = message.variables as string[];
    await Promise.all(streams.map((stream) => stream.subscribe(variables)));
  } catch (error) {
    group.close();
    throw error;
  }
  return group;
}

async function openRedis(message: Record<string, unknown>): Promise<Group> {
  const connections: RespConnection[] = [];
  const tallies: Tally[] = [];
  const group: Group = {
    tallies,
    close: () => {
      for (const connection of connections) connection.close();
    },
  };
  try {
    for (let i = 0; i < Number(message.connections); i++) {
      const connection = await RespConnection.connect(Number(message.port));
      connections.push(connection);
      const tally = new Tally();
      tallies.push(tally);
      await connection.subscribe(String(message.channel), (payload) =>
        tally.record(payload, 0, nowNs()),
      );
    }
  } catch (error) {
    group.close();
    throw error;
  }
  return group;
}

/** Waits (bounded) until every connection saw the run's last write, then reports. */
async function collect(group: Group, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  const pause = (): Promise<unknown> => new Promise((resolve) => setTimeout(resolve, 5));
  while (!group.tallies.every((t) => t.done) && Date.now() < deadline) await pause();
  // Changes of other variables may still follow the last write's: wait for a quiet moment.
  const quietUntil = Math.min(deadline, Date.now() + QUIET_LIMIT_MS);
  for (let events = -1; Date.now() < quietUntil;) {
    const now = group.tallies.reduce((sum, t) => sum + t.events, 0);
    if (now === events) break;
    events = now;
    await new Promise((resolve) => setTimeout(resolve, QUIET_MS));
  }
  const latencies: number[] = [];
  let lost = 0;
  let events = 0;
  let covered = 0;
  let skipped = 0;
  let lastNs = 0n;
  let unfinished = 0;
  const broken = group.tallies.map((t) => t.broken).filter((b) => b !== undefined);
  for (const tally of group.tallies) {
    tally.armed = false;
    for (const ns of tally.latencies) {
      // µs with 0.1 µs resolution: small enough to send, finer than anything compared.
      if (Number.isFinite(ns)) latencies.push(Math.round(ns / 100) / 10);
    }
    lost += tally.count - tally.seen;
    events += tally.events;
    covered += tally.covered;
    skipped += tally.skipped;
    if (tally.lastNs > lastNs) lastNs = tally.lastNs;
    if (!tally.done) unfinished++;
  }
  const cpu = process.cpuUsage(group.armedAt?.cpu);
  return {
    cpuMicros: cpu.user + cpu.system,
    wallMicros: Number(nowNs() - (group.armedAt?.ns ?? 0n)) / 1000,
    latencies,
    lost,
    events,
    covered,
    skipped,
    lastNs: String(lastNs),
    unfinished,
    broken: broken.length === 0 ? undefined : `${broken.length} streams broke: ${broken[0]}`,
  };
}

function groupOf(message: Record<string, unknown>): Group {
  const group = groups.get(String(message.group));
  if (group === undefined) throw new Error(`no group ${String(message.group)}`);
  return group;
}

onParentMessage(async (message) => {
  switch (message.type) {
    case "open": {
      const group = message.kind === "redis" ? await openRedis(message) : await openCommy(message);
      groups.set(String(message.group), group);
      await sendToParent({ type: "opened", group: message.group });
      return;
    }
    case "subscribe": {
      const group = groupOf(message) as Partial<CommyGroup>;
      if (group.streams === undefined) throw new Error("only Commy groups subscribe");
      const variables = message.variables as string[];
      await Promise.all(group.streams.map((stream) => stream.subscribe(variables)));
      await sendToParent({ type: "subscribed", group: message.group });
      return;
    }
    case "arm": {
      const group = groupOf(message);
      for (const tally of group.tallies) tally.arm(Number(message.count));
      group.armedAt = { cpu: process.cpuUsage(), ns: nowNs() };
      await sendToParent({ type: "armed", group: message.group });
      return;
    }
    case "collect": {
      const result = await collect(groupOf(message), Number(message.timeoutMs));
      await sendToParent({ type: "collected", group: message.group, ...result });
      return;
    }
    case "close":
      groupOf(message).close();
      groups.delete(String(message.group));
      await sendToParent({ type: "closed", group: message.group });
      return;
  }
});
await sendToParent({ type: "ready" });
