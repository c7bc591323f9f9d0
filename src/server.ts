/**
 * The composition root: configuration → store → service files → core →
 * Connect API (+ later the WebSocket bridge) on one port.
 */
import { createServer as createHttp1Server } from "node:http";
import { type Http2Session, createServer as createHttp2Server } from "node:http2";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { pino, type Logger } from "pino";
import { EchoService } from "../gen/commy/bench/v1/echo_pb.js";
import { CommyService } from "../gen/commy/v1/commy_service_pb.js";
import { callerKey } from "./api/caller-context.js";
import { createCommyServiceHandlers } from "./api/commy-service-handlers.js";
import { createEchoServiceHandlers } from "./api/echo-service-handlers.js";
import { createErrorInterceptor } from "./api/error-interceptor.js";
import { createSniffingListener } from "./api/protocol-sniffing-listener.js";
import { serverAdminOnly } from "./core/authorizer.js";
import { SERVER_ADMIN } from "./core/caller.js";
import { CommyCore } from "./core/commy-core.js";
import { ServiceFileRegistry } from "./core/service-file-registry.js";
import { type ServerConfig, DEFAULT_CONFIG } from "./config.js";
import { lockDataDir } from "./data-dir-lock.js";
import { openSqliteControlStore } from "./store/sqlite-control-store.js";

/** Options beyond the operator's configuration. */
export interface ServerExtras {
  /** Mount the benchmark's echo service (the floor of every API figure). */
  benchEcho?: boolean;
  /** Where logs go (default: pino to stdout at config.logLevel). */
  logger?: Logger;
}

/** A running server. */
export interface CommyServer {
  readonly port: number;
  /** http://host:port */
  readonly url: string;
  readonly core: CommyCore;
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
  const log = extras.logger ?? pino({ level: settings.logLevel });
  const unlock = lockDataDir(settings.dataDir);
  const store = openSqliteControlStore(join(settings.dataDir, "commy.db"));
  const files = new ServiceFileRegistry(settings.dataDir, { maxSize: settings.maxServiceFileSize });
  const reconciliation = files.reconcile(store.allServices());
  for (const orphan of reconciliation.removedOrphans)
    log.warn({ file: orphan }, "removed a service file no service owns");
  for (const note of reconciliation.recreated)
    log.error({ note }, "service file missing or unreadable: recreated empty");
  for (const repair of reconciliation.repaired) log.warn(repair, "repaired a service file");
  // Until the identity issue lands, every call runs as the server admin.
  const core = new CommyCore({ store, files, authorizer: serverAdminOnly });

  const handler = connectNodeAdapter({
    routes: (router) => {
      router.service(CommyService, createCommyServiceHandlers(core));
      if (extras.benchEcho === true) router.service(EchoService, createEchoServiceHandlers());
    },
    interceptors: [createErrorInterceptor((error) => log.error({ err: error }, "internal error"))],
    contextValues: (request) =>
      createContextValues().set(callerKey, {
        principal: SERVER_ADMIN,
        clientAddress: `${request.socket.remoteAddress ?? "?"}:${request.socket.remotePort ?? "?"}`,
      }),
  });
  const http1 = createHttp1Server(handler);
  const http2 = createHttp2Server(handler);
  const sessions = new Set<Http2Session>();
  http2.on("session", (session: Http2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  const listener = createSniffingListener(http1, http2);
  await new Promise<void>((resolve, reject) => {
    listener.once("error", reject);
    listener.listen(settings.port, settings.host, () => resolve());
  });
  const port = (listener.address() as AddressInfo).port;
  const url = `http://${settings.host.includes(":") ? `[${settings.host}]` : settings.host}:${port}`;
  log.info({ url, dataDir: settings.dataDir }, "commy is serving");

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
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
      core.close();
      store.close();
      unlock();
      log.info("commy stopped");
    })();
    return closing;
  };
  return { port, url, core, close };
}
