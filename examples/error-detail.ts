/**
 * The ErrorCode detail with the raw generated client (no Commy client
 * library): a compare-and-set write with a stale expected version fails
 * with failed_precondition, and the ErrorDetail in it says VERSION_CONFLICT —
 * whichever protocol carried it (docs/protocol.md, Errors).
 */
import { ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { CommyService } from "../gen/commy/v1/commy_service_pb.js";
import { ErrorCode, ErrorDetailSchema } from "../gen/commy/v1/errors_pb.js";
import { freshTenantId, serverFromEnvironment } from "./environment.js";

const { baseUrl, token } = serverFromEnvironment();
const transport = createConnectTransport({
  baseUrl,
  httpVersion: "1.1",
  interceptors: [
    (next) => (request) => {
      request.header.set("authorization", `Bearer ${token}`);
      return next(request);
    },
  ],
});
const client = createClient(CommyService, transport);
const ref = { tenantId: freshTenantId("errors"), serviceName: "config", variableName: "limit" };
await client.createTenant({ tenantId: ref.tenantId });
await client.createService(ref);
await client.allocateVariable({ ...ref, initialData: new Uint8Array([1]) });

try {
  await client.writeVariable({ ...ref, data: new Uint8Array([2]), expectedVersion: 7n });
  throw new Error("the stale write succeeded");
} catch (err) {
  const [detail] = ConnectError.from(err).findDetails(ErrorDetailSchema);
  if (detail?.code === ErrorCode.VERSION_CONFLICT) {
    // read again, then retry the write
    console.log(`refused: ${ConnectError.from(err).code} with ErrorDetail VERSION_CONFLICT`);
  } else {
    throw err;
  }
}
await client.deleteTenant({ tenantId: ref.tenantId });
