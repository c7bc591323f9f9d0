/**
 * The writer process of the stream suite. It holds named targets, each on
 * a connection (or mapping) of its own, and writes stamped values
 * (bench/suites/stream-value.ts) into one of them at a time:
 *
 *   commy-watch  write commands on a Watch stream (one HTTP/2 connection)
 *   commy-unary  WriteVariable calls (one HTTP/2 connection, a stream each)
 *   redis        PUBLISH on one connection
 *   echo         EchoStream messages on N connections: the transport floor;
 *                the writer itself receives the echo and notes the round trip
 *   broadcast    Broadcast messages of the bench EchoService (one HTTP/2
 *                connection): the fan-out floor, which Listen streams receive
 *   local        writes into the mapped service file (ServiceFile.open), as a
 *                local process does
 *
 *   → open {target, kind, ...}                          ← opened
 *   → paced {target, count, rate}  writes 1..count at `rate`/s
 *   → flood {target, durationMs, window}  as fast as it can with at most
 *       `window` unanswered, then one write of END_SEQ
 *                                      ← done {writes, startNs, endNs, cpuMicros, ...}
 *   → clock                ← clock {monotonicNs, originMinusMonotonicNs}
 *   → close {target}                                    ← closed
 *
 * Pacing leaves the event loop free (a timer of about 1 ms, sending every
 * write that is due): writes keep their average rate, and each is stamped
 * as it is sent.
 */
