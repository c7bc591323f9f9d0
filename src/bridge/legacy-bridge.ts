/**
 * The legacy WebSocket bridge's transport: HTTP/1.1 upgrades on the
 * server's one port (any path, as the legacy server accepted), frames in
 * order into a LegacyConnection, limits and keep-alive around it.
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import { WebSocketServer, type WebSocket } from "ws";
import type { CommyCore } from "../core/commy-core.js";
import type { Identity } from "../core/identity.js";
import type { WatchSessionOptions } from "../core/watch-session.js";
import { LegacyConnection, type LegacyPeer } from "./legacy-connection.js";

export interface LegacyBridgeLimits {
  /** Largest message accepted; a larger one closes the connection with 1009. */
  maxMessageBytes: number;
  /** A connection that sends no message for this long is closed (0: never). */
  idleTimeoutMs: number;
  /** WebSocket pings this often; a peer that missed the last one is cut (0: never). */
  pingIntervalMs: number;
  /** Connections served at once; more are refused with HTTP 503. */
  maxConnections: number;
}

export const DEFAULT_BRIDGE_LIMITS: LegacyBridgeLimits = {
  maxMessageBytes: 1024 * 1024,
  idleTimeoutMs: 600_000,
  pingIntervalMs: 30_000,
  maxConnections: 10_000,
};

export interface LegacyBridgeDependencies {
  core: CommyCore;
  identity: Identity;
  log: Logger;
  serverVersion: string;
  limits?: Partial<LegacyBridgeLimits>;
  watchLimits?: WatchSessionOptions;
  /** Told of every message handled (metrics). */
  onMessage?: (type: string, result: string) => void;
}

export interface LegacyBridge {
  /** Takes an HTTP/1.1 upgrade request (the http server's "upgrade" event). */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Open connections. */
  readonly connections: number;
  /** Open connections by mode: "extended" once a client sent a request_id, else "legacy". */
  modes(): { legacy: number; extended: number };
  /** Subscriptions of extended-mode connections. */
  subscriptions(): number;
  /**
   * Ends every connection's sessions at once, closes it with 1001, and
   * resolves when all are closed (cut after `graceMs`).
   */
  close(reason: string, graceMs: number): Promise<void>;
}

/** Messages queued behind the one being answered before the socket stops being read. */
const MAX_QUEUED_MESSAGES = 64;

interface Tracked {
  ws: WebSocket;
  connection: LegacyConnection;
  alive: boolean;
  lastMessageAt: number;
}

