/**
 * The one way the end-to-end tests start Commy servers and talk to them:
 * real servers (in this process or a child) on an ephemeral loopback port
 * over a fresh data directory, and real clients (connect-es over Connect,
 * gRPC and gRPC-Web; grpc-js; raw HTTP). Credentials live here only: every
 * server gets this module's admin token, and every request takes its
 * Authorization header from `credentialHeaders` — the admin's by default,
 * none or another bearer token when a test asks for it.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { Agent } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Client, type Interceptor, type Transport, createClient } from "@connectrpc/connect";
import {
  Http2SessionManager,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { CommyService } from "../../gen/commy/v1/commy_service_pb.js";
import { IdentityService } from "../../gen/commy/v1/identity_pb.js";
import type { ServerConfig } from "../../src/config.js";
import { type CommyServer, startServer } from "../../src/server.js";

const PACKAGE_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const PROTO_DIR = join(PACKAGE_ROOT, "proto");
const CHILD_SERVER_SCRIPT = join(PACKAGE_ROOT, "test/api/fixtures/server-child.ts");

/** A typed connect-es client of commy.v1.CommyService. */
export type CommyClient = Client<typeof CommyService>;
/** A typed connect-es client of commy.v1.IdentityService. */
export type IdentityClient = Client<typeof IdentityService>;

export type Protocol = "connect" | "grpc" | "grpc-web";
export type HttpVersion = "1.1" | "2";

/**
 * Who a client calls as: the server admin (the default), nobody (no
 * Authorization header), or the holder of a bearer token (a session token,
 * an API key, or a made-up one).
 */
export type Credentials = "admin" | "none" | { bearer: string };

/** How a connect-es client reaches the server. */
export interface TransportChoice {
  protocol: Protocol;
  httpVersion: HttpVersion;
  /** Connect only: protobuf instead of JSON bodies. */
  binary?: boolean;
}

/** Every supported protocol / HTTP version pairing, each named for test titles. */
export const TRANSPORTS: readonly (TransportChoice & { name: string })[] = [
  { name: "Connect JSON over HTTP/1.1", protocol: "connect", httpVersion: "1.1" },
  { name: "Connect binary over HTTP/1.1", protocol: "connect", httpVersion: "1.1", binary: true },
  { name: "Connect JSON over HTTP/2", protocol: "connect", httpVersion: "2" },
  { name: "Connect binary over HTTP/2", protocol: "connect", httpVersion: "2", binary: true },
  { name: "gRPC over HTTP/2", protocol: "grpc", httpVersion: "2" },
  { name: "gRPC-Web over HTTP/1.1", protocol: "grpc-web", httpVersion: "1.1" },
  { name: "gRPC-Web over HTTP/2", protocol: "grpc-web", httpVersion: "2" },
];

/**
 * The server admin's bearer token of every server the tests start (in this
 * process or a child), fresh for each test process.
 */
const TEST_ADMIN_TOKEN = `ca_test_${randomBytes(24).toString("hex")}`;

/**
 * The headers that authenticate a test request. Every request a test sends
 * (typed clients, grpc-js, raw HTTP) takes its credentials from here.
 */
export function credentialHeaders(credentials: Credentials = "admin"): Record<string, string> {
  if (credentials === "none") return {};
  const token = credentials === "admin" ? TEST_ADMIN_TOKEN : credentials.bearer;
  return { authorization: `Bearer ${token}` };
}

/** Adds the credentials to every connect-es call. */
function credentialInterceptor(credentials: Credentials): Interceptor {
  const headers = Object.entries(credentialHeaders(credentials));
  return (next) => (request) => {
    for (const [name, value] of headers) request.header.set(name, value);
    return next(request);
  };
}

/** One unary method of a grpc-js client, as proto-loader generates it. */
type GrpcJsUnaryMethod = (
  request: object,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, response?: unknown) => void,
) => grpc.ClientUnaryCall;

/** A grpc-js client of commy.v1.CommyService, from the .proto files (no generated code). */
export interface GrpcJsCommyClient {
  /** Calls a unary method by its proto name (e.g. "CreateTenant"); fields in proto case. */
  call<T = Record<string, unknown>>(method: string, request: object): Promise<T>;
  close(): void;
}

/** Options of a connect-es client. */
export interface ClientOptions {
  /** Connect only: protobuf instead of JSON bodies. */
  binary?: boolean;
  credentials?: Credentials;
}