import type { DescMessage, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import {
  BroadcastRequestSchema,
  BroadcastResponseSchema,
  type EchoStreamRequestSchema,
} from "../../gen/commy/bench/v1/echo_pb.js";
import { WatchRequestSchema, WatchResponseSchema } from "../../gen/commy/v1/watch_pb.js";
import { AsyncQueue } from "../lib/async-queue.js";
import { commyClients } from "../lib/commy-client.js";
import { GrpcFrameStream } from "../lib/grpc-frame-stream.js";
import { onParentMessage, reportFailuresToParent, sendToParent } from "../lib/child.js";
import { type WatchConnection, connectWatch } from "../lib/watch-clients.js";
import { RespConnection, RespError } from "../lib/resp-client.js";
import { nowNs } from "../lib/timing.js";
import { END_SEQ, VALUE_BYTES, readStamp, stampValue } from "./stream-value.js";
import { ServiceFile, type VariableHandle } from "../../src/shm/index.js";

reportFailuresToParent();

/** What a run of writes tells the bench. */
interface Outcome {
  writes: number;
  startNs: string;
  endNs: string;
  /** Writes answered with an error (or never answered within the bound). */
  errors: number;
  /** Round trips the writer saw (echo: the floor; commy-watch: write → reply), µs. */
  roundTrips: number[];
  /** Echo floods: messages echoed back. */
  echoed?: number;
  lastEchoNs?: string;
}

/** Something the writer writes into. */
interface Target {
  /** Sends write `seq` stamped `stamp`. */
  send(seq: number, stamp: bigint): void;
  /** Writes sent and not yet answered. */
  inFlight(): number;
  /** Resolves when an answer arrives (or soon, if none is outstanding). */
  answered(): Promise<void>;
  /** Starts a run (clears what was noted). */
  begin(count: number): void;
  /** What the run noted. */
  finish(): Pick<Outcome, "errors" | "roundTrips" | "echoed" | "lastEchoNs">;
  close(): void;
}

const targets = new Map<string, Target>();

/** Bookkeeping shared by targets whose writes are answered one by one. */
class Answers {
  sent = 0;
  answered = 0;
  errors = 0;
  sentAt = new Float64Array(0);
  roundTrips: number[] = [];
  #wake: (() => void) | undefined;

  begin(count: number): void {
    this.sent = 0;
    this.answered = 0;
    this.errors = 0;
    this.sentAt = new Float64Array(count + 1);
    this.roundTrips = [];
  }

  noteSent(seq: number, stamp: bigint): void {
    this.sent++;
    if (seq < this.sentAt.length) this.sentAt[seq] = Number(stamp);
  }

  noteAnswer(seq: number, failed: boolean, now: bigint): void {
    this.answered++;
    if (failed) this.errors++;
    else if (seq > 0 && seq < this.sentAt.length) {
      this.roundTrips.push(Math.round((Number(now) - (this.sentAt[seq] as number)) / 100) / 10);
    }
    this.#wake?.();
  }

  wait(): Promise<void> {
    if (this.sent === this.answered) return Promise.resolve();
    return new Promise((resolve) => (this.#wake = resolve));
  }
}

type EchoRequestInit = MessageInitShape<typeof EchoStreamRequestSchema>;

/** A stream of the lean gRPC client whose messages are writes, answered one by one. */
interface FrameStreamTarget<I extends DescMessage, O extends DescMessage> {
  url: string;
  token: string;
  path: string;
  request: I;
  response: O;
  /** The message of write `seq`. */
  write(seq: number, stamp: bigint): MessageInitShape<I>;
  /** The write a response answers and whether it failed, or undefined (not an answer). */
  answerOf(
    response: MessageShape<O>,
    answered: number,
  ): { seq: number; failed: boolean } | undefined;
}

/**
 * Writes on one bidi stream, sent and read by the lean gRPC client
 * (bench/lib/grpc-frame-stream.ts) as the Redis writer pipelines PUBLISH:
 * what the writer costs is not what is measured.
 */
function frameStreamTarget<I extends DescMessage, O extends DescMessage>(
  target: FrameStreamTarget<I, O>,
): Target {
  const answers = new Answers();
  const stream = new GrpcFrameStream({
    baseUrl: target.url,
    path: target.path,
    bearer: target.token,
    request: target.request,
    response: target.response,
    onMessage: (response) => {
      const answer = target.answerOf(response, answers.answered);
      if (answer !== undefined) answers.noteAnswer(answer.seq, answer.failed, nowNs());
    },
    onEnd: () => undefined, // unanswered writes count as errors
  });
  return {
    send: (seq, stamp) => {
      answers.noteSent(seq, stamp);
      stream.send(target.write(seq, stamp));
    },
    inFlight: () => answers.sent - answers.answered,
    answered: () => answers.wait(),
    begin: (count) => answers.begin(count),
    finish: () => ({ errors: answers.errors, roundTrips: answers.roundTrips }),
    close: () => stream.close(),
  };
}

/** Write commands on a Watch stream. */
function commyWatchTarget(message: Record<string, unknown>): Target {
  const where = { tenantId: String(message.tenant), serviceName: String(message.service) };
  const variables = message.variables as string[];
  return frameStreamTarget({
    url: String(message.url),
    token: String(message.token),
    path: "/commy.v1.WatchService/Watch",
    request: WatchRequestSchema,
    response: WatchResponseSchema,
    write: (seq, stamp) => ({
      command: {
        case: "write" as const,
        value: {
          requestId: String(seq),
          ...where,
          variableName: variables[seq % variables.length] as string,
          data: stampValue(new Uint8Array(VALUE_BYTES), seq, stamp),
        },
      },
    }),
    answerOf: (response) =>
      response.event.case === "reply"
        ? {
            seq: Number(response.event.value.requestId),
            failed: response.event.value.error !== undefined,
          }
        : undefined,
  });
}

/**
 * Broadcast messages of the bench EchoService: the fan-out floor, each
 * written to every Listen stream and answered, in order, once it is.
 */
function broadcastTarget(message: Record<string, unknown>): Target {
  return frameStreamTarget({
    url: String(message.url),
    token: String(message.token),
    path: "/commy.bench.v1.EchoService/Broadcast",
    request: BroadcastRequestSchema,
    response: BroadcastResponseSchema,
    write: (seq, stamp) => ({ payload: stampValue(new Uint8Array(VALUE_BYTES), seq, stamp) }),
    answerOf: (_response, answered) => ({ seq: answered + 1, failed: false }),
  });
}

/** WriteVariable calls on one HTTP/2 connection, each its own HTTP/2 stream. */
function commyUnaryTarget(message: Record<string, unknown>): Target {
  const clients = commyClients(String(message.url), String(message.token));
  const where = { tenantId: String(message.tenant), serviceName: String(message.service) };
  const variables = message.variables as string[];
  const answers = new Answers();
  return {
    send: (seq, stamp) => {
      answers.noteSent(seq, stamp);
      clients.commy
        .writeVariable({
          ...where,
          variableName: variables[seq % variables.length] as string,
          data: stampValue(new Uint8Array(VALUE_BYTES), seq, stamp),
        })
        .then(
          () => answers.noteAnswer(seq, false, nowNs()),
          () => answers.noteAnswer(seq, true, nowNs()),
        );
    },
    inFlight: () => answers.sent - answers.answered,
    answered: () => answers.wait(),
    begin: (count) => answers.begin(count),
    finish: () => ({ errors: answers.errors, roundTrips: answers.roundTrips }),
    close: () => clients.close(),
  };
}

async function redisTarget(message: Record<string, unknown>): Promise<Target> {
  const connection = await RespConnection.connect(Number(message.port));
  const channel = String(message.channel);
  const answers = new Answers();
  let corked = false;
  return {
    send: (seq, stamp) => {
      answers.noteSent(seq, stamp);
      // Writes of one turn of the event loop leave together, as a pipelining client's do.
      if (!corked) {
        corked = true;
        connection.cork();
        process.nextTick(() => {
          corked = false;
          connection.uncork();
        });
      }
      connection.send(
        ["PUBLISH", channel, stampValue(new Uint8Array(VALUE_BYTES), seq, stamp)],
        (reply) => answers.noteAnswer(seq, reply instanceof RespError, nowNs()),
      );
    },
    inFlight: () => answers.sent - answers.answered,
    answered: () => answers.wait(),
    begin: (count) => answers.begin(count),
    finish: () => ({ errors: answers.errors, roundTrips: answers.roundTrips }),
    close: () => connection.close(),
  };
}

/** EchoStreams on `connections` connections, written in turn. */
function echoTarget(message: Record<string, unknown>): Target {
  const connections: WatchConnection[] = [];
  const queues: AsyncQueue<EchoRequestInit>[] = [];
  const abort = new AbortController();
  const answers = new Answers();
  let echoed = 0;
  let lastEchoNs = 0n;
  for (let i = 0; i < Number(message.connections ?? 1); i++) {
    const connection = connectWatch(String(message.url), String(message.token));
    const requests = new AsyncQueue<EchoRequestInit>();
    connections.push(connection);
    queues.push(requests);
    void (async () => {
      for await (const response of connection.echo.echoStream(requests, {
        signal: abort.signal,
      })) {
        const now = nowNs();
        const { seq } = readStamp(response.payload);
        echoed++;
        lastEchoNs = now;
        answers.noteAnswer(seq === END_SEQ ? 0 : seq, false, now);
      }
    })().catch(() => undefined);
  }
  let next = 0;
  return {
    send: (seq, stamp) => {
      answers.noteSent(seq, stamp);
      const queue = queues[next++ % queues.length] as AsyncQueue<EchoRequestInit>;
      queue.push({ payload: stampValue(new Uint8Array(VALUE_BYTES), seq, stamp) });
    },
    inFlight: () => answers.sent - answers.answered,
    answered: () => answers.wait(),
    begin: (count) => {
      answers.begin(count);
      echoed = 0;
      lastEchoNs = 0n;
    },
    finish: () => ({
      errors: answers.errors,
      roundTrips: answers.roundTrips,
      echoed,
      lastEchoNs: String(lastEchoNs),
    }),
    close: () => {
      abort.abort();
      for (const queue of queues) queue.end();
      for (const connection of connections) connection.close();
    },
  };
}

/** A local process's view of the service file: writes are synchronous and unanswered. */
function localTarget(message: Record<string, unknown>): Target {
  const file = ServiceFile.open(String(message.path));
  const handles = (message.variables as string[]).map((name) => file.handle(name));
  const value = new Uint8Array(VALUE_BYTES);
  return {
    send: (seq, stamp) => {
      file.write(handles[seq % handles.length] as VariableHandle, stampValue(value, seq, stamp));
    },
    inFlight: () => 0,
    answered: () => Promise.resolve(),
    begin: () => undefined,
    finish: () => ({ errors: 0, roundTrips: [] }),
    close: () => file.close(),
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits until every write is answered, at most `limitMs`. */
async function drain(target: Target, limitMs: number): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (target.inFlight() > 0 && Date.now() < deadline) {
    await Promise.race([target.answered(), sleep(50)]);
  }
}

async function paced(target: Target, count: number, rate: number): Promise<Outcome> {
  target.begin(count);
  const intervalNs = 1e9 / rate;
  const start = nowNs();
  let seq = 1;
  // Bounded: every turn sends at least one write or sleeps until one is due.
  while (seq <= count) {
    const now = nowNs();
    const due = start + BigInt(Math.round((seq - 1) * intervalNs));
    if (now >= due) {
      target.send(seq, nowNs());
      seq++;
      continue;
    }
    await sleep(Math.max(1, Math.floor(Number(due - now) / 1e6)));
  }
  const end = nowNs();
  await drain(target, 30_000);
  const noted = target.finish();
  return {
    writes: count,
    startNs: String(start),
    endNs: String(end),
    ...noted,
    errors: noted.errors + target.inFlight(),
  };
}

async function flood(target: Target, durationMs: number, window: number): Promise<Outcome> {
  target.begin(0);
  const start = nowNs();
  const stopAt = start + BigInt(durationMs) * 1_000_000n;
  let seq = 1;
  if (window <= 0) {
    // Synchronous writes (a local writer): a tight loop, checking the time now and then.
    for (let now = start; now < stopAt; now = nowNs()) {
      for (let i = 0; i < 256; i++) target.send(seq++, now);
    }
  } else {
    for (let now = start; now < stopAt; now = nowNs()) {
      while (target.inFlight() < window) target.send(seq++, nowNs());
      await Promise.race([target.answered(), sleep(100)]);
    }
  }
  const end = nowNs();
  target.send(END_SEQ, end);
  await drain(target, 30_000);
  const noted = target.finish();
  return {
    writes: seq,
    startNs: String(start),
    endNs: String(end),
    ...noted,
    errors: noted.errors + target.inFlight(),
  };
}

async function openTarget(message: Record<string, unknown>): Promise<Target> {
  switch (message.kind) {
    case "commy-watch":
      return commyWatchTarget(message);
    case "commy-unary":
      return commyUnaryTarget(message);
    case "redis":
      return redisTarget(message);
    case "echo":
      return echoTarget(message);
    case "broadcast":
      return broadcastTarget(message);
    case "local":
      return localTarget(message);
    default:
      throw new Error(`unknown target kind ${String(message.kind)}`);
  }
}

function cpuMicrosSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return used.user + used.system;
}

function targetOf(message: Record<string, unknown>): Target {
  const target = targets.get(String(message.target));
  if (target === undefined) throw new Error(`no target ${String(message.target)}`);
  return target;
}

onParentMessage(async (message) => {
  switch (message.type) {
    case "open": {
      const target = await openTarget(message);
      targets.set(String(message.target), target);
      await sendToParent({ type: "opened", target: message.target });
      return;
    }
    case "paced": {
      const cpu = process.cpuUsage();
      const outcome = await paced(targetOf(message), Number(message.count), Number(message.rate));
      await sendToParent({ type: "done", ...outcome, cpuMicros: cpuMicrosSince(cpu) });
      return;
    }
    case "flood": {
      const cpu = process.cpuUsage();
      const target = targetOf(message);
      const outcome = await flood(target, Number(message.durationMs), Number(message.window));
      await sendToParent({ type: "done", ...outcome, cpuMicros: cpuMicrosSince(cpu) });
      return;
    }
    case "clock": {
      // Both of this process's clocks, read back to back (see WriterChild.clocks()).
      const monotonic = nowNs();
      const origin = (performance.timeOrigin + performance.now()) * 1e6;
      await sendToParent({
        type: "clock",
        monotonicNs: String(monotonic),
        originMinusMonotonicNs: origin - Number(monotonic),
      });
      return;
    }
    case "close":
      targetOf(message).close();
      targets.delete(String(message.target));
      await sendToParent({ type: "closed", target: message.target });
      return;
  }
});
await sendToParent({ type: "ready" });
