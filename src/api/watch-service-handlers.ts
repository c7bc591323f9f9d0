/**
 * The Connect handlers of commy.v1.WatchService: they feed commands into a
 * core WatchSession and turn its events into stream messages. Consecutive
 * changes travel in one ChangeBatch, encoded as bytes for binary clients
 * (watch-wire-encoding.ts): a write to a variable with many subscribers is
 * the hot path of the server.
 */
import type { ServerHttp2Stream } from "node:http2";
import { type Message, create, toBinary } from "@bufbuild/protobuf";
import type { GenMessage } from "@bufbuild/protobuf/codegenv2";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { ErrorDetailSchema } from "../../gen/commy/v1/errors_pb.js";
import {
  type Change,
  ChangeKind,
  type SubscribeResponse,
  type Subscription,
  type WatchRequest,
  type WatchResponse,
  WatchResponseSchema,
  SubscribeResponseSchema,
  type WatchService,
} from "../../gen/commy/v1/watch_pb.js";
import { CommyError, invalidRequest } from "../core/commy-error.js";
import type { CommyCore } from "../core/commy-core.js";
import {
  type ChangeEvent,
  type SessionEvent,
  type SubscriptionRequest,
  WatchSession,
  type WatchSessionOptions,
} from "../core/watch-session.js";
import { callerOf } from "./caller-context.js";
import { requestStreamError, toWireErrorCode } from "./connect-errors.js";
import { drained, envelopeStream, isBinary, writtenByHandler } from "./http2-stream-context.js";
import {
  changeBatchEnvelope,
  changeBatchField,
  envelope,
  okReplyEnvelope,
} from "./watch-wire-encoding.js";
import { versionFromWire } from "./wire-versions.js";

const KINDS: Record<ChangeEvent["kind"], ChangeKind> = {
  snapshot: ChangeKind.SNAPSHOT,
  update: ChangeKind.UPDATE,
  deleted: ChangeKind.DELETED,
};

const detail = (error: CommyError) =>
  create(ErrorDetailSchema, { code: toWireErrorCode(error.code), message: error.message });

/**
 * Every field is set, so the message is built as a literal: `create()`
 * walks the schema for defaults, a measurable cost at a change per
 * subscriber per write.
 */
function toChange(event: ChangeEvent): Change {
  return {
    $typeName: "commy.v1.Change",
    subscriptionId: BigInt(event.subscriptionId),
    variableName: event.variableName,
    data: event.data,
    version: BigInt(event.version),
    skipped: BigInt(event.skipped),
    kind: KINDS[event.kind],
  };
}

function subscriptionOf(subscription: Subscription | undefined): SubscriptionRequest {
  // A missing subscription is refused by the core, after its permission
  // check (the house order), as a subscription to tenant "".
  if (subscription === undefined) return { tenantId: "", serviceName: "", variableName: "" };
  const fromVersions: Record<string, number> = {};
  for (const [name, version] of Object.entries(subscription.fromVersions)) {
    fromVersions[name] = Number(version);
  }
  return {
    tenantId: subscription.tenantId,
    serviceName: subscription.serviceName,
    variableName: subscription.variableName,
    fromVersion: versionFromWire(subscription.fromVersion),
    fromVersions,
  };
}

/** Field numbers of `changes` in WatchResponse and SubscribeResponse. */
const WATCH_RESPONSE_CHANGES = 2;
const SUBSCRIBE_RESPONSE_CHANGES = 1;

/** How a stream's messages are built: protobuf-es objects, or (binary) bytes for batches. */
interface ResponseShapes<T extends Message> {
  schema: GenMessage<T>;
  /** The field number of the response's change batch. */
  changesField: number;
  changes(changes: ChangeEvent[]): T;
  other(event: Exclude<SessionEvent, { type: "change" }>): T | undefined;
  /** The envelope of an event that is hot enough to be encoded by hand; undefined: `other`'s. */
  otherEnvelope?(event: Exclude<SessionEvent, { type: "change" }>): Uint8Array | undefined;
  /** An error that ends the call once these events' messages are sent. */
  failure?(events: SessionEvent[]): Error | undefined;
}

const watchMessages: ResponseShapes<WatchResponse> = {
  schema: WatchResponseSchema,
  changesField: WATCH_RESPONSE_CHANGES,
  changes: (changes) =>
    create(WatchResponseSchema, {
      event: { case: "changes", value: { changes: changes.map(toChange) } },
    }),
  other: toWatchEvent,
};

/**
 * Over the protobuf binary format a batch is written as bytes, its shared
 * fields encoded once per change for all subscribers (watch-wire-encoding.ts);
 * JSON clients (Connect-Web's default) get messages.
 */
