/**
 * The composition root: configuration → store → service files → core →
 * Connect API and the legacy WebSocket bridge on one port.
 */
import { accessSync, constants, readFileSync } from "node:fs";
import { createSecureContext } from "node:tls";
import { createServer as createHttp1Server } from "node:http";
import { type Http2Session, createServer as createHttp2Server } from "node:http2";
import type { AddressInfo, Socket } from "node:net";
import { join } from "node:path";
import { createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import { createServerLogger } from "./logger.js";
import { ServerMetrics } from "./api/server-metrics.js";
import { EchoService } from "../gen/commy/bench/v1/echo_pb.js";
import { CommyService } from "../gen/commy/v1/commy_service_pb.js";
import { IdentityService } from "../gen/commy/v1/identity_pb.js";
import { WatchService } from "../gen/commy/v1/watch_pb.js";
import { createWatchServiceHandlers } from "./api/watch-service-handlers.js";
import { http2StreamKey } from "./api/http2-stream-context.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { ServerReflection as ReflectionV1 } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ReflectionV1alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { type HealthProbe, HealthMonitor } from "./api/health-monitor.js";
import { createHealthServiceHandlers } from "./api/health-service-handlers.js";
import {
  DescriptorIndex,
  createReflectionV1Handlers,
  createReflectionV1alphaHandlers,
} from "./api/reflection-service-handlers.js";
import { createHttpEndpoints } from "./api/http-endpoints.js";
import {
  type WatchSession,
  type WatchSessionLimits,
  type WatchSessionOptions,
} from "./core/watch-session.js";
import { CommyError } from "./core/commy-error.js";
import { callerKey } from "./api/caller-context.js";
import { createCommyServiceHandlers } from "./api/commy-service-handlers.js";
import { createEchoServiceHandlers } from "./api/echo-service-handlers.js";
import { createErrorInterceptor } from "./api/error-interceptor.js";
import { createSniffingListener } from "./api/protocol-sniffing-listener.js";
import { type TlsFiles, certificatePrincipal, createTlsListener } from "./api/tls-listener.js";
import { createLegacyBridge } from "./bridge/legacy-bridge.js";
import { SERVER_VERSION } from "./version.js";
import { AuditLog } from "./core/audit-log.js";
import { SERVER_ADMIN_CALLER } from "./core/caller.js";
import { type CustomVerifier, Identity } from "./core/identity.js";
import { createIdentityServiceHandlers } from "./api/identity-service-handlers.js";
import { loadAdminToken } from "./admin-token.js";
import { CommyCore } from "./core/commy-core.js";
import { ServiceFileRegistry } from "./core/service-file-registry.js";
import { ConfigError, type ServerConfig, DEFAULT_CONFIG } from "./config.js";
import { lockDataDir } from "./data-dir-lock.js";
import { openSqliteControlStore } from "./store/sqlite-control-store.js";

/** Options beyond the operator's configuration. */
export interface ServerExtras {
  /** Mount the benchmark's echo service (the floor of every API figure). */
  benchEcho?: boolean;
  /** Where logs go (default: pino to stdout at config.logLevel). */
  logger?: Logger;
  /** The admin token (default: COMMY_ADMIN_TOKEN, else the data directory's). */
  adminToken?: string;
  /** Verifies "custom" credentials. */
  customVerifier?: CustomVerifier;
  /** Limits of watch streams (tests shorten them). */
  watchLimits?: Partial<WatchSessionLimits>;
  /**
   * Benchmarks only, never production: every call runs as the server admin
   * without looking at credentials — the "unauthenticated" baseline that
   * the cost of resolving a bearer token is measured against. Not reachable
   * from flags, environment or config files.
   */
  unsafeSkipAuthenticationForBenchmarks?: boolean;
}

/** A running server. */
export interface CommyServer {
  readonly port: number;
  /** http://host:port, or https:// when TLS is configured */
  readonly url: string;
  readonly core: CommyCore;
  readonly identity: Identity;
  /** The server admin's bearer token. */
  readonly adminToken: string;
  /** Stops accepting, ends connections, closes files and the store. */
  close(): Promise<void>;
}

/** How long shutdown waits for in-flight calls before cutting connections. */
const SHUTDOWN_GRACE_MS = 5_000;

export async function startServer(
  config: Partial<ServerConfig> = {},
  extras: ServerExtras = {},
): Promise<CommyServer> {
  const settings: ServerConfig = { ...DEFAULT_CONFIG, ...config };
  const log = extras.logger ?? createServerLogger(settings.logLevel);
  const tls = readTlsFiles(settings);
  const unlock = lockDataDir(settings.dataDir);
  const store = openSqliteControlStore(join(settings.dataDir, "commy.db"));
  // Metrics are made once the core and transports they read exist; these
  // hooks only fire later, when there is work.
  const files = new ServiceFileRegistry(settings.dataDir, {
    maxSize: settings.maxServiceFileSize,
    onGrow: () => metrics?.serviceFileGrew(),
  });
  const reconciliation = files.reconcile(store.allServices());
  for (const orphan of reconciliation.removedOrphans)
    log.warn({ file: orphan }, "removed a service file no service owns");
  for (const note of reconciliation.recreated)
    log.error({ note }, "service file missing or unreadable: recreated empty");
  for (const repair of reconciliation.repaired) log.warn(repair, "repaired a service file");
  const admin = loadAdminToken(
    settings.dataDir,
    extras.adminToken ?? process.env.COMMY_ADMIN_TOKEN,
  );
  if (admin.generated) {
    // Printed once, on the first start; afterwards it is only in the file.
    process.stderr.write(
      `commy: generated the admin token (kept in ${admin.path}): ${admin.token}\n`,
    );
  }
  const audit = new AuditLog(store, Date.now, (action, outcome) =>
    metrics?.auditEvent(action, outcome),
  );
  const watchOptions: WatchSessionOptions = {
    ...extras.watchLimits,
    onCoalesced: (versions) => metrics?.coalescedVersions(versions),
  };
  const identity = new Identity({
    store,
    audit,
    adminToken: admin.token,
    customVerifier: extras.customVerifier,
  });
  const core = new CommyCore({
    store,
    files,
    audit,
    onTenantDeleted: (tenantId) => identity.forgetTenant(tenantId),
    quotas: {
      maxServices: settings.tenantMaxServices,
      maxVariables: settings.tenantMaxVariables,
      maxBytes: settings.tenantMaxBytes,
    },
  });

  const watchSessions = new Set<WatchSession>();
  /** Ends the bench EchoService's Listen streams at shutdown. */
  const benchEchoStop = new AbortController();
  const health = new HealthMonitor(healthProbes(settings.dataDir, store, core));
  const served = [
    CommyService,
    IdentityService,
    WatchService,
    Health,
    ReflectionV1,
    ReflectionV1alpha,
    ...(extras.benchEcho === true ? [EchoService] : []),
  ];
  const descriptors = new DescriptorIndex(served);
  const debug = log.isLevelEnabled("debug");
  const http1Sockets = new Set<Socket>();
  const bridge = createLegacyBridge({
    core,
    identity,
    log,
    serverVersion: SERVER_VERSION,
    watchLimits: watchOptions,
    onMessage: (type, result) => metrics?.bridgeMessage(type, result),
    limits: {
      maxMessageBytes: settings.wsMaxMessageBytes,
      idleTimeoutMs: settings.wsIdleTimeout * 1000,
      pingIntervalMs: settings.wsPingInterval * 1000,
      maxConnections: settings.wsMaxConnections,
    },
  });
  const metrics = !settings.metrics
    ? undefined
    : new ServerMetrics({
        connections: () => {
          const websocket = bridge.connections;
          return { http1: http1Sockets.size - websocket, http2: sessions.size, websocket };
        },
        streams: () => watchSessions.size,
        subscriptions: () => {
          let count = bridge.subscriptions();
          for (const session of watchSessions) count += session.subscriptionCount;
          return count;
        },
        bridgeConnections: () => bridge.modes(),
        mappedBytes: () => core.mappedBytes(),
      });
  // A bearer token wins; without one, a verified client certificate (when a client CA is configured).
  const callerOf = (request: {
    headers: { authorization?: string };
    socket: { remoteAddress?: string; remotePort?: number };
  }) => {
    const address = `${request.socket.remoteAddress ?? "?"}:${request.socket.remotePort ?? "?"}`;
    const authorization = request.headers.authorization;
    const certified =
      authorization === undefined && tls?.clientCa !== undefined
        ? certificatePrincipal(request.socket)
        : undefined;
    return certified === undefined
      ? identity.callerFor(authorization, address)
      : identity.callerForCertificate(certified, address);
  };
  const handler = connectNodeAdapter({
    // Values are small and hot; compressing every response (watch streams
    // included, once per subscriber) cost more CPU than it saved bytes.
    acceptCompression: [],
    readMaxBytes: settings.maxMessageBytes,
    writeMaxBytes: settings.maxMessageBytes,
    routes: (router) => {
      router.service(CommyService, createCommyServiceHandlers(core));
      router.service(IdentityService, createIdentityServiceHandlers(identity));
      router.service(
        WatchService,
        createWatchServiceHandlers(core, {
          sessions: watchSessions,
          limits: watchOptions,
          maxMessageBytes: settings.maxMessageBytes,
        }),
      );
      router.service(Health, createHealthServiceHandlers(health, descriptors.serviceNames));
      router.service(ReflectionV1, createReflectionV1Handlers(descriptors));
      router.service(ReflectionV1alpha, createReflectionV1alphaHandlers(descriptors));
      if (extras.benchEcho === true) {
        router.service(EchoService, createEchoServiceHandlers(benchEchoStop.signal));
      }
    },
    // Plain HTTP for load balancers and scrapers: /healthz.
    fallback: createHttpEndpoints({ health, metrics }),
    interceptors: [
      createErrorInterceptor({
        onInternal: (error, requestId) => log.error({ err: error, requestId }, "internal error"),
        onCallEnd:
          metrics === undefined && !debug
            ? undefined
            : (outcome) => {
                metrics?.rpcHandled(outcome.method, outcome.code, outcome.seconds);
                if (debug) log.debug(outcome, "call");
              },
      }),
    ],
    // The caller is resolved once per call or stream, before any handler runs.
    contextValues: (request) => {
      const values = createContextValues().set(
        callerKey,
        extras.unsafeSkipAuthenticationForBenchmarks === true
          ? SERVER_ADMIN_CALLER
          : callerOf(request),
      );
      return "stream" in request ? values.set(http2StreamKey, request.stream) : values;
    },
  });
  const http1 = createHttp1Server(handler);
  http1.on("connection", (socket: Socket) => {
    http1Sockets.add(socket);
    socket.once("close", () => http1Sockets.delete(socket));
  });
  const http2 = createHttp2Server(
    { settings: { maxConcurrentStreams: settings.maxStreamsPerConnection } },
    handler,
  );
  const sessions = new Set<Http2Session>();
  http2.on("session", (session: Http2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  http1.on("upgrade", (request, socket, head) => bridge.handleUpgrade(request, socket, head));
  const listener =
    tls === undefined ? createSniffingListener(http1, http2) : createTlsListener(http1, http2, tls);
  // Beyond this, new connections are closed as they arrive; open ones go on.
  listener.maxConnections = settings.maxConnections;
  listener.on("drop", (info) =>
    log.warn(
      { client: info?.remoteAddress, limit: settings.maxConnections },
      "connection refused (limit)",
    ),
  );
  try {
    await new Promise<void>((resolve, reject) => {
      listener.once("error", reject);
      listener.listen(settings.port, settings.host, () => resolve());
    });
  } catch (error) {
    // Could not listen (port taken, bad host): let go of everything.
    await core.close();
    identity.close();
    store.close();
    unlock();
    throw error;
  }
  // The HTTP/1.1 server never listens itself; telling it that it does starts
  // its connection tracking (idle keep-alive shutdown, request timeouts).
  http1.emit("listening");
  const port = (listener.address() as AddressInfo).port;
  const scheme = tls === undefined ? "http" : "https";
  const url = `${scheme}://${settings.host.includes(":") ? `[${settings.host}]` : settings.host}:${port}`;
  log.info({ url, dataDir: settings.dataDir }, "commy is serving");

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      // Streams end with a clear status instead of being cut.
      health.shutdown();
      const shutdown = new CommyError("CONNECTION_LOST", "the server is shutting down");
      for (const session of watchSessions) session.close(shutdown);
      benchEchoStop.abort();
      const bridgeClosed = bridge.close("the server is shutting down", SHUTDOWN_GRACE_MS);
      await new Promise<void>((resolve) => {
        listener.close(() => resolve());
        http1.close();
        http2.close();
        for (const session of sessions) session.close();
        const force = setTimeout(() => {
          http1.closeAllConnections();
          for (const session of sessions) session.destroy();
          resolve();
        }, SHUTDOWN_GRACE_MS);
        force.unref();
      });
      await bridgeClosed;
      await core.close();
      identity.close();
      store.close();
      unlock();
      log.info("commy stopped");
    })();
    return closing;
  };
  return { port, url, core, identity, adminToken: admin.token, close };
}

