/**
 * Internal: the HTTP/2 stream under a call, for the one handler that writes
 * its hot messages to it itself (watch-service-handlers.ts). Unset over
 * HTTP/1.1, where connect's own response pipeline does all the writing.
 */
import type { ServerHttp2Stream } from "node:http2";
import { createContextKey } from "@connectrpc/connect";

export const http2StreamKey = createContextKey<ServerHttp2Stream | undefined>(undefined, {
  description: "the call's HTTP/2 stream",
});