const watchBytes: ResponseShapes<WatchResponse> = {
  ...watchMessages,
  otherEnvelope: (event) =>
    event.type === "reply" && event.error === undefined
      ? okReplyEnvelope(event.requestId, event.subscriptionId ?? 0, event.version ?? 0)
      : undefined,
  changes: (changes) => ({
    $typeName: "commy.v1.WatchResponse",
    event: { case: undefined },
    $unknown: [changeBatchField(WATCH_RESPONSE_CHANGES, changes)],
  }),
};

const subscribeMessages: ResponseShapes<SubscribeResponse> = {
  schema: SubscribeResponseSchema,
  changesField: SUBSCRIBE_RESPONSE_CHANGES,
  changes: (changes) =>
    create(SubscribeResponseSchema, {
      event: { case: "changes", value: { changes: changes.map(toChange) } },
    }),
  other: toSubscribeEvent,
  failure: failedSubscription,
};

const subscribeBytes: ResponseShapes<SubscribeResponse> = {
  ...subscribeMessages,
  changes: (changes) => ({
    $typeName: "commy.v1.SubscribeResponse",
    event: { case: undefined },
    $unknown: [changeBatchField(SUBSCRIBE_RESPONSE_CHANGES, changes)],
  }),
};

/** Subscribe has no replies: a subscription that could not start fails the call. */
function failedSubscription(events: SessionEvent[]): Error | undefined {
  for (const event of events) {
    if (event.type === "reply" && event.error !== undefined) return event.error;
  }
  return undefined;
}

function toWatchEvent(event: Exclude<SessionEvent, { type: "change" }>): WatchResponse {
  switch (event.type) {
    case "reply":
      return create(WatchResponseSchema, {
        event: {
          case: "reply",
          value: {
            requestId: event.requestId,
            error: event.error === undefined ? undefined : detail(event.error),
            subscriptionId: BigInt(event.subscriptionId ?? 0),
            version: BigInt(event.version ?? 0),
          },
        },
      });
    case "pong":
      return create(WatchResponseSchema, {
        event: { case: "pong", value: { requestId: event.requestId } },
      });
    case "progress":
      return create(WatchResponseSchema, {
        event: { case: "progress", value: { subscriptionIds: event.subscriptionIds.map(BigInt) } },
      });
    case "ended":
      return create(WatchResponseSchema, {
        event: {
          case: "ended",
          value: { subscriptionId: BigInt(event.subscriptionId), reason: detail(event.reason) },
        },
      });
  }
}

/** For Subscribe: replies are left out (see failedSubscription). */
function toSubscribeEvent(
  event: Exclude<SessionEvent, { type: "change" }>,
): SubscribeResponse | undefined {
  switch (event.type) {
    case "reply":
    case "pong":
      return undefined;
    case "progress":
      return create(SubscribeResponseSchema, {
        event: { case: "progress", value: { subscriptionIds: event.subscriptionIds.map(BigInt) } },
      });
    case "ended":
      return create(SubscribeResponseSchema, {
        event: {
          case: "ended",
          value: { subscriptionId: BigInt(event.subscriptionId), reason: detail(event.reason) },
        },
      });
  }
}

/**
 * Session events in stream order as messages: runs of consecutive changes
 * in batches of at most `budget` bytes (a change alone may be larger),
 * every other event on its own.
 */
function inMessages(
  events: SessionEvent[],
  budget: number,
  batch: (changes: ChangeEvent[]) => void,
  other: (event: Exclude<SessionEvent, { type: "change" }>) => void,
): void {
  let run: ChangeEvent[] = [];
  let bytes = 0;
  for (const event of events) {
    if (event.type !== "change") {
      if (run.length > 0) batch(run);
      run = [];
      bytes = 0;
      other(event);
      continue;
    }
    const size = sizeOf(event.change);
    if (run.length > 0 && bytes + size > budget) {
      batch(run);
      run = [];
      bytes = 0;
    }
    run.push(event.change);
    bytes += size;
  }
  if (run.length > 0) batch(run);
}

/** A change's bytes in a batch, near enough: its value, its name, its numbers and tags. */
function sizeOf(change: ChangeEvent): number {
  return change.data.length + change.variableName.length * 3 + 32;
}

/** Session events → stream messages (through connect's pipeline). */
function toResponses<T extends Message>(
  events: SessionEvent[],
  shapes: ResponseShapes<T>,
  budget: number,
): T[] {
  const out: T[] = [];
  inMessages(
    events,
    budget,
    (changes) => out.push(shapes.changes(changes)),
    (event) => {
      const message = shapes.other(event);
      if (message !== undefined) out.push(message);
    },
  );
  return out;
}

