/**
 * The basic life of a service, through the TypeScript client: create a
 * tenant and a service explicitly, get it (which creates nothing), allocate
 * a variable, write and read it (with versions and a compare-and-set),
 * follow its changes, then delete everything again.
 *
 *   COMMY_URL=http://127.0.0.1:8080 COMMY_TOKEN=$(cat commy-data/admin-token) \
 *     node --import tsx examples/basic.ts
 */
import {
  type ServiceInfo,
  type ServiceRef,
  createCommyClient,
  isAlreadyExists,
  isVersionConflict,
} from "../src/client/index.js";
import { decode, encode, freshTenantId, serverFromEnvironment } from "./environment.js";
import { check, expectRefused } from "./expectations.js";

const { baseUrl, token } = serverFromEnvironment();
const client = createCommyClient({ baseUrl, token });
const tenantId = freshTenantId("basic");

console.log(`tenant ${tenantId}`);
await client.createTenant(tenantId, "Basic example");

// Services are created explicitly; creating one twice is ALREADY_EXISTS.
const created = await client.createService({ tenantId, serviceName: "config" });
console.log(`created service config (${created.serviceId})`);
await expectRefused(
  "ALREADY_EXISTS",
  "create config again",
  client.createService({ tenantId, serviceName: "config" }),
);

// Reads never create anything: a missing service stays missing.
const service = await client.getService({ tenantId, serviceName: "config" });
check(service.serviceId === created.serviceId, "GetService returns the same service");
await expectRefused(
  "NOT_FOUND",
  "get a service that was never created",
  client.getService({ tenantId, serviceName: "missing" }),
);
const services = await client.listServices(tenantId);
console.log(`services: ${services.items.map((s) => s.serviceName).join(", ")}`);
check(services.items.length === 1, "GetService created nothing");

// A variable is allocated once, at version 1; every write adds one.
const greeting = { tenantId, serviceName: "config", variableName: "greeting" };
const allocated = await client.allocateVariable(greeting, {
  initialData: encode("hello"),
  capacity: 64,
});
console.log(`allocated greeting at version ${allocated.version}`);
const written = await client.writeVariable(greeting, encode("hi, there"));
const { data, version } = await client.readVariable(greeting);
console.log(`read greeting: "${decode(data)}" at version ${version}`);
check(written === 2 && version === 2 && decode(data) === "hi, there", "write then read");

// A compare-and-set write succeeds only at the version it expects.
await expectRefused(
  "VERSION_CONFLICT",
  "write expecting version 1",
  client.writeVariable(greeting, encode("stale"), { expectedVersion: 1 }),
);
const swapped = await client.writeVariable(greeting, encode("hello again"), {
  expectedVersion: 2,
});
console.log(`compare-and-set at version 2 wrote version ${swapped}`);

// The usual answer to VERSION_CONFLICT: read again, then try again.
const counter = { tenantId, serviceName: "config", variableName: "counter" };
await client.writeVariable(counter, encode("0"), { createIfMissing: true });
async function increment(): Promise<number> {
  for (;;) {
    const current = await client.readVariable(counter);
    const next = encode(String(Number(decode(current.data)) + 1));
    try {
      return await client.writeVariable(counter, next, { expectedVersion: current.version });
    } catch (error) {
      if (!isVersionConflict(error)) throw error;
    }
  }
}
await Promise.all([increment(), increment(), increment()]);
const count = decode((await client.readVariable(counter)).data);
console.log(`three concurrent increments: counter is ${count}`);
check(count === "3", "no increment was lost");

// Code that relied on reads creating things creates them, tolerating ALREADY_EXISTS.
async function ensureService(ref: ServiceRef): Promise<ServiceInfo> {
  try {
    return await client.createService(ref);
  } catch (error) {
    if (!isAlreadyExists(error)) throw error;
    return client.getService(ref);
  }
}
const ensured = await ensureService({ tenantId, serviceName: "config" });
check(ensured.serviceId === created.serviceId, "ensureService finds the existing service");

// A subscription starts with a snapshot of the current value, then follows every change.
let updates = 0;
const changes = client.subscribe(greeting, { signal: AbortSignal.timeout(10_000) });
for await (const change of changes) {
  console.log(`change: ${change.kind} "${decode(change.data)}" at version ${change.version}`);
  if (change.kind === "snapshot") {
    await client.writeVariable(greeting, encode("goodbye"));
  } else {
    updates++;
    break;
  }
}
check(updates === 1, "the subscription saw the write");

// Deleting is explicit too, and deleting what is gone is NOT_FOUND.
await client.deallocateVariable(greeting);
await expectRefused("NOT_FOUND", "read a deallocated variable", client.readVariable(greeting));
await client.deleteService({ tenantId, serviceName: "config" });
await expectRefused(
  "NOT_FOUND",
  "delete the service again",
  client.deleteService({ tenantId, serviceName: "config" }),
);
await client.deleteTenant(tenantId);
console.log("deleted service config and the tenant");

client.close();
console.log("basic example: ok");
