/**
 * The Connect handlers of commy.v1.WatchService: they feed commands into a
 * core WatchSession and turn its events into stream messages. Consecutive
 * changes travel in one ChangeBatch.
 */
import { create } from "@bufbuild/protobuf";
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
  type WatchSessionLimits,
} from "../core/watch-session.js";
import { callerOf } from "./caller-context.js";
import { toWireErrorCode } from "./connect-errors.js";
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

/** Session events → Watch stream messages, with consecutive changes batched. */
function* toWatchResponses(events: SessionEvent[]): Generator<WatchResponse> {
  let batch: Change[] = [];
  const flush = function* () {
    if (batch.length === 0) return;
    yield create(WatchResponseSchema, { event: { case: "changes", value: { changes: batch } } });
    batch = [];
  };
  for (const event of events) {
    if (event.type === "change") {
      batch.push(toChange(event.change));
      continue;
    }
    yield* flush();
    switch (event.type) {
      case "reply":
        yield create(WatchResponseSchema, {
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
        break;
      case "pong":
        yield create(WatchResponseSchema, {
          event: { case: "pong", value: { requestId: event.requestId } },
        });
        break;
      case "progress":
        yield create(WatchResponseSchema, {
          event: {
            case: "progress",
            value: { subscriptionIds: event.subscriptionIds.map(BigInt) },
          },
        });
        break;
      case "ended":
        yield create(WatchResponseSchema, {
          event: {
            case: "ended",
            value: { subscriptionId: BigInt(event.subscriptionId), reason: detail(event.reason) },
          },
        });
        break;
    }
  }
  yield* flush();
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

/** Runs a session until it ends, the client goes away or the server stops. */
async function* drive<T>(
  session: WatchSession,
  context: HandlerContext,
  convert: (events: SessionEvent[]) => Iterable<T>,
): AsyncGenerator<T> {
  const onAbort = () => session.close();
  context.signal.addEventListener("abort", onAbort, { once: true });
  try {
    for (;;) {
      const events = await session.take();
      if (events === undefined) break;
      yield* convert(events);
    }
    if (session.endedWith !== undefined) throw session.endedWith;
  } finally {
    context.signal.removeEventListener("abort", onAbort);
    session.close();
  }
}

export interface WatchHandlerOptions {
  limits?: Partial<WatchSessionLimits>;
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
  return {
    async *watch(requests, context) {
      const session = open(context);
      // Commands are read concurrently with sending; the client ending its
      // side ends the call once its writes are answered and what is ready
      // has been sent.
      void (async () => {
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
          session.close(error instanceof CommyError ? error : undefined);
        }
      })();
      try {
        yield* drive(session, context, toWatchResponses);
      } finally {
        options.sessions.delete(session);
      }
    },
    async *subscribe(request, context) {
      const session = open(context);
      try {
        // A subscription that cannot even be read (an out-of-range
        // from_version) fails the call too, and must not leave the ones
        // before it subscribed.
        request.subscriptions.forEach((subscription, index) =>
          session.subscribe(String(index + 1), subscriptionOf(subscription)),
        );
        yield* drive(session, context, toSubscribeResponses);
      } finally {
        session.close();
        options.sessions.delete(session);
      }
    },
  };
}

/** For Subscribe: there are no replies; a subscription that failed fails the call. */
function* toSubscribeResponses(events: SessionEvent[]): Generator<SubscribeResponse> {
  for (const { event } of toWatchResponses(events)) {
    if (event.case === "changes")
      yield create(SubscribeResponseSchema, { event: { case: "changes", value: event.value } });
    if (event.case === "progress")
      yield create(SubscribeResponseSchema, { event: { case: "progress", value: event.value } });
    if (event.case === "ended")
      yield create(SubscribeResponseSchema, { event: { case: "ended", value: event.value } });
  }
  for (const event of events) {
    if (event.type === "reply" && event.error !== undefined) throw event.error;
  }
}
