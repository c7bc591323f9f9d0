/**
 * The local half of examples/local.ts, run by it as a child process on the
 * server's machine: it maps the service's file, reads a variable straight
 * from memory, waits (at most 10 s) for the remote writer's change, reads
 * the new value locally, and answers by writing into the mapped file.
 *
 * Environment: COMMY_URL, COMMY_TOKEN, EXAMPLE_TENANT, EXAMPLE_SERVICE.
 */
import { createCommyClient } from "../src/client/index.js";
import { decode, encode, serverFromEnvironment } from "./environment.js";
import { check } from "./expectations.js";

const { baseUrl, token } = serverFromEnvironment();
const tenantId = process.env.EXAMPLE_TENANT ?? "";
const serviceName = process.env.EXAMPLE_SERVICE ?? "";
check(tenantId !== "" && serviceName !== "", "EXAMPLE_TENANT and EXAMPLE_SERVICE are set");
const client = createCommyClient({ baseUrl, token });

// The server checks the caller may read the service, then names its file; reads need no server.
const local = await client.openLocal(tenantId, serviceName);
const first = local.read("temperature");
console.log(`reader: mapped ${local.path}`);
console.log(`reader: local read "${decode(first.data)}" at version ${first.version}`);

const started = performance.now();
for (let i = 0; i < 100_000; i++) local.read("temperature");
const perRead = ((performance.now() - started) * 1000) / 100_000;
console.log(`reader: 100000 local reads, ${perRead.toFixed(2)} µs each`);

// The change stream says when a value changed; the mapped file has it already.
const temperature = { tenantId, serviceName, variableName: "temperature" };
let seen = 0;
for await (const change of client.subscribe(temperature, { signal: AbortSignal.timeout(10_000) })) {
  if (change.kind === "snapshot") {
    console.log(`reader: ready at version ${change.version}`);
    continue;
  }
  const now = local.read("temperature");
  console.log(`reader: change to version ${change.version}; local read "${decode(now.data)}"`);
  check(now.version >= change.version, "the mapped file holds the announced version");
  seen = now.version;
  break;
}
check(seen > first.version, "a change arrived within 10 s");

// A write into the mapped file reaches every subscriber, like any other write.
const version = local.write("ack", encode(`seen version ${seen}`));
console.log(`reader: wrote ack locally at version ${version}`);

local.close();
client.close();