export function createLegacyBridge(deps: LegacyBridgeDependencies): LegacyBridge {
  const limits = { ...DEFAULT_BRIDGE_LIMITS, ...deps.limits };
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: limits.maxMessageBytes,
    perMessageDeflate: false,
    clientTracking: false,
  });
  const open = new Set<Tracked>();
  let nextId = 1;

  const keepAlive = startKeepAlive(open, limits);

  function attach(ws: WebSocket, request: IncomingMessage, socket: Duplex): void {
    const address = `${request.socket.remoteAddress ?? "?"}:${request.socket.remotePort ?? "?"}`;
    const log = deps.log.child({ ws: nextId++, client: address });
    const peer: LegacyPeer = {
      address,
      send: (text) => ws.send(text),
      drained: () =>
        socket.writableNeedDrain
          ? new Promise<void>((resolve) => {
              socket.once("drain", resolve);
              socket.once("close", resolve);
            })
          : undefined,
      close: (code, reason) => ws.close(code, reason),
    };
    const connection = new LegacyConnection(
      {
        core: deps.core,
        identity: deps.identity,
        log,
        serverVersion: deps.serverVersion,
        watchLimits: deps.watchLimits,
        onMessage: deps.onMessage,
      },
      peer,
    );
    const tracked: Tracked = { ws, connection, alive: true, lastMessageAt: Date.now() };
    open.add(tracked);
    log.debug("legacy: connected");

    const queue: string[] = [];
    let running = false;
    const drain = async (): Promise<void> => {
      running = true;
      for (let text = queue.shift(); text !== undefined; text = queue.shift()) {
        if (queue.length < MAX_QUEUED_MESSAGES / 2 && ws.isPaused) ws.resume();
        try {
          await connection.handle(text);
        } catch (error) {
          log.error({ err: error }, "legacy: message failed");
        }
      }
      running = false;
    };

    ws.on("message", (data, isBinary) => {
      tracked.lastMessageAt = Date.now();
      if (isBinary) {
        ws.close(1003, "binary frames are not supported: send JSON text frames");
        return;
      }
      queue.push(rawText(data));
      // A client that sends without reading its answers is slowed, not buffered without end.
      if (queue.length >= MAX_QUEUED_MESSAGES) ws.pause();
      if (!running) void drain();
    });
    ws.on("pong", () => (tracked.alive = true));
    ws.on("error", (error) => log.debug({ err: error }, "legacy: socket error"));
    ws.on("close", (code) => {
      open.delete(tracked);
      queue.length = 0;
      connection.close();
      log.debug({ code }, "legacy: disconnected");
    });
  }

  return {
    handleUpgrade(request, socket, head) {
      if (open.size >= limits.maxConnections) {
        socket.end(
          "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\n" +
            "Content-Length: 40\r\n\r\ntoo many WebSocket connections; retry\r\n\r\n",
        );
        deps.log.warn({ limit: limits.maxConnections }, "legacy: connection refused (limit)");
        return;
      }
      wss.handleUpgrade(request, socket, head, (ws) => attach(ws, request, socket));
    },
    get connections() {
      return open.size;
    },
    modes() {
      let extended = 0;
      for (const tracked of open) if (tracked.connection.extended) extended++;
      return { legacy: open.size - extended, extended };
    },
    subscriptions() {
      let count = 0;
      for (const tracked of open) count += tracked.connection.subscriptionCount;
      return count;
    },
    async close(reason, graceMs) {
      clearInterval(keepAlive);
      const closed = [...open].map(
        (tracked) => new Promise<void>((resolve) => tracked.ws.once("close", () => resolve())),
      );
      for (const tracked of open) {
        tracked.connection.close();
        tracked.ws.close(1001, reason);
      }
      const cut = setTimeout(() => {
        for (const tracked of open) tracked.ws.terminate();
      }, graceMs);
      await Promise.all(closed);
      clearTimeout(cut);
    },
  };
}

/** One timer for every connection: pings, and the idle limit. */
function startKeepAlive(open: Set<Tracked>, limits: LegacyBridgeLimits): NodeJS.Timeout {
  const periods = [limits.pingIntervalMs, limits.idleTimeoutMs].filter((ms) => ms > 0);
  const tick = periods.length === 0 ? 60_000 : Math.max(10, Math.min(...periods) / 2);
  let lastPings = Date.now();
  const timer = setInterval(() => {
    const now = Date.now();
    const pingNow = limits.pingIntervalMs > 0 && now - lastPings >= limits.pingIntervalMs;
    if (pingNow) lastPings = now;
    for (const tracked of open) {
      if (limits.idleTimeoutMs > 0 && now - tracked.lastMessageAt >= limits.idleTimeoutMs) {
        tracked.ws.close(1000, `idle for ${limits.idleTimeoutMs / 1000} s`);
        continue;
      }
      if (!pingNow) continue;
      if (!tracked.alive) {
        tracked.ws.terminate();
        continue;
      }
      tracked.alive = false;
      tracked.ws.ping();
    }
  }, tick);
  timer.unref();
  return timer;
}

function rawText(data: Buffer | ArrayBuffer | Buffer[]): string {
  if (Buffer.isBuffer(data)) return data.toString("utf8");
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  return Buffer.from(data).toString("utf8");
}