/** Clients of one server address, all closed together. */
export interface ClientFactory {
  readonly baseUrl: string;
  connectClient(protocol: Protocol, httpVersion: HttpVersion, options?: ClientOptions): CommyClient;
  /** An IdentityService client (Connect over HTTP/1.1), to set up principals and grants. */
  identityClient(credentials?: Credentials): IdentityClient;
  grpcJsClient(credentials?: Credentials): GrpcJsCommyClient;
  /** Closes every client this factory made (HTTP/2 sessions, grpc-js channels). */
  closeClients(): void;
}

export function createClientFactory(baseUrl: string): ClientFactory {
  const sessions: Http2SessionManager[] = [];
  const grpcJsClients: GrpcJsCommyClient[] = [];
  // Our own keep-alive agent, so that closing the clients closes their sockets.
  const agent = new Agent({ keepAlive: true });

  const transport = (choice: TransportChoice, credentials: Credentials): Transport => {
    const interceptors = [credentialInterceptor(credentials)];
    const useBinaryFormat = choice.binary ?? choice.protocol !== "connect";
    if (choice.httpVersion === "1.1") {
      const common = {
        baseUrl,
        httpVersion: "1.1" as const,
        nodeOptions: { agent },
        interceptors,
        useBinaryFormat,
      };
      if (choice.protocol === "grpc") throw new Error("gRPC needs HTTP/2");
      return choice.protocol === "connect"
        ? createConnectTransport(common)
        : createGrpcWebTransport(common);
    }
    // An explicit session manager, so that closing the clients ends the session.
    const sessionManager = new Http2SessionManager(baseUrl);
    sessions.push(sessionManager);
    const common = {
      baseUrl,
      httpVersion: "2" as const,
      sessionManager,
      interceptors,
      useBinaryFormat,
    };
    switch (choice.protocol) {
      case "connect":
        return createConnectTransport(common);
      case "grpc":
        return createGrpcTransport(common);
      case "grpc-web":
        return createGrpcWebTransport(common);
    }
  };

  return {
    baseUrl,
    connectClient: (protocol, httpVersion, options = {}) =>
      createClient(
        CommyService,
        transport(
          { protocol, httpVersion, binary: options.binary },
          options.credentials ?? "admin",
        ),
      ),
    identityClient: (credentials = "admin") =>
      createClient(
        IdentityService,
        transport({ protocol: "connect", httpVersion: "1.1" }, credentials),
      ),
    grpcJsClient: (credentials = "admin") => {
      const client = createGrpcJsClient(new URL(baseUrl).host, credentials);
      grpcJsClients.push(client);
      return client;
    },
    closeClients: () => {
      for (const session of sessions.splice(0)) session.abort();
      agent.destroy();
      for (const client of grpcJsClients.splice(0)) client.close();
    },
  };
}

let commyServiceDefinition: grpc.ServiceClientConstructor | undefined;

