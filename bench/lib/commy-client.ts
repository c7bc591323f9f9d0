/**
 * Typed connect-es clients of a benchmark server (Connect, binary, HTTP/2),
 * for setting things up and for calls whose requests differ each time
 * (creating and deleting services), which h2load cannot send.
 */
import { type Client, type Interceptor, createClient } from "@connectrpc/connect";
import { Http2SessionManager, createConnectTransport } from "@connectrpc/connect-node";
import { CommyService } from "../../gen/commy/v1/commy_service_pb.js";
import { IdentityService } from "../../gen/commy/v1/identity_pb.js";

export interface CommyClients {
  commy: Client<typeof CommyService>;
  identity: Client<typeof IdentityService>;
  /** Ends the HTTP/2 session. */
  close(): void;
}

/** Clients that call `baseUrl` as the holder of `bearer` (none: no Authorization header). */
export function commyClients(baseUrl: string, bearer?: string): CommyClients {
  const sessionManager = new Http2SessionManager(baseUrl);
  const interceptors: Interceptor[] =
    bearer === undefined
      ? []
      : [
          (next) => (request) => {
            request.header.set("authorization", `Bearer ${bearer}`);
            return next(request);
          },
        ];
  const transport = createConnectTransport({
    baseUrl,
    httpVersion: "2",
    sessionManager,
    useBinaryFormat: true,
    interceptors,
  });
  return {
    commy: createClient(CommyService, transport),
    identity: createClient(IdentityService, transport),
    close: () => sessionManager.abort(),
  };
}
