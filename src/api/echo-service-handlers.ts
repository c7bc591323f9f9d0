/**
 * The benchmark floor: an echo service on the same server stack, mounted
 * only when asked for (`benchEcho` in the server options), never in
 * production. Every figure of the API benchmark is a ratio to it.
 */
import type { ServiceImpl } from "@connectrpc/connect";
import type { EchoService } from "../../gen/commy/bench/v1/echo_pb.js";

export function createEchoServiceHandlers(): ServiceImpl<typeof EchoService> {
  return {
    echo: (req) => ({ payload: req.payload }),
    async *echoStream(requests) {
      for await (const request of requests) yield { payload: request.payload };
    },
  };
}
