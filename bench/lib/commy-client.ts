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

/** Creates, as the admin, a tenant, a service in it and a variable of `bytes` bytes; returns the service id. */
export async function createBenchVariable(
  baseUrl: string,
  adminToken: string,
  ref: { tenantId: string; serviceName: string; variableName: string },
  bytes: number,
): Promise<string> {
  const clients = commyClients(baseUrl, adminToken);
  try {
    const { commy } = clients;
    await commy.createTenant({ tenantId: ref.tenantId });
    const created = await commy.createService(ref);
    await commy.allocateVariable({ ...ref, initialData: new Uint8Array(bytes).fill(7) });
    const serviceId = created.service?.serviceId ?? "";
    if (serviceId === "") throw new Error("set-up: CreateService returned no service_id");
    return serviceId;
  } finally {
    clients.close();
  }
}