/** Runs one command; for a write, returns the promise of its reply. */
function command(session: WatchSession, request: WatchRequest): Promise<void> | undefined {
  const { command } = request;
  switch (command.case) {
    case "subscribe":
      try {
        session.subscribe(command.value.requestId, subscriptionOf(command.value.subscription));
      } catch (error) {
        session.replyError(command.value.requestId, error);
      }
      return;
    case "unsubscribe":
      session.unsubscribe(command.value.requestId, Number(command.value.subscriptionId));
      return;
    case "write": {
      const write = command.value;
      try {
        return session.write(write.requestId, {
          tenantId: write.tenantId,
          serviceName: write.serviceName,
          variableName: write.variableName,
          data: write.data,
          expectedVersion: versionFromWire(write.expectedVersion),
          createIfMissing: write.createIfMissing,
        });
      } catch (error) {
        session.replyError(write.requestId, error);
      }
      return;
    }
    case "ping":
      session.ping(command.value.requestId);
      return;
    default:
      throw invalidRequest("a WatchRequest needs a command");
  }
}

/**
 * Session events as envelopes of the call's messages, all of one take in
 * one buffer: one write to the HTTP/2 stream per turn.
 */
function toEnvelopes<T extends Message>(
  events: SessionEvent[],
  shapes: ResponseShapes<T>,
  budget: number,
): Buffer {
  const parts: Uint8Array[] = [];
  inMessages(
    events,
    budget,
    (changes) => parts.push(changeBatchEnvelope(shapes.changesField, changes)),
    (event) => {
      const byHand = shapes.otherEnvelope?.(event);
      if (byHand !== undefined) {
        parts.push(byHand);
        return;
      }
      const message = shapes.other(event);
      if (message !== undefined) parts.push(envelope(toBinary(shapes.schema, message)));
    },
  );
  if (parts.length !== 1) return Buffer.concat(parts);
  const only = parts[0] as Uint8Array;
  return Buffer.from(only.buffer, only.byteOffset, only.byteLength);
}

/** How a call's responses are made and sent. */
interface ResponseRoute<T extends Message> {
  shapes: ResponseShapes<T>;
  /** Bytes of changes in one message at most (see inMessages). */
  budget: number;
  /** HTTP/2 with protobuf: the stream the handler writes envelopes to itself. */
  stream: ServerHttp2Stream | undefined;
}

/**
 * A session's events as the call's response messages, until the session
 * ends, the client goes away or the server stops. Connect pulls every
 * message of every subscriber through its own stages, so this one is a
 * plain iterator (no generator, one `take()` per batch of messages).
 *
 * With `stream` (HTTP/2, protobuf binary), connect only sends the first
 * message — and with it the response headers — and the trailers: in
 * between, the handler writes envelopes to the stream itself. Connect
 * asks for the second message only once the first is written, so the
 * order holds; per subscriber and write, its pipeline of async stages
 * cost several times what encoding the change did.
 */