/** The certificate and key, when TLS is configured; a clear error when they cannot be read. */
function readTlsFiles(settings: ServerConfig): TlsFiles | undefined {
  if (settings.tlsCert === "" && settings.tlsKey === "") return undefined;
  const read = (path: string, what: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new ConfigError(`cannot read the TLS ${what} ${path}: ${(error as Error).message}`);
    }
  };
  const files: TlsFiles = {
    cert: read(settings.tlsCert, "certificate"),
    key: read(settings.tlsKey, "key"),
    ...(settings.tlsClientCa === "" ? {} : { clientCa: read(settings.tlsClientCa, "client CA") }),
  };
  try {
    // Checked now, before anything is opened: a bad pair fails start-up plainly.
    createSecureContext(files);
  } catch (error) {
    throw new ConfigError(
      `the TLS certificate and key are not usable: ${(error as Error).message}`,
    );
  }
  return files;
}

/** What the server needs to be of use: the store answers, the data directory takes writes, the core is open. */
function healthProbes(
  dataDir: string,
  store: { getTenant(tenantId: string): unknown },
  core: CommyCore,
): HealthProbe[] {
  return [
    // Any query will do: it fails once the database is closed or unreadable.
    { name: "store", check: () => (store.getTenant("-health-probe-"), true) },
    {
      name: "data directory writable",
      check: () => (accessSync(join(dataDir, "services"), constants.W_OK), true),
    },
    { name: "service files", check: () => core.isOpen },
  ];
}