/** commy.v1.CommyService as grpc-js sees it, loaded once from proto/. */
function grpcJsServiceConstructor(): grpc.ServiceClientConstructor {
  if (commyServiceDefinition !== undefined) return commyServiceDefinition;
  const definition = protoLoader.loadSync(join(PROTO_DIR, "commy/v1/commy_service.proto"), {
    includeDirs: [PROTO_DIR],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    commy: { v1: { CommyService: grpc.ServiceClientConstructor } };
  };
  commyServiceDefinition = loaded.commy.v1.CommyService;
  return commyServiceDefinition;
}

function createGrpcJsClient(address: string, credentials: Credentials): GrpcJsCommyClient {
  const Constructor = grpcJsServiceConstructor();
  const client = new Constructor(address, grpc.credentials.createInsecure());
  const methods = client as unknown as Record<string, GrpcJsUnaryMethod | undefined>;
  return {
    call: <T>(method: string, request: object) =>
      new Promise<T>((resolve, reject) => {
        const unary = methods[method];
        if (unary === undefined) throw new Error(`CommyService has no method ${method}`);
        const metadata = new grpc.Metadata();
        for (const [name, value] of Object.entries(credentialHeaders(credentials)))
          metadata.set(name, value);
        // Bounded: a hung call fails the test instead of stalling it.
        const deadline = new Date(Date.now() + 10_000);
        unary.call(client, request, metadata, { deadline }, (error, response) =>
          error === null ? resolve(response as T) : reject(error),
        );
      }),
    close: () => client.close(),
  };
}

/** A fresh, private data directory under the OS temp dir. */
export interface TestDataDir {
  readonly path: string;
  /** Removes the directory and everything in it. */
  remove(): void;
}

export function createTestDataDir(): TestDataDir {
  const path = mkdtempSync(join(tmpdir(), "commy-api-"));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Server settings a test may choose; the rest are the test defaults. */
export type TestServerConfig = Partial<Omit<ServerConfig, "dataDir" | "host" | "port">>;

export interface TestServerOptions {
  /** An existing data directory, left in place on close; default: a fresh one, removed on close. */
  dataDir?: string;
  config?: TestServerConfig;
  /** Mounts the bench EchoService (the benchmark floors). */
  benchEcho?: boolean;
}

/** A Commy server running in this process, with clients bound to it. */
export interface TestServer extends ClientFactory {
  readonly server: CommyServer;
  readonly dataDir: string;
  /** Closes the clients and the server; removes the data directory if it made it. */
  close(): Promise<void>;
}

function serverConfig(dataDir: string, config: TestServerConfig = {}): Partial<ServerConfig> {
  return { logLevel: "silent", ...config, port: 0, host: "127.0.0.1", dataDir };
}

export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const ownDir = options.dataDir === undefined ? createTestDataDir() : undefined;
  const dataDir = options.dataDir ?? (ownDir as TestDataDir).path;
  let server: CommyServer;
  try {
    server = await startServer(serverConfig(dataDir, options.config), {
      adminToken: TEST_ADMIN_TOKEN,
      benchEcho: options.benchEcho,
    });
  } catch (error) {
    ownDir?.remove();
    throw error;
  }
  const clients = createClientFactory(server.url);
  let closed: Promise<void> | undefined;
  return {
    ...clients,
    server,
    dataDir,
    close: () =>
      (closed ??= (async () => {
        clients.closeClients();
        await server.close();
        ownDir?.remove();
      })()),
  };
}

/** A Commy server running in a child process (test/api/fixtures/server-child.ts). */
export interface ChildServer extends ClientFactory {
  readonly pid: number;
  readonly port: number;
  /** Sends `signal` and waits for the process to end. */
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** What the child prints as its first line of output. */
type ChildReport =
  | { listening: { port: number; url: string; pid: number } }
  | { failed: { name: string; message: string } };

/** Outcome of starting a child server: it listens, or start-up failed with this error. */
export type ChildServerStart =
  { server: ChildServer } | { failed: { name: string; message: string } };

/**
 * Starts a server in a child process on `dataDir` and waits for it to
 * report that it listens (or why it could not start).
 */
export async function startChildServer(
  dataDir: string,
  config: TestServerConfig = {},
): Promise<ChildServerStart> {
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      CHILD_SERVER_SCRIPT,
      JSON.stringify({ config: serverConfig(dataDir, config), adminToken: TEST_ADMIN_TOKEN }),
    ],
    { cwd: PACKAGE_ROOT, stdio: ["ignore", "pipe", "pipe"] },
  );
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  let report: ChildReport;
  try {
    report = await firstLine(child, 20_000);
  } catch (error) {
    child.kill("SIGKILL");
    await exited;
    throw error;
  }
  if ("failed" in report) {
    await exited;
    return { failed: report.failed };
  }
  const clients = createClientFactory(report.listening.url);
  return {
    server: {
      ...clients,
      pid: report.listening.pid,
      port: report.listening.port,
      kill: async (signal = "SIGKILL") => {
        clients.closeClients();
        if (child.exitCode === null && child.signalCode === null) child.kill(signal);
        return exited;
      },
    },
  };
}

/** The child's first line of stdout, parsed; fails on early exit or timeout. */
function firstLine(child: ChildProcess, timeoutMs: number): Promise<ChildReport> {
  return new Promise((resolve, reject) => {
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(
      () => finish(new Error(`the child server did not report within ${timeoutMs} ms\n${stderr}`)),
      timeoutMs,
    );
    const finish = (outcome: ChildReport | Error): void => {
      clearTimeout(timer);
      child.stdout?.off("data", onStdout);
      child.off("exit", onExit);
      if (outcome instanceof Error) reject(outcome);
      else resolve(outcome);
    };
    const onStdout = (chunk: Buffer): void => {
      stdout += chunk.toString("utf8");
      const end = stdout.indexOf("\n");
      if (end >= 0) finish(JSON.parse(stdout.slice(0, end)) as ChildReport);
    };
    const onExit = (code: number | null, signal: string | null): void =>
      finish(new Error(`the child server exited (${code ?? signal}) before reporting\n${stderr}`));
    child.stdout?.on("data", onStdout);
    child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    child.on("exit", onExit);
  });
}