function sessionResponses<T extends Message>(
  session: WatchSession,
  context: HandlerContext,
  { shapes, budget, stream }: ResponseRoute<T>,
  onEnd: () => void,
): AsyncIterable<T> {
  let queued: (T | undefined)[] = [];
  let next = 0;
  let failure: Error | undefined;
  let ended = false;
  let sentOne = false;
  const end = (): void => {
    if (ended) return;
    ended = true;
    context.signal.removeEventListener("abort", onAbort);
    session.close();
    onEnd();
  };
  const onAbort = (): void => session.close();
  context.signal.addEventListener("abort", onAbort, { once: true });
  const done = (): IteratorResult<T> => ({ done: true, value: undefined });

  /**
   * The session's next events; undefined once it has ended cleanly. Throws
   * what ends the call: a failed subscription's error, or the reason the
   * session was ended with.
   */
  const nextEvents = async (): Promise<SessionEvent[] | undefined> =>
    taken(failure !== undefined || ended ? undefined : await session.take());
  /** nextEvents without waiting: [] when none are ready yet. */
  const nextEventsNow = (): SessionEvent[] | undefined =>
    taken(failure !== undefined || ended ? undefined : session.takeNow());
  const taken = (events: SessionEvent[] | undefined): SessionEvent[] | undefined => {
    if (failure !== undefined) {
      end();
      throw failure;
    }
    if (events === undefined) {
      end();
      if (session.endedWith !== undefined) throw session.endedWith;
      return undefined;
    }
    if (events.length > 0) failure = shapes.failure?.(events);
    return events;
  };

  /**
   * Writes everything until the session ends, then lets connect end the
   * call: the session calls back once per turn in which events came, and
   * each call writes what is ready in one write.
   */
  const writeItself = (stream: ServerHttp2Stream): Promise<IteratorResult<T>> =>
    new Promise((resolve, reject) => {
      writtenByHandler(stream);
      /** Writes; false once the stream's buffers are full. */
      const write = (bytes: Uint8Array): boolean => {
        if (stream.write(bytes)) return true;
        // Full buffers (a subscriber not reading): nothing more is taken, so
        // the session coalesces what it holds, as with any slow consumer.
        session.onReady(undefined);
        void drained(stream).then(() => session.onReady(pump));
        return false;
      };
      const pump = (): void => {
        // One take gives at most a batch: take again until nothing is ready
        // (the session calls back when more comes) or the buffers are full.
        // Bounded: each take empties some of what the session holds.
        try {
          for (;;) {
            const events = nextEventsNow();
            if (events === undefined) {
              session.onReady(undefined);
              resolve(done());
              return;
            }
            if (events.length === 0) return;
            if (stream.destroyed) continue; // the abort closes the session
            if (!write(toEnvelopes(events, shapes, budget))) return;
          }
        } catch (error) {
          // What ends the call (and nothing thrown into the shared turn).
          session.onReady(undefined);
          reject(error as Error);
        }
      };
      const rest = queued.slice(next) as T[];
      queued = [];
      next = 0;
      session.onReady(pump);
      if (rest.length > 0) {
        write(Buffer.concat(rest.map((message) => envelope(toBinary(shapes.schema, message)))));
      }
    });

  const iterator: AsyncIterator<T> = {
    async next() {
      if (sentOne && stream !== undefined) return writeItself(stream);
      while (next === queued.length) {
        const events = await nextEvents();
        if (events === undefined) return done();
        queued = toResponses(events, shapes, budget);
        next = 0;
      }
      const value = queued[next] as T;
      // Drop the reference: a batch can be large, and the next take may wait long.
      queued[next++] = undefined;
      sentOne = true;
      return { done: false, value };
    },
    return() {
      end();
      return Promise.resolve(done());
    },
    throw(error: unknown) {
      end();
      return Promise.reject(error as Error);
    },
  };
  return { [Symbol.asyncIterator]: () => iterator };
}

export interface WatchHandlerOptions {
  limits?: WatchSessionOptions;
  /** The server's message size limit: change batches are split to stay within it. */
  maxMessageBytes: number;
  /** Sessions that are open, so that shutdown can end them. */
  sessions: Set<WatchSession>;
}

export function createWatchServiceHandlers(
  core: CommyCore,
  options: WatchHandlerOptions,
): ServiceImpl<typeof WatchService> {
  const open = (context: HandlerContext): WatchSession => {
    const session = new WatchSession(core, callerOf(context), options.limits);
    options.sessions.add(session);
    context.signal.addEventListener("abort", () => options.sessions.delete(session), {
      once: true,
    });
    return session;
  };
  const route = <T extends Message>(
    context: HandlerContext,
    bytes: ResponseShapes<T>,
    messages: ResponseShapes<T>,
  ): ResponseRoute<T> => {
    const binary = isBinary(context);
    return {
      shapes: binary ? bytes : messages,
      // JSON spells values in base64 and names every field.
      budget: binary ? options.maxMessageBytes - 1024 : options.maxMessageBytes / 2,
      stream: envelopeStream(context),
    };
  };
  return {
    watch(requests, context) {
      const session = open(context);
      void readCommands(session, requests);
      return sessionResponses(session, context, route(context, watchBytes, watchMessages), () =>
        options.sessions.delete(session),
      );
    },
    subscribe(request, context) {
      const session = open(context);
      try {
        // A subscription that cannot even be read (an out-of-range
        // from_version) fails the call too, and must not leave the ones
        // before it subscribed.
        request.subscriptions.forEach((subscription, index) =>
          session.subscribe(String(index + 1), subscriptionOf(subscription)),
        );
      } catch (error) {
        session.close();
        options.sessions.delete(session);
        throw error;
      }
      return sessionResponses(
        session,
        context,
        route(context, subscribeBytes, subscribeMessages),
        () => options.sessions.delete(session),
      );
    },
  };
}

/**
 * Commands are read concurrently with sending; the client ending its side
 * ends the call once its writes are answered and what is ready has been
 * sent.
 */
async function readCommands(
  session: WatchSession,
  requests: AsyncIterable<WatchRequest>,
): Promise<void> {
  try {
    let writes: Promise<void> | undefined;
    for await (const request of requests) {
      // A client that sends faster than it reads waits here.
      await session.room();
      writes = command(session, request) ?? writes;
    }
    await writes;
    session.close();
  } catch (error) {
    session.close(requestStreamError(error));
  }
}
