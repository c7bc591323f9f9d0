/**
 * Health and reflection as any gRPC tool sees them: @grpc/grpc-js clients
 * built from the vendored standard protos, `buf curl` with no proto files
 * (reflection only), and plain HTTP GET /healthz.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type TestServer, startTestServer } from "../helpers/test-server.js";
import { testAdminToken } from "../helpers/identity-fixtures.js";

const PACKAGE_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const PROTO_DIR = join(PACKAGE_ROOT, "proto");
const run = promisify(execFile);

interface GrpcPackage {
  [name: string]: GrpcPackage | grpc.ServiceClientConstructor;
}

function serviceConstructor(file: string, path: string[]): grpc.ServiceClientConstructor {
  const definition = protoLoader.loadSync(join(PROTO_DIR, file), {
    includeDirs: [PROTO_DIR],
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  let node: GrpcPackage | grpc.ServiceClientConstructor = grpc.loadPackageDefinition(
    definition,
  ) as GrpcPackage;
  for (const part of path) node = (node as GrpcPackage)[part] as GrpcPackage;
  return node as unknown as grpc.ServiceClientConstructor;
}

type Callback<T> = (error: grpc.ServiceError | null, value: T) => void;
interface HealthClient extends grpc.Client {
  check(request: { service: string }, callback: Callback<{ status: string }>): void;
  watch(request: { service: string }): grpc.ClientReadableStream<{ status: string }>;
  list(request: object, callback: Callback<{ statuses: Record<string, { status: string }> }>): void;
}
interface ReflectionAnswer {
  listServicesResponse?: { service: { name: string }[] };
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  errorResponse?: { errorCode: number; errorMessage: string };
  messageResponse: string;
}
type ReflectionClient = grpc.Client & {
  serverReflectionInfo(): grpc.ClientDuplexStream<object, ReflectionAnswer>;
};

const address = (server: TestServer): string => new URL(server.server.url).host;

function healthClient(server: TestServer): HealthClient {
  const Health = serviceConstructor("grpc/health/v1/health.proto", [
    "grpc",
    "health",
    "v1",
    "Health",
  ]);
  return new Health(address(server), grpc.credentials.createInsecure()) as unknown as HealthClient;
}

function reflectionClient(server: TestServer, version: "v1" | "v1alpha"): ReflectionClient {
  const Reflection = serviceConstructor(`grpc/reflection/${version}/reflection.proto`, [
    "grpc",
    "reflection",
    version,
    "ServerReflection",
  ]);
  return new Reflection(
    address(server),
    grpc.credentials.createInsecure(),
  ) as unknown as ReflectionClient;
}

function ask(client: ReflectionClient, request: object): Promise<ReflectionAnswer> {
  return new Promise((resolve, reject) => {
    const call = client.serverReflectionInfo();
    call.once("data", (answer: ReflectionAnswer) => {
      resolve(answer);
      call.end();
    });
    call.once("error", reject);
    call.write(request);
  });
}

const COMMY_SERVICES = [
  "commy.v1.CommyService",
  "commy.v1.IdentityService",
  "commy.v1.WatchService",
];

describe("health and reflection", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it("Health.Check answers SERVING for the server and each service, NOT_FOUND for others", async () => {
    const client = healthClient(server);
    try {
      const check = (service: string) =>
        new Promise<{ status: string } | grpc.ServiceError>((resolve) =>
          client.check({ service }, (error, value) => resolve(error ?? value)),
        );
      expect(await check("")).toEqual({ status: "SERVING" });
      for (const service of COMMY_SERVICES)
        expect(await check(service)).toEqual({ status: "SERVING" });
      const unknown = await check("no.such.Service");
      expect((unknown as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);
    } finally {
      client.close();
    }
  });

  it("Health.List names every served service", async () => {
    const client = healthClient(server);
    try {
      const listed = await new Promise<{ statuses: Record<string, { status: string }> }>(
        (resolve, reject) =>
          client.list({}, (error, value) => (error ? reject(error) : resolve(value))),
      );
      for (const service of ["", ...COMMY_SERVICES, "grpc.health.v1.Health"]) {
        expect(listed.statuses[service]).toEqual({ status: "SERVING" });
      }
    } finally {
      client.close();
    }
  });

  it("reflection v1 and v1alpha list the services and give descriptors by symbol and file", async () => {
    for (const version of ["v1", "v1alpha"] as const) {
      const client = reflectionClient(server, version);
      try {
        const listed = await ask(client, { listServices: "" });
        const names = listed.listServicesResponse?.service.map((s) => s.name) ?? [];
        expect(names).toEqual(
          expect.arrayContaining([
            ...COMMY_SERVICES,
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
          ]),
        );
        const bySymbol = await ask(client, {
          fileContainingSymbol: "commy.v1.CommyService.ReadVariable",
        });
        const files = bySymbol.fileDescriptorResponse?.fileDescriptorProto ?? [];
        // The file itself and what it imports (errors, resources, …).
        expect(files.length).toBeGreaterThan(1);
        expect(files.some((f) => f.includes("commy/v1/commy_service.proto"))).toBe(true);
        const byName = await ask(client, { fileByFilename: "commy/v1/watch.proto" });
        expect(byName.fileDescriptorResponse?.fileDescriptorProto.length).toBeGreaterThan(0);
        const missing = await ask(client, { fileContainingSymbol: "no.such.Thing" });
        expect(missing.errorResponse?.errorCode).toBe(grpc.status.NOT_FOUND);
      } finally {
        client.close();
      }
    }
  });

  it("buf curl lists and calls RPCs through reflection alone", async () => {
    const base = server.server.url;
    const buf = (args: string[]) =>
      run(
        "npx",
        ["--no-install", "buf", "curl", "--protocol", "grpc", "--http2-prior-knowledge", ...args],
        {
          cwd: PACKAGE_ROOT,
          timeout: 30_000,
        },
      );
    const services = await buf(["--list-services", base]);
    for (const service of COMMY_SERVICES) expect(services.stdout).toContain(service);
    const created = await buf([
      "-H",
      `Authorization: Bearer ${testAdminToken()}`,
      "-d",
      '{"tenantId":"reflected"}',
      `${base}/commy.v1.CommyService/CreateTenant`,
    ]);
    expect(JSON.parse(created.stdout)).toMatchObject({ tenant: { tenantId: "reflected" } });
    const health = await buf(["-d", "{}", `${base}/grpc.health.v1.Health/Check`]);
    expect(JSON.parse(health.stdout)).toEqual({ status: "SERVING" });
  });

  it("GET /healthz is 200 while serving; other plain paths are 404", async () => {
    const ok = await fetch(`${server.server.url}/healthz`);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe("ok\n");
    expect((await fetch(`${server.server.url}/nothing-here`)).status).toBe(404);
  });
});

describe("health during shutdown", () => {
  it("Health.Watch reports SERVING, then NOT_SERVING when the server stops; /healthz turns 503", async () => {
    const server = await startTestServer();
    const client = healthClient(server);
    try {
      const call = client.watch({ service: "" });
      const statuses: string[] = [];
      const ended = new Promise<void>((resolve) => {
        call.on("data", (answer: { status: string }) => {
          statuses.push(answer.status);
          if (statuses.length === 1) void server.close();
        });
        call.on("error", () => resolve());
        call.on("end", () => resolve());
      });
      await ended;
      expect(statuses).toEqual(["SERVING", "NOT_SERVING"]);
    } finally {
      client.close();
      await server.close();
    }
  });

  it("a health probe that fails makes Check NOT_SERVING and /healthz 503 with the reason", async () => {
    const server = await startTestServer();
    const client = healthClient(server);
    try {
      // The core closes first on a real shutdown; here alone, so the probe sees it.
      await server.server.core.close();
      const answer = await new Promise<{ status: string }>((resolve, reject) =>
        client.check({ service: "" }, (error, value) => (error ? reject(error) : resolve(value))),
      );
      expect(answer.status).toBe("NOT_SERVING");
      const response = await fetch(`${server.server.url}/healthz`);
      expect(response.status).toBe(503);
      expect(await response.text()).toContain("service files");
    } finally {
      client.close();
      await server.close();
    }
  });
});
