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
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  type EchoService,
  type ListenResponse,
  ListenResponseSchema,
} from "../../gen/commy/bench/v1/echo_pb.js";
import { envelopeStream } from "./http2-stream-context.js";
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
    listen: (_request, context) => listen(listeners, context, stopping),
  };
}

/**
 * One listener until the client goes away or the server stops (its stream
 * then ends cleanly). It listens before its first message leaves, so that
 * a client that saw that message misses no payload; what arrives
 * meanwhile waits.
 */
async function* listen(
  listeners: Set<Listener>,
  context: HandlerContext,
  stopping: AbortSignal,
): AsyncGenerator<ListenResponse> {
  const stream = envelopeStream(context);
  let waiting: Uint8Array[] = [];
  let direct: ServerHttp2Stream | undefined;
  let wake: (() => void) | undefined;
  const listener: Listener = (payload, message) => {
    if (direct === undefined) {
      if (waiting.length < LISTENER_WAITING_PAYLOADS)
        waiting.push(stream === undefined ? payload : message);
    } else if (!direct.destroyed && direct.writableLength < LISTENER_BUFFER_BYTES)
      direct.write(message);
    wake?.();
  };
  const stop = AbortSignal.any([context.signal, stopping]);
  const stopped = new Promise<void>((resolve) => {
    if (stop.aborted) resolve();
    stop.addEventListener("abort", () => resolve(), { once: true });
  });
  listeners.add(listener);
  try {
    yield create(ListenResponseSchema);
    if (stream !== undefined) {
      stream.on("error", () => undefined); // a reset shows as the call's abort
      stream.write(Buffer.concat(waiting));
      waiting = [];
      direct = stream;
      await stopped;
      return;
    }
    // HTTP/1.1 or JSON: connect's own pipeline sends each payload.
    while (!stop.aborted) {
      const batch = waiting;
      waiting = [];
      for (const payload of batch) yield create(ListenResponseSchema, { payload });
      if (waiting.length === 0) {
        await Promise.race([stopped, new Promise<void>((resolve) => (wake = resolve))]);
        wake = undefined;
      }
    }
  } finally {
    listeners.delete(listener);
  }
}
