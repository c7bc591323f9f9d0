/**
 * Stream clients of a Commy server for the bench: WatchService and the
 * bench EchoService (the transport floor) over gRPC on one HTTP/2
 * connection of their own (a fresh Http2SessionManager per
 * `connectWatch()`), the bearer token on every call.
 */
import { type Client, createClient } from "@connectrpc/connect";
import { Http2SessionManager, createGrpcTransport } from "@connectrpc/connect-node";
import { EchoService } from "../../gen/commy/bench/v1/echo_pb.js";
import { WatchService } from "../../gen/commy/v1/watch_pb.js";

/** Typed clients sharing one HTTP/2 connection. */
export interface WatchConnection {
  watch: Client<typeof WatchService>;
  echo: Client<typeof EchoService>;
  /** Ends the connection (and every call on it). */
  close(): void;
}

export function connectWatch(baseUrl: string, bearer: string): WatchConnection {
  const sessionManager = new Http2SessionManager(baseUrl);
  const transport = createGrpcTransport({
    baseUrl,
    sessionManager,
    interceptors: [
      (next) => (request) => {
        request.header.set("authorization", `Bearer ${bearer}`);
        return next(request);
      },
    ],
  });
  return {
    watch: createClient(WatchService, transport),
    echo: createClient(EchoService, transport),
    close: () => sessionManager.abort(),
  };
}
