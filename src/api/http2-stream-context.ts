/**
 * Internal: the HTTP/2 stream under a call, for the handlers that write
 * their hot messages to it themselves (watch-service-handlers.ts, and the
 * bench's fan-out floor in echo-service-handlers.ts). Unset over HTTP/1.1,
 * where connect's own response pipeline does all the writing.
 */
import type { ServerHttp2Stream } from "node:http2";
import { type HandlerContext, createContextKey } from "@connectrpc/connect";

export const http2StreamKey = createContextKey<ServerHttp2Stream | undefined>(undefined, {
  description: "the call's HTTP/2 stream",
});

/**
 * The stream a handler may write protobuf envelopes to itself, once connect
 * has sent the call's first message: HTTP/2 with a binary (not JSON) codec.
 */
export function envelopeStream(context: HandlerContext): ServerHttp2Stream | undefined {
  return isBinary(context) ? context.values.get(http2StreamKey) : undefined;
}

/** Over protobuf binary (not JSON) messages can go as bytes encoded beforehand. */
export function isBinary(context: HandlerContext): boolean {
  return !/json/i.test(context.requestHeader.get("content-type") ?? "");
}

/**
 * For a handler that writes to the stream itself: a reset shows as the
 * call's abort, and unheard, the stream's error event would end the process.
 */
export function writtenByHandler(stream: ServerHttp2Stream): ServerHttp2Stream {
  return stream.on("error", ignore);
}

function ignore(): void {}

/** Resolves once the stream can take more, or is gone. */
export function drained(stream: ServerHttp2Stream): Promise<void> {
  return new Promise((resolve) => {
    const settle = (): void => {
      stream.off("drain", settle);
      stream.off("close", settle);
      resolve();
    };
    stream.on("drain", settle);
    stream.on("close", settle);
  });
}
