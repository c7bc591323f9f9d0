/**
 * The benchmark floors: an echo service on the same server stack, mounted
 * only when asked for (`benchEcho` in the server options), never in
 * production. Echo and EchoStream are the floor of a call and of a stream
 * message. Broadcast and Listen are the floor of a fan-out: each payload
 * goes to every listener the cheapest way this stack has, the way Watch
 * sends changes — one envelope, encoded once, written by the handler to
 * each listener's HTTP/2 stream.
 */
import type { ServerHttp2Stream } from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  type EchoService,
  type ListenResponse,
  ListenResponseSchema,
} from "../../gen/commy/bench/v1/echo_pb.js";
import { envelopeStream, writtenByHandler } from "./http2-stream-context.js";
import { envelope } from "./watch-wire-encoding.js";

/** Bytes a listener's stream may hold unsent; past them its payloads are dropped. */
const LISTENER_BUFFER_BYTES = 8 * 1024 * 1024;
/** Payloads a listener over HTTP/1.1 or JSON may have waiting; past them they are dropped. */
const LISTENER_WAITING_PAYLOADS = 10_000;
/** The envelope of an empty message (BroadcastResponse). */
const EMPTY_ENVELOPE = envelope(new Uint8Array(0));

/** A listener takes a payload and its ListenResponse envelope (for the HTTP/2 path). */
type Listener = (payload: Uint8Array, message: Uint8Array) => void;

/** `stopping` aborts when the server shuts down: Listen streams then end. */
export function createEchoServiceHandlers(stopping: AbortSignal): ServiceImpl<typeof EchoService> {
  const listeners = new Set<Listener>();
  // One listener on the server's signal for all Listen streams, however many.
  const stops = new Set<() => void>();
  stopping.addEventListener("abort", () => stops.forEach((stop) => stop()), { once: true });
  return {
    echo: (req) => ({ payload: req.payload }),
    async *echoStream(requests) {
      for await (const request of requests) yield { payload: request.payload };
    },
    async *broadcast(requests, context) {
      const stream = envelopeStream(context);
      let sentOne = false;
      for await (const { payload } of requests) {
        const message = envelope(
          toBinary(ListenResponseSchema, create(ListenResponseSchema, { payload })),
        );
        for (const listener of listeners) listener(payload, message);
        // Connect asks for the next message once it has sent the previous one.
        if (sentOne && stream !== undefined && !stream.destroyed) stream.write(EMPTY_ENVELOPE);
        else {
          yield {};
          sentOne = true;
        }
      }
    },
    listen: (_request, context) => listen(listeners, context, { signal: stopping, stops }),
  };
}

/**
 * One listener until the client goes away or the server stops (its stream
 * then ends cleanly). It listens before its first message leaves, so that
 * a client that saw that message misses no payload; what arrives
 * meanwhile waits. A listener that falls too far behind is not fed
 * silently less: its stream ends with resource_exhausted.
 */
async function* listen(
  listeners: Set<Listener>,
  context: HandlerContext,
  stopping: { signal: AbortSignal; stops: Set<() => void> },
): AsyncGenerator<ListenResponse> {
  const stream = envelopeStream(context);
  let waiting: Uint8Array[] = [];
  let direct: ServerHttp2Stream | undefined;
  let behind = false;
  let wake: (() => void) | undefined;
  const stop = (): void => wake?.();
  const listener: Listener = (payload, message) => {
    if (direct !== undefined) {
      if (direct.writableLength < LISTENER_BUFFER_BYTES) {
        if (!direct.destroyed) direct.write(message);
        return; // written: nothing for the loop below to do
      }
      behind = true;
    } else if (waiting.length < LISTENER_WAITING_PAYLOADS) {
      waiting.push(stream === undefined ? payload : message);
    } else behind = true;
    wake?.();
  };
  const ended = (): boolean => behind || context.signal.aborted || stopping.signal.aborted;
  context.signal.addEventListener("abort", stop);
  stopping.stops.add(stop);
  listeners.add(listener);
  try {
    yield create(ListenResponseSchema);
    if (stream !== undefined) {
      writtenByHandler(stream);
      if (waiting.length > 0) stream.write(Buffer.concat(waiting));
      waiting = [];
      direct = stream;
    }
    // Over HTTP/1.1 or JSON connect's own pipeline sends each payload;
    // over HTTP/2 this only waits for the end.
    while (!ended()) {
      const batch = waiting;
      waiting = [];
      for (const payload of batch) yield create(ListenResponseSchema, { payload });
      if (waiting.length === 0 && !ended()) {
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    }
    if (behind) {
      throw new ConnectError("the listener fell too far behind", Code.ResourceExhausted);
    }
  } finally {
    listeners.delete(listener);
    context.signal.removeEventListener("abort", stop);
    stopping.stops.delete(stop);
  }
}
