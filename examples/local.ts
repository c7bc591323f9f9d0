/**
 * The local fast path: this program is the remote writer; it starts
 * examples/local-reader.ts as a second process that maps the service's
 * file and reads from memory. The writer changes a value over the API; the
 * reader learns of it from the change stream and reads it locally, then
 * answers by writing into the mapped file — which reaches the writer's
 * subscription through the same change path as any other write.
 *
 * Both must run on the server's machine (openLocal needs a loopback caller).
 *
 *   COMMY_URL=http://127.0.0.1:8080 COMMY_TOKEN=$(cat commy-data/admin-token) \
 *     node --import tsx examples/local.ts
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { createCommyClient } from "../src/client/index.js";
import { decode, encode, freshTenantId, serverFromEnvironment } from "./environment.js";
import { check } from "./expectations.js";

const { baseUrl, token } = serverFromEnvironment();
const client = createCommyClient({ baseUrl, token });
const tenantId = freshTenantId("local");
const serviceName = "live";

console.log(`writer: tenant ${tenantId}, service ${serviceName}`);
await client.createTenant(tenantId);
await client.createService({ tenantId, serviceName });
const temperature = { tenantId, serviceName, variableName: "temperature" };
const ack = { tenantId, serviceName, variableName: "ack" };
// The capacity leaves room for later, longer values to be written in place.
await client.allocateVariable(temperature, { initialData: encode("20.5"), capacity: 32 });
await client.allocateVariable(ack, { capacity: 32 });

// Follow "ack" before the reader starts, so that its answer cannot be missed.
const acks = client.subscribe(ack, { signal: AbortSignal.timeout(45_000) });
const ackChanges = acks[Symbol.asyncIterator]();
check((await ackChanges.next()).value?.kind === "snapshot", "the ack subscription started");

const readerScript = fileURLToPath(new URL("./local-reader.ts", import.meta.url));
const reader = spawn(process.execPath, [...process.execArgv, readerScript], {
  env: { ...process.env, EXAMPLE_TENANT: tenantId, EXAMPLE_SERVICE: serviceName },
  stdio: ["ignore", "pipe", "inherit"],
});
const exited = once(reader, "exit");
// Bounded: a reader that hangs is killed, and the example then fails.
const watchdog = setTimeout(() => reader.kill("SIGKILL"), 30_000);

for await (const line of createInterface({ input: reader.stdout })) {
  console.log(`  ${line}`);
  if (line.startsWith("reader: ready")) {
    const version = await client.writeVariable(temperature, encode("21.75"));
    console.log(`writer: wrote temperature "21.75" over the API, version ${version}`);
  }
}
const [code, signal] = (await exited) as [number | null, NodeJS.Signals | null];
clearTimeout(watchdog);
check(code === 0, `the reader exited with ${code ?? signal}`);

const answer = await ackChanges.next();
check(answer.value?.kind === "update", "the reader's local write reached the subscription");
console.log(`writer: ack changed to "${decode(answer.value?.data ?? new Uint8Array())}"`);
acks.close();

await client.deleteTenant(tenantId);
client.close();
console.log("local example: ok");
